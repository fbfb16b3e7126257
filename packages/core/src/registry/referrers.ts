import { RegistryError } from '../errors.js';
import { createLogger } from '../logger.js';
import { sha256Digest } from './digest.js';
import { formatImageRef, parseImageRef, type ImageRef } from './image-ref.js';
import { MediaType } from './media-types.js';
import type { ImageIndex, OciDescriptor } from './platform.js';
import type { RegistryClient, RequestOptions } from './registry-client.js';

const log = createLogger('registry:referrers');

/** The OCI empty descriptor's blob (`{}`): the config of an artifact that has none. */
const EMPTY_BLOB = Buffer.from('{}');
export const EMPTY_CONFIG: OciDescriptor = {
  mediaType: 'application/vnd.oci.empty.v1+json',
  digest: sha256Digest(EMPTY_BLOB),
  size: EMPTY_BLOB.length,
};

/** A referrer as an image index lists it: the artifact manifest's descriptor with its `artifactType`. */
export interface ReferrerDescriptor extends OciDescriptor {
  artifactType?: string;
}

export interface PushReferrerInput {
  /** The repository (`registry/name`, a tag or digest is ignored) that holds the subject. */
  repository: string | ImageRef;
  /** The image manifest or index the artifact refers to. */
  subject: OciDescriptor;
  artifactType: string;
  /** The artifact's one layer. */
  blob: { bytes: Uint8Array; mediaType: string };
}

export interface PushReferrerResult {
  /** Digest of the artifact manifest. */
  digest: string;
  /** How a reader finds it: the registry's referrers API, or the `sha256-<hex>` tag prebuilt maintains. */
  via: 'referrers-api' | 'tag-scheme';
  descriptor: ReferrerDescriptor;
}

function repositoryOf(ref: string | ImageRef): ImageRef {
  const image = typeof ref === 'string' ? parseImageRef(ref) : ref;
  return { ...image, reference: 'latest' };
}

/** The fallback tag of the OCI referrers tag scheme: `sha256-<hex>` for subject `sha256:<hex>`. */
export function referrersTag(subjectDigest: string): string {
  return subjectDigest.replace(':', '-');
}

function at(repository: ImageRef, reference: string): string {
  return `${repository.registry}/${repository.repository}${reference.includes(':') ? '@' : ':'}${reference}`;
}

/**
 * Pushes an OCI artifact (`artifactType`, the empty config, one layer, `subject`) by digest. Where
 * the registry processes `subject` (it answers with `OCI-Subject`), the referrers API lists it; where
 * it does not (distribution 2.8), the artifact is added to the index under the `sha256-<hex>` tag,
 * merged with the referrers already there.
 */
export async function pushReferrer(client: RegistryClient, input: PushReferrerInput, options: RequestOptions = {}): Promise<PushReferrerResult> {
  const repository = repositoryOf(input.repository);
  const blobDigest = sha256Digest(input.blob.bytes);
  await client.uploadBlob(repository, EMPTY_CONFIG.digest, EMPTY_BLOB, options);
  await client.uploadBlob(repository, blobDigest, input.blob.bytes, options);
  const manifest = {
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    artifactType: input.artifactType,
    config: EMPTY_CONFIG,
    layers: [{ mediaType: input.blob.mediaType, digest: blobDigest, size: input.blob.bytes.length }],
    subject: { mediaType: input.subject.mediaType, digest: input.subject.digest, size: input.subject.size },
  };
  const bytes = Buffer.from(JSON.stringify(manifest));
  const digest = sha256Digest(bytes);
  const put = await client.putManifestWithSubject(at(repository, digest), bytes, MediaType.ociManifest, options);
  const descriptor: ReferrerDescriptor = { mediaType: MediaType.ociManifest, digest, size: bytes.length, artifactType: input.artifactType };
  if (put.subjectAccepted) return { digest, via: 'referrers-api', descriptor };
  await addToReferrersTag(client, repository, input.subject.digest, descriptor, options);
  return { digest, via: 'tag-scheme', descriptor };
}

/** Reads the `sha256-<hex>` referrers index (none yet: empty) and puts it back with `descriptor` added. */
async function addToReferrersTag(client: RegistryClient, repository: ImageRef, subject: string, descriptor: ReferrerDescriptor, options: RequestOptions): Promise<void> {
  const existing = await readReferrersTag(client, repository, subject, options);
  if (existing.some((entry) => entry.digest === descriptor.digest)) return;
  const index: ImageIndex = { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [...existing, descriptor] };
  log('referrers tag %s of %s: %d entries', referrersTag(subject), formatImageRef(repository), index.manifests.length);
  await client.putManifest(at(repository, referrersTag(subject)), Buffer.from(JSON.stringify(index)), MediaType.ociIndex, options);
}

/** The `sha256-<hex>` referrers index (none: empty); a HEAD only when the manifest cache holds the index it names. */
async function readReferrersTag(client: RegistryClient, repository: ImageRef, subject: string, options: RequestOptions): Promise<ReferrerDescriptor[]> {
  const found = await client.checkManifest(at(repository, referrersTag(subject)), options);
  if (!found.exists) return [];
  if (!('manifests' in found.result.manifest)) throw new RegistryError(`${at(repository, referrersTag(subject))} is not an image index of referrers`, { registry: repository.registry });
  return found.result.manifest.manifests;
}

/**
 * The referrers of `subject` (optionally only those of `artifactType`): through the referrers API
 * where the registry has it, else from the `sha256-<hex>` tag.
 */
export async function listReferrers(client: RegistryClient, repository: string | ImageRef, subject: string, options: RequestOptions & { artifactType?: string } = {}): Promise<ReferrerDescriptor[]> {
  const repo = repositoryOf(repository);
  const api = await client.getReferrers(repo, subject, options);
  const all: ReferrerDescriptor[] = api.supported ? api.index.manifests : await readReferrersTag(client, repo, subject, options);
  return options.artifactType ? all.filter((entry) => entry.artifactType === options.artifactType) : all;
}
