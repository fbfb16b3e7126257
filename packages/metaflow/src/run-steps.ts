/**
 * Which steps of a flow run remotely for a given Metaflow command line, decided as Metaflow
 * decides it, and the command line `prebuilt run` hands to Metaflow.
 */
import { basename } from 'node:path';
import { InputError } from '@prebuilt/core';
import type { FlowEnvs } from './flow-envs.js';
import { attachedDecospecs, firstDecospecs, type SourcedDecospec } from './decospec.js';
import { stepGpus } from './merge.js';
import type { FlowStep } from './read-flow.js';

export type RemoteReason = 'static' | 'with' | 'default-decospecs' | 'scheduler';

export interface RemoteSelection {
  /** Steps that run remotely and have an environment (so need an image), in flow order. */
  steps: string[];
  /** Why every step runs remotely; 'static' when only the steps' own decorators decide. */
  reason: RemoteReason;
  /** The remote decorator named by `--with`/METAFLOW_DEFAULT_DECOSPECS/the scheduler, if any. */
  decorator: 'kubernetes' | 'batch' | null;
}

const REMOTE = new Set(['kubernetes', 'batch']);

/** Schedulers that attach a remote decorator to every step when they compile a flow. */
export const SCHEDULERS: Readonly<Record<string, 'kubernetes' | 'batch'>> = {
  'argo-workflows': 'kubernetes',
  airflow: 'kubernetes',
  'step-functions': 'batch',
};

/**
 * The decospecs a Metaflow command line attaches to every step, in Metaflow 2.19's order
 * ({@link attachedDecospecs}): for `run` and `resume`, their own `--with X` / `--with=X`, then
 * METAFLOW_DEFAULT_DECOSPECS (environment, else Metaflow's configuration file), then the top-level
 * `--with`; for any other command, the top-level `--with` first. Nothing after `--` counts. `cwd` is
 * where the command runs (Metaflow finds the project's configuration from there).
 */
export function commandLineDecospecs(args: readonly string[], env: Record<string, string | undefined>, cwd: string = process.cwd()): SourcedDecospec[] {
  const at = metaflowCommandIndex(args);
  const topLevel: string[] = [];
  const commandLevel: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '--') break;
    const specs = at !== undefined && i > at ? commandLevel : topLevel;
    if (arg === '--with' && i + 1 < args.length) specs.push(args[++i]!);
    else if (arg.startsWith('--with=')) specs.push(arg.slice('--with='.length));
  }
  const command = at === undefined ? undefined : args[at];
  return command === 'run' || command === 'resume' ? attachedDecospecs(commandLevel, env, topLevel, cwd) : attachedDecospecs([...topLevel, ...commandLevel], env, [], cwd);
}

/** Where a step runs off this machine, and what sent it there: its own decorator (`@batch`) or a spec's source. */
export interface StepRemote {
  name: 'kubernetes' | 'batch';
  source: string;
}

/**
 * The remote decorator a step runs under with the attached decospecs (the first spec of each name,
 * {@link firstDecospecs}): its own @kubernetes / @batch, else the attached one; null when it runs
 * locally. Metaflow attaches a @batch to a step with its own @kubernetes (and the reverse), then
 * refuses the step (kubernetes_decorator.py `step_init`): so does this, with an InputError (exit 2)
 * naming the step and where each decorator came from.
 */
