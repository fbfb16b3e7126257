// Unit tests of the FAKE Step Functions / Batch executor and the FAKE DynamoDB on a small
// hand-written state machine shaped as Metaflow's (start → foreach Map → join → end); the tasks
// are recorded by an in-process runner, no Docker.
import { afterEach, describe, expect, it } from 'vitest';
import { startFakeDynamoDb, type FakeDynamoDb } from './fake-dynamodb.js';
import { FakeStepFunctionsError, runStateMachine, type BatchJobDefinition, type StateMachine } from './fake-step-functions.js';
import type { TaskContainer, TaskRunner } from './task-containers.js';

const DEF = 'arn:aws:batch:us-east-1:123456789012:job-definition/job:1';
const definitions = new Map<string, BatchJobDefinition>([[DEF, { jobDefinitionName: 'job', containerProperties: { image: 'img@sha256:1', command: ['echo'], environment: [{ name: 'FROM_DEF', value: 'd' }] } }]]);

function batch(step: string, env: Record<string, string>, extra: Partial<StateMachine['States'][string]> = {}): StateMachine['States'][string] {
  return {
    Type: 'Task',
    Resource: 'arn:aws:states:::batch:submitJob.sync',
    Parameters: {
      JobDefinition: DEF,
      JobName: step,
      JobQueue: 'q',
      Parameters: { step_name: step, 'metaflow.run_id.$': step === 'start' ? '$$.Execution.Name' : "$.Parameters.['metaflow.run_id']" },
      ContainerOverrides: { Command: ['run', step, 'Ref::step_name'], Environment: Object.entries(env).map(([Name, Value]) => (Value.startsWith('$') ? { Name, 'Value.$': Value } : { Name, Value })) },
      RetryStrategy: { Attempts: 1 },
    },
    OutputPath: "$.['JobId', 'Parameters', 'Index', 'SplitParentTaskId']",
    ...extra,
  } as StateMachine['States'][string];
}

const MACHINE: StateMachine = {
  StartAt: 'start',
  States: {
    start: batch('start', {}, { Next: '#body' }),
    '#body': { Type: 'Task', Resource: 'arn:aws:states:::dynamodb:getItem', Parameters: { TableName: 't', Key: { pathspec: { 'S.$': '$.JobId' } }, ConsistentRead: true, ProjectionExpression: 'for_each_cardinality' }, ResultPath: '$.Result', Next: '*body' },
    '*body': {
      Type: 'Map',
      ItemsPath: '$.Result.Item.for_each_cardinality.NS',
      Parameters: { 'JobId.$': '$.JobId', 'SplitParentTaskId.$': '$.JobId', 'Parameters.$': '$.Parameters', 'Index.$': '$$.Map.Item.Value' },
      Iterator: { StartAt: 'body', States: { body: batch('body', { METAFLOW_SPLIT_INDEX: '$.Index', PARENT: '$.JobId', SPLIT_PARENT: '$.SplitParentTaskId' }, { End: true }) } },
      OutputPath: '$.[0]',
      Next: 'join',
    },
    join: batch('join', { RUN: "$.Parameters.['metaflow.run_id']" }, { Next: 'end' }),
    end: batch('end', { PARENT: '$.JobId' }, { End: true }),
  },
};

