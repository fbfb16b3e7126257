import { Writable, type Duplex, type Readable } from 'node:stream';
import { ExitCode, PrebuiltError, RegistryError, cancelledError, createLogger, type RegistryCredentials } from '@prebuilt/core/backend';
import { CANCEL_CLEANUP_MS, seconds } from './engine-clock.js';
import { pullThroughDaemon } from './daemon-pull.js';
import { DockerDaemon, imagePath, requestProblem } from './docker-daemon.js';
import { credentialsInClear } from './docker-host.js';
import type { EngineConnection } from './engine-client.js';
import { EngineContainer, type ContainerSpec } from './engine-container.js';
import { demuxStream } from './stream-demux.js';
import { resolveDockerSettings } from './docker-settings.js';
import { pullParts, registryHost } from './image-reference.js';
import { ProgressTracker } from './progress.js';

const debug = createLogger('docker');

/** A command to run once in an image, as a task would, with nothing of this machine's. */
export interface IsolatedRunOptions {
  /** The image (`repo:tag@sha256:…` or `repo@sha256:…`); pulled first when the daemon lacks it. */
  image: string;
  /** The program and its arguments: replaces the image's entrypoint and command. */
  command: readonly string[];
  /** The container is killed after this long (the result says `timedOut`). */
  timeoutMs: number;
  /** The container is killed when it prints more than this many bytes on stdout (the result says `stdoutOverflow`). */
  maxStdoutBytes: number;
  /** How much of the end of stderr the result keeps. Default 8 KiB. */
  stderrTailBytes?: number;
  /** Credentials for pulling an image of their registry (the daemon's own login is not used by its API); asked for only when the daemon lacks the image. */
  credentials?: () => Promise<RegistryCredentials | undefined>;
  env?: Record<string, string | undefined>;
  signal?: AbortSignal;
  /** Called before the image is pulled (it was not on the daemon). */
  onPull?: (image: string) => void;
  /** Told when the pull sends registry credentials across the network unencrypted (DockerDaemon.sendsCredentials: the build's note, word for word). */
  note?: (message: string) => void;
}

export interface IsolatedRunResult {
  /** The program's exit status; null when it was killed (timeout, output cap). */
  exitCode: number | null;
  stdout: string;
  /** The last `stderrTailBytes` of stderr. */
  stderrTail: string;
  timedOut: boolean;
  stdoutOverflow: boolean;
  /** The image was pulled for this run. */
  pulled: boolean;
  /** The container's id (it is removed when the run returns). */
  containerId: string;
}

/**
 * The container of an isolated run: what the image holds is code anyone who published one of its
 * packages wrote, and this machine holds registry credentials. So: no network at all (`none`: a
 * loopback interface only, no bridge), no mounts, no environment variable of the host (the
 * image's own only), every capability dropped, no privilege gain, a bounded number of processes,
 * no log kept by the daemon (`none`: the output is read from the attached streams, bounded),
 * removed when it exits.
 */
export function isolatedContainerSpec(image: string, command: readonly string[]): ContainerSpec {
  return {
    Image: image,
    Entrypoint: [command[0]!],
    Cmd: command.slice(1),
    Env: [],
    NetworkDisabled: true,
    AttachStdin: false,
    AttachStdout: true,
    AttachStderr: true,
    Tty: false,
    OpenStdin: false,
    Labels: { 'dev.prebuilt.isolated-run': '1' },
    HostConfig: {
      NetworkMode: 'none',
      AutoRemove: true,
      Binds: [],
      Mounts: [],
      CapDrop: ['ALL'],
      SecurityOpt: ['no-new-privileges'],
      PidsLimit: 1024,
      Privileged: false,
      LogConfig: { Type: 'none', Config: {} },
    },
  };
}

/** Pulls the image unless the daemon has it; true when it pulled. A failed pull is a RegistryError (exit 1) with the daemon's reason. */
async function ensureImage(daemon: DockerDaemon, options: IsolatedRunOptions): Promise<boolean> {
  const { client } = daemon;
  try {
    await client.json({ method: 'GET', path: `/images/${imagePath(options.image)}/json`, signal: options.signal });
    return false;
  } catch (error) {
    if (options.signal?.aborted) throw cancelledError(options.signal, 'The run');
    if (PrebuiltError.isInstance(error)) throw error; // a stalled daemon's NetworkError
    if ((error as { statusCode?: number }).statusCode !== 404) throw new DockerRunError(`The Docker daemon cannot inspect ${options.image}: ${requestProblem(error)}`, error);
  }
  options.onPull?.(options.image);
  const registry = registryHost(pullParts(options.image).fromImage);
  const given = await options.credentials?.();
  const credentials = given && registry === given.registry ? given : undefined;
  if (credentials) daemon.sendsCredentials(options.note);
  const failed = await pullThroughDaemon(client, options.image, {
    credentials,
    ...(options.signal ? { signal: options.signal } : {}),
    tracker: new ProgressTracker(undefined, 5),
    what: 'The pull',
  });
  if (failed !== undefined) {
    throw new RegistryError(`${options.image} cannot be pulled: ${failed}`, { registry }, {
      hint: 'Check that the image is still in the registry (prebuilt build pushed it) and that its registry is reachable from the Docker daemon.',
    });
  }
  return true;
}

/** The daemon refused or failed a request of the run (create, attach, start, wait). Exit 1. */
export class DockerRunError extends PrebuiltError {
  constructor(message: string, cause: unknown) {
    super('docker-run', message, ExitCode.failure, { cause, hint: 'Check the Docker daemon (docker info) and run the command again with --verbose.' });
    this.name = 'DockerRunError';
  }
}

