import type { ImageMap } from '../deploy/image-map.js';
import { RegistryError } from '../errors.js';
import { createLogger } from '../logger.js';
import { checkableDigest } from '../registry/digest.js';
import { formatImageRef, parseImageRef, type ImageRef } from '../registry/image-ref.js';
import { isIndexMediaType } from '../registry/media-types.js';
import type { ImageIndex, ImageManifest, OciDescriptor, OciPlatform } from '../registry/platform.js';
import type { RegistryClient, RequestOptions } from '../registry/registry-client.js';
import { transferSeconds, type Bandwidth } from './bandwidth.js';
import { annotatedUncompressedSize, gzipTrailerSize, layerFormat, type LayerFormat } from './layer-format.js';

const log = createLogger('report');

export interface LayerReport {
  digest: string;
  mediaType: string;
  format: LayerFormat;
  /** Compressed bytes (the descriptor's size): what a node downloads. */
  size: number;
  /** Uncompressed bytes, or null when neither the manifest nor the blob's trailer tells. */
  installedSize: number | null;
  installedFrom?: 'annotation' | 'gzip-trailer' | 'uncompressed';
}

export interface PlatformReport {
  platform: string;
  /** The platform's image manifest digest. */
  digest: string;
  compressedBytes: number;
  /** Sum of the layers' uncompressed sizes; null when one of them is unknown. */
  installedBytes: number | null;
  layerCount: number;
  /** Layers (by digest) that another image of the flow has too: pulled once per node. */
  sharedLayers: number;
  formats: LayerFormat[];
  /** compressedBytes ÷ bandwidth. */
  pullSeconds: number;
  layers: LayerReport[];
}

export interface StepReport {
  step: string;
  image: string;
  /** The digest the image map pins (an image's manifest, or an index's). */
  digest: string;
  index: boolean;
  platforms: PlatformReport[];
}

export interface ColdStartReport {
  flow: string;
  bandwidth: Bandwidth;
  steps: StepReport[];
}

function platformName(platform: Partial<OciPlatform> | undefined): string {
  if (!platform?.os || !platform.architecture) return 'unknown';
  return [platform.os, platform.architecture, platform.variant].filter(Boolean).join('/');
}

/**
 * The registry reads (manifests, configs, layers' gzip trailers) one report makes at most. A flow's
 * env images take a few per step and platform and one per layer: some thousands for a large flow.
 * An index naming tens of thousands of platforms, or manifests of thousands of layers (a 4 MiB
 * manifest holds some 20 000), read one request each, would have the report run for hours.
 */
export const MAX_REPORT_READS = 20_000;

/** Reads manifests and layer sizes once per digest, whichever step names them, counting its registry reads against `maxReads`. */
class ManifestReader {
  readonly #manifests = new Map<string, Promise<{ mediaType: string; manifest: ImageManifest | ImageIndex }>>();
  readonly #sizes = new Map<string, Promise<Pick<LayerReport, 'installedSize' | 'installedFrom'>>>();
  #reads = 0;
  constructor(
    readonly client: RegistryClient,
    readonly options: RequestOptions,
    readonly flow: string,
    readonly maxReads: number,
  ) {}

  /** One registry read about to be made. */
  count(registry: string, what: string): void {
    this.ahead(1, registry, what);
    this.#reads += 1;
  }

