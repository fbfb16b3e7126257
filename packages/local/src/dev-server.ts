import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, openSync, closeSync, readFileSync } from 'node:fs';
import { chmod, readdir, readFile, rm } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import {
  ConfigError,
  acquireFileLock,
  basicAuthorization,
  EnvironmentError,
  Secret,
  createLogger,
  diskFullError,
  errorMessage,
  foreignSymlinks,
  lastLines,
  makeDirectory,
  programPath,
  repairedDirectoryNote,
  securePrivatePathSync,
  sleep,
  unsafeDirectoryWords,
  unwritableDirectoryError,
  writeFileAtomic,
  type RegistryCredentials,
  type UnsafeDirectory,
} from '@prebuilt/core/backend';
import { runDockerCommand } from './docker-command.js';
import { loopbackListenerUids } from './loopback-listener.js';

const debug = createLogger('local:server');

export const DEFAULT_REGISTRY_PORT = 5000;
export const DEFAULT_REGISTRY_BINARY = '/usr/bin/docker-registry';
export const DEFAULT_REGISTRY_IMAGE = 'registry:2';
/** The user name of the credential `start` makes; the password is random, new at each start. */
export const DEV_REGISTRY_USERNAME = 'prebuilt';
/** bcrypt cost of the htpasswd entry (the registry checks it once per request: kept at bcrypt's usual 10). */
const BCRYPT_COST = 10;

export interface LocalRegistryServerOptions {
  /**
   * Port on 127.0.0.1: where start listens (default 5000); for status and stop, the port it was
   * started on. A registry running on another port is refused with a ConfigError (stop then
   * stops nothing; start, when given a port, too).
   */
  port?: number;
  /** Where config, data, pid, log and state go. Default `$XDG_STATE_HOME/prebuilt/local-registry` (`~/.local/state/…`). */
  stateDir?: string;
  /** The registry program. Default `/usr/bin/docker-registry` (Debian's `docker-registry` package); when absent, a container runs. */
  registryBinary?: string;
  /** Image for the container fallback. Default `registry:2`. */
  containerImage?: string;
  /** The docker CLI for the container fallback. Default `docker` on PATH (it honours DOCKER_HOST). */
  dockerCommand?: string;
  /** How long to wait for a started registry to answer, ms. Default 15000. */
  startTimeoutMs?: number;
  env?: Record<string, string | undefined>;
  /** Stops the docker commands of the container fallback, and `docker login` (the CLI's Ctrl-C). */
  signal?: AbortSignal;
}

export type LocalRegistryServerMode = 'binary' | 'container';

/** What `status` reports; plain JSON data. */
export interface LocalRegistryServerStatus {
  running: boolean;
  /** `GET /v2/` answers. */
  healthy: boolean;
  /**
   * The registry wants a login (htpasswd, with the credential `start` made): anonymous pushes and
   * pulls are refused. False for one started by an older prebuilt without it; `start` restarts such one.
   */
  authenticated: boolean;
  /** The file (0600) holding the credential prebuilt uses for it, when it is authenticated. Never the secret itself. */
  credentialsFile: string | null;
  /** `127.0.0.1:<port>` when running. */
  address: string | null;
  port: number | null;
  mode: LocalRegistryServerMode | null;
  /** Process id of the registry program (binary mode). */
  pid: number | null;
  /** Container name (container mode). */
  container: string | null;
  stateDir: string;
  dataDir: string;
  logFile: string | null;
  startedAt: string | null;
  /**
   * What of this user's on the path to the state directory was made private before the state was
   * read (see {@link readState}); absent when nothing was.
   */
  notes?: string[];
}

interface ServerState {
  mode: LocalRegistryServerMode;
  port: number;
  pid: number | null;
  container: string | null;
  /**
   * The id `docker run` gave the container (container mode): status, stop and the start's log tail
   * name it by this, not by its name, which any user of the Docker daemon may give another
   * container once ours is gone. Absent in a state written by an older prebuilt (the name is used).
   */
  containerId?: string;
  configFile: string | null;
  logFile: string | null;
  startedAt: string;
  /** `htpasswd` when started with a credential; absent in a state written by an older prebuilt. */
  auth?: 'htpasswd';
}

/** The credential file: the user name and the random password the htpasswd entry is the bcrypt hash of. */
interface StoredCredential {
  username: string;
  password: string;
}

interface Paths {
  stateDir: string;
  /** Above prebuilt's own directories: XDG_STATE_HOME (or ~/.local/state); the state directory's parent when given. */
  base: string;
  stateFile: string;
  pidFile: string;
  configFile: string;
  logFile: string;
  dataDir: string;
  credentialsFile: string;
  htpasswdFile: string;
  /** Held by `start` and `stop` while they run: see {@link exclusively}. */
  lockFile: string;
}

