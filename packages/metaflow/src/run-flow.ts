/**
 * Runs `python3 <flow.py> <args…>` with the prebuilt extension on PYTHONPATH and the image map in
 * the environment. The user's arguments pass through untouched (`--environment=prebuilt` is
 * added in front unless they chose one), the exit code comes back, and the interrupt signal that
 * aborts `signal` is forwarded to the child.
 */
import { spawn } from 'node:child_process';
import { CancelledError, ConfigError, EnvironmentError, createLogger, errorMessage, programNotFound } from '@prebuilt/core';
import { extensionEnv } from './extension-files.js';
import { installedExtension, type InstalledExtension } from './extension-install.js';
import { hostPython, hostPythonPath } from './host-python.js';
import { metaflowArgs } from './run-steps.js';

const log = createLogger('metaflow');

export interface RunFlowOptions {
  flowFile: string;
  /** Metaflow's arguments as the user gave them (`run --with kubernetes`, `argo-workflows create`, …). */
  args: readonly string[];
  /** The image map file; omitted: the extension builds through the CLI itself. */
  imageMap?: string;
  /** The interpreter; default METAFLOW_PREBUILT_PYTHON, else `python3`. */
  python?: string;
  env?: Record<string, string | undefined>;
  cwd?: string;
  /** Where the child's output goes: the parent's own stdio ('inherit', keeps a TTY a TTY) or writers. */
  stdout?: 'inherit' | { write(text: string): void };
  stderr?: 'inherit' | { write(text: string): void };
  /** Aborted by an interrupt: its reason's signal (SIGTERM for a CancelledError with exit 143, else SIGINT) goes to the child. */
  signal?: AbortSignal;
}

export interface RunFlowResult {
  /** The child's exit code; 128 + n when it was killed by signal n. */
  code: number;
  /** The signal that killed the child, if any. */
  killedBy: NodeJS.Signals | null;
  /** The full command line that ran. */
  command: string[];
  /** The interpreter's own executable (`sys.executable`) when it could be asked; else the command. */
  executable: string;
  /** Where the extension came from: prebuilt's copy on PYTHONPATH, or the one installed in that Python. */
  extension: 'pythonpath' | 'installed';
}

const SIGNAL_NUMBERS: Partial<Record<NodeJS.Signals, number>> = { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15 };

function forwardedSignal(reason: unknown): NodeJS.Signals {
  return CancelledError.isInstance(reason) && reason.exitCode === 143 ? 'SIGTERM' : 'SIGINT';
}

export async function runFlow(options: RunFlowOptions): Promise<RunFlowResult> {
  const env = options.env ?? process.env;
  const { command: python, source } = hostPython({ ...(options.python ? { python: options.python } : {}), env });
  const args = [options.flowFile, ...metaflowArgs(options.args)];
  // Metaflow refuses two copies of the extension ("Conflicts in 'metaflow_extensions' files"): when
  // `prebuilt metaflow install` put one into this Python, that copy is used, if it is this prebuilt's.
  let installed: InstalledExtension | null = null;
  try {
    installed = await installedExtension({ python, env, ...(options.signal ? { signal: options.signal } : {}) });
  } catch (error) {
    options.signal?.throwIfAborted();
    log('cannot ask %s for its site directories (%s); the extension goes on PYTHONPATH', python, errorMessage(error));
  }
  if (installed && !installed.current) {
    throw new ConfigError(
      `${installed.python} has another version of the prebuilt Metaflow extension installed (${installed.manifest.target}, by prebuilt ${installed.manifest.prebuilt}), and Metaflow refuses two copies of one extension.`,
      { hint: `Run \`prebuilt metaflow install --python ${installed.python}\` to update it to this prebuilt's, or \`prebuilt metaflow uninstall --python ${installed.python}\`.` },
    );
  }
  const childEnv = extensionEnv(env, options.imageMap, installed === null);
  const extension = installed ? 'installed' : 'pythonpath';
  const executable = installed?.python ?? python;
  log('running %s %o (PYTHONPATH=%s; extension %s)', python, args, childEnv.PYTHONPATH, installed ? `installed in ${installed.manifest.target}` : 'on PYTHONPATH');
  options.signal?.throwIfAborted();
  const pipeOut = options.stdout !== undefined && options.stdout !== 'inherit';
  const pipeErr = options.stderr !== undefined && options.stderr !== 'inherit';
  const file = hostPythonPath(python, source, env);
  return await new Promise<RunFlowResult>((resolve, reject) => {
    const failed = (error: NodeJS.ErrnoException): void =>
      reject(
        new EnvironmentError(
          `Could not run the flow with '${python}' (from ${source}): ${error.code === 'ENOENT' ? 'not found' : errorMessage(error)}.`,
          { cause: error, hint: 'Install Python 3 with Metaflow, or set METAFLOW_PREBUILT_PYTHON to the interpreter you run flows with.' },
        ),
      );
    if (file === undefined) return failed(programNotFound(python));
    const child = spawn(file, args, {
      cwd: options.cwd,
      env: childEnv,
      stdio: ['inherit', pipeOut ? 'pipe' : 'inherit', pipeErr ? 'pipe' : 'inherit'],
    });
    if (pipeOut) child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (options.stdout as { write(text: string): void }).write(chunk));
    if (pipeErr) child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (options.stderr as { write(text: string): void }).write(chunk));
    const onAbort = (): void => {
      const sig = forwardedSignal(options.signal?.reason);
      log('forwarding %s to %s (pid %d)', sig, python, child.pid);
      child.kill(sig);
    };
    options.signal?.addEventListener('abort', onAbort, { once: true });
    child.on('error', (error: NodeJS.ErrnoException) => {
      options.signal?.removeEventListener('abort', onAbort);
      failed(error);
    });
    child.on('close', (code, killedBy) => {
      options.signal?.removeEventListener('abort', onAbort);
      resolve({ code: code ?? 128 + (SIGNAL_NUMBERS[killedBy ?? 'SIGKILL'] ?? 9), killedBy, command: [python, ...args], executable, extension });
    });
  });
}
