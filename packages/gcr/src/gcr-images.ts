import {
  AuthError,
  InputError,
  ListingBound,
  RegistryError,
  checkSignal,
  createLogger,
  isImageDigest,
  nextPagePath,
  type RegistryAccess,
  type RegistryClient,
  type StoredImage,
} from '@prebuilt/core/backend';

const debug = createLogger('gcr');

export interface GcrImagesInput {
  host: string;
  repository: string;
  access: RegistryAccess;
  /** The bytes of tags/list pages read in all before a listing stops (default core's MAX_LISTING_BYTES). */
  maxListingBytes?: number;
}

/** One entry of the `manifest` map Google adds to tags/list (figures as strings, as Google sends them). */
interface GoogleManifestEntry {
  tag?: string[];
  mediaType?: string;
  imageSizeBytes?: string | number;
  timeCreatedMs?: string | number;
  timeUploadedMs?: string | number;
}

const PERMISSIONS_HINT =
  'Listing needs roles/artifactregistry.reader on the repository; deleting needs roles/artifactregistry.repoAdmin (artifactregistry.tags.delete, artifactregistry.versions.delete). Grant them to the identity of your application default credentials.';

const TROUBLE_HINT = 'The registry may be having trouble: try again later, or run with --verbose for details.';

const figure = (value: string | number | undefined): number | undefined => {
  const n = Number(value);
  return value === undefined || value === '' || !Number.isFinite(n) ? undefined : n;
};

/** A Google manifest map entry as a stored image: pushed when uploaded (the created time is the image's own, epoch 0 for reproducible builds). */
function storedImage(digest: string, entry: GoogleManifestEntry): StoredImage {
  const uploaded = figure(entry.timeUploadedMs) || figure(entry.timeCreatedMs);
  const size = figure(entry.imageSizeBytes);
  return {
    digest,
    tags: Array.isArray(entry.tag) ? entry.tag.filter((t): t is string => typeof t === 'string') : [],
    ...(typeof entry.mediaType === 'string' && entry.mediaType ? { mediaType: entry.mediaType } : {}),
    ...(uploaded ? { pushedAt: new Date(uploaded) } : {}),
    ...(size === undefined ? {} : { size }),
  };
}

/** One tags/list page: its manifest map, and the path of the next page; undefined when the repository does not exist. */
async function tagListPage(client: RegistryClient, input: GcrImagesInput, path: string, signal: AbortSignal | undefined) {
  const { host, repository } = input;
  const res = await client.apiRequest({ registry: host, repository }, 'GET', path, { accept: 'application/json', what: 'tag list', ...(signal ? { signal } : {}) });
  if (res.status === 404) return undefined;
  if (res.status < 200 || res.status >= 300) {
    throw new RegistryError(`registry ${host} answered ${res.status} to the tag list of ${repository}${res.detail ? `: ${res.detail}` : ''}`, { registry: host, status: res.status }, { hint: TROUBLE_HINT });
  }
  let data: { manifest?: Record<string, GoogleManifestEntry> };
  try {
    data = JSON.parse(Buffer.from(res.body).toString('utf8')) as typeof data;
  } catch (error) {
    throw new RegistryError(`registry ${host} answered the tag list of ${repository} with something that is not JSON`, { registry: host }, { cause: error });
  }
  if (typeof data.manifest !== 'object' || data.manifest === null) {
    throw new RegistryError(`registry ${host} listed the tags of ${repository} without Google's manifest map: it is not Container Registry or Artifact Registry`, { registry: host }, {
      hint: 'Point METAFLOW_PREBUILT_GCR_HOST at gcr.io (or a regional gcr.io) or <region>-docker.pkg.dev, or use the registry backend that fits your registry.',
    });
  }
  return { manifest: data.manifest, next: nextPagePath(res.headers.get('link'), host), bytes: res.body.length };
}

/** AuthErrors (a 403 on list or delete) say which Google permissions the call needs. */
async function withPermissionsHint<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (!(error instanceof AuthError)) throw error;
    throw new AuthError(error.message, { registry: error.registry, source: error.source }, { cause: error, hint: PERMISSIONS_HINT });
  }
}

