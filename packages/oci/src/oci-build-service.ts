import { constants as bufferConstants } from 'node:buffer';
import { createHash } from 'node:crypto';
import {
  CACHE_DIR_SETTING,
  CancelledError,
  ConfigError,
  createLogger,
  createRunTempDirIn,
  loadBooleanSetting,
  loadOptionalSetting,
  ManifestCache,
  manifestCacheDir,
  mapPool,
  normalizeDockerConfigKey,
  parseImageRef,
  PrebuiltError,
  RegistryClient,
  type BlobFile,
  type BuildRequest,
  type BuildResult,
  type BuildService,
  type ImageLayout,
  type ImageRef,
  type OciDescriptor,
  type RegistryClientOptions,
  type RetryPolicy,
  type UploadBlobResult,
  sha256Digest,
  sourceDateEpoch,
  sweepStaleRunTempDirs,
} from '@prebuilt/core/backend';
import { rm } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import {
  BuildInputProblem,
  dockerfileInstructions,
  fetchBase,
  fromRef,
  imageConfig,
  imageManifest,
  ociFormatOf,
  planImage,
  type BaseImage,
  type ImagePlan,
  type PlannedLayer,
} from './image-assembly.js';
import { isLazyCompression, LAYER_COMPRESSIONS, LAYER_FORMAT_ID, OCI_LAYER_MEDIA_TYPE, type LayerCompression, type LazyCompression } from './layer-codec.js';
import { LayerCache, defaultLayerCacheDir, defaultWorkDir } from './layer-cache.js';
import { LAYERING_POLICIES, type LayeringPolicy } from './layering.js';
import { layerDiffId, writeLayer } from './layer.js';
import { PREFETCH_ENV, envPrefetch, prefetchSetting, type EstargzPrefetch } from './estargz-prefetch.js';
import { prefetchLayout } from './prefetch-layout.js';
import { RUNNERS_ENV, ZSTD_LAYER_MEDIA_TYPES, checkBaseForRunners, compressionForRunners, erofsMediaType, parseRunners, zstdUnpullableBy } from './runners.js';
import { erofsLayout } from './erofs-layout.js';
import { erofsFormatId, findMkfsErofs, type MkfsErofs } from './erofs.js';
import { checkConvertibleBase, convertLayerToEstargz, convertedBaseKey, isEstargzLayer } from './estargz-base.js';

const log = createLogger('oci');

/** Environment variables the oci build service reads. */
export const OCI_ENV = {
  /** Blobs larger than this many bytes are uploaded in chunks of this size. */
  chunkSize: 'METAFLOW_PREBUILT_OCI_CHUNK_SIZE',
  /** Comma-separated registries (host:port) reached over plain HTTP besides loopback ones. */
  insecureRegistries: 'METAFLOW_PREBUILT_OCI_INSECURE_REGISTRIES',
  /** Comma-separated repositories of the target registry to offer as cross-repository mount sources. */
  mountFrom: 'METAFLOW_PREBUILT_OCI_MOUNT_FROM',
  /** `gzip`, `zstd`, `estargz`, `zstd:chunked` or `erofs`: how the new layers are compressed (default zstd when every runner pulls it, else gzip). */
  layerCompression: 'METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION',
  /** The runtimes that pull the images, `containerd@1.6,docker@20.10`: picks the default compression. */
  runners: RUNNERS_ENV,
  /** `grouped` (default), `per-package` or `single`: how the env prefix is cut into layers. */
  layers: 'METAFLOW_PREBUILT_OCI_LAYERS',
  /** eStargz and zstd:chunked layers only: `static` (default), `off`, or a recorded profile file: which files go first, for the snapshotter's prefetch. */
  prefetch: PREFETCH_ENV,
  /** eStargz and zstd:chunked layers only: `1` re-layers the base image in the same format too (converted once per base layer, cached, pushed to the target repository). */
  estargzBase: 'METAFLOW_PREBUILT_OCI_ESTARGZ_BASE',
} as const;

export const DEFAULT_CHUNK_SIZE = 8 * 1024 * 1024;
/** The largest upload chunk: the largest buffer Node holds (4 GiB in Node 20 on 64-bit). */
const MAX_CHUNK_SIZE = bufferConstants.MAX_LENGTH;

/** What one push cost, for measuring and logs. */
export interface PushSummary {
  imageTag: string;
  digest: string;
  /** Request body bytes sent to the registry (blobs, config, manifest). */
  bytesSent: number;
  layers: { name: string; digest: string; size: number; status: UploadBlobResult['status'] }[];
  baseLayers: { digest: string; status: UploadBlobResult['status'] }[];
}

