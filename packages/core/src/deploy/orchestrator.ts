import { withNetworkWaits } from '../net/network-wait.js';
import type { BaseImageIdentity, BuildService, ImageRegistry, RegistryCredentials } from '../contracts.js';
import { dockerPlatform, type CondaPlatform, type LockedEnv } from '../env-model.js';
import { CancelledError, ConfigError, PrebuiltError, errorMessage, type RegistryError } from '../errors.js';
import { createLogger } from '../logger.js';
import { computeEnvId, indexId } from '../env-id.js';
import {
  pushImageIndex,
  readImageIndex,
  type PublishedIndex,
  type PushImageIndexOptions,
  type PushedIndex,
  type ReadImageIndexOptions,
} from '../registry/image-index.js';
import { parsePlatform, platformMatches } from '../registry/platform.js';
import { envPrefix, envPython, pinnedImageRef, type ImageMap, type ImageMapImage } from './image-map.js';
import { mapPool } from './pool.js';

const log = createLogger('deploy');

/** One step of a flow, as the deploy sees it. */
export interface DeployStep {
  name: string;
  /** The step's remote decorator asks for a GPU: it is built on the GPU base image. */
  gpu: boolean;
}

/** The build inputs a recipe prepared for one env. */
export interface PreparedBuild {
  dockerfile: string;
  contextDir: string;
  /** Removes the context directory. */
  dispose(): Promise<void>;
}

export interface RecipeRunner {
  /** Recipe name and version; they feed the envId. */
  name: string;
  version: string;
  prepare(input: {
    lock: LockedEnv;
    envId: string;
    prefix: string;
    base: BaseImageIdentity;
    signal?: AbortSignal;
    onProgress?: (progress: { phase: 'downloading' | 'materializing'; done: number; total: number }) => void;
  }): Promise<PreparedBuild>;
}

export type ImagePhase =
  | 'checking'
  | 'waiting'
  | 'missing'
  | 'materializing'
  | 'building'
  | 'pushing'
  | 'verifying'
  | 'present'
  | 'built'
  | 'failed';

export type DeployEvent =
  | { type: 'resolving'; steps: number }
  | {
      type: 'resolved';
      /** Platform images (one per distinct env and platform). */
      images: number;
      /** Multi-platform image indexes over them (0 when every step targets one platform). */
      indexes: number;
      /** The platforms the images are for, in first-seen order. */
      platforms: CondaPlatform[];
    }
  | {
      type: 'image';
      envId: string;
      tag: string;
      steps: string[];
      phase: ImagePhase;
      detail?: string;
      /** The image's conda platform; for a multi-platform image index, its platforms joined by `+`. */
      platform?: string;
    }
  | { type: 'progress'; envId: string; phase: 'downloading' | 'materializing'; done: number; total: number }
  | { type: 'log'; envId: string; line: string }
  /** Something the user should know that is no failure (a cached package that was tampered with and fetched again, a wait for another process's download). */
  | { type: 'note'; message: string }
  /**
   * A network read has had no byte for `seconds` (reported every few seconds while it lasts; 0 when
   * the wait is over): what the deploy is waiting on, e.g. `127.0.0.1:5100` for a `blob upload`.
   */
  | { type: 'waiting'; target: string; what: string; seconds: number };

