import Docker from 'dockerode';
import type { Readable } from 'node:stream';
import {
  CancelledError,
  ConfigError,
  EnvironmentError,
  checkPushCredentials,
  createLogger,
  errorMessage,
  loadOptionalSetting,
  type BuildRequest,
  type BuildResult,
  type BuildService,
  type RegistryCredentials,
} from '@prebuilt/core/backend';
import { createBuildContext } from './build-context.js';
import { DEFAULT_DOCKER_HOST, dockerConnection } from './docker-host.js';
import { baseImageReferences, firstBaseImage, parseTaggedReference, pullParts, registryHost } from './image-reference.js';
import { ProgressTracker, readEvents } from './progress.js';

const debug = createLogger('docker');

export type DockerBuilder = 'legacy' | 'buildkit';

export interface DockerBuildServiceOptions {
  /** Docker daemon address (`unix:///…`, `tcp://…`, `ssh://…`). Env `DOCKER_HOST`; default `unix:///var/run/docker.sock`. */
  dockerHost?: string;
  /** Network mode of RUN instructions. Env `METAFLOW_PREBUILT_DOCKER_NETWORK`; default `host` (no bridge is ever created). */
  network?: string;
  /** The daemon's builder. Env `METAFLOW_PREBUILT_DOCKER_BUILDER`; default `legacy`. */
  builder?: DockerBuilder;
  /** Labels set on every image. */
  labels?: Record<string, string>;
  /** Keep the local image after a push (it is removed by default). Env `METAFLOW_PREBUILT_DOCKER_KEEP_IMAGES=1`. */
  keepImages?: boolean;
  /** Engine API version to speak, e.g. `1.41`. Env `METAFLOW_PREBUILT_DOCKER_API_VERSION`; default: the daemon's own. */
  apiVersion?: string;
  /** How many log lines a failed result carries. Default 30. */
  logTailLines?: number;
  /** Push attempts when a push fails transiently (5xx, 429, dropped connection). Default 3. */
  pushAttempts?: number;
  /** Environment to read settings from. Default `process.env`. */
  env?: Record<string, string | undefined>;
}

export const DOCKER_ENV = {
  host: 'DOCKER_HOST',
  network: 'METAFLOW_PREBUILT_DOCKER_NETWORK',
  builder: 'METAFLOW_PREBUILT_DOCKER_BUILDER',
  keepImages: 'METAFLOW_PREBUILT_DOCKER_KEEP_IMAGES',
  apiVersion: 'METAFLOW_PREBUILT_DOCKER_API_VERSION',
} as const;

interface ResolvedSettings {
  dockerHost: string;
  network: string;
  builder: DockerBuilder;
  keepImages: boolean;
  apiVersion: string | undefined;
  labels: Record<string, string>;
  logTailLines: number;
  pushAttempts: number;
}

function resolveSettings(options: DockerBuildServiceOptions): ResolvedSettings {
  const env = options.env ?? process.env;
  const dockerHost =
    loadOptionalSetting({ value: options.dockerHost, envVar: DOCKER_ENV.host, option: 'dockerHost', description: 'Docker host', env }) ??
    DEFAULT_DOCKER_HOST;
  const network =
    loadOptionalSetting({ value: options.network, envVar: DOCKER_ENV.network, option: 'network', description: 'Docker build network', env }) ??
    'host';
  const builder =
    loadOptionalSetting({ value: options.builder, envVar: DOCKER_ENV.builder, option: 'builder', description: 'Docker builder', env }) ??
    'legacy';
  if (builder !== 'legacy' && builder !== 'buildkit') {
    throw new ConfigError(`The Docker builder '${builder}' is unknown.`, {
      setting: DOCKER_ENV.builder,
      hint: `Use 'legacy' or 'buildkit' in ${DOCKER_ENV.builder} or the option 'builder'.`,
    });
  }
  const keepRaw = options.keepImages ?? env[DOCKER_ENV.keepImages];
  const keepImages = typeof keepRaw === 'boolean' ? keepRaw : parseFlag(keepRaw, DOCKER_ENV.keepImages);
  let apiVersion = loadOptionalSetting({
    value: options.apiVersion,
    envVar: DOCKER_ENV.apiVersion,
    option: 'apiVersion',
    description: 'Docker API version',
    env,
  });
  if (apiVersion !== undefined) {
    const match = /^v?(\d+\.\d+)$/.exec(apiVersion);
    if (!match) {
      throw new ConfigError(`The Docker API version '${apiVersion}' is not of the form 1.41.`, {
        setting: DOCKER_ENV.apiVersion,
        hint: `Set ${DOCKER_ENV.apiVersion} or the option 'apiVersion' to e.g. 1.41, or leave it unset to speak the daemon's own version.`,
      });
    }
    apiVersion = `v${match[1]}`;
  }
  const logTailLines = options.logTailLines ?? 30;
  const pushAttempts = Math.max(1, Math.floor(options.pushAttempts ?? 3));
  return { dockerHost, network, builder, keepImages, apiVersion, labels: { ...options.labels }, logTailLines, pushAttempts };
}

