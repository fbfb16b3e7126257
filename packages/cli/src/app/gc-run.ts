/**
 * `prebuilt gc`, without rendering: the keep set from the sources given (flows, image maps, push
 * age, a Kubernetes namespace), the selected registry's env repository listed, the plan, and —
 * with `yes` — the deletions in the plan's order, each reported through `onProgress`.
 *
 * A build running at the same time (of a flow outside the keep set) may have just found an image
 * present and be about to name it in its image map: gc never deletes an image younger than the
 * minimum age (`--min-age`, METAFLOW_PREBUILT_GC_MIN_AGE, default 1h) — pushed within it where the
 * registry records push times, or used by a build sharing this cache directory within it
 * (image-use-marks.ts: marked before the build asks the registry, read for the plan and again
 * before each deletion). A build on another machine reusing an old image is not seen: see the
 * README's gc section for what remains.
 */
import {
  ageText,
  completeStoredImages,
  ConfigError,
  EnvironmentError,
  errorMessage,
  InputError,
  parseImageRef,
  planGc,
  refNamesImage,
  registryClientFor,
  type GcItem,
  type GcKeepRef,
  type GcPlan,
  type ImageRegistry,
  type RegistryClient,
  type StoredImage,
} from '@prebuilt/core';
import type { AppScope } from './app-scope.js';
import { createSelectedBackend } from './backends.js';
import { deploySettings } from './deploy-settings.js';
import { keepFromFlows, keepFromImageMaps, unkeptImageMaps, type GcRepository } from './gc-keep-sources.js';
import { keepFromKubernetes, type KubernetesKeepOptions } from './gc-kubernetes.js';
import { ImageUseMarks } from './image-use-marks.js';

/** The minimum age when neither --min-age nor METAFLOW_PREBUILT_GC_MIN_AGE says one. */
const DEFAULT_GC_MIN_AGE_MS = 3_600_000;
const GC_MIN_AGE_SETTING = 'METAFLOW_PREBUILT_GC_MIN_AGE';

export interface GcOptions {
  flows?: readonly string[];
  keepMaps?: readonly string[];
  keepDays?: number;
  /** Never delete an image pushed or used by a build on this machine less than this long ago (ms); default METAFLOW_PREBUILT_GC_MIN_AGE, else 1 hour. */
  minAgeMs?: number;
  kubeNamespace?: string;
  /** Delete; default a dry run. */
  yes?: boolean;
  kubernetes?: KubernetesKeepOptions;
  onProgress?: (event: GcProgress) => void;
}

export type GcProgress =
  | { type: 'keep-sources' }
  | { type: 'listing'; repository: string }
  | { type: 'deleting'; item: GcItem; index: number; total: number }
  | { type: 'deleted'; item: GcItem; index: number; total: number }
  /** A planned deletion left out: a build on this machine used the image since the plan. */
  | { type: 'spared'; item: GcItem; reason: string };

export interface GcResult {
  registry: string;
  /** The env repository, `host/path`. */
  repository: string;
  /** The plan; after deletions, `deletions` is what was deleted, and an image a build used since the plan moved to `kept`. */
  plan: GcPlan;
  /** The minimum age applied (ms). */
  minAgeMs: number;
  /** What the user should know about the plan (push times unknown, a base image not resolved…). */
  notes: string[];
  /** Whether the deletions ran (`yes`). */
  deleted: boolean;
}

/** Registries that implement listImages/deleteImage, for the error of one that does not. */
const GC_REGISTRIES = 'local, dockerhub, ecr, gcr and any registry built on createOciRegistry (the distribution API)';

function checkKeepSources(options: GcOptions): void {
  const any = (options.flows?.length ?? 0) + (options.keepMaps?.length ?? 0) > 0 || options.keepDays !== undefined || options.kubeNamespace !== undefined;
  if (any) return;
  throw new InputError('prebuilt gc needs at least one keep source: without one it would delete every image of the repository.', {
    hint: 'Name the flows whose images stay (prebuilt gc flow.py), image maps (--keep-map FILE), --keep-days N, or --kube-namespace NS.',
  });
}

/** The registry's env repository (`host/path`), from the tag it gives an env image. */
function envRepository(registry: ImageRegistry): { host: string; path: string } {
  const ref = parseImageRef(registry.imageTag({ envId: 'gc', platform: 'linux-64' }));
  return { host: ref.registry, path: ref.repository };
}

