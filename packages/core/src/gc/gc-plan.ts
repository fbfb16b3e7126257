/**
 * `prebuilt gc`'s plan: which images of the env repository are kept and why, which go and why, in
 * which order they are deleted and how many bytes that may reclaim. Pure: the listing and the keep
 * sources in, the plan out.
 *
 * Rules: an image is kept when a keep source names it (by digest, or by tag in the env repository),
 * when it was pushed within `keepDays` (an unknown push time counts as recent), when it is younger
 * than `minAgeMs` — pushed, or used by a build on this machine (`usedAt`), within it: a build running
 * now may have just found it and be about to name it in its image map — or when it is protected
 * (the base image). Keeping goes down, never up: a kept index keeps every image it lists,
 * a kept image keeps its referrers (SBOM artifacts, the `sha256-<hex>` referrers index). A kept
 * platform image does not keep its index, and an index that goes never takes an image a kept
 * index (or anything else) keeps. An untagged image the listing cannot place (an index whose
 * children it does not say, an image whose manifest it did not read) is kept.
 */
import type { StoredImage } from '../contracts.js';
import { isIndexMediaType } from '../registry/media-types.js';
import { imageRefTarget, refNamesImage } from './image-refs.js';

export type GcKind = 'image' | 'index' | 'sbom' | 'artifact' | 'referrers';

/** A reference a keep source names, and why it is kept (`kept map images.json`, `WorkflowTemplate ns/name`…). */
export interface GcKeepRef {
  ref: string;
  reason: string;
}

export interface GcPlanInput {
  images: readonly StoredImage[];
  /** The env repository's path (`team/envs`, no host): tags are matched in it. */
  repository: string;
  keep: readonly GcKeepRef[];
  /** Keep images pushed within this many days. */
  keepDays?: number;
  /**
   * Never delete an image pushed (where the registry says when) or used by a build on this machine
   * (`usedAt`) less than this many milliseconds ago. Unlike `keepDays`, an unknown push time does
   * not keep an image: `usedAt` is what protects the builds of a registry without push times.
   */
  minAgeMs?: number;
  /** When a build on this machine last used each tag of the env repository (checked, reused or pushed it). */
  usedAt?: ReadonlyMap<string, Date>;
  /** Digests never deleted (the base image's), with why. */
  protect?: readonly GcKeepRef[];
  now?: Date;
}

export interface GcItem {
  digest: string;
  tags: string[];
  kind: GcKind;
  mediaType?: string;
  size?: number;
  pushedAt?: string;
  action: 'keep' | 'delete';
  reason: string;
}

export interface GcPlan {
  /** Every image of the repository: kept ones first, then the deletions in the order they run. */
  items: GcItem[];
  /** The deletions in order: referrers indexes and artifacts, then indexes, then images — none leaves an index or referrer pointing at nothing. */
  deletions: GcItem[];
  kept: GcItem[];
  /** Bytes of the deleted images' blobs no kept image shares (blobs other repositories share stay too). */
  reclaimedBytes: number;
  /** Some deleted image's blobs are unknown: `reclaimedBytes` is a lower bound. */
  reclaimedPartial: boolean;
  /** The registry records no push time for some image (only matters with `keepDays`). */
  pushTimeUnknown: boolean;
}

const REFERRERS_TAG = /^sha256-([a-f0-9]{64})$/;
const DAY_MS = 24 * 60 * 60 * 1000;

/** A duration as gc's reasons say it: `40s`, `12m`, `3h`, `2d`. */
export function ageText(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  for (const [unit, size] of [['d', 86_400], ['h', 3600], ['m', 60]] as const) if (s >= size && s % size === 0) return `${s / size}${unit}`;
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  if (s < 172_800) return `${Math.round(s / 3600)}h`;
  return `${Math.round(s / 86_400)}d`;
}