/** `$XDG_STATE_HOME/prebuilt/local-registry`, else `~/.local/state/prebuilt/local-registry`. */
export function defaultStateDir(env: Record<string, string | undefined> = process.env): string {
  const base = env['XDG_STATE_HOME'] || join(env['HOME'] || homedir(), '.local', 'state');
  return join(base, 'prebuilt', 'local-registry');
}

function paths(options: LocalRegistryServerOptions): Paths {
  const stateDir = options.stateDir ?? defaultStateDir(options.env ?? process.env);
  return {
    stateDir,
    base: options.stateDir === undefined ? dirname(dirname(stateDir)) : dirname(stateDir),
    stateFile: join(stateDir, 'state.json'),
    pidFile: join(stateDir, 'registry.pid'),
    configFile: join(stateDir, 'config.yml'),
    logFile: join(stateDir, 'registry.log'),
    dataDir: join(stateDir, 'data'),
    credentialsFile: join(stateDir, 'credentials.json'),
    htpasswdFile: join(stateDir, 'htpasswd'),
    lockFile: join(stateDir, 'start-stop.lock'),
  };
}

function checkPort(port: number): number {
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new ConfigError(`The port ${String(port)} is not a TCP port.`, { hint: 'Pass --port with a number from 1 to 65535, e.g. --port 5000.' });
  }
  return port;
}

/**
 * The state, read only once the path to the state directory is checked (checkStateDirPath) — by
 * every reader: `status`, `login`, `start`, `stop` and the credential the `local` image registry
 * uses. A state planted where others may write would name a port they listen on and a credential
 * of theirs: `login` would log the user's Docker in to their registry, `stop` would remove the
 * container it names. No state file: nothing to trust, nothing checked. `notes` say what of this
 * user's the check repaired; a path others can swap is an EnvironmentError.
 */
function readState(p: Paths): { state: ServerState | undefined; notes: string[] } {
  if (!existsSync(p.stateFile)) return { state: undefined, notes: [] };
  const notes = checkStateDirPath(p);
  try {
    return { state: JSON.parse(readFileSync(p.stateFile, 'utf8')) as ServerState, notes };
  } catch {
    return { state: undefined, notes };
  }
}

/** Removes the state and the credential: one left behind would be sent to whatever listens on the port next. */
async function clearState(p: Paths): Promise<void> {
  await rm(p.stateFile, { force: true });
  await rm(p.pidFile, { force: true });
  await rm(p.credentialsFile, { force: true });
  await rm(p.htpasswdFile, { force: true });
}

/**
 * A new credential for a registry being started: a random password (32 bytes, base64url) in
 * `credentials.json` and its bcrypt hash in `htpasswd`, both 0600 and written atomically. bcryptjs
 * (pure JavaScript, no install step) makes the hash; the registry's Go bcrypt takes its `$2b$`.
 */
async function writeCredential(p: Paths): Promise<StoredCredential> {
  const password = randomBytes(32).toString('base64url');
  const { hash } = await import('bcryptjs');
  const stored: StoredCredential = { username: DEV_REGISTRY_USERNAME, password };
  await writeFileAtomic(p.credentialsFile, `${JSON.stringify(stored)}\n`, { mode: 0o600 });
  await writeFileAtomic(p.htpasswdFile, `${DEV_REGISTRY_USERNAME}:${await hash(password, BCRYPT_COST)}\n`, { mode: 0o600 });
  return stored;
}

/** The loopback hosts the development registry is named by (it listens on 127.0.0.1 only). */
const LOOPBACK_HOST = /^(127\.0\.0\.1|localhost):(\d{1,5})$/i;

/**
 * What to do when nothing listens at `host` and it is an address the development registry could
 * run at (`127.0.0.1:<port>`, `localhost:<port>`): start it there; undefined for any other host.
 */
export function devRegistryStartHint(host: string, setting: string): string | undefined {
  const port = LOOPBACK_HOST.exec(host)?.[2];
  if (port === undefined) return undefined;
  const start = `prebuilt local-registry start${Number(port) === DEFAULT_REGISTRY_PORT ? '' : ` --port ${port}`}`;
  return `Nothing listens at ${host}: start the development registry there (\`${start}\`), or set ${setting} to the address of a running registry.`;
}

/**
 * The credential of the development registry `startLocalRegistryServer` started, for `host` when it
 * is that registry (`127.0.0.1:<port>`, the port of the running state) and it was started with one;
 * else undefined. Read synchronously from the state directory: the `local` image registry offers it
 * as it offers explicit credentials (before the Docker config). `localhost:<port>` of that registry
 * is a ConfigError: localhost may resolve to ::1 first (prebuilt, the Docker daemon and BuildKit
 * connect there before 127.0.0.1), where the registry does not listen and any user of the machine
 * can, and would be sent the credential.
 */
