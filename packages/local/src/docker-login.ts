import {
  ConfigError,
  EnvironmentError,
  createLogger,
  dockerConfigCredentials,
  dockerConfigPath,
  errorMessage,
  lastLines,
} from '@prebuilt/core/backend';
import { localRegistryServerCredentials, localRegistryServerStatus, type LocalRegistryServerOptions, type LocalRegistryServerStatus } from './dev-server.js';
import { runDockerCommand } from './docker-command.js';

const debug = createLogger('local:docker-login');

/** How long `docker login` may take (it asks the daemon, which asks the registry), ms. */
const DOCKER_LOGIN_TIMEOUT_MS = 60_000;

/**
 * Whether the Docker config (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`, through its
 * credential helper when it names one) has a login for the running development registry:
 * `matching` — the credential of this start, so `docker pull`/`docker run` of its images work;
 * `stale` — another one (of an earlier start: each start makes a new one); `none`; `unreadable` —
 * the config or its credential helper failed (the reason is logged).
 */
export type DockerLoginState = 'matching' | 'stale' | 'none' | 'unreadable';

/** What {@link dockerLoginLocalRegistryServer} did. Never the password. */
export interface DockerLoginResult {
  /** `127.0.0.1:<port>`, the server `docker login` was given. */
  address: string;
  username: string;
  /** The Docker config the login went to (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`). */
  dockerConfig: string;
  /** What of this user's on the path to the state directory was made private before the credential was read (as `status` says); absent when nothing was. */
  notes?: string[];
}

/** The running, authenticated development registry's address and credential, or an error saying how to get one. */
async function runningCredential(options: LocalRegistryServerOptions): Promise<{ address: string; username: string; password: string; notes?: string[] }> {
  // The status reads the state after checking the path to it: a state planted where others may
  // write (a port they listen on, a credential of theirs) is an EnvironmentError, before any login.
  const status = await localRegistryServerStatus(options);
  if (!status.running || status.address === null) {
    throw new ConfigError('The development registry is not running, so there is nothing to log in to.', {
      hint: 'Start it with `prebuilt local-registry start`, then log in.',
    });
  }
  const credentials = status.authenticated ? localRegistryServerCredentials(status.address, options) : undefined;
  const password = credentials?.password?.reveal();
  if (credentials?.username === undefined || password === undefined) {
    throw new ConfigError(`The development registry at ${status.address} runs without a login (started by an older prebuilt): there is no credential to log in with.`, {
      hint: '`prebuilt local-registry start` restarts it with one (its images are kept); then log in.',
    });
  }
  return { address: status.address, username: credentials.username, password, ...(status.notes ? { notes: status.notes } : {}) };
}

/**
 * Whether the Docker config has the credential of the development registry at `address`, made at
 * this start (see {@link DockerLoginState}). Reads the config as `docker` does, with `env`'s
 * DOCKER_CONFIG and HOME; never fails.
 */
export async function dockerLoginState(address: string, options: Pick<LocalRegistryServerOptions, 'stateDir' | 'env'> = {}): Promise<DockerLoginState> {
  try {
    const ours = localRegistryServerCredentials(address, options)?.password?.reveal();
    const theirs = await dockerConfigCredentials(address, { env: options.env ?? process.env });
    if (theirs === undefined) return 'none';
    return ours !== undefined && theirs.password?.reveal() === ours ? 'matching' : 'stale';
  } catch (error) {
    debug('the Docker config could not be read for %s: %s', address, errorMessage(error));
    return 'unreadable';
  }
}

/** Docker's login to the development registry as `status` and `start` report it (`--json`: `dockerLogin`, `dockerConfig`). */
export interface DockerLoginOf {
  /** Its state; null when there is no login to have (the registry is not running, or runs without a login). */
  dockerLogin: DockerLoginState | null;
  /** The Docker config it is read from (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`). */
  dockerConfig: string;
}

/** Docker's login to the registry `status` describes (a status of {@link localRegistryServerStatus} or a start); never fails. */
export async function dockerLoginFor(status: LocalRegistryServerStatus, options: Pick<LocalRegistryServerOptions, 'env'> = {}): Promise<DockerLoginOf> {
  const env = options.env ?? process.env;
  const dockerLogin = status.running && status.authenticated && status.address !== null ? await dockerLoginState(status.address, { env, stateDir: status.stateDir }) : null;
  return { dockerLogin, dockerConfig: dockerConfigPath(env) };
}

/**
 * Logs Docker in to the running development registry with the credential of this start:
 * `docker login 127.0.0.1:<port> --username prebuilt --password-stdin`, the password written to its
 * standard input only — never in its arguments (other users of the machine can read them in
 * /proc), never printed nor returned. Docker keeps it where it keeps every login (its credential
 * helper, else the config file), in the config `env`'s DOCKER_CONFIG names (else `~/.docker`).
 * Each start makes a new credential, so a login lasts until the next start.
 */
export async function dockerLoginLocalRegistryServer(options: LocalRegistryServerOptions = {}): Promise<DockerLoginResult> {
  const { address, username, password, notes } = await runningCredential(options);
  const env = options.env ?? process.env;
  const command = options.dockerCommand ?? 'docker';
  // The password on stdin only (never an argument: `ps` shows those); docker's output never holds it.
  const result = await runDockerCommand(command, ['login', address, '--username', username, '--password-stdin'], {
    env,
    input: password,
    mergeStderr: true,
    // Enough to say why it failed.
    stdout: { tail: 64 * 1024 },
    timeoutMs: DOCKER_LOGIN_TIMEOUT_MS,
    ...(options.signal ? { signal: options.signal } : {}),
    missing: (cause) =>
      new EnvironmentError(`The docker CLI ('${command}') is not installed, so Docker cannot be logged in to ${address}.`, {
        cause,
        hint: 'Install the docker CLI; prebuilt itself needs no login to the development registry.',
      }),
  });
  if (result.code !== 0) {
    const said = lastLines(result.stdout, 5);
    throw new EnvironmentError(
      `docker login ${address} failed (${result.failure ?? `exit ${result.code}`})${said ? `:\n${said}` : '.'}`,
      {
        hint: 'Check that the Docker daemon runs (`docker info`) and can reach 127.0.0.1 of this machine (a daemon in a VM or on another host cannot: use prebuilt, which needs no login, to reach the registry).',
      },
    );
  }
  debug('docker logged in to %s', address);
  return { address, username, dockerConfig: dockerConfigPath(env), ...(notes ? { notes } : {}) };
}