/** The base images' digests (an index's platform images too): never deleted. A base outside the env repository that cannot be read only gets a note. */
async function protectedBases(client: RegistryClient, repository: { host: string; path: string }, scope: AppScope, notes: string[]): Promise<GcKeepRef[]> {
  const settings = deploySettings(scope.env);
  const protect: GcKeepRef[] = [];
  for (const ref of new Set([settings.baseImage, settings.gpuBaseImage])) {
    const reason = `base image ${ref}`;
    try {
      const read = await client.getManifest(ref, { signal: scope.signal });
      protect.push({ ref: read.digest, reason });
      if ('manifests' in read.manifest) protect.push(...read.manifest.manifests.map((entry) => ({ ref: entry.digest, reason })));
    } catch (error) {
      const parsed = parseImageRef(ref);
      if (parsed.registry === repository.host && parsed.repository === repository.path) throw error;
      notes.push(`base image ${ref} could not be read (${errorMessage(error).split('\n')[0]}); it is outside the env repository, which is all gc touches.`);
    }
  }
  return protect;
}

/** The keep set; an image map or flow that names no image of `repository` is refused (it keeps nothing). */
async function keepSet(scope: AppScope, options: GcOptions, keptMaps: Set<string>, repository: GcRepository): Promise<GcKeepRef[]> {
  return [
    ...(await keepFromImageMaps(options.keepMaps ?? [], scope, repository)),
    ...(await keepFromFlows(options.flows ?? [], scope, keptMaps, repository)),
    ...(options.kubeNamespace !== undefined ? await keepFromKubernetes(options.kubeNamespace, scope, options.kubernetes) : []),
  ];
}

/**
 * A note per image map of another flow beside the flows given (`.prebuilt/<OtherFlow>/images.json`)
 * that no keep source names, when the plan deletes images it names: with `--yes` that flow's images
 * go (a project of two flows gc'd with one of them).
 */
async function unkeptMapNotes(plan: GcPlan, repositoryPath: string, options: GcOptions, keptMaps: ReadonlySet<string>, scope: AppScope): Promise<string[]> {
  const maps = await unkeptImageMaps(options.flows ?? [], keptMaps, options.keepMaps ?? [], scope);
  return maps.flatMap(({ shown, flow, refs }) => {
    const going = plan.deletions.filter((item) => (item.kind === 'image' || item.kind === 'index') && refs.some((ref) => refNamesImage(ref, item, repositoryPath)));
    if (going.length === 0) return [];
    const count = `${going.length} image${going.length === 1 ? '' : 's'}`;
    return [`the image map ${shown} (${flow}) is no keep source, and ${count} it names ${going.length === 1 ? 'is' : 'are'} among the deletions: pass that flow's file too, or --keep-map ${shown}, to keep them.`];
  });
}

/** The last time a build on this machine used one of the item's tags (ms), or -Infinity. */
function lastUse(marks: ImageUseMarks, repository: string, tags: readonly string[]): number {
  return tags.map((tag) => marks.lastUse(`${repository}:${tag}`)?.getTime() ?? -Infinity).reduce((a, b) => Math.max(a, b), -Infinity);
}

/** When a build on this machine last used each tag of the listing. */
function usedAt(marks: ImageUseMarks, repository: string, images: readonly StoredImage[]): Map<string, Date> {
  const used = new Map<string, Date>();
  for (const tag of new Set(images.flatMap((image) => image.tags))) {
    const at = marks.lastUse(`${repository}:${tag}`);
    if (at) used.set(tag, at);
  }
  return used;
}

/**
 * The refusal to delete with a minimum age while the marks of builds on this machine cannot be read
 * (`why`, {@link ImageUseMarks.unreadable}): every image looked unused, and those builds were using went.
 */
function marksUnreadableError(why: string, marks: ImageUseMarks): EnvironmentError {
  return new EnvironmentError(`prebuilt gc cannot read which images builds on this machine used lately: ${why}. It deletes nothing it cannot check, so no image a running build uses goes.`, {
    hint: `Remove ${marks.dir} (builds make it again) or make it a directory of yours, then run gc again; or pass --min-age 0 to delete regardless of builds on this machine.`,
  });
}

/** The note of a directory of marks holding more entries than a pass reads (a co-user of a shared cache may fill it). */
function unreadMarksNote(looked: number, marks: ImageUseMarks): string {
  return `${marks.dir} holds more than ${looked} entries, more than gc reads in a pass: marks of old uses past them stay (an image whose mark is dated ahead stays kept). Remove from it what is not a mark (a name of 40 hex digits).`;
}

