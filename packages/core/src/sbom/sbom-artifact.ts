import { InputError, RegistryError } from '../errors.js';
import { checkableDigest } from '../registry/digest.js';
import { formatImageRef, parseImageRef } from '../registry/image-ref.js';
import type { ImageManifest } from '../registry/platform.js';
import { listReferrers, pushReferrer, type ReferrerDescriptor } from '../registry/referrers.js';
import type { RegistryClient, RequestOptions } from '../registry/registry-client.js';
import { SPDX_JSON_MEDIA_TYPE, type Sbom } from './spdx-document.js';

export interface ImageSbomRef {
  /** Digest of the SBOM artifact's manifest (what refers to the image). */
  manifest: string;
  /** Digest of the SPDX document itself: the same lock gives the same one. */
  document: string;
  via: 'referrers-api' | 'tag-scheme' | 'present';
}

/** The image's manifest (or index) descriptor: what an SBOM's `subject` names. */
async function subjectOf(client: RegistryClient, image: string, options: RequestOptions): Promise<{ mediaType: string; digest: string; size: number }> {
  const found = await client.getManifest(image, options);
  return { mediaType: found.mediaType, digest: found.digest, size: found.size };
}

/** The SPDX referrers of an image (by tag or digest): through the referrers API, else the tag scheme. */
export async function findImageSboms(client: RegistryClient, image: string, options: RequestOptions & { digest?: string } = {}): Promise<ReferrerDescriptor[]> {
  const digest = options.digest ?? (await subjectOf(client, image, options)).digest;
  return listReferrers(client, image, digest, { ...options, artifactType: SPDX_JSON_MEDIA_TYPE });
}

/**
 * Pushes `sbom` as an artifact that refers to `image` (its tag or `tag@digest`), unless an SBOM with
 * the same document is already there (one referrers lookup and one small GET per existing SBOM).
 */
export async function pushImageSbom(client: RegistryClient, image: string, sbom: Sbom, options: RequestOptions = {}): Promise<ImageSbomRef> {
  const subject = await subjectOf(client, image, options);
  for (const existing of await findImageSboms(client, image, { ...options, digest: subject.digest })) {
    const manifest = await readArtifactManifest(client, image, existing.digest, options);
    if (manifest.layers[0]?.digest === sbom.digest) return { manifest: existing.digest, document: sbom.digest, via: 'present' };
  }
  const pushed = await pushReferrer(client, { repository: image, subject, artifactType: SPDX_JSON_MEDIA_TYPE, blob: { bytes: sbom.bytes, mediaType: SPDX_JSON_MEDIA_TYPE } }, options);
  return { manifest: pushed.digest, document: sbom.digest, via: pushed.via };
}

async function readArtifactManifest(client: RegistryClient, image: string, digest: string, options: RequestOptions): Promise<ImageManifest> {
  const ref = parseImageRef(image);
  // The registry's listing names it: only a sha256 digest binds what is read to what was listed.
  checkableDigest(digest, `the SBOM of ${image}`, ref.registry);
  const found = await client.getManifest({ ...ref, reference: digest }, options);
  if (!('layers' in found.manifest)) throw new RegistryError(`the SBOM ${digest} of ${image} is not an image manifest`, { registry: ref.registry });
  return found.manifest;
}

/** The largest SPDX document read back (64 MiB): prebuilt's are a few MiB for thousands of packages. */
export const MAX_SBOM_BYTES = 64 * 1024 * 1024;

/**
 * Reads back the SPDX document that refers to `image`: the last SBOM the registry lists (a re-push
 * after a licence lookup changed appends one). No SBOM is an InputError that names the fix; one
 * whose manifest states over {@link MAX_SBOM_BYTES} is a RegistryError, not read.
 */
export async function readImageSbom(client: RegistryClient, image: string, options: RequestOptions = {}): Promise<{ ref: ImageSbomRef; document: unknown; bytes: Uint8Array }> {
  const sboms = await findImageSboms(client, image, options);
  const last = sboms.at(-1);
  if (!last) {
    throw new InputError(`image ${image} has no SBOM in the registry (no SPDX referrer through the referrers API or the sha256-<digest> referrers tag)`, {
      hint: 'Run `prebuilt build` for the flow again with SBOMs on (METAFLOW_PREBUILT_SBOM unset or 1; 0 pushes none): it pushes the SBOM of every image that lacks one.',
    });
  }
  const manifest = await readArtifactManifest(client, image, last.digest, options);
  const layer = manifest.layers.find((l) => l.mediaType === SPDX_JSON_MEDIA_TYPE);
  if (!layer) throw new RegistryError(`the SBOM ${last.digest} of ${image} has no ${SPDX_JSON_MEDIA_TYPE} layer`, { registry: parseImageRef(image).registry });
  // The size is the registry's word: an SBOM read whole is held to a size an SBOM can have.
  if (!(Number.isSafeInteger(layer.size) && layer.size >= 0 && layer.size <= MAX_SBOM_BYTES)) {
    throw new RegistryError(`the SBOM ${layer.digest} of ${image} states ${layer.size} bytes in its manifest (an SBOM is read up to ${MAX_SBOM_BYTES / (1024 * 1024)} MiB); it was not read`, { registry: parseImageRef(image).registry }, {
      hint: 'prebuilt pushes SBOMs of a few MiB at most: this artifact was put there by something else, or the registry mangled its manifest. Delete it and run `prebuilt build` again to push the SBOM anew.',
    });
  }
  const bytes = await client.getBlob(image, layer.digest, { ...options, size: layer.size });
  try {
    return { ref: { manifest: last.digest, document: layer.digest, via: 'present' }, document: JSON.parse(Buffer.from(bytes).toString('utf8')) as unknown, bytes };
  } catch (error) {
    throw new RegistryError(`the SBOM ${layer.digest} of ${formatImageRef(parseImageRef(image))} is not JSON`, { registry: parseImageRef(image).registry }, { cause: error });
  }
}