export interface OciBuildServiceOptions {
  /** Environment to read settings from. Default `process.env`. */
  env?: Record<string, string | undefined>;
  /** Blobs larger than this go up in PATCH chunks of this size (bytes). Env METAFLOW_PREBUILT_OCI_CHUNK_SIZE; default 8 MiB. */
  chunkSize?: number;
  /** Registries reached over plain HTTP (loopback ones always are). Env METAFLOW_PREBUILT_OCI_INSECURE_REGISTRIES. */
  insecureRegistries?: string[];
  /** Repositories of the target registry that may hold blobs already (mount sources), besides the base image's. Env METAFLOW_PREBUILT_OCI_MOUNT_FROM. */
  mountFrom?: string[];
  /** Seconds since 1970 for layer mtimes and `created` (default: SOURCE_DATE_EPOCH, else 0). */
  sourceDateEpoch?: number;
  /** Read the user's Docker config for credentials of registries the push credentials do not cover (the base image's). Default true. */
  dockerConfig?: boolean;
  /** Retries of registry requests. */
  retry?: Partial<RetryPolicy>;
  /** Time one registry request may take, ms. Default 120 s. */
  timeoutMs?: number;
  /**
   * Where to remember what each layer compresses to (by diff_id), so a rebuild can find a layer in
   * the registry without compressing it again; `false` keeps it in memory only. Default
   * `<prebuilt cache>/oci-layers` (METAFLOW_PREBUILT_CACHE_DIR, else ~/.cache/prebuilt).
   */
  layerCacheDir?: string | false;
  /**
   * Where a build spools its big files — base layers copied or converted (a CUDA base's layer is
   * 3 GB), new layers before their push — each build in a directory of its own, removed after it
   * (those of a killed run at the next start of the service). Default `<prebuilt cache>/oci-work`
   * (METAFLOW_PREBUILT_CACHE_DIR, else ~/.cache/prebuilt): on disk, not TMPDIR, which is often a
   * tmpfs (RAM).
   */
  workDir?: string;
  /**
   * The container runtimes of every node that runs the images, each with its oldest version, e.g.
   * `containerd@1.6,docker@20.10`. When every one pulls zstd (containerd ≥ 1.5, Docker Engine ≥
   * 23.0) the layers are zstd by default; asking for zstd while one cannot is a ConfigError.
   * Unset: gzip by default. Env METAFLOW_PREBUILT_OCI_RUNNERS.
   */
  runners?: string;
  /**
   * How the new layers are compressed: `gzip` (the default unless `runners` all pull zstd; every
   * runtime pulls it) or `zstd` (an OCI image with `tar+zstd` layers; needs Docker Engine ≥ 23.0 or
   * containerd ≥ 1.5 on every node) or
   * `estargz` (gzip layers with a table of contents, lazily pulled by containerd with the stargz
   * snapshotter, pulled as plain gzip by every other runtime) or `zstd:chunked` (the same for zstd:
   * lazily pulled by the stargz snapshotter, pulled as plain zstd by containerd ≥ 1.5 and Docker
   * Engine ≥ 23.0) or `erofs` (each layer an EROFS image made by mkfs.erofs ≥ 1.8, mounted as it is
   * by containerd ≥ 2.1's erofs snapshotter; needs `runners`, all containerd ≥ 2.1, for its media
   * type). Env METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION.
   */
  layerCompression?: LayerCompression;
  /**
   * How the env prefix is cut into layers: `grouped` (default: big packages alone, small ones in up
   * to 8 groups — at most 18 package layers), `per-package` (one layer per package) or `single`
   * (one layer). Env METAFLOW_PREBUILT_OCI_LAYERS.
   */
  layers?: LayeringPolicy;
  /**
   * eStargz and zstd:chunked layers only: which files go first in each layer, before the `.prefetch.landmark` the
   * stargz snapshotter prefetches up to — `static` (default: the interpreter, packages' `__init__`
   * files and every shared object), `off` (no reordering, no landmark), or the path of a profile
   * recorded by running the task once (one image path per line). Env METAFLOW_PREBUILT_OCI_PREFETCH.
   */
  prefetch?: string;
  /**
   * eStargz and zstd:chunked layers only: re-layer the base image in that format too, so that an empty node pulls the
   * whole image lazily (containerd fetches every layer after a plain gzip one whole). Each base
   * layer is converted once (remembered in the layer cache by its digest) and pushed to the target
   * repository; the image then no longer shares the base's layers with other images on the node.
   * Default false. Env METAFLOW_PREBUILT_OCI_ESTARGZ_BASE (`1`/`true`, `0`/`false`).
   */
  estargzBase?: boolean;
  /** Layers compressed at once (each on the libuv thread pool). Default: the number of cores. */
  parallelLayers?: number;
  /** Receives what each successful push cost. */
  onPushed?: (summary: PushSummary) => void;
}

function list(value: string[] | undefined, envVar: string, option: string, env: Record<string, string | undefined>): string[] {
  if (value) return value;
  const raw = loadOptionalSetting({ value: undefined, envVar, option, description: option, env });
  return raw ? raw.split(',').map((s) => s.trim()).filter(Boolean) : [];
}