/** A sink keeping at most `max` bytes: the first ones (`head`) or the last ones. */
class BoundedSink extends Writable {
  chunks: Buffer[] = [];
  bytes = 0;
  overflow = false;
  constructor(
    private readonly max: number,
    private readonly keep: 'head' | 'tail',
    private readonly onOverflow: () => void = () => {},
  ) {
    super();
  }
  override _write(chunk: Buffer, _encoding: BufferEncoding, done: () => void): void {
    if (this.overflow) return done(); // a head sink past its bound keeps nothing more
    this.chunks.push(chunk);
    this.bytes += chunk.length;
    if (this.bytes > this.max) {
      if (this.keep === 'head' && !this.overflow) {
        this.overflow = true;
        this.onOverflow();
      }
      const all = Buffer.concat(this.chunks);
      this.chunks = [this.keep === 'head' ? all.subarray(0, this.max) : all.subarray(all.length - this.max)];
      this.bytes = this.max;
    }
    done();
  }
  text(): string {
    return Buffer.concat(this.chunks).toString('utf8');
  }
}

/**
 * Runs a command once in an image on the Docker daemon (DOCKER_HOST), isolated (see
 * {@link isolatedContainerSpec}), and returns its exit status and output. An absent daemon is the
 * UnreachableError every command gives; an image the daemon lacks is pulled first. `inClear`
 * decides whether credentials sent to the daemon cross the network unencrypted (DockerDaemon's;
 * given by tests, whose fake daemons are on 127.0.0.1).
 */
export async function runIsolatedContainer(options: IsolatedRunOptions, inClear: (connection: EngineConnection) => boolean = credentialsInClear): Promise<IsolatedRunResult> {
  const env = options.env ?? process.env;
  const daemon = new DockerDaemon(resolveDockerSettings({}, env), env, inClear);
  try {
    await daemon.check(options.signal);
    const pulled = await ensureImage(daemon, options);
    const container = await EngineContainer.create(daemon.client, isolatedContainerSpec(options.image, options.command), options.signal);
    debug('isolated run of %s in container %s', options.image, container.id);
    try {
      return { ...(await attachAndWait(container, options, daemon.client.limits.idleMs)), pulled, containerId: container.id };
    } finally {
      await removeContainer(container, options.signal?.aborted === true);
    }
  } finally {
    daemon.close();
  }
}

/**
 * Removes the container (force: a running one is killed), or waits (up to 10 s) for the daemon's
 * AutoRemove that is under way; gone already is fine. After a cancel, only for
 * {@link CANCEL_CLEANUP_MS}: Ctrl-C returns at once even when the daemon hangs.
 */
async function removeContainer(container: EngineContainer, cancelled: boolean): Promise<void> {
  try {
    await container.remove(cancelled ? AbortSignal.timeout(CANCEL_CLEANUP_MS) : undefined);
  } catch (error) {
    if ((error as { statusCode?: number }).statusCode === 404 || cancelled) return;
    const removed = container.wait('removed').catch(() => undefined);
    await Promise.race([removed, new Promise((resolve) => setTimeout(resolve, 10_000).unref())]);
  }
}

/**
 * Attaches, starts and waits for the container, within the run's time limit: it runs from before
 * the attach (a daemon stalling in the attach or the start counts), kills the container when it
 * passes, and gives up on a daemon that has not ended the run `graceMs` later. The attached
 * output has no silence limit of its own: the program may print nothing until it is done.
 */
async function attachAndWait(container: EngineContainer, options: IsolatedRunOptions, graceMs: number): Promise<Omit<IsolatedRunResult, 'pulled' | 'containerId'>> {
  let timedOut = false;
  const kill = (): void => void container.kill().catch(() => undefined);
  const stdout = new BoundedSink(options.maxStdoutBytes, 'head', kill);
  const stderr = new BoundedSink(options.stderrTailBytes ?? 8192, 'tail');
  const giveUp = new AbortController();
  const signal = options.signal ? AbortSignal.any([options.signal, giveUp.signal]) : giveUp.signal;
  const timer = setTimeout(() => {
    timedOut = true;
    kill();
  }, options.timeoutMs);
  const gaveUp = setTimeout(() => giveUp.abort(), options.timeoutMs + graceMs);
  let stream: Duplex | Readable | undefined;
  try {
    stream = await container.attach(signal);
    const ended = new Promise<void>((resolve) => {
      stream!.on('end', resolve).on('close', resolve).on('error', () => resolve());
    });
    demuxStream(stream, stdout, stderr);
    const waited = container.wait('next-exit', signal);
    waited.catch(() => undefined); // rejected while the start fails: the start's error is the one
    await container.start(signal);
    const { StatusCode } = await waited;
    await Promise.race([ended, new Promise((resolve) => setTimeout(resolve, 2000))]);
    if (options.signal?.aborted) throw cancelledError(options.signal, 'The run');
    const killed = timedOut || stdout.overflow;
    return { exitCode: killed ? null : StatusCode, stdout: stdout.text(), stderrTail: stderr.text(), timedOut, stdoutOverflow: stdout.overflow };
  } catch (error) {
    if (options.signal?.aborted) throw cancelledError(options.signal, 'The run');
    if (giveUp.signal.aborted) {
      throw new DockerRunError(`The Docker daemon did not end the run of ${options.image} within ${seconds(graceMs)} s of its time limit (${seconds(options.timeoutMs)} s): it stopped answering.`, error);
    }
    if (PrebuiltError.isInstance(error)) throw error;
    throw new DockerRunError(`The Docker daemon could not run ${options.image}: ${requestProblem(error)}`, error);
  } finally {
    clearTimeout(timer);
    clearTimeout(gaveUp);
    stream?.destroy(); // the hijacked connection, if the daemon has not closed it
  }
}