export interface DeployOptions {
  flow: string;
  steps: DeployStep[];
  registry: ImageRegistry;
  /**
   * Needed unless `plan` is true. A function is called (once) only when an image must be built,
   * so a deploy with nothing to build never loads or connects to the build service.
   */
  buildService?: BuildService | (() => Promise<BuildService>);
  recipe: RecipeRunner;
  baseImage: string;
  /** Base image for GPU steps (METAFLOW_PREBUILT_GPU_BASE_IMAGE); defaults to `baseImage`. */
  gpuBaseImage?: string;
  /**
   * The locked env of every step (null for a disabled step, which runs on the base image's python),
   * e.g. from the lock file or a fresh resolution. Called once. A list of locks, one per platform,
   * builds one image per platform and publishes them as one multi-platform image index, which the
   * step pulls.
   */
  lock(options: { signal?: AbortSignal }): Promise<Record<string, LockedEnv | readonly LockedEnv[] | null>>;
  /** Publishes a multi-platform image index (default: core's `pushImageIndex` over the registry API). */
  pushIndex?: (options: PushImageIndexOptions) => Promise<PushedIndex>;
  /** Reads the image index a tag names now (default: core's `readImageIndex`). */
  readIndex?: (options: ReadImageIndexOptions) => Promise<PublishedIndex | undefined>;
  /** Check the registry for each tag before building (METAFLOW_PREBUILT_REGISTRY_CACHE). Default true. */
  registryCache?: boolean;
  /** Rebuild even when the tag exists. */
  force?: boolean;
  /** Parallel builds (METAFLOW_PREBUILT_BUILD_WORKERS). Default min(images, 8). */
  workers?: number;
  /** Plan only: resolve, identify and check, never build. */
  plan?: boolean;
  signal?: AbortSignal;
  onEvent?: (event: DeployEvent) => void;
  /**
   * Serializes the builds of one image across processes of this machine (e.g. an inter-process
   * lock file per tag). Taken before materializing; when it had to wait, the registry is checked
   * again, so an image another process just pushed is reused instead of built twice.
   */
  buildLock?: (
    image: { envId: string; tag: string },
    /** `onWait(holder)`: called when the lock is held elsewhere; `holder` describes who holds it and since when. */
    options: { signal?: AbortSignal; onWait: (holder?: string) => void },
  ) => Promise<BuildLockHandle>;
}

/** A held build lock. */
export interface BuildLockHandle {
  /** True when another process held the lock and this one waited for it. */
  waited: boolean;
  release(): Promise<void>;
}

/** One platform's image of a multi-platform image index. */
export interface DeployIndexMember {
  platform: CondaPlatform;
  envId: string;
  /** Its pull tag. */
  image: string;
  digest?: string;
}

export interface DeployImage {
  /** The envId of a platform's image, or the id of a multi-platform image index. */
  envId: string;
  /** The tag pushed to. */
  tag: string;
  /** The tag the runner pulls. */
  pullTag: string;
  platform: CondaPlatform;
  base: BaseImageIdentity;
  steps: string[];
  /** `missing` only in a plan: the image is not in the registry and would be built. */
  status: 'present' | 'built' | 'failed' | 'missing' | 'unchecked';
  /** Set on a multi-platform image index: its platforms' images (then `platform` is the first). */
  platforms?: DeployIndexMember[];
  /** Set on a platform's image that is part of an image index: the index's id. */
  memberOf?: string[];
  digest?: string;
  python: string;
  packages: number;
  reason?: string;
  /** What to do about the failure, when the error that caused it says. */
  hint?: string;
  logTail?: string[];
  elapsedMs: number;
}

export interface DeployResult {
  imageMap: ImageMap;
  images: DeployImage[];
  failures: DeployImage[];
}

interface PlannedImage {
  envId: string;
  tag: string;
  pullTag: string;
  lock: LockedEnv;
  base: BaseImageIdentity;
  steps: string[];
}

/** A multi-platform image index over one env's per-platform images. */
interface PlannedIndex {
  id: string;
  tag: string;
  pullTag: string;
  members: { platform: CondaPlatform; envId: string }[];
  steps: string[];
}

/**
 * An error of the registry or the build service themselves (unreachable, misconfigured, refusing
 * the credentials), as opposed to one env failing: it would fail every image, so the deploy
 * stops, cancels the builds in flight and rethrows it (with its own exit code and hint).
 */
class ServiceFailure {
  constructor(readonly error: unknown) {}
}

async function service<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    throw new ServiceFailure(error);
  }
}

/**
 * The deploy: envs → locks → envIds → tags → existence check → build the missing images in
 * parallel (identical envs once) → verify each push (the manifest read back and hashed) → image map.
 * A failed build (the build service's `ok: false`, or an env that cannot be materialized) is
 * reported in `failures`; the other images are still built. An error of the registry or the
 * build service (thrown: unreachable, misconfigured, credentials refused) cancels the other
 * builds and is rethrown.
 */
export function deploy(options: DeployOptions): Promise<DeployResult> {
  const onEvent = options.onEvent;
  if (!onEvent) return deployImages(options);
  // Every network read of the deploy (registry, channels, downloads) says when it stalls.
  return withNetworkWaits((wait) => onEvent({ type: 'waiting', ...wait }), () => deployImages(options));
}