export function stepRemote(step: Pick<FlowStep, 'name' | 'line' | 'file' | 'remote'>, flowFile: string, attached: ReadonlyMap<string, SourcedDecospec>): StepRemote | null {
  const own = step.remote ? { name: step.remote.name, source: `@${step.remote.name}`, own: true } : undefined;
  // The map keeps the command's order: the first remote spec is the first attached.
  const given = [...attached.values()].filter((spec) => REMOTE.has(spec.name) && spec.name !== own?.name).map((spec) => ({ name: spec.name, source: spec.source, own: false }));
  const [first, second] = own ? [own, ...given] : given;
  if (!first) return null;
  if (second) {
    const file = step.file ?? flowFile;
    const line = step.remote?.line ?? step.line;
    const head = first.own ? `has @${first.name}` : `gets @${first.name} from ${first.source}`;
    throw new InputError(
      `${file}:${line}: step '${step.name}' ${head}, and ${second.source} gives it @${second.name} too, which Metaflow refuses ("Step *${step.name}* is marked for execution both on AWS Batch and Kubernetes").`,
      { file, line, hint: `Run each step on one of them: ${first.own ? `remove @${first.name} from the step, or leave out` : 'leave out'} ${second.source}${first.own ? '' : ` or ${first.source}`}.` },
    );
  }
  return { name: first.name as StepRemote['name'], source: first.source };
}

/** The first word of the command line that is not an option or an option's value: Metaflow's command. */
export function metaflowCommand(args: readonly string[]): string | undefined {
  const at = metaflowCommandIndex(args);
  return at === undefined ? undefined : args[at];
}

/** Metaflow 2.19's top-level options that take a value (`flow.py --help`), and how many. */
const TOP_LEVEL_VALUES: ReadonlyMap<string, number> = new Map([
  ...['--with', '--metadata', '--environment', '--datastore', '--datastore-root', '--event-logger', '--monitor', '--package-suffixes', '--local-config-file', '--mode'].map((name) => [name, 1] as const),
  ...['--config', '--config-value'].map((name) => [name, 2] as const),
]);

/** The position of {@link metaflowCommand} in the command line. */
function metaflowCommandIndex(args: readonly string[]): number | undefined {
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg.startsWith('-')) {
      i += TOP_LEVEL_VALUES.get(arg) ?? 0;
      continue;
    }
    return i;
  }
  return undefined;
}

/**
 * Metaflow 2.19's commands that start no task and compile nothing that names an image (`python
 * flow.py --help` and its plugins' groups): `check` (also what no command runs), `show`, `help`,
 * `dump`, `version`, `output-raw`, `output-dot`, `spin` (a task run again locally), `card`, `tag`,
 * `logs`, `spot-metadata`. `package` is not among them: it initialises the environment, which
 * applies the images.
 */
const NO_TASK_COMMANDS: ReadonlySet<string> = new Set(['check', 'show', 'help', 'dump', 'version', 'output-raw', 'output-dot', 'spin', 'card', 'tag', 'logs', 'spot-metadata']);

/** Options of the schedulers' groups (`argo-workflows --name X create`) that take a value. */
const SCHEDULER_GROUP_OPTIONS: ReadonlySet<string> = new Set(['--name']);

/**
 * Whether the Metaflow command line starts remote steps, or compiles a deployment that names their
 * images: `run`, `resume`, `<scheduler> create`, `package`, and any command this list does not know
 * (another extension's). Not a command of {@link NO_TASK_COMMANDS}, a scheduler's other subcommands
 * (trigger, delete, status…: the deployed spec already names its images), nor a `--help` (Metaflow
 * prints the help and stops). `prebuilt run` builds images only when this is true.
 */
export function startsRemoteSteps(args: readonly string[]): boolean {
  if (asksForHelp(args)) return false;
  const [command = 'check', subcommand] = metaflowCommandWords(args);
  if (NO_TASK_COMMANDS.has(command)) return false;
  return command in SCHEDULERS ? subcommand === 'create' : true;
}

/** Whether `--help` comes before any `--`: Metaflow prints the help and stops. */
function asksForHelp(args: readonly string[]): boolean {
  const end = args.indexOf('--');
  return (end < 0 ? args : args.slice(0, end)).includes('--help');
}

/**
 * The Metaflow command (`check` when none is given) and, for a scheduler, its subcommand
 * (`['argo-workflows', 'trigger']`); for people, with ` --help` when it asks for the help.
 */
