/**
 * `prebuilt gc`, without rendering: the keep set from the sources given (flows, image maps, push
 * age, a Kubernetes namespace), the selected registry's env repository listed, the plan, and —
 * with `yes` — the deletions in the plan's order, each reported through `onProgress`.
 */
import {
  completeStoredImages,
  ConfigError,
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
} from '@prebuilt/core';
import type { AppScope } from './app-scope.js';
import { createSelectedBackend } from './backends.js';
import { deploySettings } from './deploy-settings.js';
import { keepFromFlows, keepFromImageMaps, unkeptImageMaps } from './gc-keep-sources.js';
import { keepFromKubernetes, type KubernetesKeepOptions } from './gc-kubernetes.js';

export interface GcOptions {
  flows?: readonly string[];
  keepMaps?: readonly string[];
  keepDays?: number;
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
  | { type: 'deleted'; item: GcItem; index: number; total: number };

export interface GcResult {
  registry: string;
  /** The env repository, `host/path`. */
  repository: string;
  plan: GcPlan;
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

async function keepSet(scope: AppScope, options: GcOptions, keptMaps: Set<string>): Promise<GcKeepRef[]> {
  return [
    ...(await keepFromImageMaps(options.keepMaps ?? [], scope)),
    ...(await keepFromFlows(options.flows ?? [], scope, keptMaps)),
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

/** Deletes the plan's deletions in order; a failure stops there (what went before stays deleted, and nothing left points at it). */
async function runDeletions(registry: ImageRegistry, plan: GcPlan, scope: AppScope, options: GcOptions): Promise<void> {
  const deleteImage = registry.deleteImage!.bind(registry);
  const protectedDigests = new Set(plan.kept.map((item) => item.digest));
  const total = plan.deletions.length;
  for (const [index, item] of plan.deletions.entries()) {
    // The plan never deletes what it keeps (the base image among it); checked once more before each DELETE.
    if (protectedDigests.has(item.digest)) throw new Error(`gc refused to delete ${item.digest}, which it keeps`);
    options.onProgress?.({ type: 'deleting', item, index, total });
    // The tags the listing gave: a registry that deletes tag by tag lists nothing more per image.
    await deleteImage(item.digest, { signal: scope.signal, tags: item.tags });
    options.onProgress?.({ type: 'deleted', item, index, total });
  }
}

/** Plans `prebuilt gc` against the selected registry and, with `yes`, deletes what nothing keeps. */
export async function garbageCollect(scope: AppScope, options: GcOptions): Promise<GcResult> {
  checkKeepSources(options);
  if (options.keepDays !== undefined && !(Number.isInteger(options.keepDays) && options.keepDays >= 0)) {
    throw new InputError(`--keep-days ${options.keepDays} is not a whole number of days.`, { hint: 'Pass --keep-days 0 or more, e.g. --keep-days 30.' });
  }
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
    const keep = await keepSet(scope, options, keptMaps);
    const repository = envRepository(registry);
    const notes: string[] = [];
    const client = await registryClientFor(registry, { env: scope.env, signal: scope.signal });
    const protect = await protectedBases(client, repository, scope, notes);
    options.onProgress?.({ type: 'listing', repository: `${repository.host}/${repository.path}` });
    const listed = await registry.listImages({ signal: scope.signal });
    // A registry's own listing (ECR, Google, Docker Hub) says no blobs or children: read them from the manifests.
    const images = listed.some((image) => !image.blobs)
      ? await completeStoredImages(client, `${repository.host}/${repository.path}`, listed, { signal: scope.signal })
      : listed;
    const plan = planGc({ images, repository: repository.path, keep, protect, ...(options.keepDays !== undefined ? { keepDays: options.keepDays } : {}) });
    if (options.keepDays !== undefined && plan.pushTimeUnknown) {
      notes.push(`registry ${registry.name} does not record when an image was pushed: --keep-days keeps every image whose push time is unknown.`);
    }
    notes.push(...(await unkeptMapNotes(plan, repository.path, options, keptMaps, scope)));
    if (options.yes) await runDeletions(registry, plan, scope, options);
    return { registry: registry.name, repository: `${repository.host}/${repository.path}`, plan, notes, deleted: options.yes === true };
  } finally {
    await registry.close?.();
  }
}