interface DeletionContext {
  images: readonly StoredImage[];
  /** The plan again, over the images not deleted yet, with the marks read anew. */
  replan: (remaining: readonly StoredImage[]) => GcPlan;
  marks: ImageUseMarks;
  repository: string;
  minAgeMs: number;
}

/**
 * Deletes the plan's deletions in order; a failure stops there (what went before stays deleted, and
 * nothing left points at it). Before each deletion the item's tags are looked up in the marks again:
 * one a build on this machine used since the plan is spared, and the rest planned again without it
 * (its platform images stay with it; its SBOM, deleted before it in the order, may be gone).
 */
async function runDeletions(registry: ImageRegistry, planned: GcPlan, scope: AppScope, options: GcOptions, context: DeletionContext): Promise<GcPlan> {
  const deleteImage = registry.deleteImage!.bind(registry);
  const deleted: GcItem[] = [];
  const spared = new Map<string, GcItem>();
  const gone = new Set<string>();
  let plan = planned;
  let keptDigests = new Set(plan.kept.map((item) => item.digest));
  const total = planned.deletions.length;
  const nextItem = (): GcItem | undefined => plan.deletions.find((item) => !gone.has(item.digest) && !spared.has(item.digest));
  for (let item = nextItem(); item; item = nextItem()) {
    // The plan never deletes what it keeps (the base image among it); checked once more before each DELETE.
    if (keptDigests.has(item.digest)) throw new Error(`gc refused to delete ${item.digest}, which it keeps`);
    // The marks made unreadable since the plan (images-used swapped for a symlink): nothing more is deleted.
    const unreadable = context.minAgeMs > 0 ? context.marks.unreadable() : undefined;
    if (unreadable !== undefined) throw marksUnreadableError(unreadable, context.marks);
    const used = lastUse(context.marks, context.repository, item.tags);
    if (context.minAgeMs > 0 && Date.now() - used < context.minAgeMs) {
      const reason = `used by a build on this machine ${ageText(Date.now() - used)} ago, since the plan (minimum age ${ageText(context.minAgeMs)})`;
      // Planned again over what is left, the marks read anew: what the spared image keeps (its platform images) stays too.
      plan = context.replan(context.images.filter((image) => !gone.has(image.digest)));
      keptDigests = new Set(plan.kept.map((one) => one.digest));
      const stillGoing = new Set(plan.deletions.map((one) => one.digest));
      for (const was of planned.deletions) {
        if (gone.has(was.digest) || spared.has(was.digest) || (stillGoing.has(was.digest) && was.digest !== item.digest)) continue;
        const one = { ...was, action: 'keep' as const, reason: was.digest === item.digest ? reason : (plan.kept.find((k) => k.digest === was.digest)?.reason ?? reason) };
        spared.set(one.digest, one);
        options.onProgress?.({ type: 'spared', item: one, reason: one.reason });
      }
      continue;
    }
    options.onProgress?.({ type: 'deleting', item, index: deleted.length, total });
    // The tags the listing gave: a registry that deletes tag by tag lists nothing more per image.
    await deleteImage(item.digest, { signal: scope.signal, tags: item.tags });
    gone.add(item.digest);
    deleted.push(item);
    options.onProgress?.({ type: 'deleted', item, index: deleted.length - 1, total });
  }
  return { ...planned, deletions: deleted, kept: [...planned.kept, ...spared.values()], items: [...planned.kept, ...spared.values(), ...deleted] };
}

/** The minimum age: the option, else METAFLOW_PREBUILT_GC_MIN_AGE, else 1 hour. */
function minAgeOf(options: GcOptions, env: Record<string, string | undefined>): number {
  if (options.minAgeMs !== undefined) {
    if (!(Number.isFinite(options.minAgeMs) && options.minAgeMs >= 0)) throw new InputError(`The minimum age ${options.minAgeMs} ms is not a duration.`, { hint: 'Pass --min-age 0, or a duration such as 30m or 2h.' });
    return options.minAgeMs;
  }
  const raw = env[GC_MIN_AGE_SETTING]?.trim();
  if (!raw) return DEFAULT_GC_MIN_AGE_MS;
  const ms = parseMinAge(raw);
  if (ms === undefined) {
    throw new ConfigError(`${GC_MIN_AGE_SETTING}=${raw} is not a duration.`, { setting: GC_MIN_AGE_SETTING, hint: 'Write 0, or a whole number and a unit: s, m, h or d (e.g. 30m, 2h, 1d).' });
  }
  return ms;
}