describe('fake Step Functions (in-process runner, fake DynamoDB)', () => {
  let dynamo: FakeDynamoDb | undefined;
  afterEach(async () => {
    await dynamo?.stop();
    dynamo = undefined;
  });

  /** A runner that plays Metaflow's tasks: the foreach writes its cardinality, the bodies their ids, over the wire. */
  function metaflowLikeRunner(seen: TaskContainer[], failStep?: string): TaskRunner {
    return async (task) => {
      seen.push(task);
      const call = (op: string, body: unknown): Promise<Response> => fetch(dynamo!.endpoint, { method: 'POST', headers: { 'x-amz-target': `DynamoDB_20120810.${op}`, 'content-type': 'application/x-amz-json-1.0' }, body: JSON.stringify(body) });
      if (task.command?.[1] === 'start') await call('PutItem', { TableName: 't', Item: { pathspec: { S: task.env['AWS_BATCH_JOB_ID'] }, for_each_cardinality: { NS: ['0', '1', '2'] }, ttl: { N: '1' } } });
      if (task.command?.[1] === 'body') await call('UpdateItem', { TableName: 't', Key: { pathspec: { S: task.env['SPLIT_PARENT'] } }, UpdateExpression: 'ADD parent_task_ids_for_foreach_join :val', ExpressionAttributeValues: { ':val': { SS: [task.env['AWS_BATCH_JOB_ID']] } } });
      return { exitCode: task.command?.[1] === failStep ? 17 : 0, stdout: '', stderr: '', repoDigests: [] };
    };
  }

  it('runs start → Map over the cardinality the task stored → join → end, with resolved environments and Ref:: parameters', async () => {
    dynamo = await startFakeDynamoDb('t');
    const seen: TaskContainer[] = [];
    const result = await runStateMachine(MACHINE, { runner: metaflowLikeRunner(seen), jobDefinitions: definitions, executionName: 'exec-1', dynamoDb: dynamo, jobEnv: { CREDS: 'x', FROM_DEF: 'overridden' } });
    expect(result.status, JSON.stringify(result.error)).toBe('SUCCEEDED');
    expect(result.jobs.map((j) => j.state)).toEqual(['start', 'body', 'body', 'body', 'join', 'end']);
    expect(seen[0]!.command).toEqual(['run', 'start', 'start']);
    expect(seen[0]!.env).toMatchObject({ CREDS: 'x', FROM_DEF: 'd', AWS_BATCH_JOB_ATTEMPT: '1' });
    const startId = result.jobs[0]!.jobId;
    expect(seen.slice(1, 4).map((t) => [t.env['METAFLOW_SPLIT_INDEX'], t.env['PARENT'], t.env['SPLIT_PARENT']])).toEqual([['0', startId, startId], ['1', startId, startId], ['2', startId, startId]]);
    expect(seen[4]!.env['RUN']).toBe('exec-1');
    // end's input is join's JobId (the Map kept only its first item's output).
    expect(seen[5]!.env['PARENT']).toBe(result.jobs[4]!.jobId);
    expect(dynamo.calls).toEqual(['PutItem', 'UpdateItem', 'UpdateItem', 'UpdateItem']);
    const stored = dynamo.getItem({ TableName: 't', Key: { pathspec: { S: startId } }, ProjectionExpression: 'parent_task_ids_for_foreach_join' });
    expect((stored.Item!['parent_task_ids_for_foreach_join']!['SS'] as string[]).sort()).toEqual(result.jobs.slice(1, 4).map((j) => j.jobId).sort());
    expect(result.output).toEqual({ JobId: result.jobs[5]!.jobId, Parameters: { step_name: 'end', 'metaflow.run_id': 'exec-1' } });
  });

  it('a failing job fails the execution with States.TaskFailed and its exit code; later states do not run', async () => {
    dynamo = await startFakeDynamoDb('t');
    const result = await runStateMachine(MACHINE, { runner: metaflowLikeRunner([], 'body'), jobDefinitions: definitions, dynamoDb: dynamo });
    expect(result.status).toBe('FAILED');
    expect(result.error!.error).toBe('States.TaskFailed');
    expect(JSON.parse(result.error!.cause).Container.ExitCode).toBe(17);
    expect(result.jobs.map((j) => [j.state, j.exitCode])).toEqual([['start', 0], ['body', 17]]);
  });

  it('RetryStrategy.Attempts reruns a failed job with the next AWS_BATCH_JOB_ATTEMPT and the same job id', async () => {
    let calls = 0;
    const runner: TaskRunner = async (task) => ({ exitCode: calls++ === 0 ? 3 : 0, stdout: task.env['AWS_BATCH_JOB_ATTEMPT']!, stderr: '', repoDigests: [] });
    const one: StateMachine = { StartAt: 'a', States: { a: batch('start', {}, { End: true }) } };
    (one.States['a']!.Parameters!['RetryStrategy'] as { Attempts: number }).Attempts = 2;
    const result = await runStateMachine(one, { runner, jobDefinitions: definitions });
    expect(result.status).toBe('SUCCEEDED');
    expect(result.jobs.map((j) => [j.attempt, j.exitCode, j.stdout])).toEqual([[1, 3, '1'], [2, 0, '2']]);
    expect(new Set(result.jobs.map((j) => j.jobId)).size).toBe(1);
  });

  it('Parallel runs every branch; Pass and ResultPath shape the data', async () => {
    const machine: StateMachine = {
      StartAt: 'p',
      States: {
        p: { Type: 'Parallel', Branches: [{ StartAt: 'x', States: { x: { Type: 'Pass', Result: 1, End: true } } }, { StartAt: 'y', States: { y: { Type: 'Pass', Parameters: { 'v.$': '$.in' }, End: true } } }], ResultPath: '$.out', Next: 'done' },
        done: { Type: 'Succeed' },
      },
    };
    const result = await runStateMachine(machine, { runner: () => Promise.reject(new Error('no task')), jobDefinitions: definitions, input: { in: 'i' } });
    expect(result.output).toEqual({ in: 'i', out: [1, { v: 'i' }] });
  });

  it('fails loudly on what it does not know: a state type, an intrinsic function, a resource, an unregistered job definition', async () => {
    const run = (states: StateMachine['States']) => runStateMachine({ StartAt: 'a', States: states }, { runner: () => Promise.reject(new Error('no task')), jobDefinitions: definitions });
    await expect(run({ a: { Type: 'Wait', End: true } as never })).rejects.toThrow(/does not know the state type "Wait"/);
    await expect(run({ a: { Type: 'Pass', Parameters: { 'x.$': 'States.StringToJson($.a)' }, End: true } })).rejects.toThrow(/intrinsic functions: States.StringToJson/);
    await expect(run({ a: { Type: 'Task', Resource: 'arn:aws:states:::lambda:invoke', End: true } })).rejects.toThrow(FakeStepFunctionsError);
    await expect(run({ a: { Type: 'Task', Resource: 'arn:aws:states:::batch:submitJob.sync', Parameters: { JobDefinition: 'nope' }, End: true } })).rejects.toThrow(/no job definition "nope"/);
    await expect(run({ a: { Type: 'Pass', Parameters: { 'x.$': '$..deep' }, End: true } })).rejects.toThrow(/JSONPath form/);
  });

  it('the fake DynamoDB answers an operation it does not serve, and another table, with DynamoDB errors', async () => {
    dynamo = await startFakeDynamoDb('t');
    const scan = await fetch(dynamo.endpoint, { method: 'POST', headers: { 'x-amz-target': 'DynamoDB_20120810.Scan' }, body: '{"TableName":"t"}' });
    expect(scan.status).toBe(400);
    expect(((await scan.json()) as { __type: string }).__type).toMatch(/#UnknownOperationException$/);
    const other = await fetch(dynamo.endpoint, { method: 'POST', headers: { 'x-amz-target': 'DynamoDB_20120810.GetItem' }, body: '{"TableName":"u","Key":{"pathspec":{"S":"a"}}}' });
    expect(((await other.json()) as { __type: string }).__type).toMatch(/#ResourceNotFoundException$/);
  });
});