export function localRegistryServerCredentials(
  host: string,
  options: Pick<LocalRegistryServerOptions, 'stateDir' | 'env'> = {},
): RegistryCredentials | undefined {
  const match = LOOPBACK_HOST.exec(host);
  if (!match) return undefined;
  const p = paths(options);
  const read = readState(p);
  // Nowhere to show them: the next `status`, `start` or `stop` finds nothing left to repair.
  for (const note of read.notes) debug('%s', note);
  const state = read.state;
  if (state === undefined) return undefined;
  let stored: StoredCredential;
  try {
    if (state.port !== Number(match[2]) || state.auth !== 'htpasswd') return undefined;
    stored = JSON.parse(readFileSync(p.credentialsFile, 'utf8')) as StoredCredential;
  } catch (error) {
    debug('no development registry credential for %s: %s', host, errorMessage(error));
    return undefined;
  }
  const foreign = foreignListener(state.port, state.mode);
  if (foreign !== undefined) throw foreignListenerError(state.port, foreign);
  if (match[1] !== '127.0.0.1') {
    throw new ConfigError(
      `The local registry ${host} is the development registry, whose credential prebuilt sends only to 127.0.0.1:${state.port}, the address it listens on: ` +
        'localhost may resolve to ::1, where any user of this machine can listen and would be sent it.',
      { hint: `Set METAFLOW_PREBUILT_LOCAL_REGISTRY=127.0.0.1:${state.port}.` },
    );
  }
  if (typeof stored.username !== 'string' || typeof stored.password !== 'string' || stored.password === '') return undefined;
  return {
    registry: host,
    username: stored.username,
    password: new Secret(stored.password),
    source: `the development registry's credential (${p.credentialsFile})`,
    refusedHint: 'Restart the development registry to make a new credential: `prebuilt local-registry stop && prebuilt local-registry start`.',
  };
}

/**
 * Whether a command line (/proc/<pid>/cmdline split at its NULs) is a registry program serving
 * `configFile`: `<program> serve <configFile>`, as {@link startBinary} runs it. Naming the config
 * elsewhere in its arguments is not enough: a reused pid of this user's `less config.yml` would be
 * taken for the registry, and `stop` would signal it.
 */
function servesConfig(cmdline: readonly string[], configFile: string): boolean {
  const args = cmdline.filter((arg) => arg !== '');
  return args.length >= 3 && args.at(-2) === 'serve' && args.at(-1) === configFile;
}

/**
 * True when the process exists, runs as this user and is the registry started with our config (not
 * a reused pid — of another user's program, or of one of this user's, naming our config in its
 * arguments —: it would be reported as the registry, and `stop` would signal it). A state naming no
 * config (binary mode always names one) names no registry of ours.
 */
async function isOurProcess(pid: number, configFile: string | null): Promise<boolean> {
  try {
    process.kill(pid, 0);
  } catch {
    // ESRCH: gone; EPERM: another user's.
    return false;
  }
  let cmdline: string[];
  let status: string;
  try {
    cmdline = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0');
    status = await readFile(`/proc/${pid}/status`, 'utf8');
  } catch {
    // No /proc (macOS): the signal check above is all there is.
    return true;
  }
  const realUid = /^Uid:\s+(\d+)/m.exec(status)?.[1];
  if (realUid !== undefined && process.getuid !== undefined && Number(realUid) !== process.getuid()) return false;
  return configFile !== null && servesConfig(cmdline, configFile);
}

/**
 * Stops the registry programs a `start` killed (kill -9, Ctrl-C) between running the program and
 * writing the state left behind: processes of this user running `<program> serve <our config>` —
 * nothing else names this state directory's config that way. Without the state nothing else
 * finds them, and the port they hold would be refused as "in use by another program" at every
 * start. Returns their pids; none where there is no /proc (macOS).
 */
async function stopOrphans(p: Paths): Promise<number[]> {
  const own = process.getuid?.();
  let names: string[];
  try {
    names = await readdir('/proc');
  } catch {
    return [];
  }
  const orphans: number[] = [];
  for (const name of names) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      if (!servesConfig((await readFile(`/proc/${name}/cmdline`, 'utf8')).split('\0'), p.configFile)) continue;
      const realUid = /^Uid:\s+(\d+)/m.exec(await readFile(`/proc/${name}/status`, 'utf8'))?.[1];
      if (own !== undefined && Number(realUid) !== own) continue;
    } catch {
      // Gone meanwhile, or not ours to read.
      continue;
    }
    orphans.push(Number(name));
  }
  for (const pid of orphans) {
    debug('stopping registry %d left by an interrupted start', pid);
    await terminate(pid, p.configFile);
  }
  return orphans;
}