async function deployImages(options: DeployOptions): Promise<DeployResult> {
  const emit = options.onEvent ?? (() => {});
  const signal = options.signal;
  const throwIfAborted = (): void => {
    if (signal?.aborted) throw new CancelledError('The deploy was cancelled.', { cause: signal.reason });
  };

  // 1. The locked env of every step.
  emit({ type: 'resolving', steps: options.steps.length });
  const locks = await options.lock({ ...(signal ? { signal } : {}) });
  throwIfAborted();
  const lockOf = (step: DeployStep): readonly LockedEnv[] | null => {
    const lock = locks[step.name];
    if (lock === undefined) throw new PrebuiltError('internal', `No lock was given for step ${step.name}.`, 1);
    if (lock === null) return null;
    const list = Array.isArray(lock) ? (lock as readonly LockedEnv[]) : [lock as LockedEnv];
    if (list.length === 0) throw new PrebuiltError('internal', `No lock was given for step ${step.name}.`, 1);
    return list;
  };

  // 2. Base image identities (a mutable tag resolves to a digest), once per base and platform.
  const baseCache = new Map<string, Promise<BaseImageIdentity>>();
  const baseIdentity = (ref: string, platform: CondaPlatform): Promise<BaseImageIdentity> => {
    const key = `${ref}\0${platform}`;
    let found = baseCache.get(key);
    if (!found) {
      found = options.registry.baseImageIdentity(ref, dockerPlatform(platform), { signal }).catch((error: unknown) => {
        // A base image the registry does not have is a setting to fix (exit 2), not a registry fault.
        if (!PrebuiltError.isInstance(error) || error.code !== 'registry' || (error as RegistryError).status !== 404) throw error;
        const setting = ref === options.gpuBaseImage && ref !== options.baseImage ? 'METAFLOW_PREBUILT_GPU_BASE_IMAGE' : 'METAFLOW_PREBUILT_BASE_IMAGE';
        throw new ConfigError(`${error.message.replace(/\.$/, '')} (${setting}).`, { setting, cause: error, ...(error.hint ? { hint: error.hint } : {}) });
      });
      baseCache.set(key, found);
    }
    return found;
  };

  // 3. envIds and tags; steps with equal envIds share one image. A step locked for several
  //    platforms gets one image per platform and an image index over them (equal indexes shared).
  const planned = new Map<string, PlannedImage>();
  const indexes = new Map<string, PlannedIndex>();
  const pullTagOf = (tag: string): string => (options.registry.pullTag ? options.registry.pullTag(tag) : tag);
  for (const step of options.steps) {
    const stepLocks = lockOf(step);
    if (stepLocks === null) continue;
    const baseRef = step.gpu && options.gpuBaseImage ? options.gpuBaseImage : options.baseImage;
    const members: { platform: CondaPlatform; envId: string }[] = [];
    for (const lock of stepLocks) {
      const base = await baseIdentity(baseRef, lock.platform);
      const envId = computeEnvId({
        lock,
        baseDigest: base.digest,
        recipe: { name: options.recipe.name, version: options.recipe.version },
      });
      members.push({ platform: lock.platform, envId });
      const existing = planned.get(envId);
      if (existing) {
        existing.steps.push(step.name);
        continue;
      }
      const tag = options.registry.imageTag({ envId, platform: lock.platform });
      planned.set(envId, { envId, tag, pullTag: pullTagOf(tag), lock, base, steps: [step.name] });
    }
    if (members.length < 2) continue;
    let id: string;
    try {
      id = indexId(members);
    } catch (error) {
      throw new PrebuiltError('internal', `The locks of step ${step.name}: ${errorMessage(error)}.`, 1, { cause: error });
    }
    const existingIndex = indexes.get(id);
    if (existingIndex) {
      existingIndex.steps.push(step.name);
      continue;
    }
    const platforms = members.map((m) => m.platform);
    const tag = options.registry.imageTag({ envId: id, platform: platforms[0]!, platforms });
    indexes.set(id, { id, tag, pullTag: pullTagOf(tag), members, steps: [step.name] });
  }
  emit({ type: 'resolved', images: planned.size, indexes: indexes.size, platforms: [...new Set([...planned.values()].map((image) => image.lock.platform))] });
  throwIfAborted();

  // 4. Check, then build what is missing.
  const images = [...planned.values()];
  const buildService = once(options.buildService, signal);
  const workers = options.workers ?? Math.min(Math.max(images.length, 1), 8);
  // A service failure aborts `stop`, which cancels the builds in flight; the caller's signal does too.
  const stop = new AbortController();
  const inner = signal ? AbortSignal.any([signal, stop.signal]) : stop.signal;
  let fatal: { error: unknown } | undefined;
  const settled = await mapPool(images, workers, async (image) => {
    if (inner.aborted) throw new CancelledError('The deploy was cancelled.', { cause: inner.reason });
    try {
      return await processImage(image, { ...options, signal: inner }, buildService, emit);
    } catch (error) {
      if (!(error instanceof ServiceFailure)) throw error;
      if (!inner.aborted) {
        fatal = { error: error.error };
        stop.abort(error.error);
      }
      throw error.error;
    }
  });
  const results: DeployImage[] = [];
  let cancelled: unknown;
  settled.forEach((outcome, index) => {
    if (outcome.status === 'fulfilled') {
      results.push(outcome.value);
      return;
    }
    if (outcome.reason instanceof CancelledError || inner.aborted) {
      cancelled ??= outcome.reason;
      return;
    }
    const image = images[index] as PlannedImage;
    const failed = describeFailure(outcome.reason);
    results.push(failedImage(image, failed.reason, [], 0, failed.hint));
    emit({ type: 'image', envId: image.envId, tag: image.tag, steps: image.steps, phase: 'failed', detail: failed.reason, platform: image.lock.platform });
  });
  if (signal?.aborted) {
    throw cancelled instanceof CancelledError ? cancelled : new CancelledError('The deploy was cancelled.', { cause: signal.reason });
  }
  if (fatal !== undefined) throw fatal.error;
  if (cancelled !== undefined) {
    throw cancelled instanceof CancelledError ? cancelled : new CancelledError('The deploy was cancelled.', { cause: cancelled });
  }

  // 5. Image indexes over the platforms' images, once those are in the registry.
  const byEnvId = new Map(results.map((image) => [image.envId, image]));
  let credentials: Promise<RegistryCredentials | undefined> | undefined;
  const pushCredentials = (): Promise<RegistryCredentials | undefined> =>
    (credentials ??= options.registry.pushCredentials({ ...(signal ? { signal } : {}) }));
  const published = await Promise.allSettled(
    [...indexes.values()].map((index) => {
      const members = index.members.map((m) => byEnvId.get(m.envId) as DeployImage);
      for (const member of members) member.memberOf = [...(member.memberOf ?? []), index.id];
      return processIndex(index, members, options, pushCredentials, emit);
    }),
  );
  throwIfAborted();
  // Credentials refused or the registry unreachable fail every index alike: that error, not N failures.
  const thrown = published.find((outcome): outcome is PromiseRejectedResult => outcome.status === 'rejected');
  if (thrown) throw thrown.reason;
  results.push(...published.map((outcome) => (outcome as PromiseFulfilledResult<DeployImage>).value));

  // 6. The image map: what each step pulls (a platform's image, or the index over its platforms).
  const imageMap: ImageMap = { flow: options.flow, images: {}, steps: {} };
  // A step of an index pulls the index; any other step pulls its one image (which may also be a
  // platform of another step's index).
  const pulled = new Map<string, DeployImage>();
  for (const image of results) for (const step of image.platforms ? image.steps : []) pulled.set(step, image);
  for (const image of results) for (const step of image.platforms ? [] : image.steps) if (!pulled.has(step)) pulled.set(step, image);
  for (const image of results) {
    const steps = image.steps.filter((step) => pulled.get(step) === image);
    if ((image.status !== 'present' && image.status !== 'built') || steps.length === 0) continue;
    const entry: ImageMapImage = {
      image: image.pullTag,
      digest: image.digest as string,
      pinnedImage: pinnedImageRef(image.pullTag, image.digest as string),
      python: image.python,
      status: image.status,
      steps,
      pullConfig: await options.registry.pullConfig(image.pullTag),
    };
    if (image.platforms) {
      entry.platforms = Object.fromEntries(image.platforms.map((m) => [m.platform, { envId: m.envId, image: m.image, digest: m.digest as string }]));
    }
    imageMap.images[image.envId] = entry;
  }
  for (const step of options.steps) {
    if (lockOf(step) === null) {
      const baseRef = step.gpu && options.gpuBaseImage ? options.gpuBaseImage : options.baseImage;
      imageMap.steps[step.name] = { envId: null, image: baseRef, python: 'python' };
      continue;
    }
    const image = pulled.get(step.name);
    if (image && (image.status === 'present' || image.status === 'built')) {
      imageMap.steps[step.name] = { envId: image.envId, image: image.pullTag, pinnedImage: pinnedImageRef(image.pullTag, image.digest as string), python: image.python };
    }
  }
  return { imageMap, images: results, failures: results.filter((image) => image.status === 'failed') };
}

