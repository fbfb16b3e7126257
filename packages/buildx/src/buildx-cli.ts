import { EnvironmentError, PrebuiltError, ProgramRunError, cancelledError, errorMessage, orOption, programNotFound, programPath, runProgram } from '@prebuilt/core/backend';
import { BUILDX_ENV } from './buildx-settings.js';

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** How long `docker buildx version` may take (it asks no daemon), ms. */
const VERSION_TIMEOUT_MS = 30_000;

/**
 * `docker buildx version`: the docker command and its buildx plugin run; a missing command or
 * plugin is an EnvironmentError saying how to install it. Resolves to the version text.
 */
export async function checkBuildx(docker: string, env: Record<string, string | undefined>, signal: AbortSignal | undefined, timeoutMs = VERSION_TIMEOUT_MS): Promise<string> {
  const { exit, output } = await runDocker(docker, ['buildx', 'version'], env, signal, timeoutMs).catch((error: unknown) => {
    if (signal?.aborted) throw cancelledError(signal, 'The buildx build');
    if (PrebuiltError.isInstance(error)) throw error;
    if (ProgramRunError.isInstance(error) && error.reason === 'timed-out') {
      throw new EnvironmentError(`'${docker} buildx version' did not answer within ${timeoutMs / 1000} s (killed).`, {
        hint: `Run it by hand to see what it waits for, or point ${BUILDX_ENV.docker} at a docker command that answers.`,
      });
    }
    throw dockerMissing(docker, ProgramRunError.isInstance(error) ? error.cause : error);
  });
  if (exit.code !== 0) {
    const first = firstLine(output, '');
    throw new EnvironmentError(`docker buildx is not available: '${docker} buildx version' failed${first ? `: ${first}` : ` (exit code ${exit.code})`}.`, {
      hint:
        'Install the buildx plugin (Debian: `apt-get install docker-buildx`; Docker CE: `docker-buildx-plugin`; ' +
        'or put the buildx binary at ~/.docker/cli-plugins/docker-buildx), or pick another build service with METAFLOW_PREBUILT_BUILD_SERVICE.',
    });
  }
  return output.trim();
}

/** The first line of a command's output, or `empty` when it printed nothing. */
export function firstLine(output: string, empty = '(no output)'): string {
  return output.trim().split('\n')[0] || empty;
}

/** What is kept of a short docker command's output: its first and its last 64 KiB. */
const DOCKER_OUTPUT_BOUND = { head: 64 * 1024, tail: 64 * 1024 };

/**
 * Runs a short docker command to its end: how it exited and its output (stdout and stderr
 * together, its first and last 64 KiB kept: core's runProgram). Rejects when it cannot be started,
 * `signal` stops it or it runs past `timeoutMs` (a ProgramRunError), with a ConfigError when a bare
 * `docker` is found only through a relative PATH entry (core's programPath).
 */
export async function runDocker(
  docker: string,
  args: string[],
  env: Record<string, string | undefined>,
  signal: AbortSignal | undefined,
  timeoutMs?: number,
): Promise<{ exit: Exit; output: string }> {
  const file = dockerPath(docker, env);
  if (file === undefined) throw programNotFound(docker);
  const result = await runProgram(file, args, {
    env,
    stdout: DOCKER_OUTPUT_BOUND,
    mergeStderr: true,
    ...(signal ? { signal } : {}),
    ...(timeoutMs === undefined ? {} : { timeoutMs }),
  });
  return { exit: { code: result.code, signal: result.signal }, output: result.stdout.text };
}

/** The docker command's file: as given when it is a path, else from PATH's absolute directories (core's programPath). */
export function dockerPath(docker: string, env: Record<string, string | undefined>): string | undefined {
  return programPath(docker, { env, setting: BUILDX_ENV.docker, what: `the docker command '${docker}'` });
}

function dockerMissing(docker: string, error: unknown): EnvironmentError {
  const code = (error as NodeJS.ErrnoException).code;
  return new EnvironmentError(
    code === 'ENOENT'
      ? `The docker command '${docker}' was not found${docker.includes('/') ? '' : ' on PATH'}.`
      : `The docker command '${docker}' cannot be run: ${errorMessage(error)}.`,
    {
      cause: error,
      hint:
        `Install the Docker CLI with the buildx plugin (e.g. \`apt-get install docker.io docker-buildx\`), ` +
        `or point ${BUILDX_ENV.docker}${orOption('docker')} at it, or pick another build service with METAFLOW_PREBUILT_BUILD_SERVICE.`,
    },
  );
}