/** SIGTERM, then SIGKILL after 5 s: the registry `pid` (ours, running `configFile`), until it is gone. */
async function terminate(pid: number, configFile: string | null): Promise<void> {
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  const deadline = Date.now() + 5000;
  // It was ours just before the SIGTERM (checked by the caller): the first look at whether it is gone comes after a wait.
  for (;;) {
    await sleep(100);
    if (!(await isOurProcess(pid, configFile))) return;
    if (Date.now() > deadline) {
      process.kill(pid, 'SIGKILL');
      return;
    }
  }
}

/** The status of `GET /v2/` (with `authorization` when given); 0 when nothing answers. */
async function probe(port: number, authorization?: string): Promise<number> {
  try {
    const response = await fetch(`http://127.0.0.1:${port}/v2/`, { signal: AbortSignal.timeout(2000), ...(authorization ? { headers: { authorization } } : {}) });
    await response.arrayBuffer();
    return response.status;
  } catch {
    return 0;
  }
}

/** A registry answers the API root: 200, or 401 when it wants a login. */
const answers = (status: number): boolean => status === 200 || status === 401;

async function healthy(port: number): Promise<boolean> {
  return answers(await probe(port));
}

/**
 * The uid of another user's program listening where a connection to 127.0.0.1:`port` arrives, or
 * undefined. The registry prebuilt started runs as this user (binary mode) or, in a container,
 * as root or this user; anything else there — a program another user started on the port after
 * the registry stopped (a reboot, a crash), or bound between the port check and the registry's
 * start — would be sent the credential, be pushed the images, and serve the deploy's pulls.
 * Undefined, too, where the system has no /proc/net/tcp (not Linux): nothing can be told there.
 */
function foreignListener(port: number, mode: LocalRegistryServerMode): number | undefined {
  const own = process.getuid?.();
  if (own === undefined) return undefined;
  return loopbackListenerUids(port)?.find((uid) => uid !== own && !(mode === 'container' && uid === 0));
}

function foreignListenerError(port: number, uid: number): EnvironmentError {
  return new EnvironmentError(
    `127.0.0.1:${port} is served by a program of another user of this machine (uid ${uid}), not by the development registry prebuilt started there: ` +
      'its credential is not sent to it, and nothing is pushed to or pulled from it.',
    { hint: 'The development registry is not running (a reboot or a crash stopped it): find out who holds the port (`ss -ltnp`), then run `prebuilt local-registry start`, on another port if it is still held (`--port`).' },
  );
}

/**
 * Why the registry just started does not want the login it was given (anonymous `GET /v2/` is not
 * 401, or the credential is not taken), or undefined when it does. A registry:2 look-alike that
 * ignores REGISTRY_AUTH_* would otherwise be reported as authenticated while open to everyone.
 */
async function loginProblem(port: number, stored: StoredCredential): Promise<string | undefined> {
  const anonymous = await probe(port);
  if (anonymous !== 401) return `it answers an anonymous request with HTTP ${anonymous} instead of 401: it ignored the htpasswd login in its configuration`;
  const login = await probe(port, basicAuthorization(stored.username, stored.password));
  if (login !== 200) return `it refuses the credential it was started with (HTTP ${login})`;
  return undefined;
}

