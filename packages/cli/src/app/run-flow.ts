/** `prebuilt run`'s work: which steps run remotely, their images built, then Metaflow started on them. */
import { join } from 'node:path';
import { EnvironmentError } from '@prebuilt/core';
import { checkRemoteFlowFileName, flowEnvs, givenEnvironment, hostPython, pythonSite, remoteSteps, runFlow, type RemoteSelection, type RunFlowOptions } from '@prebuilt/metaflow';
import type { AppScope } from './app-scope.js';

export interface RunWithImagesHooks {
  /** Builds the images of `steps` and returns the image map's path (the caller renders the build). */
  build: (steps: readonly string[]) => Promise<string | null>;
  /** The user chose another --environment (Metaflow will not use the images), or no step runs remotely. */
  onNote: (note: { kind: 'other-environment'; environment: string } | { kind: 'nothing-to-build'; flow: string }) => void;
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

/** The interpreter the flow runs with must find Metaflow: found out before any image is built, not after. */
async function requireMetaflow(scope: AppScope): Promise<void> {
  const site = await pythonSite({ env: scope.env, signal: scope.signal });
  if (site.metaflow) return;
  const { command, source } = hostPython({ env: scope.env });
  throw new EnvironmentError(`Metaflow is not importable with ${command} (from ${source}: ${site.executable}), so the flow cannot run.`, {
    hint: `Install Metaflow into that Python (${site.executable} -m pip install metaflow), or set METAFLOW_PREBUILT_PYTHON to the interpreter you run flows with.`,
  });
}

/** Builds what the run needs (through `hooks.build`), then runs the flow; returns Metaflow's exit code. */
export async function runWithImages(file: string, args: readonly string[], scope: AppScope, hooks: RunWithImagesHooks): Promise<RunWithImagesResult> {
  const [envs] = await Promise.all([flowEnvs(file, { env: scope.env, cwd: scope.cwd, signal: scope.signal }), requireMetaflow(scope)]);
  const selection = remoteSteps(envs, args, scope.env);
  // A step runs remotely (a disabled one too): Metaflow must be able to name the file in its task command.
  if (selection.reason !== 'static' || envs.steps.some((step) => step.remote !== null)) checkRemoteFlowFileName(file);
  const chosen = givenEnvironment(args);
  if (chosen !== undefined && chosen !== 'prebuilt') hooks.onNote({ kind: 'other-environment', environment: chosen });
  let stateFile: string | null = null;
  if (selection.steps.length > 0) stateFile = await hooks.build(selection.steps);
  else hooks.onNote({ kind: 'nothing-to-build', flow: envs.flow });
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
