import { ConfigError, NetworkError, UnreachableError, cancelledError, createLogger, errorMessage, orOption } from '@prebuilt/core/backend';
import { credentialsInClear, credentialsInClearNote, dockerConnection, shownDockerHost } from './docker-host.js';
import { EngineClient, type EngineConnection, type EngineRequestError } from './engine-client.js';
import { engineVersion, type EngineVersion } from './engine-version.js';
import { DOCKER_ENV, type DockerBuilder, type DockerSettings } from './docker-settings.js';
import { checkBuilder } from './image-store.js';

const debug = createLogger('docker');

/** True when a request's error has no HTTP status: the connection to the daemon broke, it did not answer. */
export function isConnectionError(error: unknown): boolean {
  return (error as EngineRequestError).statusCode === undefined;
}

/** The daemon's own message of a failed request, without the `(HTTP code …)` prefix of the request's error. */
export function daemonMessage(error: unknown): string {
  const json = (error as EngineRequestError).json;
  if (typeof json === 'object' && json !== null && typeof (json as { message?: unknown }).message === 'string') {
    return (json as { message: string }).message.trim();
  }
  if (typeof json === 'string' && json.trim() !== '') return json.trim();
  return errorMessage(error).replace(/^\(HTTP code \d+\)\s*[\w ]*-\s*/, '').trim();
}

/** What went wrong with a request: the broken connection's error, or the daemon's message. */
export function requestProblem(error: unknown): string {
  return isConnectionError(error) ? errorMessage(error) : daemonMessage(error);
}

/**
 * A daemon whose connection failed, as an UnreachableError (code unreachable, exit 2: the same kind
 * of fault as an unreachable registry). A socket this user may not open (EACCES, EPERM: most often a
 * user outside the `docker` group, the daemon running) is told apart from a daemon that is not there,
 * whose fix is to start it.
 */
function daemonUnreachableError(dockerHost: string, error: unknown): UnreachableError {
  const code = (error as NodeJS.ErrnoException).code;
  const service = { service: `Docker daemon ${dockerHost}` };
  if (code === 'EACCES' || code === 'EPERM') {
    return new UnreachableError(`The Docker daemon at ${dockerHost} cannot be reached: this user may not open its socket (${errorMessage(error)}).`, service, {
      cause: error,
      hint:
        'Add your user to the docker group (`sudo usermod -aG docker $USER`, then log in again), or run prebuilt as a user who may use ' +
        'the socket, or point DOCKER_HOST at a daemon you may use (rootless Docker: unix://$XDG_RUNTIME_DIR/docker.sock), ' +
        'or build without a Docker daemon: METAFLOW_PREBUILT_BUILD_SERVICE=oci.',
    });
  }
  return new UnreachableError(`The Docker daemon at ${dockerHost} cannot be reached: ${errorMessage(error)}.`, service, {
    cause: error,
    hint:
      'Start the Docker daemon (e.g. `sudo systemctl start docker`, or `dockerd` in the background), ' +
      'or point DOCKER_HOST at a running one, or pick another build service with METAFLOW_PREBUILT_BUILD_SERVICE (oci needs no Docker daemon).',
  });
}

/**
 * The Docker daemon a build service talks to: prebuilt's own Engine API client (engine-client.ts)
 * over DOCKER_HOST, one per daemon, its keep-alive connections closed by {@link close}.
 */
export class DockerDaemon {
  /** The Engine API client of this daemon. */
  readonly client: EngineClient;

  /** Registry credentials sent to this daemon cross the network unencrypted (see credentialsInClear). */
  readonly credentialsInClear: boolean;
  #clearNoted = false;

  constructor(
    private readonly settings: Pick<DockerSettings, 'dockerHost' | 'apiVersion' | 'timeouts'>,
    env: Record<string, string | undefined>,
    inClear: (connection: EngineConnection) => boolean = credentialsInClear,
  ) {
    const connection = dockerConnection(settings.dockerHost, env);
    this.credentialsInClear = inClear(connection);
    this.client = new EngineClient(settings.apiVersion ? { ...connection, version: settings.apiVersion } : connection, {
      shownHost: shownDockerHost(settings.dockerHost),
      limits: settings.timeouts,
    });
  }

  /**
   * Called where a request carries registry credentials: when they cross the network unencrypted,
   * says so through `note` (the build request's), once per daemon, that is once per run.
   */
  sendsCredentials(note: ((message: string) => void) | undefined): void {
    if (!this.credentialsInClear || this.#clearNoted || note === undefined) return;
    this.#clearNoted = true;
    note(credentialsInClearNote(this.settings.dockerHost));
  }

  /**
   * The daemon answers (and speaks the configured API version), and its image store lets `builder`
   * (when given) build; else an UnreachableError or ConfigError saying how to fix it.
   */
  async check(signal: AbortSignal | undefined, builder?: DockerBuilder): Promise<void> {
    const version = await this.#version(signal);
    if (builder) await checkBuilder(this.client, builder, version.Version, shownDockerHost(this.settings.dockerHost), signal);
  }

  async #version(signal: AbortSignal | undefined): Promise<EngineVersion> {
    const { apiVersion } = this.settings;
    const dockerHost = shownDockerHost(this.settings.dockerHost);
    try {
      const version = await engineVersion(this.client, signal);
      debug('Docker daemon %s (API %s)', version.Version, version.ApiVersion);
      return version;
    } catch (error) {
      if (signal?.aborted) throw cancelledError(signal, 'The Docker build');
      if (NetworkError.isInstance(error)) throw error; // it took the connection and stalled: exit 1, not unreachable
      if ((error as EngineRequestError).statusCode === 400 && apiVersion) {
        throw new ConfigError(`The Docker daemon at ${dockerHost} refused API version ${apiVersion.slice(1)}: ${daemonMessage(error)}`, {
          setting: DOCKER_ENV.apiVersion,
          cause: error,
          hint: `Unset ${DOCKER_ENV.apiVersion}${orOption('apiVersion')} to speak the daemon's own version, or set one it supports.`,
        });
      }
      throw daemonUnreachableError(dockerHost, error);
    }
  }

  /** Removes a local image; one that is not there is fine, other failures are only logged. `signal` bounds a clean-up after a cancel. */
  async removeImage(tag: string, why: string, signal?: AbortSignal): Promise<void> {
    try {
      await this.client.json({ method: 'DELETE', path: `/images/${imagePath(tag)}`, signal });
      debug('removed local image %s (%s)', tag, why);
    } catch (error) {
      const status = (error as EngineRequestError).statusCode;
      if (status !== 404) debug('could not remove local image %s (%s): %s', tag, why, errorMessage(error));
    }
  }

  /** Closes the daemon connections' keep-alive agent. */
  close(): void {
    this.client.close();
  }
}

/** An image reference as a path segment of the Engine API (`/images/{name}/…`): its `/`, `:` and `@` stay, anything else is escaped. */
export function imagePath(reference: string): string {
  return encodeURIComponent(reference).replace(/%2F/g, '/').replace(/%3A/g, ':').replace(/%40/g, '@');
}