function parseFlag(raw: string | undefined, envVar: string): boolean {
  if (raw === undefined || raw === '') return false;
  if (/^(1|true|yes|on)$/i.test(raw)) return true;
  if (/^(0|false|no|off)$/i.test(raw)) return false;
  throw new ConfigError(`${envVar}='${raw}' is not a yes/no value.`, { setting: envVar, hint: `Set ${envVar} to 1 or 0.` });
}

interface DockerApiError extends Error {
  statusCode?: number;
  json?: unknown;
  code?: string;
}

/** The daemon's own message of a failed request, without dockerode's `(HTTP code …)` prefix. */
function daemonMessage(error: unknown): string {
  const json = (error as DockerApiError).json;
  if (typeof json === 'object' && json !== null && typeof (json as { message?: unknown }).message === 'string') {
    return (json as { message: string }).message.trim();
  }
  if (typeof json === 'string' && json.trim() !== '') return json.trim();
  return errorMessage(error).replace(/^\(HTTP code \d+\)\s*[\w ]*-\s*/, '').trim();
}

/** The X-Registry-Auth payload for a push, built from the credentials at the moment it is sent. */
function authConfig(credentials: RegistryCredentials | undefined): Record<string, string> | undefined {
  if (!credentials) return undefined;
  const serveraddress = credentials.registry === 'docker.io' ? 'https://index.docker.io/v1/' : credentials.registry;
  if (credentials.registryToken) return { registrytoken: credentials.registryToken.reveal() };
  if (credentials.identityToken) return { identitytoken: credentials.identityToken.reveal(), serveraddress };
  if (credentials.username !== undefined || credentials.password !== undefined) {
    return { username: credentials.username ?? '', password: credentials.password?.reveal() ?? '', serveraddress };
  }
  return undefined;
}

/** Removes every secret of the credentials from a text (a daemon should never echo one; this makes sure). */
function scrubber(credentials: RegistryCredentials | undefined): (text: string) => string {
  const secrets = [credentials?.password, credentials?.identityToken, credentials?.registryToken]
    .map((secret) => secret?.reveal())
    .filter((value): value is string => value !== undefined && value.length >= 4);
  if (secrets.length === 0) return (text) => text;
  return (text) => secrets.reduce((out, secret) => out.split(secret).join('<redacted>'), text);
}

/** Push failures worth another attempt: server errors, rate limits, dropped or timed-out connections. */
const TRANSIENT = /\b(5\d\d|429)\b|too many requests|service unavailable|internal server error|bad gateway|gateway time-?out|connection reset|broken pipe|\bEOF\b|i\/o timeout|timeout exceeded|connection refused/i;

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

const DENIED = /denied|unauthori[sz]ed|authentication required|no basic auth credentials|forbidden|\b401\b|\b403\b/i;

/**
 * A build service on the Docker Engine API: builds with the daemon's builder (host network by
 * default), pushes with the registry's credentials, and returns the pushed digest.
 */
