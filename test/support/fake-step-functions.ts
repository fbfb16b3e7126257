// A FAKE of AWS Step Functions running AWS Batch jobs, for tests: executes the state machine that
// `step-functions create --only-json` prints, with the Batch job definitions it registered, one
// container per Batch job (see task-containers.ts).
//
// What it does as the services would (JSONPath mode of the Amazon States Language): Task, Map
// (`ItemsPath`, `Parameters` with `$$.Map.Item.Value|Index`, `Iterator` / `ItemProcessor`, run one
// item after another), Parallel, Pass, Succeed, Fail; `InputPath`, `Parameters` (`key.$` from the
// state input or `$$` context), `ResultSelector`, `ResultPath`, `OutputPath`, `Next` / `End`.
// Task resources: `arn:aws:states:::batch:submitJob.sync` (the job definition's image, command and
// environment, `ContainerOverrides.Command` / `.Environment` over them, `Ref::name` in the command
// from the job's `Parameters`, `AWS_BATCH_JOB_ID` / `AWS_BATCH_JOB_ATTEMPT` set, `RetryStrategy.
// Attempts` honoured; the result is the job's description) and `arn:aws:states:::dynamodb:getItem`
// (the fake DynamoDB's table). JSONPath: `$`, `.name`, `['a']`, `[0]`, and the `['a', 'b']` union
// Metaflow's OutputPath uses (an object of the keys present). Anything else — a state type, a
// resource, an intrinsic function (`States.*`), a JSONPath form, `Catch` — throws.
import { randomUUID } from 'node:crypto';
import type { DynamoItem } from './fake-dynamodb.js';
import type { TaskContainer, TaskResult, TaskRunner } from './task-containers.js';

export class FakeStepFunctionsError extends Error {}

type Json = unknown;
type JsonObject = Record<string, Json>;

interface StateBase {
  Type: string;
  Next?: string;
  End?: boolean;
  InputPath?: string | null;
  Parameters?: JsonObject;
  ResultSelector?: JsonObject;
  ResultPath?: string | null;
  OutputPath?: string | null;
  Retry?: unknown[];
  Catch?: unknown[];
  Comment?: string;
}

export interface TaskState extends StateBase {
  Type: 'Task';
  Resource: string;
}

export interface MapState extends StateBase {
  Type: 'Map';
  ItemsPath?: string;
  Iterator?: StateMachine;
  ItemProcessor?: StateMachine & { ProcessorConfig?: { Mode?: string } };
  MaxConcurrency?: number;
  ItemReader?: unknown;
  ResultWriter?: unknown;
}

export interface ParallelState extends StateBase {
  Type: 'Parallel';
  Branches: StateMachine[];
}

export interface OtherState extends StateBase {
  Type: 'Pass' | 'Succeed' | 'Fail';
  Result?: Json;
  Error?: string;
  Cause?: string;
}

export type State = TaskState | MapState | ParallelState | OtherState;

export interface StateMachine {
  StartAt: string;
  States: Record<string, State>;
  Comment?: string;
  TimeoutSeconds?: number;
  ProcessorConfig?: unknown;
}

/** A registered Batch job definition, as `RegisterJobDefinition` received it. */
export interface BatchJobDefinition {
  jobDefinitionName: string;
  containerProperties: { image: string; command?: string[]; environment?: Array<{ name: string; value: string }> };
}

/** One Batch job (one container attempt) the fake ran. */
export interface BatchJobRecord extends TaskResult, TaskContainer {
  /** The state that submitted it (`start`, `body`). */
  state: string;
  jobId: string;
  attempt: number;
}

export interface SfnRunResult {
  status: 'SUCCEEDED' | 'FAILED';
  executionName: string;
  output?: Json;
  /** The error of a failed execution (`States.TaskFailed`) and its cause. */
  error?: { error: string; cause: string };
  jobs: BatchJobRecord[];
}

export interface SfnRunOptions {
  runner: TaskRunner;
  /** Job definition ARN (`arn:aws:batch:…:job-definition/<name>:<revision>`) → definition. */
  jobDefinitions: ReadonlyMap<string, BatchJobDefinition>;
  /** The execution's input; default `{}`. */
  input?: Json;
  /** `$$.Execution.Name`; default a random UUID, as Step Functions names an execution. */
  executionName?: string;
  /** What the compute environment gives every job (credentials, endpoints); the job's own values win. */
  jobEnv?: Readonly<Record<string, string>>;
  /** The DynamoDB table the `dynamodb:getItem` task reads (the fake's). */
  dynamoDb?: { getItem(request: { TableName: string; Key: DynamoItem; ProjectionExpression?: string }): { Item?: DynamoItem } };
}

