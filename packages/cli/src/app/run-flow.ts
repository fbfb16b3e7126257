/** `prebuilt run`'s work: which steps run remotely, their images built, then Metaflow started on them. */
import { join } from 'node:path';
import { EnvironmentError } from '@prebuilt/core';
import { checkRemoteFlowFileName, commandLineGpuSteps, flowEnvs, givenDatastore, givenEnvironment, hostPython, metaflowCommandText, pythonSite, remoteSteps, runFlow, startsRemoteSteps, type FlowFile, type RemoteSelection, type RunFlowOptions } from '@prebuilt/metaflow';
import type { AppScope } from './app-scope.js';

export interface RunWithImagesHooks {
  /**
   * Builds the images of `steps` and returns the image map's path (the caller renders the build);
   * `gpuSteps`: those the command line asks GPUs for (`--with kubernetes:gpu=1`), on the GPU base image;
   * `datastore`: the command line's `--datastore`, whose packages Metaflow pins (default: its setting).
   */
  build: (steps: readonly string[], more: { gpuSteps: readonly string[]; datastore?: string }) => Promise<string | null>;
  /**
   * The user chose another --environment (Metaflow will not use the images), no step runs remotely,
   * or the Metaflow command starts none (`show`, `check`, `--help`, `argo-workflows trigger`…).
   */
  onNote: (note: { kind: 'other-environment'; environment: string } | { kind: 'nothing-to-build'; flow: string } | { kind: 'no-remote-command'; flow: string; command: string }) => void;
  /** Where Metaflow's own output goes. */
  stdout: RunFlowOptions['stdout'];
  stderr: RunFlowOptions['stderr'];
}

export interface RunWithImagesResult {
  selection: RemoteSelection;
  stateFile: string | null;
  code: number;
  /** The command line that ran (the interpreter first). */
  command: string[];
  /** The interpreter's own executable. */
  executable: string;
}

/** `PREBUILT_CLI` for the child: this CLI, so the extension can build what the reader could not see. */
function cliCommand(cliDir: string): string {
  const quote = (arg: string): string => (/^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`);
  return [process.execPath, join(cliDir, 'bin', 'prebuilt.js')].map(quote).join(' ');
}

/** Modules a flow's load never takes from the interpreter's path for prebuilt to check: Metaflow (checked on its own), its extensions, `__future__`. */
const NOT_CHECKED = /^(metaflow|metaflow_extensions|__future__)$/;

/**
 * The interpreter the flow runs with must find Metaflow, and the modules the flow file imports
 * when it loads (module level and class bodies, outside any `try`, `if` or other compound
 * statement, not the flow's own modules): Metaflow loads the file with it to run or deploy the
 * flow. Found out before any image is built, not after.
 */
async function requireFlowImports(scope: AppScope, file: string, flow: FlowFile): Promise<void> {
  const imports = flow.imports.filter((entry) => !entry.optional && !entry.conditional && !entry.local && !NOT_CHECKED.test(entry.module.split('.', 1)[0]!));
  const modules = [...new Set(imports.map((entry) => entry.module.split('.', 1)[0]!))];
  const site = await pythonSite({ env: scope.env, signal: scope.signal, modules });
  const { command, source } = hostPython({ env: scope.env });
  if (!site.metaflow) {
    throw new EnvironmentError(`Metaflow is not importable with ${command} (from ${source}: ${site.executable}), so the flow cannot run.`, {
      hint: `Install Metaflow into that Python (${site.executable} -m pip install metaflow), or set METAFLOW_PREBUILT_PYTHON to the interpreter you run flows with.`,
    });
  }
  const missing = site.missing[0];
  if (missing === undefined) return;
  const entry = imports.find((found) => found.module.split('.', 1)[0] === missing)!;
  const what = entry.file === undefined ? 'the flow file imports' : `${entry.file}, a module the flow file imports, imports`;
  throw new EnvironmentError(
    `${entry.file ?? file}:${entry.line}: ${what} ${missing} when it loads, and ${command} (from ${source}: ${site.executable}) does not find it. ` +
      'Metaflow loads the flow file with that Python to run or deploy it, so it would stop there with ModuleNotFoundError.',
    {
      hint: `Install the package that provides ${missing} into that Python, or import ${missing} inside the steps that use it (they run in their images, which have their env's packages); METAFLOW_PREBUILT_PYTHON names another interpreter.`,
    },
  );
}

/** Builds what the run needs (through `hooks.build`), then runs the flow; returns Metaflow's exit code. */
export async function runWithImages(file: string, args: readonly string[], scope: AppScope, hooks: RunWithImagesHooks): Promise<RunWithImagesResult> {
  const envs = await flowEnvs(file, { env: scope.env, cwd: scope.cwd, signal: scope.signal });
  await requireFlowImports(scope, file, envs.source);
  const selection = remoteSteps(envs, args, scope.env, scope.cwd);
  // Only a command that starts remote steps (or compiles a deployment naming their images) needs them.
  const starts = startsRemoteSteps(args);
  // A step runs remotely (a disabled one too): Metaflow must be able to name the file in its task command.
  if (starts && (selection.reason !== 'static' || envs.steps.some((step) => step.remote !== null))) checkRemoteFlowFileName(file);
  const chosen = givenEnvironment(args);
  if (chosen !== undefined && chosen !== 'prebuilt') hooks.onNote({ kind: 'other-environment', environment: chosen });
  let stateFile: string | null = null;
  if (selection.steps.length === 0) hooks.onNote({ kind: 'nothing-to-build', flow: envs.flow });
  else if (!starts) hooks.onNote({ kind: 'no-remote-command', flow: envs.flow, command: metaflowCommandText(args) });
  else {
    const datastore = givenDatastore(args);
    stateFile = await hooks.build(selection.steps, { gpuSteps: commandLineGpuSteps(envs, selection, args, scope.env, scope.cwd), ...(datastore !== undefined ? { datastore } : {}) });
  }
  const result = await runFlow({
    flowFile: file,
    args,
    ...(stateFile ? { imageMap: stateFile } : {}),
    env: { ...scope.env, PREBUILT_CLI: scope.env.PREBUILT_CLI ?? cliCommand(scope.cliDir) },
    cwd: scope.cwd,
    ...(hooks.stdout !== undefined ? { stdout: hooks.stdout } : {}),
    ...(hooks.stderr !== undefined ? { stderr: hooks.stderr } : {}),
    signal: scope.signal,
  });
  return { selection, stateFile, code: result.code, command: result.command, executable: result.executable };
}
