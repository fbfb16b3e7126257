/**
 * Every image of one repository over the plain distribution API, for `prebuilt gc`: the tags
 * (`tags/list`), each tag's manifest, and what is referenced only by digest where it can be found —
 * an index's platform images, the referrers the referrers API lists (or the `sha256-<hex>`
 * referrers index lists, which is itself tagged).
 */
import type { StoredImage } from '../contracts.js';
import { mapLimit } from '../deploy/pool.js';
import { RegistryError } from '../errors.js';
import { createLogger } from '../logger.js';
import { checkableDigest } from './digest.js';
import { formatBytes } from '../net/net-fetch.js';
import { parseImageRef, type ImageRef } from './image-ref.js';
import { isIndexMediaType } from './media-types.js';
import type { ImageIndex, ImageManifest } from './platform.js';
import { MAX_LISTING_BYTES } from './listing-bound.js';
import type { ManifestResult, RegistryClient, RequestOptions } from './registry-client.js';

const log = createLogger('registry:list');

/** Manifests read at once. */
const READS_AT_ONCE = 6;

/**
 * The levels of manifests a listing follows below the tags: a tagged index, its platform images,
 * their referrers (an SBOM), a referrer's own children take a few; a chain deeper than this is a
 * registry making manifests up as it is asked.
 */
export const MAX_LISTING_DEPTH = 32;

/**
 * The manifests one listing reads at most (tags and what they lead to): a repository of env images
 * holds an image or index per env and platform, and their SBOMs — some thousands at most. The byte
 * bound alone would let a million tags naming one small manifest be read one request each (hours
 * of gc); past this bound the listing stops before it reads them.
 */
export const MAX_LISTING_MANIFESTS = 100_000;

type ArtifactManifest = ImageManifest & { artifactType?: string; subject?: { digest: string } };

/** One manifest as gc sees it, before its tags are attached. */
function storedImage(read: ManifestResult): StoredImage {
  const manifest = read.manifest as ImageIndex | ArtifactManifest;
  const own = { digest: read.digest, size: read.size };
  const image: StoredImage = { digest: read.digest, tags: [], mediaType: read.mediaType };
  if (isIndexMediaType(read.mediaType)) {
    const index = manifest as ImageIndex;
    // Each child is read by its digest next: one that is not a sha256 digest would be read unverified (a tag, a path).
    image.children = index.manifests.map((entry) => checkableDigest(entry.digest, `a manifest in the image index ${read.digest} of ${read.ref.registry}/${read.ref.repository}`, read.ref.registry));
    image.blobs = [own];
  } else {
    const one = manifest as ArtifactManifest;
    image.blobs = [own, one.config, ...one.layers].map((blob) => ({ digest: blob.digest, size: blob.size }));
    if (one.subject?.digest) image.subject = one.subject.digest;
    const artifactType = one.artifactType ?? (one.subject ? one.config.mediaType : undefined);
    if (artifactType) image.artifactType = artifactType;
  }
  image.size = image.blobs.reduce((sum, blob) => sum + (Number.isFinite(blob.size) ? blob.size : 0), 0);
  return image;
}

/**
 * The options of a listing: `maxBytes` bounds the manifest bytes it reads in all (default
 * {@link MAX_LISTING_BYTES}), `maxManifests` the manifests it reads (default {@link MAX_LISTING_MANIFESTS}).
 */
export type ListingOptions = RequestOptions & { maxBytes?: number; maxManifests?: number };

/**
 * The manifest bytes a listing has read, against its bound. The referrers API is not
 * content-addressed: a hostile registry can answer each referrers request with a manifest made up
 * on the spot whose referrers name the next one, so without a bound a listing (and `prebuilt gc`)
 * would read and hold manifests for ever.
 */
class ListingBudget {
  bytes = 0;
  manifests = 0;
  depth = 0;
  exceeded: RegistryError | undefined;
  constructor(
    readonly repo: ImageRef,
    readonly max: number,
    readonly maxManifests: number,
  ) {}

