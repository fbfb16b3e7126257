// A FAKE of Amazon DynamoDB, for tests: one table keyed by a string attribute, served on
// 127.0.0.1 over DynamoDB's own wire protocol (JSON 1.0, `X-Amz-Target: DynamoDB_20120810.<Op>`),
// so a task's real boto3 talks to it. It serves exactly what Metaflow's Step Functions foreach
// uses (metaflow/plugins/aws/step_functions/dynamo_db_client.py): PutItem, UpdateItem with one
// `ADD <attribute> :value` of a set, GetItem with a ProjectionExpression. Anything else answers
// an error naming the operation, so an unexpected call fails the task loudly.
import { createServer, type Server } from 'node:http';
import { readJsonBody } from './fake-aws-deploy.js';

/** An item in DynamoDB's JSON form: `{ pathspec: { S: 'x' }, ids: { SS: ['a'] } }`. */
export type DynamoItem = Record<string, Record<string, unknown>>;

export class FakeDynamoDbError extends Error {
  constructor(
    readonly type: string,
    message: string,
  ) {
    super(message);
  }
}

export interface FakeDynamoDb {
  endpoint: string;
  table: string;
  /** Every call the fake served, in order (`PutItem`, …). */
  calls: string[];
  getItem(request: { TableName: string; Key: DynamoItem; ProjectionExpression?: string }): { Item?: DynamoItem };
  stop(): Promise<void>;
}

/** The table's items and the three operations, without the HTTP server (the fake Step Functions' getItem uses it directly). */
export function dynamoTable(table: string, keyName: string) {
  const items = new Map<string, DynamoItem>();
  const checkTable = (name: unknown): void => {
    if (name !== table) throw new FakeDynamoDbError('ResourceNotFoundException', `Requested resource not found: the fake serves table ${table}, not ${String(name)}`);
  };
  const keyOf = (key: DynamoItem | undefined): string => {
    const value = key?.[keyName]?.['S'];
    if (typeof value !== 'string' || Object.keys(key ?? {}).length !== 1) throw new FakeDynamoDbError('ValidationException', `the key must be exactly { ${keyName}: { S: … } }, got ${JSON.stringify(key)}`);
    return value;
  };
  return {
    items,
    putItem(request: { TableName?: unknown; Item?: DynamoItem }): Record<string, never> {
      checkTable(request.TableName);
      const item = request.Item ?? {};
      items.set(keyOf({ [keyName]: item[keyName]! }), structuredClone(item));
      return {};
    },
    updateItem(request: { TableName?: unknown; Key?: DynamoItem; UpdateExpression?: unknown; ExpressionAttributeValues?: DynamoItem }): Record<string, never> {
      checkTable(request.TableName);
      const id = keyOf(request.Key);
      const match = /^ADD (\w+) (:\w+)$/.exec(String(request.UpdateExpression ?? '').trim());
      if (!match) throw new FakeDynamoDbError('ValidationException', `the fake supports only "ADD <attribute> :value", got ${JSON.stringify(request.UpdateExpression)}`);
      const value = request.ExpressionAttributeValues?.[match[2]!];
      const setType = value ? Object.keys(value).find((type) => type === 'SS' || type === 'NS') : undefined;
      if (!value || !setType) throw new FakeDynamoDbError('ValidationException', `ADD needs a string or number set for ${match[2]}, got ${JSON.stringify(value)}`);
      const item = items.get(id) ?? { [keyName]: { S: id } };
      const current = (item[match[1]!]?.[setType] as string[] | undefined) ?? [];
      item[match[1]!] = { [setType]: [...new Set([...current, ...(value[setType] as string[])])] };
      items.set(id, item);
      return {};
    },
    getItem(request: { TableName?: unknown; Key?: DynamoItem; ProjectionExpression?: unknown }): { Item?: DynamoItem } {
      checkTable(request.TableName);
      const item = items.get(keyOf(request.Key));
      if (!item) return {};
      if (request.ProjectionExpression === undefined) return { Item: structuredClone(item) };
      const names = String(request.ProjectionExpression).split(',').map((name) => name.trim());
      if (names.some((name) => !/^\w+$/.test(name))) throw new FakeDynamoDbError('ValidationException', `the fake supports plain attribute names in ProjectionExpression, got ${JSON.stringify(request.ProjectionExpression)}`);
      return { Item: Object.fromEntries(names.filter((name) => name in item).map((name) => [name, structuredClone(item[name]!)])) };
    },
  };
}

/** Starts the fake on a free port of 127.0.0.1 with one table whose partition key is `keyName` (a string). */
export async function startFakeDynamoDb(table: string, keyName = 'pathspec'): Promise<FakeDynamoDb> {
  const store = dynamoTable(table, keyName);
  const calls: string[] = [];
  const server: Server = createServer((request, response) => {
    const send = (status: number, value: unknown): void => {
      response.writeHead(status, { 'content-type': 'application/x-amz-json-1.0' });
      response.end(JSON.stringify(value));
    };
    void readJsonBody(request)
      .then((payload) => {
        const target = String(request.headers['x-amz-target'] ?? '');
        const operation = target.startsWith('DynamoDB_20120810.') ? target.slice('DynamoDB_20120810.'.length) : '';
        calls.push(operation || target);
        switch (operation) {
          case 'PutItem':
            return send(200, store.putItem(payload));
          case 'UpdateItem':
            return send(200, store.updateItem(payload));
          case 'GetItem':
            return send(200, store.getItem(payload));
          default:
            throw new FakeDynamoDbError('UnknownOperationException', `the fake DynamoDB does not serve ${JSON.stringify(target)}`);
        }
      })
      .catch((error: unknown) => {
        const type = error instanceof FakeDynamoDbError ? error.type : 'SerializationException';
        send(400, { __type: `com.amazonaws.dynamodb.v20120810#${type}`, message: (error as Error).message });
      });
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const { port } = server.address() as { port: number };
  return {
    endpoint: `http://127.0.0.1:${port}`,
    table,
    calls,
    getItem: (request) => store.getItem(request),
    stop: () => new Promise((done) => server.close(() => done())),
  };
}
