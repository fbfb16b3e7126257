import {
  CancelledError,
  EnvironmentError,
  PYTHON_SETTING,
  ProgramRunError,
  createLogger,
  errorMessage,
  lastLines,
  programNotFound,
  programPath,
  pythonSetting,
  runProgram,
  type ProgramResult,
} from '@prebuilt/core';

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

/** Where the interpreter came from when the caller named it (`prebuilt metaflow … --python P`). */
const PYTHON_OPTION_SOURCE = "option 'python'";

/** The host interpreter prebuilt runs its Python scripts with, and where that choice came from. */
export function hostPython(options: Pick<HostPythonOptions, 'python' | 'env'> = {}): { command: string; source: string } {
  if (options.python) return { command: options.python, source: PYTHON_OPTION_SOURCE };
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

/** The most a script's answer (its stdout) may be: more is refused, never read half. */
const MAX_SCRIPT_STDOUT = 64 * 1024 * 1024;

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
  const scriptName = script.split('/').pop() ?? script;
  if (file === undefined) throw notRun(programNotFound(command), command, source);
  const flags = [...(options.isolated === false ? [] : ['-I']), ...(options.site === false ? ['-S'] : [])];
  const timeoutMs = options.timeoutMs ?? 60_000;
  let result: ProgramResult;
  try {
    result = await runProgram(file, [...flags, script, ...args], {
      env: { ...env, PYTHONDONTWRITEBYTECODE: '1', PYTHONIOENCODING: 'utf-8' },
      stdout: { head: MAX_SCRIPT_STDOUT },
      stderr: { tail: 64 * 1024 },
      timeoutMs,
      killSignal: 'SIGKILL',
      ...(options.signal ? { signal: options.signal } : {}),
    });
  } catch (error) {
    if (!ProgramRunError.isInstance(error)) throw error;
    if (error.reason === 'cancelled') throw new CancelledError('reading the flow was cancelled', { cause: error.cause });
    if (error.reason === 'timed-out') throw new EnvironmentError(`'${command}' (from ${source}) did not finish ${scriptName} within ${timeoutMs} ms.`, { hint: INSTALL_HINT });
    throw notRun(error.cause as NodeJS.ErrnoException, command, source);
  }
  const { code, signal } = result;
  if (code === 0) {
    if (result.stdout.cut) {
      throw new EnvironmentError(`'${command}' (from ${source}) printed more than ${MAX_SCRIPT_STDOUT / (1024 * 1024)} MiB running ${scriptName}: its answer is not read.`, { hint: INSTALL_HINT });
    }
    return result.stdout.text;
  }
  const tail = lastLines(result.stderr.text, 5);
  throw new EnvironmentError(`'${command}' (from ${source}) failed running ${scriptName} (${signal ? `killed by ${signal}` : `exit ${code}`})${tail ? `:\n${tail}` : ''}`, {
    hint: INSTALL_HINT,
  });
}

/**
 * The interpreter could not be started: missing, not executable, or another spawn failure. One the
 * caller named (`--python P`) is that path to correct; the setting's or PATH's is the host python3
 * prebuilt reads flows with, to install or set.
 */
function notRun(error: NodeJS.ErrnoException, command: string, source: string): EnvironmentError {
  const named = source === PYTHON_OPTION_SOURCE;
  const hint = named ? 'Pass --python the path of an interpreter that runs (the one you run flows with, e.g. .venv/bin/python), or leave --python out for METAFLOW_PREBUILT_PYTHON, else python3 on PATH.' : INSTALL_HINT;
  if (error.code === 'ENOENT' || error.code === 'EACCES') {
    return new EnvironmentError(
      `No usable Python interpreter: '${command}' (from ${source}) ${error.code === 'ENOENT' ? 'was not found' : 'cannot be executed'}.` +
        (named ? '' : ' prebuilt reads flow files with the host python3.'),
      { cause: error, hint },
    );
  }
  return new EnvironmentError(`Could not run '${command}' (from ${source}): ${errorMessage(error)}`, { cause: error, hint });
}

