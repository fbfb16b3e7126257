import type { Command } from 'commander';
import { ExitCode, PrebuiltError, type ExitCode as ExitCodeType } from '@prebuilt/core';
import { runWithImages, type RunWithImagesResult } from '../app/index.js';
import type { CliContext } from '../cli-context.js';
import { reportBuild } from '../build-report.js';
import { UsageError } from '../error-handler.js';

const RUN_HELP = `
Builds the images the run needs (as \`prebuilt build\`, skipping every image the registry has),
then runs \`python3 <flow> --environment=prebuilt <metaflow args…>\` with the prebuilt Metaflow
extension on PYTHONPATH and METAFLOW_PREBUILT_IMAGE_MAP pointing at the image map. Every step that
runs remotely starts on its image with the env's interpreter: no conda/pypi bootstrap, no pip
install at task start. Local and disabled steps run exactly as with Metaflow's conda environment
(a local step's env, even one that asks for no package, is created by micromamba, which Metaflow
downloads from micro.mamba.pm on first use).

Everything after <flow> goes to Metaflow untouched, except prebuilt's global --verbose and
--version (Metaflow has neither); prebuilt's own settings are environment variables (see
\`prebuilt build --help\`). Images are built for the steps that run remotely: steps
with @kubernetes/@batch, or every step with \`--with kubernetes|batch\` (in the arguments or
METAFLOW_DEFAULT_DECOSPECS — the environment's, else the key in Metaflow's configuration files,
the project's .metaflow/config.json then ~/.metaflowconfig/config.json, as Metaflow reads them;
set empty, it turns the files' off) or with
argo-workflows, step-functions or airflow; a step that would get both @kubernetes and @batch is
refused (exit 2), as Metaflow refuses it. Only commands that
start remote steps or compile a deployment build them (run, resume, package, argo-workflows /
step-functions / airflow create, and commands of other extensions); check (the default), show,
help, dump, version, output-raw, output-dot, spin, card, tag, logs, the schedulers' other
subcommands (trigger, delete, status…) and any --help build nothing.

Options (prebuilt's own; every other argument goes to Metaflow):
  --verbose    show debug logs (prebuilt:*) and stack traces (before or after <flow>)
  -h, --help   this help, in place of <flow> (after <flow>, --help is Metaflow's)

Environment:
  METAFLOW_PREBUILT_PYTHON   the interpreter that runs the flow (default python3); it must find
                             Metaflow and the modules the flow file imports when it loads, which
                             is checked before any image is built (else exit 2)

Exit code: Metaflow's (2 for bad input or configuration before the flow starts, 1 when an image
failed to build). SIGINT and SIGTERM are passed on to Metaflow.

Examples:
  $ prebuilt run flow.py run --with kubernetes
  $ prebuilt run flow.py argo-workflows create
  $ prebuilt run flow.py step-functions create --only-json > state-machine.json`;

/** Metaflow exited with a non-zero code: the CLI exits with that code. */
export class FlowExitError extends PrebuiltError {
  /** `command`: what ran (the interpreter as it was started first); `executable`: that interpreter's own path. */
  constructor(code: number, command: readonly string[], executable?: string) {
    const python = executable && executable !== command[0] ? `${command[0]} (${executable})` : command[0];
    super('flow-exit', `${[python, ...command.slice(1, 3)].join(' ')} … exited with code ${code}.`, code as ExitCodeType);
    this.name = 'FlowExitError';
  }
}

/** Builds what the run needs (the build reported on stderr), then runs the flow; returns Metaflow's exit code. */
function runCommand(file: string, args: readonly string[], context: CliContext): Promise<RunWithImagesResult> {
  return runWithImages(file, args, context, {
    build: async (steps, { gpuSteps, datastore }) => {
      // Metaflow's output owns stdout (`--only-json` prints the spec there): the build reports on stderr.
      const built = await reportBuild(file, { ...context, stdout: context.stderr }, { steps, ...(gpuSteps.length > 0 ? { gpuSteps } : {}), ...(datastore !== undefined ? { datastore } : {}) });
      if (built.failure) throw built.failure;
      return built.stateFile;
    },
    onNote: (note) =>
      context.stderr.write(
        note.kind === 'other-environment'
          ? `warning: --environment=${note.environment} given: Metaflow will not use the prebuilt images.\n`
          : note.kind === 'no-remote-command'
            ? `${note.flow}: \`${note.command}\` starts no remote step; no image built.\n`
            : `${note.flow}: no step runs remotely; nothing to build.\n`,
      ),
    stdout: context.stdout === process.stdout ? 'inherit' : context.stdout,
    stderr: context.stderr === process.stderr ? 'inherit' : context.stderr,
  });
}

/** `prebuilt run <flow.py> [metaflow args…]`. */
export function registerRunCommand(program: Command, context: CliContext): void {
  const command = program
    .command('run')
    .description('build the images a Metaflow command needs, then run it with every remote step on its image')
    .argument('[flow]', 'the flow file, e.g. flow.py')
    .argument('[args...]', "Metaflow's arguments, passed through untouched (run, argo-workflows create, …)")
    // Everything after the flow is Metaflow's, including --help: prebuilt reads no option here.
    .helpOption(false)
    .allowUnknownOption()
    .allowExcessArguments()
    .addHelpText('after', RUN_HELP);
  command.action(async (file: string | undefined, args: string[]) => {
    if (file === undefined || file === '--help' || file === '-h') {
      context.stdout.write(command.helpInformation());
      // A blank line between commander's Arguments section and the text, as in every other command's help.
      context.stdout.write(`${RUN_HELP}\n`);
      if (file === undefined) throw new FlowArgumentMissing();
      return;
    }
    const result = await runCommand(file, args, context);
    if (result.code !== ExitCode.ok) throw new FlowExitError(result.code, result.command, result.executable);
  });
}

class FlowArgumentMissing extends UsageError {
  constructor() {
    super('prebuilt run needs the flow file: prebuilt run <flow.py> [metaflow args…].');
  }
}