/**
 * Publishes (or finds) the image index of a multi-platform env. Its platforms' images must all be
 * in the registry; one that failed fails the index. An index already under the tag is reused only
 * when it names exactly the platforms' current images (a platform image rebuilt since, e.g. with
 * --force by a single-platform deploy, gets a new index). Pushing an index moves one small manifest.
 */
async function processIndex(
  index: PlannedIndex,
  members: DeployImage[],
  options: DeployOptions,
  pushCredentials: () => Promise<RegistryCredentials | undefined>,
  emit: (event: DeployEvent) => void,
): Promise<DeployImage> {
  const started = Date.now();
  const signal = options.signal;
  const first = members[0] as DeployImage;
  const phase = (value: ImagePhase, detail?: string): void =>
    emit({
      type: 'image',
      envId: index.id,
      tag: index.tag,
      steps: index.steps,
      phase: value,
      ...(detail ? { detail } : {}),
      platform: index.members.map((m) => m.platform).join('+'),
    });
  const done = (status: DeployImage['status'], extra: { digest?: string; reason?: string; hint?: string } = {}): DeployImage => ({
    envId: index.id,
    tag: index.tag,
    pullTag: index.pullTag,
    platform: first.platform,
    platforms: members.map((m) => ({ platform: m.platform, envId: m.envId, image: m.pullTag, ...(m.digest ? { digest: m.digest } : {}) })),
    base: first.base,
    steps: index.steps,
    status,
    ...(extra.digest ? { digest: extra.digest } : {}),
    python: envPython(index.id),
    packages: Math.max(...members.map((m) => m.packages)),
    ...(extra.reason ? { reason: extra.reason, logTail: [] } : {}),
    ...(extra.hint ? { hint: extra.hint } : {}),
    elapsedMs: Date.now() - started,
  });
  const fail = (reason: string, hint?: string): DeployImage => {
    phase('failed', reason);
    return done('failed', { reason, ...(hint ? { hint } : {}) });
  };

  const failed = members.filter((m) => m.status === 'failed');
  if (failed.length > 0) return fail(`Its ${failed.map((m) => `${m.platform} image (env ${m.envId})`).join(' and ')} failed to build.`);
  if (members.some((m) => m.status === 'missing' || m.status === 'unchecked')) {
    // A plan: a platform image would be built, so its index would be pushed.
    phase('missing');
    return done(members.some((m) => m.status === 'missing') ? 'missing' : 'unchecked');
  }
  const undigested = members.find((m) => m.digest === undefined);
  if (undigested) {
    return fail(`The registry ${options.registry.name} gave no digest for ${undigested.tag}, so the image index cannot name it.`, 'The registry backend must report the manifest digest of an image that exists.');
  }
  const images = members.map((m) => ({ digest: m.digest as string, platform: dockerPlatform(m.platform) }));
  const useCache = options.registryCache !== false;
  try {
    // A platform image built now has a new digest: its index must be pushed anew, without asking.
    if (useCache && (!options.force || options.plan) && !members.some((m) => m.status === 'built')) {
      phase('checking');
      const credentials = await pushCredentials();
      const current = await (options.readIndex ?? readImageIndex)({ imageTag: index.tag, ...(credentials ? { pushCredentials: credentials } : {}), ...(signal ? { signal } : {}) });
      const same =
        current !== undefined &&
        current.images.length === images.length &&
        images.every((image) => current.images.some((c) => c.digest === image.digest && platformMatches(parsePlatform(c.platform), image.platform)));
      if (same) {
        phase('present');
        return done('present', { digest: current.digest });
      }
      if (options.plan) {
        phase('missing', current ? 'the index names other images than the platforms\' current ones' : undefined);
        return done('missing');
      }
    } else if (options.plan) {
      phase('missing');
      return done(useCache ? 'missing' : 'unchecked');
    }
    phase('pushing', `image index of ${members.map((m) => m.platform).join(', ')}`);
    const credentials = await pushCredentials();
    const pushed = await (options.pushIndex ?? pushImageIndex)({
      imageTag: index.tag,
      images,
      ...(credentials ? { pushCredentials: credentials } : {}),
      ...(signal ? { signal } : {}),
    });
    phase('verifying');
    const existence = await options.registry.imageExists(index.tag, { signal });
    if (!existence.exists) return fail(`The image index ${index.tag} was pushed, but the registry does not have it.`);
    phase('built');
    return done('built', { digest: existence.digest ?? pushed.digest });
  } catch (error) {
    if (signal?.aborted || error instanceof CancelledError) throw error;
    // Credentials refused, or the registry unreachable: not this index's failure (see deploy()).
    if (PrebuiltError.isInstance(error) && (error.code === 'auth' || (error.code === 'registry' && (error as RegistryError).status === undefined))) throw error;
    const failure = describeFailure(error);
    return fail(failure.reason, failure.hint);
  }
}