function portInUse(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** How long a docker command of the registry's container may take, ms. */
const DOCKER_TIMEOUT_MS = 120_000;

/**
 * A docker command of the registry's container run to its end (docker-command.ts: its last 64 KiB
 * of stdout and of stderr kept). One that could not be started, or did not finish within 2 minutes
 * (killed), is an exit 1 whose stderr says why; a missing docker CLI is an EnvironmentError.
 */
async function runDocker(command: string, args: string[], options: LocalRegistryServerOptions): Promise<{ code: number; stdout: string; stderr: string }> {
  const result = await runDockerCommand(command, args, {
    env: options.env ?? process.env,
    timeoutMs: DOCKER_TIMEOUT_MS,
    ...(options.signal ? { signal: options.signal } : {}),
    missing: (cause) =>
      new EnvironmentError(`Neither ${DEFAULT_REGISTRY_BINARY} nor the docker CLI ('${command}') is installed, so no registry can be started.`, {
        cause,
        hint: 'Install Debian\'s registry (`sudo apt-get install docker-registry`) or Docker, or run any registry yourself and set METAFLOW_PREBUILT_LOCAL_REGISTRY.',
      }),
  });
  const { code, stdout, stderr, failure } = result;
  return failure === undefined ? { code: code ?? 1, stdout, stderr } : { code: 1, stdout, stderr: `'${command} ${args[0] ?? ''}': ${failure}` };
}

async function containerRunning(options: LocalRegistryServerOptions, name: string): Promise<boolean> {
  const result = await runDocker(options.dockerCommand ?? 'docker', ['inspect', '--format', '{{.State.Running}}', name], options);
  return result.code === 0 && result.stdout.trim() === 'true';
}

async function logTail(file: string): Promise<string> {
  try {
    return lastLines(await readFile(file, 'utf8'), 5);
  } catch {
    return '';
  }
}

async function containerLogTail(options: LocalRegistryServerOptions, name: string): Promise<string> {
  const result = await runDocker(options.dockerCommand ?? 'docker', ['logs', '--tail', '5', name], options);
  return `${result.stdout}${result.stderr}`.trim();
}

function statusFrom(p: Paths, state: ServerState | undefined, running: boolean, isHealthy: boolean): LocalRegistryServerStatus {
  const authenticated = running && state?.auth === 'htpasswd';
  return {
    running,
    healthy: running && isHealthy,
    authenticated,
    credentialsFile: authenticated ? p.credentialsFile : null,
    address: running && state ? `127.0.0.1:${state.port}` : null,
    port: running && state ? state.port : null,
    mode: running && state ? state.mode : null,
    pid: running && state ? state.pid : null,
    container: running && state ? state.container : null,
    stateDir: p.stateDir,
    dataDir: p.dataDir,
    logFile: state?.logFile ?? (existsSync(p.logFile) ? p.logFile : null),
    startedAt: running && state ? state.startedAt : null,
  };
}

/** Refuses a `port` that is not the running registry's: one development registry runs at a time. */
function checkRunningPort(status: LocalRegistryServerStatus, port: number | undefined, action: 'start' | 'status' | 'stop'): void {
  if (port === undefined || !status.running || status.port === port) return;
  if (action === 'start') {
    throw new ConfigError(`The development registry already runs at ${status.address}, not on port ${port}.`, {
      hint: 'Run `prebuilt local-registry stop` first, or use the running one.',
    });
  }
  throw new ConfigError(`The development registry runs at ${status.address}, not on port ${port}${action === 'stop' ? '; nothing was stopped' : ''}.`, {
    hint: `Run \`prebuilt local-registry ${action} --port ${status.port}\` (or without --port): one development registry runs at a time.`,
  });
}

/**
 * Whether the development registry started by `startLocalRegistryServer` runs, where, and whether
 * it answers; with `port`, a ConfigError when it runs on another one.
 */
export async function localRegistryServerStatus(options: LocalRegistryServerOptions = {}): Promise<LocalRegistryServerStatus> {
  const status = await currentStatus(options);
  checkRunningPort(status, options.port, 'status');
  return status;
}

async function currentStatus(options: LocalRegistryServerOptions): Promise<LocalRegistryServerStatus> {
  const p = paths(options);
  const { state, notes } = readState(p);
  const withNotes = (status: LocalRegistryServerStatus): LocalRegistryServerStatus => (notes.length > 0 ? { ...status, notes } : status);
  if (!state) return withNotes(statusFrom(p, undefined, false, false));
  const running = await stateRunning(options, state);
  const root = running ? await probe(state.port) : 0;
  // A login in the state that the registry does not ask for (anonymous 200) is no login.
  return withNotes(statusFrom(p, root === 200 ? { ...state, auth: undefined } : state, running, answers(root)));
}

/** Whether the registry a state names still runs: its process (ours), or its container. */
async function stateRunning(options: LocalRegistryServerOptions, state: ServerState): Promise<boolean> {
  return state.mode === 'binary'
    ? state.pid !== null && (await isOurProcess(state.pid, state.configFile))
    : state.container !== null && (await containerRunning(options, containerOf(state)));
}

/**
 * Makes the state directory (0700, and the missing directories above it that prebuilt makes,
 * whatever the umask) and checks the path to it (core's securePrivatePath): whoever can write in
 * a directory on it can rename the state away and plant their own htpasswd and credential. What is
 * this user's is repaired (the notes say what and why: an older prebuilt made `prebuilt` and
 * `local-registry` with the umask's mode, 0777 under umask 000); what is not is an EnvironmentError
 * saying how to fix it.
 */
async function prepareStateDir(p: Paths): Promise<string[]> {
  refuseUnsafe(p, await foreignSymlinks(p.dataDir, p.base));
  await makeDirectory(p.dataDir, { mode: 0o700 });
  const notes = checkStateDirPath(p);
  // Readable by others neither (the images: only the registry reads them), as when prebuilt makes it.
  await chmod(p.stateDir, 0o700);
  return notes;
}

/**
 * The path check of {@link prepareStateDir} (core's securePrivatePath): what is this user's is
 * repaired (the notes say so), what others can swap is an EnvironmentError saying how to fix it.
 * `stop` runs it too before it takes its lock, and {@link readState} before any state is read: one
 * planted where others may write would name the container `docker rm -f` removes (any of the
 * daemon's), the process `stop` signals, or the port and credential `login` gives `docker login`.
 */
function checkStateDirPath(p: Paths): string[] {
  const { repaired, unsafe } = securePrivatePathSync(p.stateDir, { base: p.base });
  refuseUnsafe(p, unsafe);
  return repaired.map((r) => repairedDirectoryNote(r, "the development registry's credential"));
}

/**
 * The EnvironmentError for the first unsafe directory on the state directory's path, if any. Also
 * run before the state directory is made: a symlink another user planted at `prebuilt` (an
 * XDG_STATE_HOME in a sticky /tmp) is refused before `makeDirectory` follows it (foreignSymlinks).
 */
function refuseUnsafe(p: Paths, unsafe: readonly UnsafeDirectory[]): void {
  const first = unsafe[0];
  if (first === undefined) return;
  const { who, fix } = unsafeDirectoryWords(first);
  throw new EnvironmentError(
    `The development registry's state directory ${p.stateDir} is not safe for its credential: ${who} rename what is in it away and plant their own htpasswd and credential.`,
    { hint: `${fix}, or set XDG_STATE_HOME to a directory only you can write.` },
  );
}

/**
 * Starts a registry on 127.0.0.1 for development: Debian's `docker-registry` program when installed
 * (config, data, pid file and log in the state directory), else a `registry:2` container with host
 * networking. It wants a login (htpasswd): a random credential is made at each start, kept in the
 * state directory (0700; the files 0600), and the `local` image registry uses it for this host, so
 * other users of the machine can neither push nor pull. Idempotent: a running one is reported, not
 * started twice — except one started by an older prebuilt without a login, which is restarted with
 * one on its port (its images are kept); `notes` says so, and names the state directories it
 * repaired ({@link prepareStateDir}). A state directory others can swap that is not this user's to
 * repair is an EnvironmentError (exit 2), before anything is written or started. A registry a start
 * killed before it wrote the state left running (stopOrphans) is stopped first, and `notes` says so.
 */
export async function startLocalRegistryServer(
  options: LocalRegistryServerOptions = {},
): Promise<LocalRegistryServerStatus & { alreadyRunning: boolean; notes?: string[] }> {
  if (options.port !== undefined) checkPort(options.port);
  // The state directory is checked (and repaired) before anything is written in it, the lock included.
  return exclusively(options, 'local-registry start', prepareStateDir, (notes) => start(options, notes));
}

/**
 * Runs `work` (a start or a stop) holding the state directory's lock: two at once (two terminals,
 * a script) would each clear the state and write a credential, and the registry one of them ran
 * would be given the other's htpasswd, refuse its login and be stopped — or a stop would take a
 * registry still being started for one a killed start left (stopOrphans). The lock is a file
 * (core's acquireFileLock): one of a killed process is taken over. `prepare` makes the state
 * directory first, private (0700) as every directory above it that prebuilt makes (a start also
 * checks and repairs it: prepareStateDir).
 */
async function exclusively<P, T>(
  options: LocalRegistryServerOptions,
  purpose: string,
  prepare: (p: Paths) => Promise<P>,
  work: (prepared: P) => Promise<T>,
): Promise<T> {
  const p = paths(options);
  // A state directory that cannot be made or written (read-only, another user's, full): said as such.
  const where = { dir: p.stateDir, doing: `preparing ${purpose}`, ...(options.stateDir === undefined ? { setting: 'XDG_STATE_HOME' } : {}) };
  const { prepared, lock } = await prepare(p)
    .then(async (prepared) => ({ prepared, lock: await acquireFileLock(p.lockFile, { purpose, pollMs: 100 }) }))
    .catch((error: unknown) => {
      throw diskFullError(error, where) ?? unwritableDirectoryError(error, where) ?? error;
    });
  try {
    return await work(prepared);
  } finally {
    await lock.release();
  }
}

/**
 * What a stop needs of the state directory before it takes the lock: that it is there, private, and
 * that the path to it is safe (checkStateDirPath; its notes say what was repaired).
 */
async function stateDirChecked(p: Paths): Promise<string[]> {
  refuseUnsafe(p, await foreignSymlinks(p.stateDir, p.base));
  await makeDirectory(p.stateDir, { mode: 0o700 });
  return checkStateDirPath(p);
}

async function start(options: LocalRegistryServerOptions, notes: string[]): Promise<LocalRegistryServerStatus & { alreadyRunning: boolean; notes?: string[] }> {
  const p = paths(options);
  const current = await currentStatus(options);
  if (current.running) {
    checkRunningPort(current, options.port, 'start');
    if (current.authenticated) return { ...current, alreadyRunning: true, ...(notes.length > 0 ? { notes } : {}) };
    notes.push(
      `The development registry at ${current.address} ran without authentication (started by an older prebuilt): any user of this machine could push to it. ` +
        'It was restarted with a login that prebuilt uses by itself; its images are kept.',
    );
    await stop(options);
  }
  const port = checkPort(options.port ?? current.port ?? DEFAULT_REGISTRY_PORT);
  const orphans = await stopOrphans(p);
  if (orphans.length > 0) {
    notes.push(`A registry left running by an interrupted \`prebuilt local-registry start\` (pid ${orphans.join(', ')}) was stopped.`);
  }
  await clearState(p);
  if (await portInUse(port)) {
    throw new EnvironmentError(`Port ${port} on 127.0.0.1 is already in use by another program.`, {
      hint: `Pick another port (\`prebuilt local-registry start --port ${port + 1}\`), or use the registry already listening there.`,
    });
  }
  const stored = await writeCredential(p);
  let state: ServerState;
  try {
    // A bare name is looked for in PATH's absolute directories only (core's programPath).
    const binary = programPath(options.registryBinary ?? DEFAULT_REGISTRY_BINARY, { env: options.env ?? process.env, what: 'the registry program' });
    state = binary !== undefined && existsSync(binary) ? await startBinary(p, port, binary, options) : await startContainer(p, port, options);
  } catch (error) {
    await clearState(p);
    throw error;
  }
  await writeFileAtomic(p.stateFile, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
  if (state.pid !== null) await writeFileAtomic(p.pidFile, `${state.pid}\n`);

  const deadline = Date.now() + (options.startTimeoutMs ?? 15_000);
  while (!(await healthy(port))) {
    const alive = await stateRunning(options, state);
    if (!alive || Date.now() > deadline) {
      const tail = state.logFile ? await logTail(state.logFile) : await containerLogTail(options, containerOf(state));
      await stop(options);
      throw new EnvironmentError(
        `The registry on 127.0.0.1:${port} ${alive ? 'did not answer in time' : 'exited right after starting'}${tail ? `:\n${tail}` : '.'}`,
        { hint: state.logFile ? `See ${state.logFile}.` : 'See `docker logs` of the container.' },
      );
    }
    await sleep(200);
  }
  // What answers must be the registry just started, not a program another user bound to the port meanwhile.
  const foreign = foreignListener(port, state.mode);
  if (foreign !== undefined) {
    await stop(options);
    throw foreignListenerError(port, foreign);
  }
  const problem = await loginProblem(port, stored);
  if (problem !== undefined) {
    await stop(options);
    throw new EnvironmentError(`The registry started on 127.0.0.1:${port} was stopped: ${problem}.`, {
      hint:
        state.mode === 'container'
          ? `Use an image that reads REGISTRY_AUTH_HTPASSWD_* as registry:2 does, or install Debian's registry (\`sudo apt-get install docker-registry\`).`
          : `Check that ${state.configFile} is read by the registry program (see ${state.logFile}).`,
    });
  }
  debug('registry started: %o', state);
  return { ...statusFrom(p, state, true, true), alreadyRunning: false, ...(notes.length > 0 ? { notes } : {}) };
}

async function startBinary(p: Paths, port: number, binary: string, options: LocalRegistryServerOptions): Promise<ServerState> {
  const config = [
    'version: 0.1',
    'log:',
    '  level: warn',
    '  accesslog: {disabled: true}',
    'storage:',
    `  filesystem: {rootdirectory: ${JSON.stringify(p.dataDir)}}`,
    '  delete: {enabled: true}',
    'http:',
    `  addr: 127.0.0.1:${port}`,
    'auth:',
    '  htpasswd:',
    '    realm: prebuilt-local-registry',
    `    path: ${JSON.stringify(p.htpasswdFile)}`,
    '',
  ].join('\n');
  await writeFileAtomic(p.configFile, config);
  const log = openSync(p.logFile, 'a');
  try {
    const child = spawn(binary, ['serve', p.configFile], {
      detached: true,
      stdio: ['ignore', log, log],
      env: registryEnv(options.env ?? process.env),
    });
    const pid = await new Promise<number>((resolve, reject) => {
      child.once('error', (error) =>
        reject(new EnvironmentError(`The registry program ${binary} could not be started: ${errorMessage(error)}.`, { cause: error })),
      );
      child.once('spawn', () => resolve(child.pid!));
    });
    child.unref();
    return { mode: 'binary', port, pid, container: null, configFile: p.configFile, logFile: p.logFile, startedAt: new Date().toISOString(), auth: 'htpasswd' };
  } finally {
    closeSync(log);
  }
}

/**
 * The registry program's environment: the caller's without its REGISTRY_* variables. The registry
 * (distribution) takes each as an override of its configuration file — REGISTRY_HTTP_ADDR=0.0.0.0:5000
 * left in a shell by another tool opened it to the network, REGISTRY_AUTH_* could swap its login,
 * REGISTRY_STORAGE_* move its data — so the file prebuilt wrote is all its configuration.
 */
function registryEnv(env: Record<string, string | undefined>): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(env).filter(([key]) => !key.toUpperCase().startsWith('REGISTRY_')));
}