/** Why an image younger than the minimum age is kept, if it is. */
function youngReason(image: StoredImage, input: GcPlanInput, now: number): string | undefined {
  const minAge = input.minAgeMs;
  if (!minAge) return undefined;
  const used = image.tags.map((tag) => input.usedAt?.get(tag)?.getTime() ?? -Infinity).reduce((a, b) => Math.max(a, b), -Infinity);
  if (now - used < minAge) return `used by a build on this machine ${ageText(now - used)} ago (minimum age ${ageText(minAge)})`;
  if (image.pushedAt && now - image.pushedAt.getTime() < minAge) return `pushed ${ageText(now - image.pushedAt.getTime())} ago (minimum age ${ageText(minAge)})`;
  return undefined;
}

export function shortDigest(digest: string): string {
  return digest.replace(/^sha256:/, '').slice(0, 12);
}

/** The subject a referrers index (`sha256-<hex>` tag) stands for, if `image` is one. */
function referrersSubject(image: StoredImage): string | undefined {
  for (const tag of image.tags) {
    const match = REFERRERS_TAG.exec(tag);
    if (match) return `sha256:${match[1]}`;
  }
  return undefined;
}

export function gcKind(image: StoredImage): GcKind {
  const index = image.children !== undefined || isIndexMediaType(image.mediaType);
  if (index && referrersSubject(image)) return 'referrers';
  if (image.subject) return /spdx/i.test(image.artifactType ?? '') ? 'sbom' : 'artifact';
  return index ? 'index' : 'image';
}

/** The images kept on their own account (not through another kept image), with the first reason found. */
function rootReasons(input: GcPlanInput): Map<string, string> {
  const roots = new Map<string, string>();
  const keep = (digest: string, reason: string): void => void (roots.has(digest) || roots.set(digest, reason));
  for (const one of input.protect ?? []) keep(one.ref, one.reason);
  // One lookup a tag, whatever the number of tags; refNamesImage (gc's rule, shared with the run's
  // last check) then says whether the reference names that image of the env repository.
  const byTag = new Map(input.images.flatMap((image) => image.tags.map((tag) => [tag, image] as const)));
  for (const one of input.keep) {
    const target = imageRefTarget(one.ref);
    // A digest is kept even when the listing lacks it: its referrers that the listing has stay.
    if (target && 'digest' in target) keep(target.digest, one.reason);
    else if (target) {
      const image = byTag.get(target.tag);
      if (image && refNamesImage(one.ref, image, input.repository)) keep(image.digest, one.reason);
    }
  }
  const now = (input.now ?? new Date()).getTime();
  for (const image of input.images) {
    const young = youngReason(image, input, now);
    if (young) keep(image.digest, young);
  }
  if (input.keepDays !== undefined) {
    for (const image of input.images) {
      if (!image.pushedAt) keep(image.digest, `push time unknown (--keep-days ${input.keepDays} keeps it)`);
      else if (now - image.pushedAt.getTime() <= input.keepDays * DAY_MS) keep(image.digest, `pushed within ${input.keepDays} days`);
    }
  }
  // An untagged image may be a platform image or a referrer the listing cannot place: kept unless
  // every index says what it lists and the image's own manifest was read (so it has no subject).
  const indexesKnown = !input.images.some((image) => isIndexMediaType(image.mediaType) && !image.children);
  for (const image of input.images) {
    if (image.tags.length === 0 && !image.subject && (!indexesKnown || !image.blobs)) keep(image.digest, "untagged, and the registry's listing does not say what refers to it");
  }
  return roots;
}