function epochSetting(value: number | undefined, env: Record<string, string | undefined>): number {
  if (value !== undefined) {
    if (!Number.isInteger(value) || value < 0) throw new ConfigError(`The oci option sourceDateEpoch is ${value}, not a whole number of seconds ≥ 0.`);
    return value;
  }
  return sourceDateEpoch(env);
}

/** Resolved settings of the service. */
export interface OciSettings {
  chunkSize: number;
  insecureRegistries: string[];
  mountFrom: string[];
  sourceDateEpoch: number;
  layerCompression: LayerCompression;
  /** The media type of the new layers; undefined for gzip, whose follows the base's manifest format (Docker v2 or OCI). */
  layerMediaType: string | undefined;
  layers: LayeringPolicy;
  /** The prefetch order of eStargz and zstd:chunked layers (`off` for the other compressions). */
  prefetch: EstargzPrefetch;
  /** Whether the base image's layers are re-layered as eStargz or zstd:chunked (the new layers' format; those two only). */
  estargzBase: boolean;
  /** The runners that cannot pull zstd layers (`docker@20.10`): a present image with zstd layers is rebuilt for them. */
  zstdUnpullableBy: string[];
}

type ChoiceSpec<T extends string> = { envVar: string; option: string; description: string; choices: readonly T[] };

/** A setting with a fixed set of values (case and spaces ignored): the option, else the env var, else the default (the first choice). */
function choiceSetting<T extends string>(value: string | undefined, env: Record<string, string | undefined>, spec: ChoiceSpec<T>): T {
  return optionalChoice(value, env, spec) ?? spec.choices[0]!;
}

/** As choiceSetting, undefined when neither the option nor the env var is set. */
function optionalChoice<T extends string>(value: string | undefined, env: Record<string, string | undefined>, spec: ChoiceSpec<T>): T | undefined {
  const raw = value ?? loadOptionalSetting({ value: undefined, envVar: spec.envVar, option: spec.option, description: spec.description, env });
  if (raw === undefined) return undefined;
  const name = raw.trim().toLowerCase();
  if ((spec.choices as readonly string[]).includes(name)) return name as T;
  const choices = `${spec.choices.slice(0, -1).join(', ')} or ${spec.choices.at(-1)}`;
  throw new ConfigError(`The ${spec.description} '${raw}' is not one the oci build service knows.`, {
    setting: spec.envVar,
    hint: `Set ${spec.envVar} (or the option '${spec.option}') to ${choices}.`,
  });
}

export function ociSettings(options: OciBuildServiceOptions = {}): OciSettings {
  const env = options.env ?? process.env;
  const rawChunk = options.chunkSize ?? loadOptionalSetting({ value: undefined, envVar: OCI_ENV.chunkSize, option: 'chunkSize', description: 'upload chunk size', env });
  const chunkSize = rawChunk === undefined ? DEFAULT_CHUNK_SIZE : Number(rawChunk);
  if (!Number.isInteger(chunkSize) || chunkSize < 1024 || chunkSize > MAX_CHUNK_SIZE) {
    const range = `a whole number of bytes from 1024 to ${MAX_CHUNK_SIZE} (${MAX_CHUNK_SIZE / 1024 ** 3} GiB: a chunk is held in memory)`;
    const given = options.chunkSize !== undefined ? `The option 'chunkSize' (${rawChunk})` : `${OCI_ENV.chunkSize}='${rawChunk}'`;
    throw new ConfigError(`${given} is not ${range}.`, {
      setting: OCI_ENV.chunkSize,
      hint: `Set ${OCI_ENV.chunkSize} (or the option 'chunkSize') to a number of bytes in that range, e.g. ${DEFAULT_CHUNK_SIZE} (8 MiB, the default).`,
    });
  }
  const askedCompression = optionalChoice(options.layerCompression, env, { envVar: OCI_ENV.layerCompression, option: 'layerCompression', description: 'layer compression', choices: LAYER_COMPRESSIONS });
  const rawRunners = options.runners ?? loadOptionalSetting({ value: undefined, envVar: OCI_ENV.runners, option: 'runners', description: 'runners', env });
  const runners = rawRunners === undefined ? undefined : parseRunners(rawRunners);
  const layerCompression = compressionForRunners(askedCompression, runners);
  const rawPrefetch = options.prefetch ?? loadOptionalSetting({ value: undefined, envVar: OCI_ENV.prefetch, option: 'prefetch', description: 'eStargz prefetch', env });
  return {
    chunkSize,
    layerCompression,
    layerMediaType: layerCompression === 'gzip' ? undefined : layerCompression === 'erofs' ? erofsMediaType(runners) : OCI_LAYER_MEDIA_TYPE[layerCompression],
    prefetch: isLazyCompression(layerCompression) ? prefetchSetting(rawPrefetch) : { mode: 'off' },
    insecureRegistries: list(options.insecureRegistries, OCI_ENV.insecureRegistries, 'insecureRegistries', env),
    mountFrom: list(options.mountFrom, OCI_ENV.mountFrom, 'mountFrom', env),
    sourceDateEpoch: epochSetting(options.sourceDateEpoch, env),
    layers: choiceSetting(options.layers, env, { envVar: OCI_ENV.layers, option: 'layers', description: 'layering policy', choices: LAYERING_POLICIES }),
    estargzBase: estargzBaseSetting(options.estargzBase, layerCompression, env),
    zstdUnpullableBy: zstdUnpullableBy(runners),
  };
}