async function readImages(input: GcrImagesInput, signal: AbortSignal | undefined): Promise<StoredImage[]> {
  checkSignal(signal);
  const client = await input.access.ownClient(signal);
  const images = new Map<string, StoredImage>();
  // A registry naming a page it already gave (or pages without end) would be asked forever.
  const bound = new ListingBound(`registry ${input.host} listed the tags of ${input.repository}`, input.host, {
    hint: TROUBLE_HINT,
    ...(input.maxListingBytes === undefined ? {} : { maxBytes: input.maxListingBytes }),
  });
  for (let path: string | undefined = `/v2/${input.repository}/tags/list`; path !== undefined; ) {
    bound.page(path);
    const page = await tagListPage(client, input, path, signal);
    bound.read(page?.bytes ?? 0);
    for (const [digest, entry] of Object.entries(page?.manifest ?? {})) {
      const image = storedImage(digest, entry);
      const seen = images.get(digest);
      images.set(digest, seen ? { ...seen, tags: [...new Set([...seen.tags, ...image.tags])] } : image);
    }
    path = page?.next;
  }
  debug('%s/%s holds %d images', input.host, input.repository, images.size);
  return [...images.values()];
}

/**
 * Every image of the repository, from Google's extension of the registry API: `tags/list` answers
 * a `manifest` map (digest → tags, media type, size, upload time), page by page along its Link
 * header. A repository that does not exist (yet) holds no images.
 */
export function listGcrImages(input: GcrImagesInput, signal: AbortSignal | undefined): Promise<StoredImage[]> {
  return withPermissionsHint(() => readImages(input, signal));
}

/** DELETE of one manifest reference (tag or digest); a 404 is an already-gone one. */
async function deleteReference(client: RegistryClient, input: GcrImagesInput, reference: string, signal: AbortSignal | undefined): Promise<void> {
  const { host, repository } = input;
  const path = `/v2/${repository}/manifests/${encodeURIComponent(reference)}`;
  const res = await client.apiRequest({ registry: host, repository }, 'DELETE', path, { actions: 'pull,push', what: 'manifest delete', ...(signal ? { signal } : {}) });
  if (res.status === 404) return debug('%s of %s/%s was already gone', reference, host, repository);
  if (res.status < 200 || res.status >= 300) {
    throw new RegistryError(`registry ${host} refused to delete ${repository}:${reference} (${res.status}${res.detail ? `: ${res.detail}` : ''})`, { registry: host, status: res.status }, { hint: TROUBLE_HINT });
  }
}

/** Those of `tags` that still point at `digest` (a HEAD of each, no listing): a tag moved since the caller's listing is left alone. */
async function tagsStillOn(client: RegistryClient, input: GcrImagesInput, digest: string, tags: readonly string[], signal: AbortSignal | undefined): Promise<string[]> {
  const still: string[] = [];
  for (const tag of tags) {
    const head = await client.headManifest({ registry: input.host, repository: input.repository, tag, digest: undefined, reference: tag }, { verify: false, ...(signal ? { signal } : {}) });
    if (head.exists && head.digest === digest) still.push(tag);
    else debug('tag %s of %s/%s no longer points at %s: left alone', tag, input.host, input.repository, digest);
  }
  return still;
}

/**
 * Deletes one image by digest: each of its tags first (Google refuses to delete a manifest a tag
 * still points at), then the manifest. `listedTags` are its tags as the caller's listing gave them
 * (gc passes them: no listing per image); each is checked to still point at the digest before it
 * is deleted, so a tag moved since the listing is not touched. Without them the tags are read
 * from tags/list. An image already gone is no error.
 */
export function deleteGcrImage(input: GcrImagesInput, digest: string, signal: AbortSignal | undefined, listedTags?: readonly string[]): Promise<void> {
  if (!isImageDigest(digest)) return Promise.reject(new InputError(`'${digest}' is not an image digest (sha256:<64 hex digits>)`));
  return withPermissionsHint(async () => {
    checkSignal(signal);
    const client = await input.access.ownClient(signal);
    const tags = listedTags ? await tagsStillOn(client, input, digest, listedTags, signal) : (await readImages(input, signal)).find((one) => one.digest === digest)?.tags;
    if (!tags) return debug('%s was already gone from %s/%s', digest, input.host, input.repository);
    for (const tag of tags) await deleteReference(client, input, tag, signal);
    await deleteReference(client, input, digest, signal);
    debug('deleted %s (tags %s) from %s/%s', digest, tags.join(', ') || 'none', input.host, input.repository);
  });
}