/** Where the container sees the htpasswd file (mounted read-only). */
const CONTAINER_HTPASSWD = '/auth/htpasswd';

async function startContainer(p: Paths, port: number, options: LocalRegistryServerOptions): Promise<ServerState> {
  const name = `prebuilt-local-registry-${port}`;
  const docker = options.dockerCommand ?? 'docker';
  await runDocker(docker, ['rm', '-f', name], options);
  const result = await runDocker(
    docker,
    [
      'run', '-d', '--name', name, '--network=host',
      '-e', `REGISTRY_HTTP_ADDR=127.0.0.1:${port}`,
      '-e', 'REGISTRY_STORAGE_DELETE_ENABLED=true',
      '-e', 'REGISTRY_AUTH=htpasswd',
      '-e', 'REGISTRY_AUTH_HTPASSWD_REALM=prebuilt-local-registry',
      '-e', `REGISTRY_AUTH_HTPASSWD_PATH=${CONTAINER_HTPASSWD}`,
      '-v', `${p.dataDir}:/var/lib/registry`,
      '-v', `${p.htpasswdFile}:${CONTAINER_HTPASSWD}:ro`,
      options.containerImage ?? DEFAULT_REGISTRY_IMAGE,
    ],
    options,
  );
  if (result.code !== 0) {
    throw new EnvironmentError(`The registry container could not be started: ${result.stderr.trim() || `docker exited with ${result.code}`}.`, {
      hint: `Install Debian's registry (\`sudo apt-get install docker-registry\`), or make the image ${options.containerImage ?? DEFAULT_REGISTRY_IMAGE} available to Docker.`,
    });
  }
  // `docker run -d` prints the new container's id last on stdout (a pull's progress goes to stderr).
  const id = result.stdout.trim().split('\n').at(-1)?.trim() ?? '';
  if (!CONTAINER_ID.test(id)) {
    await runDocker(docker, ['rm', '-f', name], options);
    throw new EnvironmentError(`The registry container ${name} was started, but '${docker} run -d' did not print its id, by which prebuilt stops it: it was removed.`, {
      hint: `Check that '${docker}' is the docker CLI (\`${docker} run -d\` prints the id of the container it starts).`,
    });
  }
  return { mode: 'container', port, pid: null, container: name, containerId: id, configFile: null, logFile: null, startedAt: new Date().toISOString(), auth: 'htpasswd' };
}