/** The eStargz-base switch: the option, else the env variable (core's on/off words); only with eStargz or zstd:chunked layers. */
function estargzBaseSetting(value: boolean | undefined, compression: LayerCompression, env: Record<string, string | undefined>): boolean {
  const on = loadBooleanSetting({ value, envVar: OCI_ENV.estargzBase, option: 'estargzBase', description: 'the base image re-layered as eStargz', default: false, env });
  if (on && !isLazyCompression(compression)) {
    throw new ConfigError(`Re-layering the base image as eStargz needs eStargz or zstd:chunked layers, but the layer compression is ${compression}.`, {
      setting: OCI_ENV.estargzBase,
      hint: `Set ${OCI_ENV.layerCompression}=estargz (or zstd:chunked), or turn ${OCI_ENV.estargzBase} off.`,
    });
  }
  return on;
}

/**
 * The `oci` build service: no Docker daemon, no builder. It reads the Dockerfile (FROM, COPY, ENV,
 * LABEL, WORKDIR, USER, CMD, ENTRYPOINT), fetches the base image's manifest and config for the
 * platform, builds the new layers itself — one per package of a materialized env, from
 * `prefix-layers.json` — and pushes only the blobs the registry lacks, then the config and manifest.
 * The same context and base digest give the same manifest digest on any machine.
 */
export function createOciBuildService(options: OciBuildServiceOptions = {}): BuildService {
  const settings = ociSettings(options);
  let tools: Promise<LayerTools> | undefined;
  /** The layer tools, looked for once (a missing mkfs.erofs is a ConfigError); a failed look-up is tried again at the next call. */
  const layerToolsOnce = (): Promise<LayerTools> => {
    tools ??= layerTools(settings, options);
    tools.catch(() => (tools = undefined));
    return tools;
  };
  return {
    name: 'oci',
    // erofs layers: mkfs.erofs is looked for here already, so `prebuilt backends --check` and a deploy
    // (which checks before it materializes an env) say a missing or old one before any work.
    async check(): Promise<void> {
      if (settings.layerCompression === 'erofs') await layerToolsOnce();
    },
    async buildAndPush(request: BuildRequest): Promise<BuildResult> {
      if (request.signal?.aborted) throw new CancelledError(`Building ${request.imageTag} was cancelled.`, { cause: request.signal.reason });
      return buildAndPushOci(request, settings, options, await layerToolsOnce());
    },
    // The layout a build of the env would record (a present image laid out otherwise is rebuilt).
    imageLayout: (envId) => imageLayoutOf(envSettings(settings, envId)),
  };
}

/** What builds the layers: the layer cache of their byte format, and (erofs) the mkfs.erofs that makes them. */
interface LayerTools {
  cache: LayerCache;
  mkfsErofs?: MkfsErofs;
  /** Where builds spool their big files (see {@link OciBuildServiceOptions.workDir}). */
  workDir: string;
}

async function layerTools(settings: OciSettings, options: OciBuildServiceOptions): Promise<LayerTools> {
  const env = options.env ?? process.env;
  const mkfsErofs = settings.layerCompression === 'erofs' ? await findMkfsErofs(env) : undefined;
  const formatId = mkfsErofs ? erofsFormatId(LAYER_FORMAT_ID.erofs, mkfsErofs) : LAYER_FORMAT_ID[settings.layerCompression];
  const cacheRoot = options.layerCacheDir === false ? undefined : (options.layerCacheDir ?? defaultLayerCacheDir(env));
  // One cache per byte format: a layer's gzip digest never stands in for its zstd one, nor an older codec's or mkfs.erofs's.
  const cache = new LayerCache(cacheRoot === undefined ? undefined : join(cacheRoot, formatId));
  const workDir = options.workDir ?? defaultWorkDir(env);
  // What builds of a killed run (SIGKILL skips their clean-up) left there: gigabytes, maybe.
  await sweepStaleRunTempDirs({ tempDir: workDir });
  return { cache, workDir, ...(mkfsErofs ? { mkfsErofs } : {}) };
}

/** The settings a build of one env's image uses: a profile with env sections gives it its own paths (or static when it names none of them). */
function envSettings(settings: OciSettings, envId: string | undefined): OciSettings {
  return { ...settings, prefetch: envPrefetch(settings.prefetch, envId) };
}