/** The build service, created on first use. */
function once(source: DeployOptions['buildService'], signal: AbortSignal | undefined): () => Promise<BuildService> {
  let created: Promise<BuildService> | undefined;
  return () => {
    if (!source) return Promise.reject(new PrebuiltError('internal', 'A build service is needed to build images.', 2));
    created ??= (typeof source === 'function' ? source() : Promise.resolve(source)).then(async (service) => {
      await checkBuildService(service, signal);
      return service;
    });
    return created;
  };
}

const checked = new WeakMap<BuildService, Promise<void>>();

/**
 * Runs the build service's `check()` once per service object: a caller that checks before locking
 * (the CLI) and the deploy that checks before the first build share one check. A failed check is
 * not remembered, so a later call tries again.
 */
export function checkBuildService(service: BuildService, signal?: AbortSignal): Promise<void> {
  let check = checked.get(service);
  if (!check) {
    check = (async () => service.check?.({ ...(signal ? { signal } : {}) }))();
    checked.set(service, check);
    check.catch(() => checked.delete(service));
  }
  return check;
}

async function processImage(
  image: PlannedImage,
  options: DeployOptions,
  getBuildService: () => Promise<BuildService>,
  emit: (event: DeployEvent) => void,
): Promise<DeployImage> {
  const started = Date.now();
  const signal = options.signal;
  const phase = (value: ImagePhase, detail?: string): void =>
    emit({ type: 'image', envId: image.envId, tag: image.tag, steps: image.steps, phase: value, ...(detail ? { detail } : {}), platform: image.lock.platform });
  const done = (status: DeployImage['status'], digest?: string): DeployImage => ({
    envId: image.envId,
    tag: image.tag,
    pullTag: image.pullTag,
    platform: image.lock.platform,
    base: image.base,
    steps: image.steps,
    status,
    ...(digest ? { digest } : {}),
    python: envPython(image.envId),
    packages: image.lock.packages.length,
    elapsedMs: Date.now() - started,
  });

  const useCache = options.registryCache !== false;
  if (useCache && (!options.force || options.plan)) {
    phase('checking');
    const existence = await service(() => options.registry.imageExists(image.tag, { signal }));
    if (existence.exists) {
      phase('present');
      return done('present', existence.digest);
    }
  }
  if (options.plan) {
    phase('missing');
    return done(useCache ? 'missing' : 'unchecked');
  }
  if (!options.buildLock) return buildImage(image, options, getBuildService, phase, done, emit, started);
  const held = await options.buildLock(
    { envId: image.envId, tag: image.tag },
    {
      ...(signal ? { signal } : {}),
      onWait: (holder) =>
        phase('waiting', `another prebuilt process is building this image${holder ? `: ${holder}` : ''}; waiting since ${new Date().toISOString().slice(11, 19)} UTC`),
    },
  );
  try {
    if (held.waited && useCache && !options.force) {
      phase('checking');
      const existence = await service(() => options.registry.imageExists(image.tag, { signal }));
      if (existence.exists) {
        phase('present');
        return done('present', existence.digest);
      }
    }
    return await buildImage(image, options, getBuildService, phase, done, emit, started);
  } finally {
    await held.release();
  }
}

