import { ConfigError, DEFAULT_LOG_TAIL_LINES, loadBooleanSetting, networkTimeouts, orOption, settingsReader, type BuildServiceOptions, type NetworkTimeouts } from '@prebuilt/core/backend';
import { DEFAULT_DOCKER_HOST } from './docker-host.js';

export type DockerBuilder = 'legacy' | 'buildkit';

export interface DockerBuildServiceOptions extends BuildServiceOptions {
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
  /** Push attempts when a push fails transiently (5xx, 429, dropped connection). Default 3. */
  pushAttempts?: number;
  /**
   * Seconds the daemon may send nothing (connect, upload, answer headers, a JSON answer; pull and
   * push progress: ten times this) before the request fails. Env `METAFLOW_PREBUILT_NETWORK_IDLE_TIMEOUT`; default 60.
   */
  idleTimeoutSeconds?: number;
  /** Seconds one JSON call of the Engine API may take at most. Env `METAFLOW_PREBUILT_NETWORK_DEADLINE`; default 1800. */
  deadlineSeconds?: number;
}

export const DOCKER_ENV = {
  host: 'DOCKER_HOST',
  network: 'METAFLOW_PREBUILT_DOCKER_NETWORK',
  builder: 'METAFLOW_PREBUILT_DOCKER_BUILDER',
  keepImages: 'METAFLOW_PREBUILT_DOCKER_KEEP_IMAGES',
  apiVersion: 'METAFLOW_PREBUILT_DOCKER_API_VERSION',
} as const;

export interface DockerSettings {
  dockerHost: string;
  network: string;
  builder: DockerBuilder;
  keepImages: boolean;
  /** `v1.41`, or undefined for the daemon's own. */
  apiVersion: string | undefined;
  labels: Record<string, string>;
  logTailLines: number;
  pushAttempts: number;
  /** The Engine API client's time limits (engine-clock.ts). */
  timeouts: NetworkTimeouts;
}

export function resolveDockerSettings(options: DockerBuildServiceOptions, env: Record<string, string | undefined>): DockerSettings {
  const read = settingsReader(env);
  const dockerHost = read.optional(options.dockerHost, DOCKER_ENV.host, 'dockerHost', 'Docker host') ?? DEFAULT_DOCKER_HOST;
  const network = read.optional(options.network, DOCKER_ENV.network, 'network', 'Docker build network') ?? 'host';
  const builder = read.optional(options.builder, DOCKER_ENV.builder, 'builder', 'Docker builder') ?? 'legacy';
  if (builder !== 'legacy' && builder !== 'buildkit') {
    throw new ConfigError(`The Docker builder '${builder}' is unknown.`, {
      setting: DOCKER_ENV.builder,
      hint: `Use 'legacy' or 'buildkit' in ${DOCKER_ENV.builder}${orOption('builder')}.`,
    });
  }
  const keepImages = loadBooleanSetting({ value: options.keepImages, envVar: DOCKER_ENV.keepImages, option: 'keepImages', description: 'keeping built images in the daemon', default: false, env });
  const apiVersion = parseApiVersion(read.optional(options.apiVersion, DOCKER_ENV.apiVersion, 'apiVersion', 'Docker API version'));
  const logTailLines = options.logTailLines ?? DEFAULT_LOG_TAIL_LINES;
  const pushAttempts = Math.max(1, Math.floor(options.pushAttempts ?? 3));
  const timeouts = networkTimeouts({ env, idleTimeoutSeconds: options.idleTimeoutSeconds, deadlineSeconds: options.deadlineSeconds });
  return { dockerHost, network, builder, keepImages, apiVersion, labels: { ...options.labels }, logTailLines, pushAttempts, timeouts };
}

function parseApiVersion(apiVersion: string | undefined): string | undefined {
  if (apiVersion === undefined) return undefined;
  const match = /^v?(\d+\.\d+)$/.exec(apiVersion);
  if (!match) {
    throw new ConfigError(`The Docker API version '${apiVersion}' is not of the form 1.41.`, {
      setting: DOCKER_ENV.apiVersion,
      hint: `Set ${DOCKER_ENV.apiVersion}${orOption('apiVersion')} to e.g. 1.41, or leave it unset to speak the daemon's own version.`,
    });
  }
  return `v${match[1]}`;
}
