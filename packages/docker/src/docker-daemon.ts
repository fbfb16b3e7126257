import type Docker from 'dockerode';
import type { DockerOptions } from 'dockerode';
import { ConfigError, UnreachableError, cancelledError, createLogger, errorMessage } from '@prebuilt/core/backend';
import { dockerConnection } from './docker-host.js';
import { engineVersion } from './engine-version.js';
import { DOCKER_ENV, type DockerSettings } from './docker-settings.js';

const debug = createLogger('docker');

interface DockerApiError extends Error {
  statusCode?: number;
  json?: unknown;
  code?: string;
}

/** True when a dockerode error has no HTTP status: the connection to the daemon broke, it did not answer. */
export function isConnectionError(error: unknown): boolean {
  return (error as DockerApiError).statusCode === undefined;
}

/** The daemon's own message of a failed request, without dockerode's `(HTTP code …)` prefix. */
export function daemonMessage(error: unknown): string {
  const json = (error as DockerApiError).json;
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
 * The Docker daemon a build service talks to (dockerode over DOCKER_HOST). dockerode (and what it
 * loads: ssh2, gRPC, protobuf) is imported on the first build, pull or push: checking the daemon,
 * all a deploy whose images are present does, asks for its version over HTTP without it.
 */
export class DockerDaemon {
  readonly #connection: DockerOptions;
  #client: Promise<Docker> | undefined;
  #docker: Docker | undefined;

  constructor(
    private readonly settings: Pick<DockerSettings, 'dockerHost' | 'apiVersion'>,
    env: Record<string, string | undefined>,
  ) {
    const connection = dockerConnection(settings.dockerHost, env);
    this.#connection = settings.apiVersion ? { ...connection, version: settings.apiVersion } : connection;
  }

  /** The dockerode client, created on first use. */
  client(): Promise<Docker> {
    this.#client ??= import('dockerode').then(({ default: DockerClient }) => (this.#docker = new DockerClient(this.#connection)));
    return this.#client;
  }

  /** The daemon's version (`GET /version`): plain HTTP for a socket or TCP daemon, dockerode for ssh://. */
  async #version(signal: AbortSignal | undefined): Promise<{ Version?: string; ApiVersion?: string }> {
    if (this.#connection.protocol === 'ssh') {
      const docker = await this.client();
      return (await (docker.version as (options: object) => Promise<unknown>).call(docker, signal ? { abortSignal: signal } : {})) as { Version?: string; ApiVersion?: string };
    }
    return engineVersion(this.#connection, signal);
  }

  /** The daemon answers (and speaks the configured API version); else an UnreachableError or ConfigError saying how to fix it. */
  async check(signal: AbortSignal | undefined): Promise<void> {
    const { dockerHost, apiVersion } = this.settings;
    try {
      const version = await this.#version(signal);
      debug('Docker daemon %s (API %s)', version.Version, version.ApiVersion);
    } catch (error) {
      if (signal?.aborted) throw cancelledError(signal, 'The Docker build');
      if ((error as DockerApiError).statusCode === 400 && apiVersion) {
        throw new ConfigError(`The Docker daemon at ${dockerHost} refused API version ${apiVersion.slice(1)}: ${daemonMessage(error)}`, {
          setting: DOCKER_ENV.apiVersion,
          cause: error,
          hint: `Unset ${DOCKER_ENV.apiVersion} (and the option 'apiVersion') to speak the daemon's own version, or set one it supports.`,
        });
      }
      // The same kind of fault as an unreachable registry: UnreachableError (code unreachable, exit 2).
      throw new UnreachableError(`The Docker daemon at ${dockerHost} cannot be reached: ${errorMessage(error)}.`, { service: `Docker daemon ${dockerHost}` }, {
        cause: error,
        hint:
          'Start the Docker daemon (e.g. `sudo systemctl start docker`, or `dockerd` in the background), ' +
          'or point DOCKER_HOST at a running one, or pick another build service with METAFLOW_PREBUILT_BUILD_SERVICE.',
      });
    }
  }

  /** Removes a local image; one that is not there is fine, other failures are only logged. */
  async removeImage(tag: string, why: string): Promise<void> {
    try {
      await (await this.client()).getImage(tag).remove({});
      debug('removed local image %s (%s)', tag, why);
    } catch (error) {
      const status = (error as DockerApiError).statusCode;
      if (status !== 404) debug('could not remove local image %s (%s): %s', tag, why, errorMessage(error));
    }
  }

  /** Closes the daemon connections' keep-alive agent (when dockerode was used). */
  close(): void {
    const agent = (this.#docker?.modem as { agent?: { destroy?: () => void } } | undefined)?.agent;
    agent?.destroy?.();
  }
}
