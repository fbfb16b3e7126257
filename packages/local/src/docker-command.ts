import { CancelledError, EnvironmentError, ProgramRunError, errorMessage, programNotFound, programPath, runProgram, type OutputBound } from '@prebuilt/core/backend';

/** What a docker command did: its exit code, or why it has none. */
export interface DockerCommandResult {
  /** Its exit code; null when it did not exit by itself (`failure` says why). */
  code: number | null;
  stdout: string;
  /** Empty when `mergeStderr`. */
  stderr: string;
  /** Why it has no exit code: it ran past its timeout (killed), or could not be started (EACCES …). */
  failure?: string;
}

export interface DockerCommandOptions {
  env: Record<string, string | undefined>;
  /** Milliseconds it may run; then it is killed. */
  timeoutMs: number;
  /** Written to its standard input (a password: never an argument, which `ps` shows). */
  input?: string;
  mergeStderr?: boolean;
  /** What is kept of stdout (default core's: its last 64 KiB). */
  stdout?: OutputBound;
  /**
   * Stops it (its whole process group) when aborted: the CLI's Ctrl-C, which no longer reaches it
   * from the terminal (core's runProgram runs it in its own group). A CancelledError then.
   */
  signal?: AbortSignal;
  /** The error for a docker CLI that is not installed, in the caller's words (what it was needed for). */
  missing: (cause: unknown) => EnvironmentError;
}

/**
 * A docker command of the development registry (its container, `docker login`) run to its end
 * through core's runProgram. A missing docker CLI (found nowhere on PATH's absolute directories, or
 * gone at its path) is the caller's `missing` error; one that could not be started otherwise, or
 * ran past its timeout, is a result without an exit code whose `failure` says why, for the caller's
 * message.
 */
export async function runDockerCommand(command: string, args: readonly string[], options: DockerCommandOptions): Promise<DockerCommandResult> {
  const { env, timeoutMs } = options;
  // Never from an empty or relative PATH entry (core's programPath: a ConfigError when only there).
  const file = programPath(command, { env, what: `the docker CLI '${command}'` });
  if (file === undefined) throw options.missing(programNotFound(command));
  try {
    const result = await runProgram(file, args, {
      env,
      timeoutMs,
      ...(options.input !== undefined ? { input: options.input } : {}),
      ...(options.mergeStderr ? { mergeStderr: true } : {}),
      ...(options.stdout ? { stdout: options.stdout } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
    });
    return { code: result.code, stdout: result.stdout.text, stderr: result.stderr.text };
  } catch (error) {
    if (!ProgramRunError.isInstance(error)) throw error;
    if (error.errno === 'ENOENT') throw options.missing(error.cause);
    if (error.reason === 'timed-out') return { code: null, stdout: '', stderr: '', failure: `it did not finish within ${timeoutMs / 1000} s (killed)` };
    if (error.reason === 'cancelled') throw new CancelledError(`'${command} ${args[0] ?? ''}' was stopped.`, { cause: error.cause });
    if (error.reason === 'not-started') return { code: null, stdout: '', stderr: '', failure: `it could not be started: ${errorMessage(error.cause)}` };
    throw error;
  }
}
