import { DEFAULT_LOG_TAIL_LINES, loadBooleanSetting, settingsReader, type BuildServiceOptions } from '@prebuilt/core/backend';

export interface BuildxBuildServiceOptions extends BuildServiceOptions {
  /** The docker command (a name on PATH or a path). Env `METAFLOW_PREBUILT_BUILDX_DOCKER`; default `docker`. */
  docker?: string;
  /** The buildx builder instance (`--builder`). Env `METAFLOW_PREBUILT_BUILDX_BUILDER`; default: the current builder. */
  builder?: string;
  /**
   * Network mode of RUN instructions (`--network`). Env `METAFLOW_PREBUILT_BUILDX_NETWORK`; default `host`.
   * `default` leaves the flag out (a remote builder may not grant the `network.host` entitlement).
   */
  network?: string;
  /** Seconds a build may take before it is stopped. Env `METAFLOW_PREBUILT_BUILDX_TIMEOUT`; default 3600. */
  timeoutSeconds?: number;
  /** Extra arguments for `docker buildx build`, e.g. `['--cache-to', 'type=registry,ref=…']`. */
  extraArgs?: string[];
  /**
   * Keep the image in the Docker daemon after the push, or after a build whose push failed (the
   * `docker` driver stores it there under its tag). Env `METAFLOW_PREBUILT_BUILDX_KEEP_IMAGES`;
   * default false: the tag is removed.
   */
  keepImages?: boolean;
  /** Seconds between SIGINT and SIGKILL when a build is stopped. Default 10. */
  killGraceSeconds?: number;
  /** Environment to read settings from and to run docker with. Default `process.env`. */
  env?: Record<string, string | undefined>;
}

export const BUILDX_ENV = {
  docker: 'METAFLOW_PREBUILT_BUILDX_DOCKER',
  builder: 'METAFLOW_PREBUILT_BUILDX_BUILDER',
  network: 'METAFLOW_PREBUILT_BUILDX_NETWORK',
  timeout: 'METAFLOW_PREBUILT_BUILDX_TIMEOUT',
  keepImages: 'METAFLOW_PREBUILT_BUILDX_KEEP_IMAGES',
} as const;

export interface BuildxSettings {
  docker: string;
  builder: string | undefined;
  network: string;
  timeoutSeconds: number;
  extraArgs: string[];
  keepImages: boolean;
  killGraceMs: number;
  logTailLines: number;
}

export function resolveBuildxSettings(options: BuildxBuildServiceOptions, env: Record<string, string | undefined>): BuildxSettings {
  const read = settingsReader(env);
  return {
    docker: read.optional(options.docker, BUILDX_ENV.docker, 'docker', 'docker command') ?? 'docker',
    builder: read.optional(options.builder, BUILDX_ENV.builder, 'builder', 'buildx builder'),
    network: read.optional(options.network, BUILDX_ENV.network, 'network', 'buildx network') ?? 'host',
    timeoutSeconds: read.seconds(options.timeoutSeconds, BUILDX_ENV.timeout, 'timeoutSeconds', 3600),
    extraArgs: [...(options.extraArgs ?? [])],
    keepImages: loadBooleanSetting({ value: options.keepImages, envVar: BUILDX_ENV.keepImages, option: 'keepImages', description: 'keeping built images in the Docker daemon', default: false, env }),
    killGraceMs: (options.killGraceSeconds ?? 10) * 1000,
    logTailLines: options.logTailLines ?? DEFAULT_LOG_TAIL_LINES,
  };
}