  /** Before `count` more manifests are read: they do not take the manifests read past {@link maxManifests}. */
  reserve(count: number): void {
    if (this.manifests + count <= this.maxManifests) return;
    throw new RegistryError(`registry ${this.repo.registry} lists more than ${this.maxManifests} manifests to read in ${this.repo.repository} (${this.manifests} read, ${count} more named); stopped`, { registry: this.repo.registry }, {
      hint: `A repository of env images holds far fewer (per env an image or index, its platform images and their SBOMs); prebuilt gc reads at most ${this.maxManifests} manifests of one repository, one request each. Keep env images in a repository of their own (METAFLOW_PREBUILT_IMAGE_NAMESPACE), or delete the tags that are not prebuilt's with the registry's own tools, then run prebuilt gc again.`,
    });
  }

  /** One level further down (the children and referrers of what the last level found). */
  descend(): void {
    this.depth += 1;
    if (this.depth > MAX_LISTING_DEPTH) {
      throw new RegistryError(`registry ${this.repo.registry} listed manifests in ${this.repo.repository} nested more than ${MAX_LISTING_DEPTH} levels deep through indexes and referrers (${this.manifests} manifests); stopped`, { registry: this.repo.registry }, {
        hint: 'Env images nest a few levels (an index, its platform images, their SBOMs): the registry (or a proxy in front of it) keeps naming new manifests through its referrers API. Check it before running prebuilt gc again.',
      });
    }
  }

  /** Counts one manifest read (or, with `manifests: 0`, the digests a referrers answer names, held until read); past the bound, the RegistryError every later read throws too. */
  add(size: number, manifests = 1): void {
    this.bytes += size;
    this.manifests += manifests;
    if (this.bytes > this.max) {
      this.exceeded ??= new RegistryError(`registry ${this.repo.registry} listed more than ${formatBytes(this.max)} of manifests in ${this.repo.repository} (${this.manifests} manifests); stopped`, { registry: this.repo.registry }, {
        hint: 'A repository of env images takes far less: the registry (or a proxy in front of it) keeps naming new manifests through its referrers API or indexes. Check it before running prebuilt gc again.',
      });
      throw this.exceeded;
    }
  }
}

/**
 * Reads `references` (tags or digests) `READS_AT_ONCE` at a time, each counted against `budget` (and
 * all of them reserved first: more than its manifest bound stops the listing before one is read); a
 * digest that is gone (404) is skipped.
 */
async function readManifests(client: RegistryClient, repo: ImageRef, references: readonly string[], options: RequestOptions, budget: ListingBudget): Promise<Map<string, ManifestResult>> {
  budget.reserve(references.length);
  const found = new Map<string, ManifestResult>();
  await mapLimit(references, READS_AT_ONCE, async (reference) => {
    // No read starts once any of them found the bound exceeded.
    if (budget.exceeded) return;
    try {
      const read = await client.getManifest({ ...repo, tag: undefined, digest: undefined, reference }, options);
      budget.add(read.size);
      found.set(reference, read);
    } catch (error) {
      if (error === budget.exceeded) throw error;
      // A tag deleted, or a child an index lists but the repository lacks, while we read.
      if (error instanceof RegistryError && error.status === 404) log('%s of %s is gone', reference, repo.repository);
      else throw error;
    }
  });
  return found;
}

/**
 * The referrers of `subjects` through the referrers API; `supported: false` as soon as the registry
 * shows it lacks the API (distribution 2.8: there the `sha256-<hex>` tags list them).
 */
async function referrerDigests(client: RegistryClient, repo: ImageRef, subjects: readonly string[], options: RequestOptions, budget: ListingBudget): Promise<{ supported: boolean; digests: string[] }> {
  const digests: string[] = [];
  for (const subject of subjects) {
    const answer = await client.getReferrers(repo, subject, options);
    if (!answer.supported) return { supported: false, digests };
    const named = answer.index.manifests.map((entry) => String(entry.digest));
    budget.add(named.reduce((sum, digest) => sum + digest.length, 0), 0);
    digests.push(...named);
  }
  return { supported: true, digests };
}