/**
 * The layout an image built with these (one env's) settings records and expects: eStargz and
 * zstd:chunked images their prefetch order (an EROFS image has none, so it is rebuilt); erofs
 * images their media type; gzip and zstd images none, so that an EROFS image is rebuilt and a tar
 * one of either compression kept.
 */
function imageLayoutOf(settings: OciSettings): ImageLayout {
  const layout = isLazyCompression(settings.layerCompression) ? prefetchLayout(settings.prefetch) : erofsLayout(settings.layerCompression === 'erofs' ? settings.layerMediaType : undefined);
  // The tag names the env, not the codec: an image pushed with zstd layers before the runners were
  // named (or named older) would be kept, and fail to pull on them.
  const unable = settings.zstdUnpullableBy;
  if (unable.length === 0) return layout;
  const change = `built with zstd layers, which ${unable.join(' and ')} (${RUNNERS_ENV}) cannot pull; this build writes ${settings.layerCompression} layers`;
  return { ...layout, refusedLayers: { mediaTypes: ZSTD_LAYER_MEDIA_TYPES, change } };
}

/** One build in progress: its request, settings, registry client and log. */
interface BuildRun {
  request: BuildRequest;
  settings: OciSettings;
  options: OciBuildServiceOptions;
  cache: LayerCache;
  /** The mkfs.erofs that makes erofs layers (those only). */
  mkfsErofs?: MkfsErofs;
  /** Where the build spools its big files (see {@link spoolDir}). */
  workDir: string;
  client: RegistryClient;
  /** The last 200 log lines, for a failed build's log tail. */
  lines: string[];
  say: (line: string) => void;
  cancelled: () => CancelledError;
}

/** Where the new image goes: the target, its repository and the upload options. */
interface PushTarget {
  target: ImageRef;
  repo: ImageRef;
  upload: { signal?: AbortSignal; chunkSize: number; mountFrom: string[] };
}

/** A new layer, built (or found) and in the registry. */
interface DoneLayer {
  diffId: string;
  digest: string;
  size: number;
  status: UploadBlobResult['status'];
  annotations?: Record<string, string>;
}

async function buildAndPushOci(request: BuildRequest, settings: OciSettings, options: OciBuildServiceOptions, tools: LayerTools): Promise<BuildResult> {
  const run = startRun(request, settings, options, tools);
  if (request.signal?.aborted) throw run.cancelled();
  try {
    return await assembleAndPush(run);
  } catch (error) {
    return failedBuild(run, error);
  }
}

function startRun(request: BuildRequest, settings: OciSettings, options: OciBuildServiceOptions, tools: LayerTools): BuildRun {
  const lines: string[] = [];
  const say = (line: string): void => {
    lines.push(line);
    if (lines.length > 200) lines.splice(0, lines.length - 200);
    log('%s', line);
    request.log?.(line);
  };
  const clientOptions: RegistryClientOptions = {
    dockerConfig: options.dockerConfig ?? true,
    insecureRegistries: settings.insecureRegistries,
    timeoutMs: options.timeoutMs ?? 120_000,
    ...(options.retry ? { retry: options.retry } : {}),
    ...(request.pushCredentials ? { credentials: [request.pushCredentials] } : {}),
    // The base image's manifests and the pushed ones, kept: a rebuild reads the base with HEADs, and
    // the deploy's check of the pushed image needs no GET (Docker Hub counts each GET as a pull).
    manifestCache: new ManifestCache(manifestCacheDir(options.env ?? process.env)),
  };
  const cancelled = (): CancelledError => new CancelledError(`Building ${request.imageTag} was cancelled.`, { cause: request.signal?.reason });
  return { request, settings: envSettings(settings, request.envId), options, ...tools, client: new RegistryClient(clientOptions), lines, say, cancelled };
}

/** The image tag parsed, after checking the push credentials are for its registry. */
function checkedTarget(request: BuildRequest): ImageRef {
  const target = parseImageRef(request.imageTag);
  if (request.pushCredentials && normalizeDockerConfigKey(request.pushCredentials.registry) !== normalizeDockerConfigKey(target.registry)) {
    throw new ConfigError(
      `The push credentials are for registry ${request.pushCredentials.registry}, but the image tag ${request.imageTag} is in ${target.registry}.`,
      { hint: 'Use the push credentials the image registry backend gives for its own tags.' },
    );
  }
  return target;
}