function metaflowCommandWords(args: readonly string[]): string[] {
  const command = metaflowCommand(args) ?? 'check';
  const words = [command];
  if (command in SCHEDULERS) {
    const rest = args.slice(args.indexOf(command) + 1);
    for (let i = 0; i < rest.length; i++) {
      const arg = rest[i]!;
      if (!arg.startsWith('-')) {
        words.push(arg);
        break;
      }
      if (SCHEDULER_GROUP_OPTIONS.has(arg)) i += 1;
    }
  }
  return words;
}

/** The command line as {@link metaflowCommandWords} names it for people: `show`, `run --help`, `argo-workflows trigger`. */
export function metaflowCommandText(args: readonly string[]): string {
  const words = metaflowCommand(args) === undefined && asksForHelp(args) ? [] : metaflowCommandWords(args);
  return [...words, ...(asksForHelp(args) ? ['--help'] : [])].join(' ');
}

/**
 * The steps that need an image: steps with a static `@kubernetes`/`@batch`, or every step when the
 * command line or METAFLOW_DEFAULT_DECOSPECS (environment, else Metaflow's configuration file)
 * attaches `kubernetes` or `batch` ({@link commandLineDecospecs}), or when the command is a
 * scheduler that makes every step remote (`argo-workflows`, `step-functions`, `airflow`).
 * Disabled steps never need one (they run on the base image's python). A step that would get both
 * @kubernetes and @batch is refused, as Metaflow refuses it ({@link stepRemote}).
 */
export function remoteSteps(envs: FlowEnvs, args: readonly string[], env: Record<string, string | undefined> = process.env, cwd: string = process.cwd()): RemoteSelection {
  const enabled = envs.steps.filter((s) => s.request !== null);
  const attached = firstDecospecs(commandLineDecospecs(args, env, cwd));
  // Metaflow refuses such a step once its decorators are initialised: not for a --help, which it prints and stops.
  if (!asksForHelp(args)) for (const step of envs.source.steps) stepRemote(step, envs.source.file, attached);
  const spec = [...attached.values()].find((found) => REMOTE.has(found.name));
  if (spec) return { steps: enabled.map((s) => s.step), reason: spec.from === 'with' ? 'with' : 'default-decospecs', decorator: spec.name as 'kubernetes' | 'batch' };
  const command = metaflowCommand(args);
  const scheduler = command !== undefined ? SCHEDULERS[command] : undefined;
  if (scheduler) return { steps: enabled.map((s) => s.step), reason: 'scheduler', decorator: scheduler };
  return { steps: enabled.filter((s) => s.remote !== null).map((s) => s.step), reason: 'static', decorator: null };
}

/** A spec's `gpu` as {@link stepGpus} counts a decorator's: a number, else null. */
function specGpu(spec: SourcedDecospec | undefined): number | null {
  const value = spec?.attributes['gpu'];
  const gpu = Number(value);
  return Number.isFinite(gpu) && value !== undefined && value !== null ? gpu : null;
}

/**
 * The steps of `selection` that ask for GPUs only through the command line: a `--with
 * kubernetes:gpu=N`, `--with batch:gpu=N` or `--with resources:gpu=N` (or the same in
 * METAFLOW_DEFAULT_DECOSPECS), which Metaflow attaches to every step without that decorator of
 * its own, counted as {@link stepGpus} counts a static one. Their images need the GPU base image.
 */
