import type { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { EnvironmentError, InputError } from '@prebuilt/core';
import { extensionStatus, installExtension, uninstallExtension } from '@prebuilt/metaflow';
import type { CliContext } from '../cli-context.js';
import { buildJson, reportBuild } from '../build-report.js';
import { writeJsonResult } from '../output.js';

interface PythonOption {
  python?: string;
  json?: boolean;
}

const METAFLOW_HELP = `
\`prebuilt run\` needs no install: it puts the extension on PYTHONPATH itself. Install it to keep
Metaflow's own habit, \`python flow.py --environment=prebuilt run|argo-workflows create|…\`: the
environment then calls this CLI to build the images of the remote steps and reads back the map.

Examples:
  $ prebuilt metaflow install
  $ prebuilt metaflow install --python .venv/bin/python
  $ python flow.py --environment=prebuilt argo-workflows create
  $ prebuilt metaflow status
  $ prebuilt metaflow uninstall`;

function version(context: CliContext): string {
  return (JSON.parse(readFileSync(join(context.cliDir, 'package.json'), 'utf8')) as { version: string }).version;
}

function pythonOptions(options: PythonOption, context: CliContext): { python?: string; env: Record<string, string | undefined>; signal: AbortSignal } {
  return { ...(options.python ? { python: options.python } : {}), env: context.env, signal: context.signal };
}

/** `prebuilt metaflow install|uninstall|status` (and the extension's hidden `build`). */
export function registerMetaflowCommand(program: Command, context: CliContext): void {
  const metaflow = program
    .command('metaflow')
    .description('install the Metaflow extension into a Python, so that --environment=prebuilt works without prebuilt run')
    .addHelpText('after', METAFLOW_HELP);
  registerInstall(metaflow, context);
  registerUninstall(metaflow, context);
  registerStatus(metaflow, context);
  registerBuild(metaflow, context);
}

function registerInstall(metaflow: Command, context: CliContext): void {
  metaflow
    .command('install')
    .description("copy the extension into the interpreter's site-packages and record this CLI for it")
    .option('--python <path>', 'the interpreter you run flows with (default: METAFLOW_PREBUILT_PYTHON, else python3)')
    .option('--json', 'print one JSON object for machines')
    .action(async (options: PythonOption) => {
      context.json.requested = options.json === true;
      const cli = [process.execPath, join(context.cliDir, 'bin', 'prebuilt.js')];
      // An extension in a Python without Metaflow would never load: refuse before copying anything.
      const before = await extensionStatus(pythonOptions(options, context));
      if (!before.metaflow) {
        throw new InputError(`${before.python} cannot import Metaflow (${before.metaflowError ?? 'not importable'}), so the extension would never load there.`, {
          hint: `Install Metaflow into that Python (${before.python} -m pip install metaflow), or pass --python the interpreter you run flows with.`,
        });
      }
      const result = await installExtension({ ...pythonOptions(options, context), cli, prebuiltVersion: version(context) });
      if (options.json) return writeJsonResult(context, { replaced: result.replaced, ...result.manifest });
      context.stdout.write(
        `${result.replaced ? 'reinstalled' : 'installed'} the prebuilt Metaflow extension for ${result.manifest.python}\n` +
          `  into ${result.manifest.target} (${result.manifest.files.length} files)\n` +
          `  it builds with: ${result.manifest.cli.join(' ')}\n` +
          `Run flows with: python flow.py --environment=prebuilt run|argo-workflows create|…\n`,
      );
    });
}

function registerUninstall(metaflow: Command, context: CliContext): void {
  metaflow
    .command('uninstall')
    .description('remove exactly what install added for the interpreter')
    .option('--python <path>', 'the interpreter (default: METAFLOW_PREBUILT_PYTHON, else python3)')
    .option('--json', 'print one JSON object for machines')
    .action(async (options: PythonOption) => {
      context.json.requested = options.json === true;
      const result = await uninstallExtension(pythonOptions(options, context));
      if (options.json) {
        return writeJsonResult(context, { python: result.python, removed: result.removed.map((m) => ({ target: m.target, files: m.files, dirs: m.dirs })) });
      }
      if (result.removed.length === 0) {
        context.stdout.write(`the prebuilt Metaflow extension is not installed for ${result.python}; nothing to remove\n`);
        return;
      }
      for (const manifest of result.removed) {
        context.stdout.write(`removed ${manifest.target} (${manifest.files.length} files) from ${result.python}\n`);
      }
    });
}

type ExtensionStatus = Awaited<ReturnType<typeof extensionStatus>>;

function statusLines(status: ExtensionStatus): string[] {
  const lines = [`python:    ${status.python} (${status.pythonVersion})`];
  lines.push(
    status.installed
      ? `installed: ${status.installed.target} (prebuilt ${status.installed.prebuilt}${status.intact ? '' : ', FILES MISSING: run prebuilt metaflow install again'})`
      : 'installed: no (prebuilt run does not need it)',
  );
  if (status.installed) lines.push(`builds with: ${status.installed.cli.join(' ')}`);
  lines.push(status.metaflow ? `metaflow:  ${status.metaflow}` : `metaflow:  not importable (${status.metaflowError ?? 'unknown'})`);
  if (status.metaflow) lines.push(`--environment=prebuilt: ${status.environmentLoaded ? 'available' : 'not available'}`);
  return lines;
}

const STATUS_HELP = `
Exit codes: 0 Metaflow imports with the interpreter (the extension installed or not: prebuilt run
does not need it), 2 Metaflow does not import with it (the status is still printed; the hint
gives the pip command that installs it; --json: ok false, error code environment) or the
interpreter was not found, 130/143 interrupted.

Examples:
  $ prebuilt metaflow status
  $ prebuilt metaflow status --python .venv/bin/python --json`;

function registerStatus(metaflow: Command, context: CliContext): void {
  metaflow
    .command('status')
    .description('show whether the extension is installed for the interpreter and whether its Metaflow loads it')
    .option('--python <path>', 'the interpreter (default: METAFLOW_PREBUILT_PYTHON, else python3)')
    .option('--json', 'print one JSON object for machines')
    .addHelpText('after', STATUS_HELP)
    .action(async (options: PythonOption) => {
      context.json.requested = options.json === true;
      const status = await extensionStatus(pythonOptions(options, context));
      // Without an importable Metaflow nothing works with this Python: say so by the exit code (2) too.
      const unusable = status.metaflow
        ? undefined
        : new EnvironmentError(`Metaflow is not importable with ${status.python}: ${status.metaflowError ?? 'unknown'}.`, {
            hint: `Install Metaflow into that Python (${status.python} -m pip install metaflow), or pass --python the interpreter you run flows with.`,
          });
      if (options.json) writeJsonResult(context, { ...status }, unusable);
      else context.stdout.write(`${statusLines(status).join('\n')}\n`);
      if (unusable) throw unusable;
    });
}

/** The Metaflow extension's entry (`_build_with_cli`): builds the remote steps' images, prints where the map is. */
function registerBuild(metaflow: Command, context: CliContext): void {
  metaflow
    .command('build', { hidden: true })
    .description('build the images of some steps and print where the image map is (used by the extension)')
    .argument('<flow>', 'the flow file')
    .requiredOption('--steps <names>', 'comma-separated step names')
    .option('--gpu-steps <names>', 'those of the steps Metaflow gives GPUs the flow file does not show (--with kubernetes:gpu=1): on the GPU base image')
    .option('--datastore <type>', "the datastore Metaflow runs the flow with (its --datastore): its packages are pinned, as Metaflow pins them")
    .option('--json', 'print one JSON object (always on: the extension reads it)')
    .action(async (file: string, options: { steps: string; gpuSteps?: string; datastore?: string }) => {
      context.json.requested = true;
      const steps = options.steps.split(',').map((s) => s.trim()).filter(Boolean);
      if (steps.length === 0) throw new InputError('--steps names no step.', { hint: 'Give step names: --steps start,train' });
      const gpuSteps = (options.gpuSteps ?? '').split(',').map((s) => s.trim()).filter(Boolean);
      const unknown = gpuSteps.filter((step) => !steps.includes(step));
      if (unknown.length > 0) throw new InputError(`--gpu-steps names ${unknown.join(', ')}, not among --steps.`, { hint: 'Give --gpu-steps a subset of --steps.' });
      // Progress and the summary go to stderr (the user's terminal); stdout is one JSON object.
      const more = { ...(gpuSteps.length > 0 ? { gpuSteps } : {}), ...(options.datastore !== undefined ? { datastore: options.datastore } : {}) };
      const { result, stateFile, failure } = await reportBuild(file, { ...context, stdout: context.stderr }, { steps, ...more });
      const { failures } = buildJson(result, stateFile);
      writeJsonResult(context, { flow: result.imageMap.flow, stateFile, steps: Object.keys(result.imageMap.steps), ...(failures ? { failures } : {}) }, failure);
      if (failure) throw failure;
    });
}