/** Materializes, builds, pushes and verifies one image. */
async function buildImage(
  image: PlannedImage,
  options: DeployOptions,
  getBuildService: () => Promise<BuildService>,
  phase: (value: ImagePhase, detail?: string) => void,
  done: (status: DeployImage['status'], digest?: string) => DeployImage,
  emit: (event: DeployEvent) => void,
  started: number,
): Promise<DeployImage> {
  const signal = options.signal;
  const buildService = await service(getBuildService);

  phase('materializing');
  let prepared: PreparedBuild;
  try {
    prepared = await options.recipe.prepare({
      lock: image.lock,
      envId: image.envId,
      prefix: envPrefix(image.envId),
      base: image.base,
      ...(signal ? { signal } : {}),
      onProgress: (progress) => emit({ type: 'progress', envId: image.envId, ...progress }),
    });
  } catch (error) {
    if (signal?.aborted) throw error;
    // This env cannot be materialized (a package that cannot be relocated, a corrupt download):
    // it fails now, visibly, while the other images go on.
    const failed = describeFailure(error);
    phase('failed', failed.reason);
    return failedImage(image, failed.reason, [], Date.now() - started, failed.hint);
  }
  try {
    phase('building');
    const logTail: string[] = [];
    const pushCredentials = await service(() => options.registry.pushCredentials({ ...(signal ? { signal } : {}) }));
    const result = await service(() => buildService.buildAndPush({
      dockerfile: prepared.dockerfile,
      contextDir: prepared.contextDir,
      imageTag: image.tag,
      pushCredentials,
      platform: dockerPlatform(image.lock.platform),
      log: (line) => {
        logTail.push(line);
        if (logTail.length > 50) logTail.shift();
        emit({ type: 'log', envId: image.envId, line });
      },
      onPhase: (value) => phase(value),
      ...(signal ? { signal } : {}),
    }));
    if (!result.ok) {
      phase('failed', result.reason);
      return failedImage(image, result.reason, result.logTail, Date.now() - started);
    }
    phase('verifying');
    const existence = await service(() => options.registry.imageExists(image.tag, { signal }));
    if (!existence.exists) {
      const reason = `The build service reported a push of ${image.tag}, but the registry does not have it.`;
      phase('failed', reason);
      return failedImage(image, reason, logTail.slice(-30), Date.now() - started);
    }
    if (existence.digest && existence.digest !== result.digest) {
      log('digest from the build service (%s) differs from the registry (%s) for %s', result.digest, existence.digest, image.tag);
    }
    phase('built');
    return done('built', existence.digest ?? result.digest);
  } finally {
    await prepared.dispose();
  }
}

/** Reason and hint of an error that failed one image. A PrebuiltError's message is complete (errorMessage would append its code like an errno). */
function describeFailure(error: unknown): { reason: string; hint?: string } {
  if (!PrebuiltError.isInstance(error)) return { reason: errorMessage(error) };
  return { reason: error.message, ...(error.hint ? { hint: error.hint } : {}) };
}

function failedImage(image: PlannedImage, reason: string, logTail: string[], elapsedMs: number, hint?: string): DeployImage {
  return {
    envId: image.envId,
    tag: image.tag,
    pullTag: image.pullTag,
    platform: image.lock.platform,
    base: image.base,
    steps: image.steps,
    status: 'failed',
    python: envPython(image.envId),
    packages: image.lock.packages.length,
    reason,
    ...(hint ? { hint } : {}),
    logTail,
    elapsedMs,
  };
}