/** Everything the roots keep: their children and referrers, to any depth, each with why. */
function closure(images: readonly StoredImage[], roots: Map<string, string>): Map<string, string> {
  const kept = new Map(roots);
  const byDigest = new Map(images.map((image) => [image.digest, image]));
  const referrers = new Map<string, StoredImage[]>();
  for (const image of images) {
    const subject = image.subject ?? referrersSubject(image);
    if (subject) referrers.set(subject, [...(referrers.get(subject) ?? []), image]);
  }
  const queue = [...roots.keys()];
  while (queue.length > 0) {
    const digest = queue.shift()!;
    const image = byDigest.get(digest);
    const follow = [
      ...(image?.children ?? []).map((child) => [child, `listed by kept ${image ? gcKind(image) : 'index'} ${shortDigest(digest)}`] as const),
      ...(referrers.get(digest) ?? []).map((ref) => [ref.digest, `${gcKind(ref) === 'referrers' ? 'referrers index' : gcKind(ref)} of kept ${image ? gcKind(image) : 'image'} ${shortDigest(digest)}`] as const),
    ];
    for (const [next, reason] of follow) {
      if (kept.has(next) || !byDigest.has(next)) continue;
      kept.set(next, reason);
      queue.push(next);
    }
  }
  return kept;
}

/** Why an image that nothing keeps goes. */
function deleteReason(image: StoredImage, images: readonly StoredImage[], keepDays: number | undefined): string {
  const present = (digest: string): boolean => images.some((other) => other.digest === digest);
  const subject = image.subject ?? referrersSubject(image);
  if (subject) return present(subject) ? `refers to deleted image ${shortDigest(subject)}` : `refers to ${shortDigest(subject)}, which is no longer in the registry`;
  const parent = images.find((other) => other.children?.includes(image.digest));
  if (parent && image.tags.length === 0) return `platform image of deleted index ${shortDigest(parent.digest)}`;
  const age = keepDays !== undefined && image.pushedAt ? `, pushed before the last ${keepDays} days` : '';
  return image.tags.length === 0 ? `untagged, nothing refers to it${age}` : `no keep source names it${age}`;
}

const DELETE_RANK: Record<GcKind, number> = { referrers: 0, sbom: 1, artifact: 1, index: 2, image: 3 };

function item(image: StoredImage, action: GcItem['action'], reason: string): GcItem {
  return {
    digest: image.digest,
    tags: [...image.tags],
    kind: gcKind(image),
    ...(image.mediaType ? { mediaType: image.mediaType } : {}),
    ...(image.size !== undefined ? { size: image.size } : {}),
    ...(image.pushedAt ? { pushedAt: image.pushedAt.toISOString() } : {}),
    action,
    reason,
  };
}

/** Bytes the deleted images' blobs take that no kept image shares, each blob counted once. */
function reclaimed(images: readonly StoredImage[], kept: ReadonlySet<string>): { bytes: number; partial: boolean } {
  const keptBlobs = new Set(images.filter((image) => kept.has(image.digest)).flatMap((image) => (image.blobs ?? []).map((blob) => blob.digest)));
  const counted = new Set<string>();
  let bytes = 0;
  let partial = false;
  for (const image of images) {
    if (kept.has(image.digest)) continue;
    if (!image.blobs) partial = true;
    for (const blob of image.blobs ?? []) {
      if (keptBlobs.has(blob.digest) || counted.has(blob.digest)) continue;
      counted.add(blob.digest);
      bytes += Number.isFinite(blob.size) ? blob.size : 0;
    }
  }
  return { bytes, partial };
}

/** The plan: each image kept or deleted with its reason, the deletion order and the bytes reclaimed. */
export function planGc(input: GcPlanInput): GcPlan {
  const keptReasons = closure(input.images, rootReasons(input));
  const kept = input.images.filter((image) => keptReasons.has(image.digest)).map((image) => item(image, 'keep', keptReasons.get(image.digest)!));
  const deletions = input.images
    .filter((image) => !keptReasons.has(image.digest))
    .map((image) => item(image, 'delete', deleteReason(image, input.images, input.keepDays)))
    .sort((a, b) => DELETE_RANK[a.kind] - DELETE_RANK[b.kind] || a.digest.localeCompare(b.digest));
  const { bytes, partial } = reclaimed(input.images, new Set(keptReasons.keys()));
  return {
    items: [...kept, ...deletions],
    deletions,
    kept,
    reclaimedBytes: bytes,
    reclaimedPartial: partial,
    pushTimeUnknown: input.images.some((image) => !image.pushedAt),
  };
}