export function commandLineGpuSteps(envs: FlowEnvs, selection: RemoteSelection, args: readonly string[], env: Record<string, string | undefined> = process.env, cwd: string = process.cwd()): string[] {
  const attached = firstDecospecs(commandLineDecospecs(args, env, cwd));
  if (!attached.has('kubernetes') && !attached.has('batch') && !attached.has('resources')) return [];
  const chosen = new Set(selection.steps);
  return envs.source.steps
    .filter((step) => chosen.has(step.name))
    .filter((step) => {
      const remoteName = step.remote?.name ?? selection.decorator;
      const remote: FlowStep['remote'] =
        step.remote ?? (remoteName ? { name: remoteName, line: 0, gpu: specGpu(attached.get(remoteName)), image: { kind: 'absent' } } : undefined);
      const resources: FlowStep['resources'] = step.resources ?? (attached.has('resources') ? { line: 0, gpu: specGpu(attached.get('resources')) } : undefined);
      return stepGpus({ ...(remote ? { remote } : {}), ...(resources ? { resources } : {}) }) > 0 && stepGpus(step) === 0;
    })
    .map((step) => step.name);
}

/** The `--environment` the user gave, if any. */
export function givenEnvironment(args: readonly string[]): string | undefined {
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '--') break;
    if (arg === '--environment') return args[i + 1];
    if (arg.startsWith('--environment=')) return arg.slice('--environment='.length);
  }
  return undefined;
}

/**
 * The top-level `--datastore` the command line gives (`--datastore s3` or `--datastore=s3`, before
 * the Metaflow command; the last one, as click takes it), if any: Metaflow pins the env's packages
 * for that datastore (boto3 for s3), over METAFLOW_DEFAULT_DATASTORE.
 */
export function givenDatastore(args: readonly string[]): string | undefined {
  const end = metaflowCommandIndex(args) ?? args.length;
  let given: string | undefined;
  for (let i = 0; i < end; i++) {
    const arg = args[i]!;
    if (arg === '--') break;
    if (arg === '--datastore' && i + 1 < end) given = args[i + 1];
    else if (arg.startsWith('--datastore=')) given = arg.slice('--datastore='.length);
    // Another option's value (`--with --datastore`) is not an option.
    i += TOP_LEVEL_VALUES.get(arg) ?? 0;
  }
  return given;
}

/** The user's arguments, with `--environment=prebuilt` in front unless they chose an environment. */
export function metaflowArgs(args: readonly string[]): string[] {
  return givenEnvironment(args) === undefined ? ['--environment=prebuilt', ...args] : [...args];
}

/**
 * A flow file name a remote task's command can carry as it is: Metaflow writes the file's base name
 * unquoted into the shell command every remote task runs (`bash -c "… python <name> … step …"`,
 * for `--with kubernetes|batch`, Argo Workflows, Step Functions and Airflow alike), so a space,
 * quote, `$`, `;`, parenthesis, glob or a leading `-` (read as a python option) breaks every task.
 */
const TASK_COMMAND_WORD = /^[\p{L}\p{N}_.+@%,:=][\p{L}\p{N}_.+@%,:=-]*$/u;

/**
 * Refuses a flow file whose name Metaflow's remote task commands cannot carry (see
 * {@link TASK_COMMAND_WORD}): an InputError naming the first character at fault and a name that works.
 * Called when a step runs remotely, before anything is built.
 */
export function checkRemoteFlowFileName(file: string): void {
  const name = basename(file);
  if (TASK_COMMAND_WORD.test(name)) return;
  const bad = name.startsWith('-') ? '-' : [...name].find((char) => !/[\p{L}\p{N}_.+@%,:=-]/u.test(char))!;
  const what = bad === ' ' ? 'a space' : bad === '-' ? 'a leading -' : `'${JSON.stringify(bad).slice(1, -1)}'`;
  const suggestion = name.replace(/[^\p{L}\p{N}_.+@%,:=-]/gu, '_').replace(/^-+/, '');
  throw new InputError(
    `Metaflow cannot run ${JSON.stringify(name)} remotely: it writes the flow file's name unquoted into the shell command of every remote task (python ${name} … step …), where ${what} breaks it, so every task would fail to start.`,
    { file, hint: `Rename the flow file to letters, digits and . _ - (for example ${suggestion || 'flow.py'}).` },
  );
}