const MIN_AGE_UNIT_MS = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** `0`, or a whole number and a unit (`30m`, `2h`, `1d`), in milliseconds; undefined for anything else. */
export function parseMinAge(value: string): number | undefined {
  if (value.trim() === '0') return 0;
  const match = /^(\d+)(s|m|h|d)$/.exec(value.trim());
  return match ? Number(match[1]) * MIN_AGE_UNIT_MS[match[2] as keyof typeof MIN_AGE_UNIT_MS] : undefined;
}

/** Plans `prebuilt gc` against the selected registry and, with `yes`, deletes what nothing keeps. */
export async function garbageCollect(scope: AppScope, options: GcOptions): Promise<GcResult> {
  checkKeepSources(options);
  if (options.keepDays !== undefined && !(Number.isInteger(options.keepDays) && options.keepDays >= 0)) {
    throw new InputError(`--keep-days ${options.keepDays} is not a whole number of days.`, { hint: 'Pass --keep-days 0 or more, e.g. --keep-days 30.' });
  }
  const minAgeMs = minAgeOf(options, scope.env);
  const registry = (await createSelectedBackend('image-registry', scope)).backend;
  try {
    if (typeof registry.listImages !== 'function' || typeof registry.deleteImage !== 'function') {
      throw new ConfigError(`The image registry ${registry.name} cannot list or delete images, so prebuilt gc cannot run on it.`, {
        setting: 'METAFLOW_PREBUILT_IMAGE_REGISTRY',
        hint: `gc works with ${GC_REGISTRIES}; a third-party registry backend gains it by implementing listImages and deleteImage.`,
      });
    }
    options.onProgress?.({ type: 'keep-sources' });
    const keptMaps = new Set<string>();
    const repository = envRepository(registry);
    const keep = await keepSet(scope, options, keptMaps, repository);
    const notes: string[] = [];
    const client = await registryClientFor(registry, { env: scope.env, signal: scope.signal });
    const protect = await protectedBases(client, repository, scope, notes);
    options.onProgress?.({ type: 'listing', repository: `${repository.host}/${repository.path}` });
    const listed = await registry.listImages({ signal: scope.signal });
    // A registry's own listing (ECR, Google, Docker Hub) says no blobs or children: read them from the manifests.
    const images = listed.some((image) => !image.blobs)
      ? await completeStoredImages(client, `${repository.host}/${repository.path}`, listed, { signal: scope.signal })
      : listed;
    const marks = ImageUseMarks.of(scope.env);
    const fullRepository = `${repository.host}/${repository.path}`;
    const planOver = (over: readonly StoredImage[]): GcPlan =>
      planGc({ images: over, repository: repository.path, keep, protect, minAgeMs, usedAt: usedAt(marks, fullRepository, over), ...(options.keepDays !== undefined ? { keepDays: options.keepDays } : {}) });
    const plan = planOver(images);
    const unreadable = minAgeMs > 0 ? marks.unreadable() : undefined;
    if (unreadable !== undefined && plan.deletions.length > 0) {
      if (options.yes) throw marksUnreadableError(unreadable, marks);
      notes.push(`${unreadable}: gc cannot read which images builds on this machine used lately, and with --yes deletes nothing (or pass --min-age 0).`);
    }
    if (options.keepDays !== undefined && plan.pushTimeUnknown) {
      notes.push(`registry ${registry.name} does not record when an image was pushed: --keep-days keeps every image whose push time is unknown.`);
    }
    notes.push(...(await unkeptMapNotes(plan, repository.path, options, keptMaps, scope)));
    if (minAgeMs > 0 && plan.pushTimeUnknown && plan.deletions.length > 0) {
      notes.push(`registry ${registry.name} does not record when an image was pushed: the minimum age (${ageText(minAgeMs)}) protects only images a build sharing this cache directory used; stop builds of flows outside the keep set on other machines while gc deletes.`);
    }
    const done = options.yes ? await runDeletions(registry, plan, scope, options, { images, replan: planOver, marks, repository: fullRepository, minAgeMs }) : plan;
    const unread = options.yes ? marks.forgetOld() : undefined;
    if (unread) notes.push(unreadMarksNote(unread.looked, marks));
    return { registry: registry.name, repository: fullRepository, plan: done, minAgeMs, notes, deleted: options.yes === true };
  } finally {
    await registry.close?.();
  }
}
