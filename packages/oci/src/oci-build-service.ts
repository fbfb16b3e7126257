import { createHash } from 'node:crypto';
import {
  CancelledError,
  ConfigError,
  createLogger,
  loadOptionalSetting,
  mapPool,
  normalizeDockerConfigKey,
  parseImageRef,
  PrebuiltError,
  RegistryClient,
  type BuildRequest,
  type BuildResult,
  type BuildService,
  type OciDescriptor,
  type RegistryClientOptions,
  type RetryPolicy,
  type UploadBlobResult,
  sourceDateEpoch,
} from '@prebuilt/core/backend';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { BuildInputProblem, dockerfileInstructions, fetchBase, fromRef, imageConfig, imageManifest, ociFormatOf, planImage } from './image-assembly.js';
import { LAYER_COMPRESSIONS, LAYER_FORMAT_ID, OCI_LAYER_MEDIA_TYPE, type LayerCompression } from './layer-codec.js';
import { LayerCache, defaultLayerCacheDir } from './layer-cache.js';
import { layerDiffId, writeLayer } from './layer.js';

const log = createLogger('oci');

/** Environment variables the oci build service reads. */
export const OCI_ENV = {
  /** Blobs larger than this many bytes are uploaded in chunks of this size. */
  chunkSize: 'METAFLOW_PREBUILT_OCI_CHUNK_SIZE',
  /** Comma-separated registries (host:port) reached over plain HTTP besides loopback ones. */
  insecureRegistries: 'METAFLOW_PREBUILT_OCI_INSECURE_REGISTRIES',
  /** Comma-separated repositories of the target registry to offer as cross-repository mount sources. */
  mountFrom: 'METAFLOW_PREBUILT_OCI_MOUNT_FROM',
  /** `gzip` (default) or `zstd`: how the new layers are compressed. */
  layerCompression: 'METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION',
} as const;

export const DEFAULT_CHUNK_SIZE = 8 * 1024 * 1024;

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
   * How the new layers are compressed: `gzip` (default; every runtime pulls it) or `zstd` (an OCI
   * image with `tar+zstd` layers; needs Docker Engine ≥ 23.0 or containerd ≥ 1.5 on every node).
   * Env METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION.
   */
  layerCompression?: LayerCompression;
  /** Layers compressed at once (each on the libuv thread pool). Default: the number of cores. */
  parallelLayers?: number;
  /** Receives what each successful push cost. */
  onPushed?: (summary: PushSummary) => void;
}

function sha256(bytes: Uint8Array): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
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
}

function compressionSetting(value: string | undefined, env: Record<string, string | undefined>): LayerCompression {
  const raw = value ?? loadOptionalSetting({ value: undefined, envVar: OCI_ENV.layerCompression, option: 'layerCompression', description: 'layer compression', env });
  if (raw === undefined) return 'gzip';
  const name = raw.trim().toLowerCase();
  if ((LAYER_COMPRESSIONS as readonly string[]).includes(name)) return name as LayerCompression;
  throw new ConfigError(`The layer compression '${raw}' is not one the oci build service knows.`, {
    setting: OCI_ENV.layerCompression,
    hint: `Set ${OCI_ENV.layerCompression} (or the option 'layerCompression') to gzip or zstd.`,
  });
}

export function ociSettings(options: OciBuildServiceOptions = {}): OciSettings {
  const env = options.env ?? process.env;
  const rawChunk = options.chunkSize ?? loadOptionalSetting({ value: undefined, envVar: OCI_ENV.chunkSize, option: 'chunkSize', description: 'upload chunk size', env });
  const chunkSize = rawChunk === undefined ? DEFAULT_CHUNK_SIZE : Number(rawChunk);
  if (!Number.isInteger(chunkSize) || chunkSize < 1024) {
    throw new ConfigError(`The upload chunk size '${rawChunk}' is not a whole number of bytes ≥ 1024.`, {
      setting: OCI_ENV.chunkSize,
      hint: `Set ${OCI_ENV.chunkSize} (or the option 'chunkSize') to a number of bytes, e.g. 8388608.`,
    });
  }
  return {
    chunkSize,
    insecureRegistries: list(options.insecureRegistries, OCI_ENV.insecureRegistries, 'insecureRegistries', env),
    mountFrom: list(options.mountFrom, OCI_ENV.mountFrom, 'mountFrom', env),
    sourceDateEpoch: epochSetting(options.sourceDateEpoch, env),
    layerCompression: compressionSetting(options.layerCompression, env),
  };
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
  const cacheRoot = options.layerCacheDir === false ? undefined : (options.layerCacheDir ?? defaultLayerCacheDir(options.env ?? process.env));
  // One cache per byte format: a layer's gzip digest never stands in for its zstd one, nor an older codec's.
  const cache = new LayerCache(cacheRoot === undefined ? undefined : join(cacheRoot, LAYER_FORMAT_ID[settings.layerCompression]));
  return {
    name: 'oci',
    async buildAndPush(request: BuildRequest): Promise<BuildResult> {
      return buildAndPushOci(request, settings, options, cache);
    },
  };
}

