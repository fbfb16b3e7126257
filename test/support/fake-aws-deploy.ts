// A FAKE of the two AWS APIs `step-functions create` calls (Step Functions ListStateMachines; Batch
// job queues, compute environments, job definitions — the definitions recorded so the fake Step
// Functions executor can run them), on 127.0.0.1; and the sitecustomize that points Debian's boto3
// at the fakes (it has no per-service endpoint setting).
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { BatchJobDefinition } from './fake-step-functions.js';

export interface AwsFake {
  endpoint: string;
  jobDefinitions: BatchJobDefinition[];
  /** Each registered definition by the ARN the fake answered (`…:job-definition/<name>:<n>`). */
  jobDefinitionsByArn: Map<string, BatchJobDefinition>;
  close(): Promise<void>;
}

/** A request's JSON body (`{}` when empty). */
export async function readJsonBody(request: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  const text = Buffer.concat(chunks).toString('utf8');
  return text ? (JSON.parse(text) as Record<string, unknown>) : {};
}

/** The AWS calls `step-functions create --only-json` makes: Step Functions and Batch (job definitions recorded). */
export async function startAwsFake(): Promise<AwsFake> {
  const jobDefinitions: BatchJobDefinition[] = [];
  const jobDefinitionsByArn = new Map<string, BatchJobDefinition>();
  const server: Server = createServer((request, response) => {
    void readJsonBody(request).then((payload) => {
      const reply = (value: unknown): void => {
        response.writeHead(200, { 'content-type': 'application/json' });
        response.end(JSON.stringify(value));
      };
      const target = String(request.headers['x-amz-target'] ?? '');
      if (target.endsWith('.ListStateMachines')) return reply({ stateMachines: [] });
      switch (request.url) {
        case '/v1/describejobqueues':
          return reply({
            jobQueues: [{ jobQueueName: 'q', jobQueueArn: 'arn:aws:batch:us-east-1:123456789012:job-queue/q', state: 'ENABLED', status: 'VALID', priority: 1, computeEnvironmentOrder: [{ order: 1, computeEnvironment: 'arn:aws:batch:us-east-1:123456789012:compute-environment/ce' }] }],
          });
        case '/v1/describecomputeenvironments':
          return reply({ computeEnvironments: [{ computeEnvironmentName: 'ce', computeEnvironmentArn: 'arn:aws:batch:us-east-1:123456789012:compute-environment/ce', computeResources: { type: 'EC2' } }] });
        case '/v1/describejobdefinitions':
          return reply({ jobDefinitions: [] });
        case '/v1/registerjobdefinition': {
          const definition = payload as unknown as BatchJobDefinition;
          jobDefinitions.push(definition);
          const arn = `arn:aws:batch:us-east-1:123456789012:job-definition/${definition.jobDefinitionName}:${jobDefinitions.length}`;
          jobDefinitionsByArn.set(arn, definition);
          return reply({ jobDefinitionName: definition.jobDefinitionName, jobDefinitionArn: arn, revision: jobDefinitions.length });
        }
        default:
          response.writeHead(400, { 'content-type': 'application/json' });
          response.end(JSON.stringify({ __type: 'UnknownOperation', message: `the fake does not serve ${request.url} ${target}` }));
      }
    });
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const address = server.address() as { port: number };
  return { endpoint: `http://127.0.0.1:${address.port}`, jobDefinitions, jobDefinitionsByArn, close: () => new Promise((done) => server.close(() => done())) };
}

/**
 * An HTTP proxy on 127.0.0.1 that refuses every request (403) and records its URL: a task's
 * `HTTP_PROXY` so what Metaflow's @batch asks of the EC2 instance metadata service (169.254.169.254,
 * best effort) never leaves loopback; `NO_PROXY=127.0.0.1,localhost` keeps the fakes direct.
 */
export async function startRefusingProxy(): Promise<{ url: string; refused: string[]; close(): Promise<void> }> {
  const refused: string[] = [];
  const server: Server = createServer((request, response) => {
    refused.push(`${request.method} ${request.url}`);
    request.resume();
    response.writeHead(403, { 'content-type': 'text/plain' });
    response.end('the test proxy refuses every request off loopback');
  });
  server.on('connect', (request, socket) => {
    refused.push(`CONNECT ${request.url}`);
    socket.end('HTTP/1.1 403 Forbidden\r\n\r\n');
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const { port } = server.address() as { port: number };
  return { url: `http://127.0.0.1:${port}`, refused, close: () => new Promise((done) => server.close(() => done())) };
}

// boto3 1.26 / botocore 1.29 (Debian bookworm) know no AWS_ENDPOINT_URL_<SERVICE>: this
// sitecustomize points the clients at the fakes — Step Functions and Batch for `step-functions
// create` (PREBUILT_TEST_AWS_ENDPOINT), DynamoDB for the tasks of a foreach
// (PREBUILT_TEST_DYNAMODB_ENDPOINT). It changes nothing Metaflow compiles or runs otherwise, and
// first runs the sitecustomize it shadows (the fixture env's adds its site-packages).
export const SITECUSTOMIZE = `import os
import sys
_here = os.path.dirname(os.path.abspath(__file__))
for _dir in sys.path[1:]:
    _shadowed = os.path.join(_dir, "sitecustomize.py")
    if _dir and os.path.abspath(_dir) != _here and os.path.isfile(_shadowed):
        with open(_shadowed) as _file:
            exec(compile(_file.read(), _shadowed, "exec"), {"__name__": "sitecustomize", "__file__": _shadowed})
        break
_endpoints = {}
if os.environ.get("PREBUILT_TEST_AWS_ENDPOINT"):
    _endpoints["stepfunctions"] = _endpoints["batch"] = os.environ["PREBUILT_TEST_AWS_ENDPOINT"]
if os.environ.get("PREBUILT_TEST_DYNAMODB_ENDPOINT"):
    _endpoints["dynamodb"] = os.environ["PREBUILT_TEST_DYNAMODB_ENDPOINT"]
try:
    import boto3.session
except ImportError:  # a python without boto3 (the image's system python) makes no AWS calls
    _endpoints = {}
if _endpoints:
    _client = boto3.session.Session.client
    def client(self, service_name, *args, **kwargs):
        if service_name in _endpoints:
            kwargs.setdefault("endpoint_url", _endpoints[service_name])
        return _client(self, service_name, *args, **kwargs)
    boto3.session.Session.client = client
`;
