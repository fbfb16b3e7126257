import { AuthError, CancelledError, ConfigError } from '../errors.js';
import { createLogger } from '../logger.js';
import { relativePathOnly, searchPath } from '../program-path.js';
import { ProgramRunError, runProgram } from '../run-program.js';
import { Secret } from '../secret.js';

const log = createLogger('registry');

export interface CredentialHelperOptions {
  /** Environment of the helper process (its PATH's absolute directories find the helper). Defaults to process.env. */
  env?: Record<string, string | undefined>;
  /** How long the helper may take, in ms (it may ask for a passphrase). Default 60 s. */
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Where the helper was configured, for messages, e.g. `/root/.docker/config.json (credHelpers)`. */
  origin?: string;
}

/** What a credential helper returned. `<token>` as user name means the secret is an identity token. */
export interface HelperCredentials {
  username: string;
  secret: Secret;
}

/** What is kept of a helper's stdout and stderr: their first 1 MiB. */
const HELPER_OUTPUT_HEAD = 1024 * 1024;

const NOT_FOUND = /credentials not found|no credentials|not found in (native )?keychain/i;

/**
 * Runs `docker-credential-<name> get` with the server URL on stdin, as Docker does, and parses its
 * JSON answer `{ ServerURL, Username, Secret }`. The helper is looked for in PATH's absolute
 * directories only (an empty or relative entry, the current directory, is never searched). Resolves undefined when the helper has no
 * credentials for the server; throws ConfigError when the helper is not installed and AuthError
 * when it fails. The secret never appears in a message or log.
 */
export function runCredentialHelper(name: string, serverUrl: string, options: CredentialHelperOptions = {}): Promise<HelperCredentials | undefined> {
  const run: HelperRun = { name, program: `docker-credential-${name}`, serverUrl, origin: options.origin ?? 'Docker config' };
  const { program, origin } = run;
  if (!/^[\w.-]+$/.test(name)) {
    return Promise.reject(new ConfigError(`invalid credential helper name '${name}' in ${origin}`, { hint: 'A helper name is the part after docker-credential-, e.g. "pass" or "ecr-login".' }));
  }
  const env = (options.env ?? process.env) as NodeJS.ProcessEnv;
  const found = searchPath(program, env['PATH']);
  const file = found.path;
  if (file === undefined) return Promise.reject(helperNotOnPath(run, found.relative));
  const timeoutMs = options.timeoutMs ?? 60_000;
  log('running %s get for %s', file, serverUrl);
  return runProgram(file, ['get'], {
    env,
    input: serverUrl,
    // Its JSON answer is small: a helper printing without end is cut, and its answer then is not JSON.
    stdout: { head: HELPER_OUTPUT_HEAD },
    stderr: { head: HELPER_OUTPUT_HEAD },
    timeoutMs,
    killSignal: 'SIGKILL',
    ...(options.signal ? { signal: options.signal } : {}),
  }).then(
    (result) => helperAnswer(run, result.code, result.stdout.text.trim(), result.stderr.text.trim()),
    (error: unknown) => {
      if (!ProgramRunError.isInstance(error)) throw error;
      if (error.reason === 'timed-out') throw helperTimedOut(run, timeoutMs);
      if (error.reason === 'cancelled') throw new CancelledError(`credential helper ${program} cancelled`, { cause: error.cause });
      throw helperNotStarted(run, error.cause as NodeJS.ErrnoException);
    },
  );
}

/** A helper not in any absolute directory of PATH: not installed, or only where PATH means the current directory. */
function helperNotOnPath({ name, program, origin }: HelperRun, relative: string | undefined): ConfigError {
  // Docker does not run one from there either (Go's exec.LookPath since 1.19).
  if (relative !== undefined) return relativePathOnly(program, relative, { what: `credential helper ${program} (named in ${origin})` });
  return new ConfigError(`credential helper ${program} (named in ${origin}) was not found on PATH`, {
    hint: `Install ${program}, or remove '${name}' from credsStore/credHelpers in the Docker config.`,
  });
}

/** One run of a helper, as its messages name it. */
interface HelperRun {
  name: string;
  program: string;
  serverUrl: string;
  origin: string;
}

function helperTimedOut({ program, serverUrl, origin }: HelperRun, timeoutMs: number): AuthError {
  return new AuthError(`credential helper ${program} did not answer within ${Math.round(timeoutMs / 1000)} s for ${serverUrl}`, { registry: serverUrl, source: `${origin} (${program})` }, {
    hint: `Run 'echo ${serverUrl} | ${program} get' by hand to see what it waits for.`,
  });
}

/** A helper that could not be spawned: not installed (ConfigError) or another failure (AuthError). */
function helperNotStarted({ name, program, serverUrl, origin }: HelperRun, error: NodeJS.ErrnoException): Error {
  if (error.code === 'ENOENT') {
    return new ConfigError(`credential helper ${program} (named in ${origin}) was not found on PATH`, {
      cause: error,
      hint: `Install ${program}, or remove '${name}' from credsStore/credHelpers in the Docker config.`,
    });
  }
  return new AuthError(`credential helper ${program} could not be started: ${error.message}`, { registry: serverUrl, source: `${origin} (${program})` }, { cause: error });
}

/** What a helper's exit code and output mean: credentials, none for the server, or an AuthError (thrown). */
function helperAnswer(run: HelperRun, code: number | null, out: string, err: string): HelperCredentials | undefined {
  const { program, serverUrl, origin } = run;
  if (code !== 0) {
    if (NOT_FOUND.test(out) || NOT_FOUND.test(err)) {
      log('%s has no credentials for %s', program, serverUrl);
      return undefined;
    }
    // A helper prints its error message on stdout (Docker's protocol) or stderr. An answer on
    // stdout (a JSON object: a wrapper that printed the credential, then failed) holds the secret:
    // it is never quoted.
    const answered = err === '' && out.startsWith('{');
    const detail = answered ? '' : ((err || out).split('\n')[0]?.slice(0, 300) ?? '');
    const said = answered ? ', after printing an answer (not shown: it holds the secret)' : detail ? `: ${detail}` : '';
    throw new AuthError(`credential helper ${program} failed for ${serverUrl} (exit code ${code})${said}`, { registry: serverUrl, source: `${origin} (${program})` }, {
      hint: `Run 'echo ${serverUrl} | ${program} get' by hand to see the problem, or log in again with 'docker login'.`,
    });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(out);
  } catch {
    throw new AuthError(`credential helper ${program} returned output that is not JSON for ${serverUrl}`, { registry: serverUrl, source: `${origin} (${program})` });
  }
  const record = parsed as { Username?: unknown; Secret?: unknown };
  if (typeof parsed !== 'object' || parsed === null || typeof record.Secret !== 'string' || (record.Username !== undefined && typeof record.Username !== 'string')) {
    throw new AuthError(`credential helper ${program} returned JSON without a string Secret for ${serverUrl}`, { registry: serverUrl, source: `${origin} (${program})` });
  }
  if (record.Secret === '') return undefined;
  return { username: (record.Username as string | undefined) ?? '', secret: new Secret(record.Secret) };
}