class ExecutionFailed extends Error {
  constructor(
    readonly error: string,
    override readonly cause: string,
  ) {
    super(`${error}: ${cause}`);
  }
}

interface Context {
  Execution: { Name: string; Id: string; Input: Json; StartTime: string };
  StateMachine: { Name: string; Id: string };
  State?: { Name: string; EnteredTime: string; RetryCount: number };
  Map?: { Item: { Index: number; Value: Json } };
}

// ---- JSONPath (the subset the Amazon States Language uses here) ----

type Segment = { key: string } | { index: number } | { union: string[] };

function parsePath(path: string): { root: '$' | '$$'; segments: Segment[] } {
  const root = path.startsWith('$$') ? '$$' : path.startsWith('$') ? '$' : undefined;
  if (!root) throw new FakeStepFunctionsError(`the fake Step Functions supports JSONPaths starting with $ or $$, got ${JSON.stringify(path)}`);
  const segments: Segment[] = [];
  let rest = path.slice(root.length);
  while (rest.length > 0) {
    let match: RegExpExecArray | null;
    if ((match = /^\.\[?(\d+)\]/.exec(rest)) || (match = /^\[(\d+)\]/.exec(rest))) {
      segments.push({ index: Number(match[1]) });
    } else if ((match = /^\.?\[((?:\s*'[^']*'\s*,)*\s*'[^']*'\s*)\]/.exec(rest))) {
      const keys = [...match[1]!.matchAll(/'([^']*)'/g)].map((m) => m[1]!);
      segments.push(keys.length === 1 ? { key: keys[0]! } : { union: keys });
    } else if ((match = /^\.([A-Za-z_][\w-]*)/.exec(rest))) {
      segments.push({ key: match[1]! });
    } else {
      throw new FakeStepFunctionsError(`the fake Step Functions does not know the JSONPath form ${JSON.stringify(rest)} in ${JSON.stringify(path)}`);
    }
    rest = rest.slice(match[0].length);
  }
  return { root, segments };
}

function select(path: string, input: Json, context: Context): Json {
  if (/^States\./.test(path)) throw new FakeStepFunctionsError(`the fake Step Functions does not evaluate intrinsic functions: ${path}`);
  const { root, segments } = parsePath(path);
  let value: Json = root === '$$' ? context : input;
  for (const segment of segments) {
    if ('union' in segment) {
      if (!value || typeof value !== 'object' || Array.isArray(value)) throw new ExecutionFailed('States.Runtime', `${path}: a union selects keys of an object`);
      const object = value as JsonObject;
      value = Object.fromEntries(segment.union.filter((key) => key in object).map((key) => [key, object[key]]));
    } else if ('index' in segment) {
      if (!Array.isArray(value) || segment.index >= value.length) throw new ExecutionFailed('States.Runtime', `${path}: no element ${segment.index}`);
      value = value[segment.index];
    } else {
      if (!value || typeof value !== 'object' || Array.isArray(value) || !(segment.key in value)) {
        throw new ExecutionFailed('States.Runtime', `The JSONPath '${path}' could not be found in the input '${JSON.stringify(value)}'`);
      }
      value = (value as JsonObject)[segment.key];
    }
  }
  return value;
}

/** `Parameters` / `ResultSelector`: keys ending in `.$` are paths into the input or the context. */
function resolveTemplate(template: Json, input: Json, context: Context): Json {
  if (Array.isArray(template)) return template.map((item) => resolveTemplate(item, input, context));
  if (!template || typeof template !== 'object') return template;
  const out: JsonObject = {};
  for (const [key, value] of Object.entries(template as JsonObject)) {
    if (key.endsWith('.$')) {
      if (typeof value !== 'string') throw new FakeStepFunctionsError(`${key}: a .$ field takes a path, got ${JSON.stringify(value)}`);
      out[key.slice(0, -2)] = select(value, input, context);
    } else {
      out[key] = resolveTemplate(value, input, context);
    }
  }
  return out;
}

function setAt(path: string, target: Json, value: Json): Json {
  const { root, segments } = parsePath(path);
  if (root !== '$' || segments.some((s) => !('key' in s))) throw new FakeStepFunctionsError(`the fake supports ResultPath of keys only, got ${JSON.stringify(path)}`);
  if (segments.length === 0) return value;
  const copy = structuredClone(target && typeof target === 'object' && !Array.isArray(target) ? target : {}) as JsonObject;
  let node = copy;
  for (const [i, segment] of segments.entries()) {
    const key = (segment as { key: string }).key;
    if (i === segments.length - 1) node[key] = value;
    else node = (node[key] = node[key] && typeof node[key] === 'object' ? node[key] : {}) as JsonObject;
  }
  return copy;
}

// ---- Execution ----

/** Runs the state machine to its end; a failed Batch job fails the execution (no Catch). */
export async function runStateMachine(machine: StateMachine, options: SfnRunOptions): Promise<SfnRunResult> {
  const executionName = options.executionName ?? randomUUID();
  const input = options.input ?? {};
  const context: Context = {
    Execution: { Name: executionName, Id: `arn:aws:states:us-east-1:123456789012:execution:fake:${executionName}`, Input: input, StartTime: new Date().toISOString() },
    StateMachine: { Name: 'fake', Id: 'arn:aws:states:us-east-1:123456789012:stateMachine:fake' },
  };
  const jobs: BatchJobRecord[] = [];
  try {
    const output = await runMachine(machine, input, context, options, jobs);
    return { status: 'SUCCEEDED', executionName, output, jobs };
  } catch (error) {
    if (error instanceof ExecutionFailed) return { status: 'FAILED', executionName, error: { error: error.error, cause: error.cause }, jobs };
    throw error;
  }
}

async function runMachine(machine: StateMachine, input: Json, context: Context, options: SfnRunOptions, jobs: BatchJobRecord[]): Promise<Json> {
  let name: string | undefined = machine.StartAt;
  let data = input;
  for (let steps = 0; name !== undefined; steps++) {
    if (steps > 10_000) throw new FakeStepFunctionsError('more than 10000 state transitions: a loop?');
    const state: State | undefined = machine.States[name];
    if (!state) throw new FakeStepFunctionsError(`no state ${JSON.stringify(name)} in the state machine`);
    if (state.Catch?.length) throw new FakeStepFunctionsError(`state ${name}: the fake does not implement Catch`);
    const stateContext: Context = { ...context, State: { Name: name, EnteredTime: new Date().toISOString(), RetryCount: 0 } };
    if (state.Type === 'Succeed') return data;
    if (state.Type === 'Fail') throw new ExecutionFailed(state.Error ?? 'States.Fail', state.Cause ?? '');
    const effective = state.InputPath === null ? {} : select(state.InputPath ?? '$', data, stateContext);
    let result: Json;
    switch (state.Type) {
      case 'Pass': {
        result = state.Parameters ? resolveTemplate(state.Parameters, effective, stateContext) : 'Result' in state ? state.Result : effective;
        break;
      }
      case 'Task': {
        const parameters = resolveTemplate(state.Parameters ?? {}, effective, stateContext) as JsonObject;
        result = await runTask(name, state.Resource, parameters, options, jobs);
        break;
      }
      case 'Map': {
        const processor = state.ItemProcessor ?? state.Iterator;
        if (!processor) throw new FakeStepFunctionsError(`Map state ${name} has no Iterator / ItemProcessor`);
        if (state.ItemReader || state.ResultWriter || state.ItemProcessor?.ProcessorConfig?.Mode === 'DISTRIBUTED') {
          throw new FakeStepFunctionsError(`Map state ${name}: the fake runs inline Maps only (no ItemReader / ResultWriter / DISTRIBUTED mode)`);
        }
        const items = select(state.ItemsPath ?? '$', effective, stateContext);
        if (!Array.isArray(items)) throw new ExecutionFailed('States.Runtime', `Map state ${name}: ItemsPath ${state.ItemsPath} is not an array: ${JSON.stringify(items)}`);
        const outputs: Json[] = [];
        for (const [index, value] of items.entries()) {
          const itemContext: Context = { ...stateContext, Map: { Item: { Index: index, Value: value } } };
          const itemInput = state.Parameters ? resolveTemplate(state.Parameters, effective, itemContext) : value;
          outputs.push(await runMachine(processor, itemInput, context, options, jobs));
        }
        result = outputs;
        break;
      }
      case 'Parallel': {
        const outputs: Json[] = [];
        for (const branch of state.Branches) outputs.push(await runMachine(branch, effective, context, options, jobs));
        result = outputs;
        break;
      }
      default:
        throw new FakeStepFunctionsError(`state ${name}: the fake does not know the state type ${JSON.stringify((state as { Type: unknown }).Type)}`);
    }
    if (state.ResultSelector) result = resolveTemplate(state.ResultSelector, result, stateContext);
    data = state.ResultPath === null ? data : setAt(state.ResultPath ?? '$', data, result);
    data = state.OutputPath === null ? {} : select(state.OutputPath ?? '$', data, stateContext);
    if (state.End) return data;
    if (!state.Next) throw new FakeStepFunctionsError(`state ${name} has neither Next nor End`);
    name = state.Next;
  }
  return data;
}

function taskResource(resource: string): string {
  const match = /^arn:aws[\w-]*:states:::(.+)$/.exec(resource);
  if (!match) throw new FakeStepFunctionsError(`the fake Step Functions does not run the resource ${JSON.stringify(resource)}`);
  return match[1]!;
}

async function runTask(state: string, resource: string, parameters: JsonObject, options: SfnRunOptions, jobs: BatchJobRecord[]): Promise<Json> {
  const service = taskResource(resource);
  if (service === 'dynamodb:getItem') {
    if (!options.dynamoDb) throw new FakeStepFunctionsError(`state ${state} reads DynamoDB: pass the fake DynamoDB as options.dynamoDb`);
    return options.dynamoDb.getItem(parameters as unknown as { TableName: string; Key: DynamoItem; ProjectionExpression?: string });
  }
  if (service !== 'batch:submitJob.sync') throw new FakeStepFunctionsError(`the fake Step Functions does not run the resource ${JSON.stringify(resource)}`);
  return submitJob(state, parameters, options, jobs);
}

/** Batch's SubmitJob, waited on (`.sync`): runs the container, attempt after attempt; the result is the job's description. */
async function submitJob(state: string, parameters: JsonObject, options: SfnRunOptions, jobs: BatchJobRecord[]): Promise<Json> {
  const arn = String(parameters['JobDefinition'] ?? '');
  const definition = options.jobDefinitions.get(arn);
  if (!definition) throw new FakeStepFunctionsError(`state ${state}: no job definition ${JSON.stringify(arn)} was registered (known: ${[...options.jobDefinitions.keys()].join(', ')})`);
  const overrides = (parameters['ContainerOverrides'] ?? {}) as { Command?: string[]; Environment?: Array<{ Name: string; Value: unknown }> };
  for (const key of Object.keys(overrides)) {
    if (!['Command', 'Environment', 'ResourceRequirements', 'Vcpus', 'Memory'].includes(key)) throw new FakeStepFunctionsError(`state ${state}: the fake does not apply ContainerOverrides.${key}`);
  }
  const jobParameters = (parameters['Parameters'] ?? {}) as Record<string, unknown>;
  const command = (overrides.Command ?? definition.containerProperties.command ?? []).map((arg) =>
    arg.replace(/Ref::([\w.-]+)/g, (whole, key: string) => (key in jobParameters ? String(jobParameters[key]) : whole)),
  );
  const env: Record<string, string> = { ...options.jobEnv };
  for (const variable of definition.containerProperties.environment ?? []) env[variable.name] = variable.value;
  for (const variable of overrides.Environment ?? []) {
    if (typeof variable.Value !== 'string') throw new FakeStepFunctionsError(`state ${state}: Batch takes string environment values, ${variable.Name} is ${JSON.stringify(variable.Value)}`);
    env[variable.Name] = variable.Value;
  }
  const jobId = randomUUID();
  const attempts = Number((parameters['RetryStrategy'] as { Attempts?: number } | undefined)?.Attempts ?? 1);
  let last: BatchJobRecord | undefined;
  for (let attempt = 1; attempt <= attempts; attempt++) {
    const task: TaskContainer = {
      name: `${state} (job ${jobId}, attempt ${attempt})`,
      image: definition.containerProperties.image,
      command,
      // What Batch and ECS set in every job's container.
      env: { ...env, AWS_BATCH_JOB_ID: jobId, AWS_BATCH_JOB_ATTEMPT: String(attempt), AWS_BATCH_JQ_NAME: String(parameters['JobQueue'] ?? ''), AWS_BATCH_CE_NAME: 'fake-compute-environment', AWS_EXECUTION_ENV: 'AWS_ECS_EC2' },
    };
    const ran = await options.runner(task);
    last = { ...task, ...ran, state, jobId, attempt };
    jobs.push(last);
    if (ran.exitCode === 0) break;
  }
  const description = {
    JobId: jobId,
    JobName: parameters['JobName'],
    JobQueue: parameters['JobQueue'],
    JobDefinition: arn,
    Parameters: jobParameters,
    Status: last!.exitCode === 0 ? 'SUCCEEDED' : 'FAILED',
    Attempts: jobs.filter((job) => job.jobId === jobId).map((job) => ({ Container: { ExitCode: job.exitCode } })),
    Container: { Image: definition.containerProperties.image, Command: command, ExitCode: last!.exitCode },
  };
  if (last!.exitCode !== 0) throw new ExecutionFailed('States.TaskFailed', JSON.stringify(description));
  return description;
}
