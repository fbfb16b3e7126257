import type { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { EnvironmentError, InputError } from '@prebuilt/core';
import { extensionStatus, installExtension, uninstallExtension } from '@prebuilt/metaflow';
import type { CliContext } from '../cli-context.js';
import { writeJson } from '../output.js';
import { runBuild } from './build.js';

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

/** `prebuilt metaflow install|uninstall|status|build`. */
export function registerMetaflowCommand(program: Command, context: CliContext): void {
  const metaflow = program
    .command('metaflow')
    .description('install the Metaflow extension into a Python, so that --environment=prebuilt works without prebuilt run')
    .addHelpText('after', METAFLOW_HELP);

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
      if (options.json) {
        writeJson(context, { ok: true, replaced: result.replaced, ...result.manifest });
        return;
      }
      context.stdout.write(
        `${result.replaced ? 'reinstalled' : 'installed'} the prebuilt Metaflow extension for ${result.manifest.python}\n` +
          `  into ${result.manifest.target} (${result.manifest.files.length} files)\n` +
          `  it builds with: ${result.manifest.cli.join(' ')}\n` +
          `Run flows with: python flow.py --environment=prebuilt run|argo-workflows create|…\n`,
      );
    });

  metaflow
    .command('uninstall')
    .description('remove exactly what install added for the interpreter')
    .option('--python <path>', 'the interpreter (default: METAFLOW_PREBUILT_PYTHON, else python3)')
    .option('--json', 'print one JSON object for machines')
    .action(async (options: PythonOption) => {
      context.json.requested = options.json === true;
      const result = await uninstallExtension(pythonOptions(options, context));
      if (options.json) {
        writeJson(context, { ok: true, python: result.python, removed: result.removed.map((m) => ({ target: m.target, files: m.files, dirs: m.dirs })) });
        return;
      }
      if (result.removed.length === 0) {
        context.stdout.write(`the prebuilt Metaflow extension is not installed for ${result.python}; nothing to remove\n`);
        return;
      }
      for (const manifest of result.removed) {
        context.stdout.write(`removed ${manifest.target} (${manifest.files.length} files) from ${result.python}\n`);
      }
    });

  metaflow
    .command('status')
    .description('show whether the extension is installed for the interpreter and whether its Metaflow loads it')
    .option('--python <path>', 'the interpreter (default: METAFLOW_PREBUILT_PYTHON, else python3)')
    .option('--json', 'print one JSON object for machines')
    .action(async (options: PythonOption) => {
      context.json.requested = options.json === true;
      const status = await extensionStatus(pythonOptions(options, context));
      // Without an importable Metaflow nothing works with this Python: say so by the exit code (2) too.
      const unusable = (): EnvironmentError =>
        new EnvironmentError(`Metaflow is not importable with ${status.python}: ${status.metaflowError ?? 'unknown'}.`, {
          hint: `Install Metaflow into that Python (${status.python} -m pip install metaflow), or pass --python the interpreter you run flows with.`,
        });
      if (options.json) {
        writeJson(context, { ok: status.metaflow !== null, ...status });
        if (!status.metaflow) throw unusable();
        return;
      }
      const lines = [`python:    ${status.python} (${status.pythonVersion})`];
      lines.push(
        status.installed
          ? `installed: ${status.installed.target} (prebuilt ${status.installed.prebuilt}${status.intact ? '' : ', FILES MISSING: run prebuilt metaflow install again'})`
          : 'installed: no (prebuilt run does not need it)',
      );
      if (status.installed) lines.push(`builds with: ${status.installed.cli.join(' ')}`);
      lines.push(status.metaflow ? `metaflow:  ${status.metaflow}` : `metaflow:  not importable (${status.metaflowError ?? 'unknown'})`);
      if (status.metaflow) lines.push(`--environment=prebuilt: ${status.environmentLoaded ? 'available' : 'not available'}`);
      context.stdout.write(`${lines.join('\n')}\n`);
      if (!status.metaflow) throw unusable();
    });

  metaflow
    .command('build')
    .description('build the images of some steps and print where the image map is (used by the extension)')
    .argument('<flow>', 'the flow file')
    .requiredOption('--steps <names>', 'comma-separated step names')
    .option('--json', 'print one JSON object (always on: the extension reads it)')
    .action(async (file: string, options: { steps: string }) => {
      context.json.requested = true;
      const steps = options.steps.split(',').map((s) => s.trim()).filter(Boolean);
      if (steps.length === 0) throw new InputError('--steps names no step.', { hint: 'Give step names: --steps start,train' });
      // Progress and the summary go to stderr (the user's terminal); stdout is one JSON object.
      const { result, stateFile } = await runBuild(file, { ...context, stdout: context.stderr }, { steps });
      writeJson(context, { ok: true, flow: result.imageMap.flow, stateFile, steps: Object.keys(result.imageMap.steps) });
    });
}
