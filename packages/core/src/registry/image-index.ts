import type { RegistryCredentials } from '../contracts.js';
import { InputError, RegistryError } from '../errors.js';
import { compareBytes } from '../file-tree.js';
import { parseImageRef } from './image-ref.js';
import { MediaType, isIndexMediaType } from './media-types.js';
import { formatPlatform, parsePlatform, platformMatches, type OciDescriptor } from './platform.js';
import { RegistryClient } from './registry-client.js';


/** One platform's image, already pushed to the repository of the index tag. */
export interface ImageIndexEntry {
  /** Manifest digest of the platform's image. */
  digest: string;
  /** Docker platform, e.g. `linux/amd64`, `linux/arm64`. */
  platform: string;
}

export interface PushImageIndexOptions {
  /** The tag the index is pushed under, e.g. `127.0.0.1:5000/envs:env-…`. */
  imageTag: string;
  images: readonly ImageIndexEntry[];
  /** A client to use (default: a new one with `pushCredentials` and the Docker config). */
  client?: RegistryClient;
  pushCredentials?: RegistryCredentials;
  signal?: AbortSignal;
}

export interface PushedIndex {
  digest: string;
  mediaType: string;
}

export interface ReadImageIndexOptions {
  imageTag: string;
  client?: RegistryClient;
  pushCredentials?: RegistryCredentials;
  signal?: AbortSignal;
}

export interface PublishedIndex {
  digest: string;
  /** The platform images it names (empty when the tag is a single image, not an index). */
  images: ImageIndexEntry[];
}

/**
 * The image index a tag names now, with the platform images it lists; undefined when the registry
 * has no such tag. Lets a deploy tell an index that names other images than the platforms' current
 * ones (a platform image rebuilt since) from one it can reuse.
 */
export async function readImageIndex(options: ReadImageIndexOptions): Promise<PublishedIndex | undefined> {
  const client = options.client ?? new RegistryClient(options.pushCredentials ? { credentials: [options.pushCredentials] } : {});
  let result: Awaited<ReturnType<RegistryClient['getManifest']>>;
  try {
    result = await client.getManifest(options.imageTag, options.signal ? { signal: options.signal } : {});
  } catch (error) {
    if (error instanceof RegistryError && error.status === 404) return undefined;
    throw error;
  }
  if (!isIndexMediaType(result.mediaType)) return { digest: result.digest, images: [] };
  const manifests = (result.manifest as { manifests?: OciDescriptor[] }).manifests ?? [];
  return {
    digest: result.digest,
    images: manifests.flatMap((m) => (m.platform ? [{ digest: m.digest, platform: formatPlatform(m.platform) }] : [])),
  };
}

/**
 * Publishes a multi-platform image: an image index (OCI) — or a Docker manifest list when every
 * image is a Docker v2 manifest — naming each platform's manifest, pushed under `imageTag`. Each
 * manifest is checked (HEAD by digest in the tag's repository) for its media type and size.
 * Entries are sorted by platform, so the same images give the same index digest.
 */
export async function pushImageIndex(options: PushImageIndexOptions): Promise<PushedIndex> {
  const { imageTag, images, signal } = options;
  if (images.length === 0) throw new InputError(`an image index for ${imageTag} needs at least one image`);
  images.forEach((image, i) => {
    const platform = parsePlatform(image.platform);
    const twin = images.slice(0, i).find((earlier) => platformMatches(platform, earlier.platform));
    if (twin) throw new InputError(`the image index for ${imageTag} names platform ${image.platform} twice (also as ${twin.platform})`);
  });
  const client = options.client ?? new RegistryClient(options.pushCredentials ? { credentials: [options.pushCredentials] } : {});
  const target = parseImageRef(imageTag);
  const signalOpt = signal ? { signal } : {};
  const descriptors: OciDescriptor[] = [];
  for (const image of [...images].sort((a, b) => compareBytes(a.platform, b.platform))) {
    const head = await client.headManifest({ ...target, reference: image.digest }, signalOpt);
    if (!head.exists) {
      throw new RegistryError(`the image ${image.digest} for ${image.platform} is not in ${target.registry}/${target.repository}; push it there before its index`, { registry: target.registry });
    }
    if (isIndexMediaType(head.mediaType)) {
      throw new InputError(`the image ${image.digest} for ${image.platform} is itself an image index, which an image index cannot name`, {
        hint: 'Build single-platform images (a builder that adds attestations makes an index of each: with buildx, --provenance=false).',
      });
    }
    const size = head.size ?? (await client.getManifest({ ...target, reference: image.digest }, signalOpt)).size;
    descriptors.push({ mediaType: head.mediaType, digest: image.digest, size, platform: parsePlatform(image.platform) });
  }
  const docker = descriptors.every((d) => d.mediaType === MediaType.dockerManifest);
  const mediaType = docker ? MediaType.dockerManifestList : MediaType.ociIndex;
  const index = {
    schemaVersion: 2,
    mediaType,
    manifests: descriptors.map((d) => ({ mediaType: d.mediaType, digest: d.digest, size: d.size, platform: d.platform })),
  };
  const digest = await client.putManifest(target, Buffer.from(JSON.stringify(index)), mediaType, signalOpt);
  return { digest, mediaType };
}