  /** Before `count` more reads that `what` names: they do not take the report past its bound (none is made then). */
  ahead(count: number, registry: string, what: string): void {
    if (this.#reads + count <= this.maxReads) return;
    throw new RegistryError(`the images of ${this.flow} name more than ${this.maxReads} manifests and layers for the report to read (${this.#reads} read, ${count} more named by ${what}); stopped`, { registry }, {
      hint: 'An env image has one manifest per platform and some tens of layers: the image map names images that are not prebuilt\'s, or the registry (or a proxy in front of it) serves manifests made up. Check the image map (prebuilt build writes it) and the registry; --step reports fewer steps at once.',
    });
  }

  /** Of `digests`, those not read yet. */
  unreadManifests(digests: readonly string[]): number {
    return new Set(digests.filter((digest) => !this.#manifests.has(digest))).size;
  }

  /** Of `layers`, those whose size is not known yet. */
  unreadLayers(layers: readonly OciDescriptor[]): number {
    return new Set(layers.map((layer) => layer.digest).filter((digest) => !this.#sizes.has(digest))).size;
  }

  manifest(repo: ImageRef, digest: string): Promise<{ mediaType: string; manifest: ImageManifest | ImageIndex }> {
    let pending = this.#manifests.get(digest);
    if (!pending) {
      this.count(repo.registry, `the manifest ${digest}`);
      pending = this.client.getManifest({ ...repo, reference: digest }, this.options).then((found) => ({ mediaType: found.mediaType, manifest: found.manifest }));
      this.#manifests.set(digest, pending);
    }
    return pending;
  }

  installed(repo: ImageRef, layer: OciDescriptor): Promise<Pick<LayerReport, 'installedSize' | 'installedFrom'>> {
    let pending = this.#sizes.get(layer.digest);
    if (!pending) {
      pending = this.#installed(repo, layer);
      this.#sizes.set(layer.digest, pending);
    }
    return pending;
  }

  async #installed(repo: ImageRef, layer: OciDescriptor): Promise<Pick<LayerReport, 'installedSize' | 'installedFrom'>> {
    const annotated = annotatedUncompressedSize(layer);
    if (annotated !== undefined) return { installedSize: annotated, installedFrom: 'annotation' };
    const format = layerFormat(layer);
    if (format === 'uncompressed') return { installedSize: layer.size, installedFrom: 'uncompressed' };
    if (format !== 'gzip' || layer.size < 18) return { installedSize: null };
    this.count(repo.registry, `the layer ${layer.digest}`);
    try {
      const trailer = await this.client.getBlobRange(repo, layer.digest, layer.size - 4, layer.size - 1, this.options);
      const size = gzipTrailerSize(trailer, layer.size);
      return size === undefined ? { installedSize: null } : { installedSize: size, installedFrom: 'gzip-trailer' };
    } catch (error) {
      log('no gzip trailer for %s: %s', layer.digest, (error as Error).message);
      return { installedSize: null };
    }
  }
}

async function platformReport(reader: ManifestReader, repo: ImageRef, digest: string, platform: string | undefined, bandwidth: Bandwidth): Promise<PlatformReport> {
  const { manifest } = await reader.manifest(repo, digest);
  const image = manifest as ImageManifest;
  reader.ahead(reader.unreadLayers(image.layers), repo.registry, `the ${platform ? `${platform} ` : ''}manifest ${digest} of ${formatImageRef({ ...repo, digest: undefined, tag: repo.tag })}`);
  let name = platform;
  if (!name) {
    reader.count(repo.registry, `the config of the manifest ${digest}`);
    const config = JSON.parse(Buffer.from(await reader.client.getBlob(repo, image.config.digest, reader.options)).toString('utf8')) as Partial<OciPlatform>;
    name = platformName(config);
  }
  const layers: LayerReport[] = [];
  for (const layer of image.layers) {
    layers.push({ digest: layer.digest, mediaType: layer.mediaType, format: layerFormat(layer), size: layer.size, ...(await reader.installed(repo, layer)) });
  }
  const compressedBytes = layers.reduce((sum, l) => sum + l.size, 0);
  const installedBytes = layers.every((l) => l.installedSize !== null) ? layers.reduce((sum, l) => sum + l.installedSize!, 0) : null;
  const formats = [...new Set(layers.map((l) => l.format))].sort();
  return { platform: name, digest, compressedBytes, installedBytes, layerCount: layers.length, sharedLayers: 0, formats, pullSeconds: transferSeconds(compressedBytes, bandwidth), layers };
}

/** A step's image: one platform report, or one per platform of an index (attestation entries skipped). */
async function stepReport(reader: ManifestReader, step: string, pinned: string, bandwidth: Bandwidth): Promise<StepReport> {
  const ref = parseImageRef(pinned);
  const image = formatImageRef({ ...ref, digest: undefined });
  reader.count(ref.registry, image);
  const found = await reader.client.getManifest(ref, reader.options);
  const repo = { ...ref, reference: found.digest };
  if (!isIndexMediaType(found.mediaType)) {
    return { step, image, digest: found.digest, index: false, platforms: [await platformReport(reader, repo, found.digest, undefined, bandwidth)] };
  }
  const entries = (found.manifest as ImageIndex).manifests;
  reader.ahead(reader.unreadManifests(entries.map((entry) => String(entry.digest))), ref.registry, `the image index ${found.digest} of ${image}`);
  const platforms: PlatformReport[] = [];
  for (const entry of entries) {
    if (platformName(entry.platform) === 'unknown/unknown' || entry.annotations?.['vnd.docker.reference.type'] === 'attestation-manifest') continue;
    const digest = checkableDigest(entry.digest, `the ${platformName(entry.platform)} manifest in the image index ${found.digest} of ${image}`, ref.registry);
    platforms.push(await platformReport(reader, repo, digest, platformName(entry.platform), bandwidth));
  }
  return { step, image, digest: found.digest, index: true, platforms };
}

/**
 * The cold-start report of a flow's images: per step and platform, compressed and installed size,
 * layers (and how many another image of the flow shares), their formats and the pull time at
 * `bandwidth` — every figure read from the registry's manifests (and gzip trailers by range).
 */
export async function coldStartReport(
  map: ImageMap,
  client: RegistryClient,
  /** `maxReads`: the registry reads made at most (default {@link MAX_REPORT_READS}); past it, a RegistryError. */
  options: RequestOptions & { bandwidth: Bandwidth; steps?: readonly string[]; maxReads?: number },
): Promise<ColdStartReport> {
  const reader = new ManifestReader(client, options.signal ? { signal: options.signal } : {}, map.flow, options.maxReads ?? MAX_REPORT_READS);
  const steps: StepReport[] = [];
  for (const [step, entry] of Object.entries(map.steps)) {
    if (options.steps && !options.steps.includes(step)) continue;
    if (entry.envId === null || !entry.pinnedImage) continue;
    steps.push(await stepReport(reader, step, entry.pinnedImage, options.bandwidth));
  }
  countShared(steps);
  return { flow: map.flow, bandwidth: options.bandwidth, steps };
}

/** Sets each platform report's `sharedLayers`: its layers that another image (another digest) of the same platform has. */
function countShared(steps: StepReport[]): void {
  const holders = new Map<string, Set<string>>();
  const all = steps.flatMap((s) => s.platforms);
  for (const p of all) for (const l of p.layers) holders.set(`${p.platform} ${l.digest}`, (holders.get(`${p.platform} ${l.digest}`) ?? new Set()).add(p.digest));
  for (const p of all) p.sharedLayers = p.layers.filter((l) => [...holders.get(`${p.platform} ${l.digest}`)!].some((d) => d !== p.digest)).length;
}