async function assembleAndPush(run: BuildRun): Promise<BuildResult> {
  const { request, settings, client, say } = run;
  const target = checkedTarget(request);
  const instructions = dockerfileInstructions(request.dockerfile);
  request.onPhase?.('building');
  const from = fromRef(instructions);
  say(`FROM ${from} (${request.platform})`);
  const fetched = await fetchBase(client, from, request.platform, request.signal);
  checkBaseForRunners(from, fetched.layers, settings.zstdUnpullableBy);
  // zstd layers exist only in the OCI format, eStargz and zstd:chunked annotations too: a Docker v2 base is restated as OCI (same blobs).
  const restated = settings.layerCompression === 'gzip' ? fetched : ociFormatOf(fetched);
  if (settings.estargzBase) checkConvertibleBase(from, restated.layers);

  const mountFrom = [...settings.mountFrom];
  if (restated.registry && restated.repository && normalizeDockerConfigKey(restated.registry) === normalizeDockerConfigKey(target.registry)) mountFrom.unshift(restated.repository);
  const push: PushTarget = { target, repo: { ...target, reference: 'latest' }, upload: { ...signalOf(request), chunkSize: settings.chunkSize, mountFrom } };

  request.onPhase?.('pushing');
  const { base, baseLayers } = settings.estargzBase ? await estargzBase(run, push, restated) : { base: restated, baseLayers: await pushBaseLayers(run, push, restated) };
  const plan = await planImage(instructions, base, request.contextDir, request.signal, settings.layers);
  say(`base: ${base.layers.length} layer(s); new: ${plan.layers.length} layer(s)`);
  const done = await buildLayers(run, push, plan);
  return pushImage(run, push, plan, done, baseLayers);
}

function signalOf(request: BuildRequest): { signal?: AbortSignal } {
  return request.signal ? { signal: request.signal } : {};
}

/**
 * A fresh private directory (named for this run, see core's createRunTempDir) under the work
 * directory for one build's big files: on disk beside the cache, not in TMPDIR (often RAM). One that
 * cannot be made says why and the setting that moves it.
 */
function spoolDir(run: BuildRun, prefix: string): Promise<string> {
  // The work directory comes from the option when one is given, else from the cache directory's setting.
  const setting = run.options.workDir === undefined ? CACHE_DIR_SETTING : "the oci build service's option 'workDir'";
  return createRunTempDirIn(run.workDir, prefix, { doing: 'making a directory for the layers of a build', setting });
}