export function createDockerBuildService(options: DockerBuildServiceOptions = {}): BuildService {
  const settings = resolveSettings(options);
  const env = options.env ?? process.env;
  const connection = dockerConnection(settings.dockerHost, env);
  const docker = new Docker(settings.apiVersion ? { ...connection, version: settings.apiVersion } : connection);
  debug('docker build service: host %s, network %s, builder %s', settings.dockerHost, settings.network, settings.builder);

  async function checkDaemon(signal: AbortSignal | undefined): Promise<void> {
    try {
      const version = (await (docker.version as (options: object) => Promise<unknown>).call(docker, signal ? { abortSignal: signal } : {})) as {
        Version?: string;
        ApiVersion?: string;
      };
      debug('Docker daemon %s (API %s)', version.Version, version.ApiVersion);
    } catch (error) {
      if (signal?.aborted) throw cancelled(signal);
      const status = (error as DockerApiError).statusCode;
      if (status === 400 && settings.apiVersion) {
        throw new ConfigError(`The Docker daemon at ${settings.dockerHost} refused API version ${settings.apiVersion.slice(1)}: ${daemonMessage(error)}`, {
          setting: DOCKER_ENV.apiVersion,
          cause: error,
          hint: `Unset ${DOCKER_ENV.apiVersion} (and the option 'apiVersion') to speak the daemon's own version, or set one it supports.`,
        });
      }
      throw new EnvironmentError(`The Docker daemon at ${settings.dockerHost} cannot be reached: ${errorMessage(error)}.`, {
        cause: error,
        hint:
          'Start the Docker daemon (e.g. `sudo systemctl start docker`, or `dockerd` in the background), ' +
          'or point DOCKER_HOST at a running one, or pick another build service with METAFLOW_PREBUILT_BUILD_SERVICE.',
      });
    }
  }

  async function removeImage(tag: string, why: string): Promise<void> {
    try {
      await docker.getImage(tag).remove({});
      debug('removed local image %s (%s)', tag, why);
    } catch (error) {
      const status = (error as DockerApiError).statusCode;
      if (status !== 404) debug('could not remove local image %s (%s): %s', tag, why, errorMessage(error));
    }
  }

  function cancelled(signal: AbortSignal): CancelledError {
    const reason = signal.reason as unknown;
    return new CancelledError('The Docker build was cancelled.', {
      cause: reason,
      ...(reason === 'SIGINT' || reason === 'SIGTERM' ? { signal: reason } : {}),
    });
  }

  async function buildAndPush(request: BuildRequest): Promise<BuildResult> {
    const { signal } = request;
    if (signal?.aborted) throw cancelled(signal);
    const target = parseTaggedReference(request.imageTag);
    checkPushCredentials(request, target.registry);
    const scrub = scrubber(request.pushCredentials);
    const tracker = new ProgressTracker(request.log ? (line) => request.log!(scrub(line)) : undefined, settings.logTailLines);
    const failure = (reason: string): BuildResult => {
      tracker.flush();
      return { ok: false, reason: scrub(reason), logTail: tracker.tail.map(scrub) };
    };

    await checkDaemon(signal);
    const context = await createBuildContext(request.contextDir, request.dockerfile);
    if (signal?.aborted) throw cancelled(signal);

    // ---- build
    request.onPhase?.('building');
    debug('building %s (%d bytes of context)', request.imageTag, context.tar.length);
    const buildOptions: Record<string, unknown> = {
      t: request.imageTag,
      dockerfile: context.dockerfileName,
      networkmode: settings.network,
      platform: request.platform,
      rm: true,
      forcerm: true,
    };
    if (Object.keys(settings.labels).length > 0) buildOptions['labels'] = settings.labels;
    if (settings.builder === 'buildkit') buildOptions['version'] = '2';
    if (signal) buildOptions['abortSignal'] = signal;
    const pullAuth = authConfig(request.pushCredentials);
    if (pullAuth && 'username' in pullAuth && settings.builder === 'legacy') {
      // Lets the builder pull a base image that lives in the same (private) registry; the legacy
      // builder takes credentials per registry host, so no other registry sees them.
      buildOptions['registryconfig'] = {
        [request.pushCredentials!.registry]: { username: pullAuth['username'], password: pullAuth['password'] },
      };
    }
    if (pullAuth && settings.builder === 'buildkit') {
      // BuildKit asks for registry credentials through a client session that dockerode cannot serve
      // against this daemon; it prefers local images, so base images in the push registry are
      // pulled first, with the push credentials, through the Engine API.
      const pulled = await prePullBaseImages(request, tracker, target.registry);
      if (pulled !== undefined) return failure(pulled);
    }

    let buildStream: Readable;
    try {
      buildStream = (await docker.buildImage(context.tar as unknown as NodeJS.ReadableStream, buildOptions)) as Readable;
    } catch (error) {
      if (signal?.aborted) return cancelBuild(signal, request.imageTag);
      if ((error as DockerApiError).statusCode === undefined) {
        throw new EnvironmentError(`The Docker daemon at ${settings.dockerHost} dropped the build of ${request.imageTag}: ${errorMessage(error)}.`, {
          cause: error,
          hint: 'Check that the Docker daemon is running (`docker version`) and retry.',
        });
      }
      tracker.fail(daemonMessage(error));
      return failure(`The Docker build of ${request.imageTag} was rejected: ${daemonMessage(error)}`);
    }
    try {
      await readEvents(buildStream, (event) => tracker.handle(event));
    } catch (error) {
      if (signal?.aborted) return cancelBuild(signal, request.imageTag);
      await removeImage(request.imageTag, 'broken build stream');
      tracker.fail(errorMessage(error));
      return failure(`The connection to the Docker daemon broke during the build of ${request.imageTag}: ${errorMessage(error)}`);
    }
    if (signal?.aborted) return cancelBuild(signal, request.imageTag);
    tracker.flush();
    if (tracker.error !== undefined) {
      await removeImage(request.imageTag, 'failed build');
      if (tracker.errorInFrom) {
        const base = firstBaseImage(request.dockerfile) ?? 'of the Dockerfile';
        return failure(`The base image ${base} is missing or cannot be pulled: ${tracker.error}`);
      }
      return failure(`The Docker build of ${request.imageTag} failed: ${tracker.error}`);
    }

    // ---- push
    request.onPhase?.('pushing');
    debug('pushing %s (credentials: %s)', request.imageTag, request.pushCredentials?.source ?? 'none');
    const pushOptions: Record<string, unknown> = { tag: target.tag };
    if (signal) pushOptions['abortSignal'] = signal;
    const credentialsText = request.pushCredentials ? `the credentials from ${request.pushCredentials.source}` : 'no credentials';
    const auth = authConfig(request.pushCredentials);
    if (auth) pushOptions['authconfig'] = auth;
    // The daemon retries a failed layer upload itself, not a failed manifest PUT or a dropped
    // connection: a push whose failure looks transient (5xx, 429, reset, timeout) is run again,
    // a bounded number of times; layers already in the registry are skipped by the daemon.
    let pushTracker: ProgressTracker;
    for (let attempt = 1; ; attempt++) {
      pushTracker = new ProgressTracker((line) => {
        tracker.tail.push(line);
        if (tracker.tail.length > settings.logTailLines) tracker.tail.shift();
        request.log?.(scrub(line));
      }, settings.logTailLines);
      let apiError: unknown;
      try {
        const pushStream = (await docker.getImage(target.repository).push(pushOptions)) as Readable;
        await readEvents(pushStream, (event) => pushTracker.handle(event));
      } catch (error) {
        apiError = error;
      }
      if (signal?.aborted) return cancelBuild(signal, request.imageTag);
      const problem =
        apiError === undefined ? pushTracker.error : (apiError as DockerApiError).statusCode === undefined ? errorMessage(apiError) : daemonMessage(apiError);
      if (problem !== undefined && attempt < settings.pushAttempts && TRANSIENT.test(problem) && !DENIED.test(problem)) {
        const delayMs = 1000 * 2 ** (attempt - 1);
        const note = `push of ${request.imageTag} failed (${problem}); retrying in ${delayMs / 1000}s (attempt ${attempt + 1} of ${settings.pushAttempts})`;
        debug('%s', scrub(note));
        request.log?.(scrub(note));
        try {
          await sleep(delayMs, signal);
        } catch {
          return cancelBuild(signal!, request.imageTag);
        }
        continue;
      }
      if (apiError !== undefined) {
        if (!settings.keepImages) await removeImage(request.imageTag, 'failed push');
        if ((apiError as DockerApiError).statusCode === undefined) {
          pushTracker.fail(errorMessage(apiError));
          return failure(`The connection to the Docker daemon broke while pushing ${request.imageTag}: ${errorMessage(apiError)}`);
        }
        pushTracker.fail(daemonMessage(apiError));
        return failure(`The push of ${request.imageTag} to ${target.registry} was rejected: ${daemonMessage(apiError)} (pushed with ${credentialsText})`);
      }
      break;
    }
    if (!settings.keepImages) await removeImage(request.imageTag, 'pushed');
    if (pushTracker.error !== undefined) {
      if (DENIED.test(pushTracker.error)) {
        return failure(
          `The registry ${target.registry} denied the push of ${request.imageTag} with ${credentialsText}: ${pushTracker.error}. ` +
            (request.pushCredentials
              ? `Check those credentials and that they may push to this repository.`
              : `Log in to it (\`docker login ${target.registry}\`) or configure the registry backend's credentials.`),
        );
      }
      return failure(`The push of ${request.imageTag} to ${target.registry} failed: ${pushTracker.error} (pushed with ${credentialsText})`);
    }
    if (pushTracker.digest === undefined) {
      return failure(`The push of ${request.imageTag} to ${target.registry} finished without reporting a digest.`);
    }
    debug('pushed %s@%s', request.imageTag, pushTracker.digest);
    return { ok: true, digest: pushTracker.digest };
  }

  /** Pulls the base images that live in the push registry with the push credentials. A failure reason, or undefined. */
  async function prePullBaseImages(request: BuildRequest, tracker: ProgressTracker, pushRegistry: string): Promise<string | undefined> {
    const { signal } = request;
    for (const image of baseImageReferences(request.dockerfile)) {
      const { fromImage, tag } = pullParts(image);
      if (registryHost(fromImage) !== pushRegistry) continue;
      debug('pulling base image %s with %s', image, request.pushCredentials?.source);
      const pullTracker = new ProgressTracker((line) => tracker.handle({ stream: `${line}\n` }), settings.logTailLines);
      const pullOptions: Record<string, unknown> = { fromImage, tag, platform: request.platform };
      if (signal) pullOptions['abortSignal'] = signal;
      try {
        const stream = (await docker.createImage(authConfig(request.pushCredentials) as Docker.AuthConfig, pullOptions)) as Readable;
        await readEvents(stream, (event) => pullTracker.handle(event));
      } catch (error) {
        if (signal?.aborted) throw cancelled(signal);
        pullTracker.fail((error as DockerApiError).statusCode === undefined ? errorMessage(error) : daemonMessage(error));
      }
      if (pullTracker.error !== undefined) {
        return `The base image ${image} is missing or cannot be pulled with the credentials from ${request.pushCredentials?.source}: ${pullTracker.error}`;
      }
    }
    return undefined;
  }

  async function cancelBuild(signal: AbortSignal, tag: string): Promise<never> {
    // The aborted request makes the daemon stop the build; a tag that made it anyway is removed.
    await removeImage(tag, 'cancelled');
    throw cancelled(signal);
  }

  return {
    name: 'docker',
    buildAndPush,
    check: (options = {}) => checkDaemon(options.signal),
    async close() {
      const agent = (docker.modem as { agent?: { destroy?: () => void } }).agent;
      agent?.destroy?.();
    },
  };
}