/**
 * The images of `repository` (`host/name`): one per digest, with the tags that name it, its media
 * type, children (an index), subject and artifact type (an artifact), and blobs with sizes.
 * Manifests named only by digest are found through the indexes and referrers that name them.
 */
export async function listRepositoryImages(client: RegistryClient, repository: string, options: ListingOptions = {}): Promise<StoredImage[]> {
  const repo: ImageRef = { ...parseImageRef(repository), reference: 'latest' };
  const budget = new ListingBudget(repo, options.maxBytes ?? MAX_LISTING_BYTES, options.maxManifests ?? MAX_LISTING_MANIFESTS);
  const images = new Map<string, StoredImage>();
  const add = (reads: Map<string, ManifestResult>, tagged: boolean): StoredImage[] => {
    const added: StoredImage[] = [];
    for (const [reference, read] of reads) {
      let image = images.get(read.digest);
      if (!image) {
        images.set(read.digest, (image = storedImage(read)));
        added.push(image);
      }
      if (tagged) image.tags.push(reference);
    }
    return added;
  };
  const tags = await client.listTags(repo, options);
  let fresh = add(await readManifests(client, repo, tags, options, budget), true);
  let referrersApi = true;
  while (fresh.length > 0) {
    budget.descend();
    const wanted = new Set(fresh.flatMap((image) => image.children ?? []));
    if (referrersApi) {
      const subjects = fresh.filter((image) => !image.subject).map((image) => image.digest);
      const referrers = await referrerDigests(client, repo, subjects, options, budget);
      referrersApi = referrers.supported;
      for (const digest of referrers.digests) wanted.add(digest);
    }
    const unread = [...wanted].filter((digest) => !images.has(digest));
    fresh = add(await readManifests(client, repo, unread, options, budget), false);
  }
  for (const image of images.values()) image.tags.sort();
  log('%s: %d tags, %d manifests', repository, tags.length, images.size);
  return [...images.values()];
}

/**
 * A registry's own listing (ECR's DescribeImages, Google's tags/list, Docker Hub's API) completed
 * from the manifests over the distribution API, for gc to place what it lists: an entry without
 * blobs is read (its children, subject, artifact type and blobs added; the listing's tags, push time
 * and size kept), and the manifests an index names that the listing lacks (Docker Hub lists tags
 * only) are added. An entry whose manifest is gone stays as listed, and gc keeps what it cannot place.
 */
export async function completeStoredImages(client: RegistryClient, repository: string, listed: readonly StoredImage[], options: ListingOptions = {}): Promise<StoredImage[]> {
  const repo: ImageRef = { ...parseImageRef(repository), reference: 'latest' };
  const budget = new ListingBudget(repo, options.maxBytes ?? MAX_LISTING_BYTES, options.maxManifests ?? MAX_LISTING_MANIFESTS);
  const images = new Map(listed.map((image) => [image.digest, { ...image, tags: [...image.tags] }]));
  const unread = listed.filter((image) => !image.blobs).map((image) => image.digest);
  for (const [digest, read] of await readManifests(client, repo, unread, options, budget)) {
    const image = images.get(digest)!;
    const described = storedImage(read);
    images.set(digest, { ...described, ...image, ...manifestFacts(described), size: image.size ?? described.size });
  }
  let fresh = [...images.values()];
  while (fresh.length > 0) {
    budget.descend();
    const children = [...new Set(fresh.flatMap((image) => image.children ?? []))].filter((digest) => !images.has(digest));
    fresh = [...(await readManifests(client, repo, children, options, budget)).values()].map(storedImage);
    for (const image of fresh) images.set(image.digest, image);
  }
  log('%s: %d listed, %d with their children', repository, listed.length, images.size);
  return [...images.values()];
}

/** What only the manifest says of an image. */
function manifestFacts(image: StoredImage): Partial<StoredImage> {
  const { children, subject, artifactType, blobs } = image;
  return { ...(children ? { children } : {}), ...(subject ? { subject } : {}), ...(artifactType ? { artifactType } : {}), ...(blobs ? { blobs } : {}) };
}