/** A full container id, as `docker run -d` prints it. */
const CONTAINER_ID = /^[0-9a-f]{64}$/;

/**
 * What docker commands name the registry's container by: the id its start recorded (a container a
 * user of the daemon names `prebuilt-local-registry-<port>` after ours is gone is not ours to
 * report or remove), else — a state of an older prebuilt — its name.
 */
function containerOf(state: ServerState): string {
  return typeof state.containerId === 'string' && CONTAINER_ID.test(state.containerId) ? state.containerId : state.container!;
}

/**
 * Stops the development registry, and any a `start` killed before it wrote the state left running
 * (see stopOrphans). Idempotent: `stopped` is false when none was running. Data is kept. With
 * `port`, one running on another port is not stopped: a ConfigError. The path to the state
 * directory is checked first, as `start` checks it: one others can swap is an EnvironmentError
 * (exit 2) and nothing is stopped; `notes` say what of this user's was repaired.
 */
export async function stopLocalRegistryServer(
  options: LocalRegistryServerOptions = {},
): Promise<{ stopped: boolean; status: LocalRegistryServerStatus; notes?: string[] }> {
  // No state directory (or a file in its way): nothing was started from it, nothing to stop, and none is made.
  if (!existsSync(paths(options).stateDir)) return { stopped: false, status: await currentStatus(options) };
  return exclusively(options, 'local-registry stop', stateDirChecked, async (notes) => ({ ...(await stop(options)), ...(notes.length > 0 ? { notes } : {}) }));
}

async function stop(options: LocalRegistryServerOptions): Promise<{ stopped: boolean; status: LocalRegistryServerStatus }> {
  const p = paths(options);
  // Read once: the registry checked against `port` is the one stopped.
  const { state } = readState(p);
  if (options.port !== undefined && state) {
    checkRunningPort(statusFrom(p, state, await stateRunning(options, state), false), options.port, 'stop');
  }
  let stopped = false;
  if (state?.mode === 'binary' && state.pid !== null && (await isOurProcess(state.pid, state.configFile))) {
    await terminate(state.pid, state.configFile);
    stopped = true;
  } else if (state?.mode === 'container' && state.container !== null) {
    const result = await runDocker(options.dockerCommand ?? 'docker', ['rm', '-f', containerOf(state)], options);
    stopped = result.code === 0;
  }
  // Registries an interrupted start left without a state (one development registry runs at a time).
  if ((await stopOrphans(p)).length > 0) stopped = true;
  await clearState(p);
  debug('registry stop: %s', stopped ? 'stopped' : 'was not running');
  return { stopped, status: await currentStatus(options) };
}