/** Each base layer into the target repository: present, mounted, or copied from the base's registry. */
async function pushBaseLayers(run: BuildRun, push: PushTarget, base: BaseImage): Promise<PushSummary['baseLayers']> {
  const baseLayers: PushSummary['baseLayers'] = [];
  const baseRef = parseImageRef(`${base.registry}/${base.repository}`);
  const tmp = await spoolDir(run, 'prebuilt-oci-base-');
  try {
    for (const [i, layer] of base.layers.entries()) {
      const status = await copyBaseLayer(run, push, baseRef, layer, join(tmp, `${i}.blob`));
      baseLayers.push({ digest: layer.digest, status });
      run.say(`base layer ${layer.digest.slice(7, 19)}: ${status}`);
    }
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  return baseLayers;
}

/**
 * A base layer put into the target repository as it is: unless it is there (or mounted), fetched
 * from the base's registry into `file` (streamed, checked) and pushed from there a chunk at a time;
 * the file is removed once pushed.
 */
async function copyBaseLayer(run: BuildRun, push: PushTarget, baseRef: ImageRef, layer: OciDescriptor, file: string): Promise<UploadBlobResult['status']> {
  const fetched = (): Promise<BlobFile> => run.client.getBlobToFile(baseRef, layer.digest, file, { ...signalOf(run.request), size: layer.size });
  const { status } = await run.client.uploadBlob(push.repo, layer.digest, fetched, push.upload);
  await rm(file, { force: true });
  return status;
}

/**
 * The base re-layered as eStargz (or zstd:chunked, the new layers' format), its layers in the
 * target repository: each layer converted once
 * (the layer cache remembers the result by the base layer's digest, the prefetch profile and the
 * conversion's version, BASE_CONVERSION_VERSION; the registry is asked for it), in the profile's prefetch order when there is one; an eStargz layer
 * kept as it is; the config's diff_ids follow the converted layers.
 */
async function estargzBase(run: BuildRun, push: PushTarget, base: BaseImage): Promise<{ base: BaseImage; baseLayers: PushSummary['baseLayers'] }> {
  const { client, cache } = run;
  const signal = run.request.signal;
  const format = run.settings.layerCompression as LazyCompression;
  if (base.layers.length === 0) return { base, baseLayers: [] };
  const baseRef = parseImageRef(`${base.registry}/${base.repository}`);
  const diffIds = [...((base.config['rootfs'] as { diff_ids?: string[] } | undefined)?.diff_ids ?? [])];
  const layers: OciDescriptor[] = [];
  const baseLayers: PushSummary['baseLayers'] = [];
  // A recorded profile puts the base files the task read first too (the static order is for the env's files).
  const profile = run.settings.prefetch.mode === 'profile' ? run.settings.prefetch.paths : undefined;
  const tmp = await spoolDir(run, 'prebuilt-oci-base-');
  try {
    for (const [i, layer] of base.layers.entries()) {
      if (isEstargzLayer(layer)) {
        const status = await copyBaseLayer(run, push, baseRef, layer, join(tmp, `${i}.blob`));
        layers.push(layer);
        baseLayers.push({ digest: layer.digest, status });
        continue;
      }
      const key = convertedBaseKey(layer.digest, profile ? prefetchKey(run.settings.prefetch) : '');
      let converted = await cache.getByContent(key);
      let status: UploadBlobResult['status'] = 'exists';
      if (!converted || !(await client.headBlob(push.repo, converted.digest, signalOf(run.request))).exists) {
        const file = join(tmp, `${i}.blob`);
        // The base layer streamed into a file (checked against its digest) and converted from there: never held whole.
        const blob = await client.getBlobToFile(baseRef, layer.digest, join(tmp, `${i}.base`), { ...signalOf(run.request), size: layer.size });
        try {
          converted = await convertLayerToEstargz(blob.file, layer.mediaType, file, { signal, prefetch: profile, format, label: `the base layer ${layer.digest} of ${base.ref ?? baseRef.repository}` });
        } finally {
          await rm(blob.file, { force: true });
        }
        await cache.setByContent(key, converted);
        status = (await client.uploadBlob(push.repo, converted.digest, { file, size: converted.size }, push.upload)).status;
        await rm(file, { force: true });
      }
      run.say(`base layer ${layer.digest.slice(7, 19)} as ${format} ${converted.digest.slice(7, 19)}: ${status}`);
      layers.push({ mediaType: OCI_LAYER_MEDIA_TYPE[format], digest: converted.digest, size: converted.size, annotations: converted.annotations ?? {} });
      baseLayers.push({ digest: converted.digest, status });
      diffIds[i] = converted.diffId;
    }
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  const rootfs = { ...((base.config['rootfs'] as Record<string, unknown> | undefined) ?? { type: 'layers' }), diff_ids: diffIds };
  return { base: { ...base, layers, config: { ...base.config, rootfs } }, baseLayers };
}

/**
 * Builds (tar, hashes and compression in one streaming pass to a temp file) and pushes the new
 * layers in parallel; the compressors run natively on the libuv thread pool. The first layer that
 * fails stops the others; its error is the build's.
 */
async function buildLayers(run: BuildRun, push: PushTarget, plan: ImagePlan): Promise<DoneLayer[]> {
  const { request, options } = run;
  const tmp = await spoolDir(run, 'prebuilt-oci-layers-');
  const stopLayers = new AbortController();
  const layerSignal = request.signal ? AbortSignal.any([request.signal, stopLayers.signal]) : stopLayers.signal;
  const lookUpFirst = await run.cache.mayHaveAny();
  let settled: PromiseSettledResult<DoneLayer>[];
  try {
    settled = await mapPool(plan.layers, options.parallelLayers ?? availableParallelism(), async (planned, i): Promise<DoneLayer> => {
      try {
        return await buildOneLayer(run, push, { planned, i, count: plan.layers.length, file: join(tmp, `${i}.blob`), lookUpFirst, signal: layerSignal });
      } catch (error) {
        stopLayers.abort(error);
        throw error;
      }
    });
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  if (request.signal?.aborted) throw run.cancelled();
  if (stopLayers.signal.aborted) throw stopLayers.signal.reason;
  return settled.map((r) => (r as PromiseFulfilledResult<DoneLayer>).value);
}

interface LayerJob {
  planned: PlannedLayer;
  i: number;
  count: number;
  /** Temp file for the compressed blob. */
  file: string;
  /** Whether to hash the tar and ask the layer cache and the registry before compressing (a layer without a content key only). */
  lookUpFirst: boolean;
  signal: AbortSignal;
}

/** What of the prefetch choice a layer's content key adds: nothing without one (gzip, zstd, eStargz and zstd:chunked `off`). */
function prefetchKey(prefetch: EstargzPrefetch): string {
  if (prefetch.mode === 'off') return '';
  return prefetch.mode === 'static' ? '\0prefetch:static' : `\0prefetch:${createHash('sha256').update(prefetch.paths.join('\n')).digest('hex')}`;
}

/** One layer: found (same diff_id compressed before, and the registry has it), or written and uploaded. */
async function buildOneLayer(run: BuildRun, push: PushTarget, job: LayerJob): Promise<DoneLayer> {
  const { client, cache, settings } = run;
  const { planned, signal } = job;
  const label = `layer ${job.i + 1}/${job.count} ${planned.name}`;
  const tarOptions = { mtime: settings.sourceDateEpoch, signal, ...(settings.prefetch.mode === 'off' ? {} : { prefetch: settings.prefetch }) };
  // The layer's tar also depends on the mtime it gives its entries, and a lazy layer's on its prefetch order.
  const keyed = `${planned.contentKey}\0${settings.sourceDateEpoch}${prefetchKey(settings.prefetch)}`;
  const contentKey = planned.contentKey ? sha256Digest(keyed) : undefined;
  if (contentKey) {
    // Same packages' content as a layer built before: reused without reading a file, when the registry has its blob.
    const known = await cache.getByContent(contentKey);
    if (known && (await client.headBlob(push.repo, known.digest, { signal })).exists) {
      run.say(`${label}: ${known.size} bytes, exists (same content as an earlier build)`);
      return { ...known, status: 'exists' };
    }
  }
  // A layer with a content key that the cache does not know is new content: compressed in one pass,
  // not tarred and hashed first to look its diff_id up (a second pass over every byte of it).
  if (job.lookUpFirst && !contentKey) {
    const tar = await layerDiffId(planned.entries, tarOptions);
    const known = await cache.get(tar.diffId);
    if (known && (await client.headBlob(push.repo, known.digest, { signal })).exists) {
      run.say(`${label}: ${tar.entries} entries, ${known.size} bytes, exists`);
      const found = { ...known, diffId: known.diffId ?? tar.diffId };
      if (contentKey) await cache.setByContent(contentKey, found);
      return { ...found, status: 'exists' };
    }
  }
  const erofs = run.mkfsErofs ? { mkfsErofs: run.mkfsErofs, label } : {};
  const written = await writeLayer(planned.entries, job.file, { ...tarOptions, compression: settings.layerCompression, ...erofs });
  // eStargz's and EROFS's diff_id is not their plain tar's sha256 (the cache's key): remembered too.
  const extra = written.annotations || written.diffId !== written.tarDigest ? { diffId: written.diffId, ...(written.annotations ? { annotations: written.annotations } : {}) } : {};
  await cache.set(written.tarDigest, { digest: written.digest, size: written.size, ...extra });
  if (contentKey) await cache.setByContent(contentKey, { digest: written.digest, size: written.size, diffId: written.diffId, ...(written.annotations ? { annotations: written.annotations } : {}) });
  const { status } = await client.uploadBlob(push.repo, written.digest, { file: job.file, size: written.size }, { ...push.upload, signal });
  await rm(job.file, { force: true });
  run.say(`${label}: ${written.entries} entries, ${written.size} bytes, ${status}`);
  return { diffId: written.diffId, digest: written.digest, size: written.size, status, ...(written.annotations ? { annotations: written.annotations } : {}) };
}

/** The config and the manifest (base layers, then the new ones), pushed; the build's result. */
async function pushImage(run: BuildRun, push: PushTarget, plan: ImagePlan, done: DoneLayer[], baseLayers: PushSummary['baseLayers']): Promise<BuildResult> {
  const { client, request, settings } = run;
  const base = plan.base;
  const layerMediaType = settings.layerMediaType ?? base.format.layer;
  const created = new Date(settings.sourceDateEpoch * 1000).toISOString().replace(/\.000Z$/, 'Z');
  const descriptors: OciDescriptor[] = done.map((d) => ({ mediaType: layerMediaType, digest: d.digest, size: d.size, ...(d.annotations ? { annotations: d.annotations } : {}) }));
  const layers: PushSummary['layers'] = done.map((d, i) => ({ name: plan.layers[i]!.name, digest: d.digest, size: d.size, status: d.status }));

  const configBytes = Buffer.from(JSON.stringify(imageConfig(plan, done.map((d) => d.diffId), created)));
  const configDigest = sha256Digest(configBytes);
  await client.uploadBlob(push.repo, configDigest, configBytes, push.upload);
  const baseDescriptors = base.layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size, ...(l.annotations && isEstargzLayer(l) ? { annotations: l.annotations } : {}) }));
  const layout = imageLayoutOf(settings);
  const annotations = layout.value === undefined ? undefined : { [layout.annotation]: layout.value };
  const manifest = imageManifest(base.format, { mediaType: base.format.config, digest: configDigest, size: configBytes.length }, [...baseDescriptors, ...descriptors], annotations);
  const digest = await client.putManifest(push.target, Buffer.from(JSON.stringify(manifest)), base.format.manifest, signalOf(request));
  const bytesSent = client.stats.bytesSent;
  run.say(`pushed ${request.imageTag}@${digest} (${bytesSent} bytes sent)`);
  run.options.onPushed?.({ imageTag: request.imageTag, digest, bytesSent, layers, baseLayers });
  return { ok: true, digest };
}

/** A failure as the build's result (`ok: false` with the reason and log tail); cancellation and configuration errors are thrown. */
function failedBuild(run: BuildRun, error: unknown): BuildResult {
  const isCancel = PrebuiltError.isInstance(error) && error.code === 'cancelled';
  if (isCancel) throw error;
  if (run.request.signal?.aborted) throw run.cancelled();
  if (PrebuiltError.isInstance(error) && error.code === 'config') throw error;
  const reason =
    error instanceof BuildInputProblem
      ? error.message
      : PrebuiltError.isInstance(error)
        ? error.message
        : `building the image failed: ${error instanceof Error ? error.message : String(error)}`;
  run.say(`error: ${reason}`);
  if (PrebuiltError.isInstance(error) && error.hint) run.say(`hint: ${error.hint}`);
  return { ok: false, reason, logTail: run.lines.slice(-20) };
}
