import { spawn } from 'node:child_process';
import { CancelledError, EnvironmentError, PYTHON_SETTING, createLogger, errorMessage, programNotFound, programPath, pythonSetting } from '@prebuilt/core';

const log = createLogger('metaflow');

export interface HostPythonOptions {
  /** The interpreter to run. Default: METAFLOW_PREBUILT_PYTHON, else `python3` on PATH. */
  python?: string;
  env?: Record<string, string | undefined>;
  signal?: AbortSignal;
  /** Milliseconds before the script is killed. Default 60 s. */
  timeoutMs?: number;
  /** Run with `-I` (no PYTHONPATH, no user site). Default true. */
  isolated?: boolean;
  /**
   * Import `site` (default true). false runs with `-S`: no site-packages on the path and none of
   * their `.pth` files run at start-up — for scripts that need only the standard library.
   */
  site?: boolean;
}

/** The host interpreter prebuilt runs its Python scripts with, and where that choice came from. */
export function hostPython(options: Pick<HostPythonOptions, 'python' | 'env'> = {}): { command: string; source: string } {
  if (options.python) return { command: options.python, source: "option 'python'" };
  const fromEnv = pythonSetting(options.env ?? process.env);
  if (fromEnv) return { command: fromEnv, source: PYTHON_SETTING };
  return { command: 'python3', source: 'PATH' };
}

/**
 * The host interpreter's file: `command` as given when it is a path, else from the absolute
 * directories of `env`'s PATH (core's programPath: a ConfigError when it is found only through an
 * empty or relative entry, as a `python3` a checked-out flow's directory could hold). Undefined when missing.
 */
export function hostPythonPath(command: string, source: string, env: Record<string, string | undefined>): string | undefined {
  return programPath(command, { env, setting: PYTHON_SETTING, what: `the Python interpreter '${command}' (from ${source})` });
}

const INSTALL_HINT =
  'Install Python 3.8 or newer (e.g. `apt-get install python3`, or from python.org), ' +
  'or set METAFLOW_PREBUILT_PYTHON to the interpreter you deploy flows with.';

/**
 * Runs a Python script shipped in this package with the host interpreter, isolated (`-I`: no
 * PYTHONPATH, no user site) and returns its stdout. Missing interpreter → EnvironmentError.
 */
export async function runPythonScript(
  script: string,
  args: readonly string[],
  options: HostPythonOptions = {},
): Promise<string> {
  const { command, source } = hostPython(options);
  const env = options.env ?? process.env;
  log('running %s (from %s) %s %o', command, source, script, args);
  options.signal?.throwIfAborted();
  const file = hostPythonPath(command, source, env);
  return await new Promise<string>((resolve, reject) => {
    const failed = (error: NodeJS.ErrnoException): void => {
      if (error.name === 'AbortError') {
        reject(new CancelledError('reading the flow was cancelled', { cause: error }));
      } else if (error.code === 'ENOENT' || error.code === 'EACCES') {
        reject(
          new EnvironmentError(
            `No usable Python interpreter: '${command}' (from ${source}) ${error.code === 'ENOENT' ? 'was not found' : 'cannot be executed'}. ` +
              'prebuilt reads flow files with the host python3.',
            { cause: error, hint: INSTALL_HINT },
          ),
        );
      } else {
        reject(new EnvironmentError(`Could not run '${command}' (from ${source}): ${errorMessage(error)}`, { cause: error, hint: INSTALL_HINT }));
      }
    };
    if (file === undefined) return failed(programNotFound(command));
    const flags = [...(options.isolated === false ? [] : ['-I']), ...(options.site === false ? ['-S'] : [])];
    const child = spawn(file, [...flags, script, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...env, PYTHONDONTWRITEBYTECODE: '1', PYTHONIOENCODING: 'utf-8' },
      signal: options.signal,
    });
    // Not spawn's own `timeout`: its timer outlives a child that never started (ENOENT).
    const timeoutMs = options.timeoutMs ?? 60_000;
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    timer.unref();
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => err.push(chunk));
    child.on('error', (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      failed(error);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const stderr = Buffer.concat(err).toString('utf8').trim();
      if (code === 0) {
        resolve(Buffer.concat(out).toString('utf8'));
        return;
      }
      if (options.signal?.aborted) {
        reject(new CancelledError('reading the flow was cancelled'));
        return;
      }
      if (timedOut) {
        reject(new EnvironmentError(`'${command}' (from ${source}) did not finish ${script.split('/').pop() ?? script} within ${timeoutMs} ms.`, { hint: INSTALL_HINT }));
        return;
      }
      const tail = stderr.split('\n').slice(-5).join('\n');
      reject(
        new EnvironmentError(
          `'${command}' (from ${source}) failed running ${script.split('/').pop() ?? script} ` +
            `(${signal ? `killed by ${signal}` : `exit ${code}`})${tail ? `:\n${tail}` : ''}`,
          { hint: INSTALL_HINT },
        ),
      );
    });
  });
}