async function buildAndPushOci(request: BuildRequest, settings: OciSettings, options: OciBuildServiceOptions, cache: LayerCache): Promise<BuildResult> {
  const { signal } = request;
  const lines: string[] = [];
  const say = (line: string): void => {
    lines.push(line);
    if (lines.length > 200) lines.splice(0, lines.length - 200);
    log('%s', line);
    request.log?.(line);
  };
  const cancelled = (): CancelledError => new CancelledError(`Building ${request.imageTag} was cancelled.`, { cause: signal?.reason });
  if (signal?.aborted) throw cancelled();

  const clientOptions: RegistryClientOptions = {
    dockerConfig: options.dockerConfig ?? true,
    insecureRegistries: settings.insecureRegistries,
    timeoutMs: options.timeoutMs ?? 120_000,
    ...(options.retry ? { retry: options.retry } : {}),
    ...(request.pushCredentials ? { credentials: [request.pushCredentials] } : {}),
  };
  const client = new RegistryClient(clientOptions);
  const signalOpt = signal ? { signal } : {};

  try {
    const target = parseImageRef(request.imageTag);
    if (request.pushCredentials && normalizeDockerConfigKey(request.pushCredentials.registry) !== normalizeDockerConfigKey(target.registry)) {
      throw new ConfigError(
        `The push credentials are for registry ${request.pushCredentials.registry}, but the image tag ${request.imageTag} is in ${target.registry}.`,
        { hint: 'Use the push credentials the image registry backend gives for its own tags.' },
      );
    }
    const instructions = dockerfileInstructions(request.dockerfile);
    request.onPhase?.('building');
    const from = fromRef(instructions);
    say(`FROM ${from} (${request.platform})`);
    const fetched = await fetchBase(client, from, request.platform, signal);
    // zstd layers exist only in the OCI format: a Docker v2 base is restated as OCI (same blobs).
    const base = settings.layerCompression === 'zstd' ? ociFormatOf(fetched) : fetched;
    const layerMediaType = settings.layerCompression === 'zstd' ? OCI_LAYER_MEDIA_TYPE.zstd : base.format.layer;
    const plan = await planImage(instructions, base, request.contextDir, signal);
    say(`base: ${base.layers.length} layer(s); new: ${plan.layers.length} layer(s)`);

    const mountFrom = [...settings.mountFrom];
    if (base.registry && base.repository && normalizeDockerConfigKey(base.registry) === normalizeDockerConfigKey(target.registry)) mountFrom.unshift(base.repository);
    const repo = { ...target, reference: 'latest' };
    const upload = { ...signalOpt, chunkSize: settings.chunkSize, mountFrom };

    request.onPhase?.('pushing');
    const baseLayers: PushSummary['baseLayers'] = [];
    for (const layer of base.layers) {
      const baseRef = parseImageRef(`${base.registry}/${base.repository}`);
      const result = await client.uploadBlob(repo, layer.digest, () => client.getBlob(baseRef, layer.digest, { ...signalOpt, size: layer.size }), upload);
      baseLayers.push({ digest: layer.digest, status: result.status });
      say(`base layer ${layer.digest.slice(7, 19)}: ${result.status}`);
    }

    const created = new Date(settings.sourceDateEpoch * 1000).toISOString().replace(/\.000Z$/, 'Z');
    // Layers are built (tar, hashes and compression in one streaming pass to a temp file) and
    // pushed in parallel; the compressors run natively on the libuv thread pool.
    const tmp = await mkdtemp(join(tmpdir(), 'prebuilt-oci-layers-'));
    const stopLayers = new AbortController();
    const layerSignal = signal ? AbortSignal.any([signal, stopLayers.signal]) : stopLayers.signal;
    const lookUpFirst = await cache.mayHaveAny();
    type Done = { diffId: string; digest: string; size: number; status: UploadBlobResult['status'] };
    let settled: PromiseSettledResult<Done>[];
    try {
      settled = await mapPool(plan.layers, options.parallelLayers ?? availableParallelism(), async (planned, i): Promise<Done> => {
        try {
          const tarOptions = { mtime: settings.sourceDateEpoch, signal: layerSignal };
          // A layer compressed before (same diff_id) that the registry has needs no compression.
          if (lookUpFirst) {
            const tar = await layerDiffId(planned.entries, tarOptions);
            const known = await cache.get(tar.diffId);
            if (known && (await client.headBlob(repo, known.digest, { signal: layerSignal })).exists) {
              say(`layer ${i + 1}/${plan.layers.length} ${planned.name}: ${tar.entries} entries, ${known.size} bytes, exists`);
              return { diffId: tar.diffId, ...known, status: 'exists' };
            }
          }
          const file = join(tmp, `${i}.blob`);
          const written = await writeLayer(planned.entries, file, { ...tarOptions, compression: settings.layerCompression });
          await cache.set(written.diffId, { digest: written.digest, size: written.size });
          const { status } = await client.uploadBlob(repo, written.digest, () => readFile(file), { ...upload, signal: layerSignal });
          await rm(file, { force: true });
          say(`layer ${i + 1}/${plan.layers.length} ${planned.name}: ${written.entries} entries, ${written.size} bytes, ${status}`);
          return { diffId: written.diffId, digest: written.digest, size: written.size, status };
        } catch (error) {
          stopLayers.abort(error);
          throw error;
        }
      });
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
    if (signal?.aborted) throw cancelled();
    // The first layer that failed stopped the others; its error is the build's.
    if (stopLayers.signal.aborted) throw stopLayers.signal.reason;
    const done = settled.map((r) => (r as PromiseFulfilledResult<Done>).value);
    const diffIds = done.map((d) => d.diffId);
    const descriptors: OciDescriptor[] = done.map((d) => ({ mediaType: layerMediaType, digest: d.digest, size: d.size }));
    const layers: PushSummary['layers'] = done.map((d, i) => ({ name: plan.layers[i]!.name, digest: d.digest, size: d.size, status: d.status }));

    const configBytes = Buffer.from(JSON.stringify(imageConfig(plan, diffIds, created)));
    const configDigest = sha256(configBytes);
    await client.uploadBlob(repo, configDigest, configBytes, upload);
    const manifest = imageManifest(base.format, { mediaType: base.format.config, digest: configDigest, size: configBytes.length }, [...base.layers, ...descriptors]);
    const manifestBytes = Buffer.from(JSON.stringify(manifest));
    const digest = await client.putManifest(target, manifestBytes, base.format.manifest, signalOpt);
    const bytesSent = client.stats.bytesSent;
    say(`pushed ${request.imageTag}@${digest} (${bytesSent} bytes sent)`);
    options.onPushed?.({ imageTag: request.imageTag, digest, bytesSent, layers, baseLayers });
    return { ok: true, digest };
  } catch (error) {
    const isCancel = PrebuiltError.isInstance(error) && error.code === 'cancelled';
    if (isCancel) throw error;
    if (signal?.aborted) throw cancelled();
    if (PrebuiltError.isInstance(error) && error.code === 'config') throw error;
    const reason =
      error instanceof BuildInputProblem
        ? error.message
        : PrebuiltError.isInstance(error)
          ? error.message
          : `building the image failed: ${error instanceof Error ? error.message : String(error)}`;
    say(`error: ${reason}`);
    if (PrebuiltError.isInstance(error) && error.hint) say(`hint: ${error.hint}`);
    return { ok: false, reason, logTail: lines.slice(-20) };
  }
}
