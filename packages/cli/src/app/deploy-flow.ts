/**
 * The application side of a deploy: reads settings, creates the backends (lazily, through
 * backends.ts), locks the flow and calls core's `deploy()`. `plan` and every build use it.
 */
import { join } from 'node:path';
import {
  checkBuildService,
  checkLockFlags,
  createRecipeRunner,
  deploy,
  dockerPlatform,
  CACHE_DIR_SETTING,
  InputError,
  prebuiltCacheDir,
  selectedBackendNames,
  selectRecipeName,
  sweepStaleRunTempDirs,
  targetPlatforms,
  withNetworkWaits,
  type BuildService,
  type DeployEvent,
  type DeployResult,
  type EnvMaterializer,
  type ImageRegistry,
  type RecipeName,
  type RecipeRunner,
} from '@prebuilt/core';
import type { EnvMaterializerOptions, MaterializeResult } from '@prebuilt/conda';
import { metaflowDatastore, type FlowEnvs } from '@prebuilt/metaflow';
import type { AppScope } from './app-scope.js';
import { createSelectedBackend, resolveSelectedBackend } from './backends.js';
import { askBaseImageAhead, type BaseImageAhead } from './base-image-ahead.js';
import { buildLockFor } from './build-lock.js';
import { checkMicromambaImageSetting, deploySettings, type DeploySettings } from './deploy-settings.js';
import { expectedImageLayout } from './expected-layout.js';
import { deploySettingsNotes } from './ignored-settings-note.js';
import { ImageUseMarks, markingImageUse } from './image-use-marks.js';
import { directUrlNotes, flowDirectUrlWheels, lockedEnvs, type FlowDirectUrlWheel } from './direct-url-wheels.js';
import { lockFlow, readFlowEnvs, type LockFlowOptions, type LockFlowResult } from './lock-flow.js';
import { withStepPackages } from './step-packages.js';
import { prefetchProfileOf, withPrefetchProfile, type PrefetchProfile } from './prefetch-profile.js';

export interface DeployFlowOptions {
  plan?: boolean;
  /**
   * A plan: find and load the selected build service (not create it) before the flow is locked, so
   * a name that is no build service is exit 2 as the build would be (`prebuilt plan`; gc, which
   * plans only to know the tags to keep, does not need one).
   */
  findBuildService?: boolean;
  force?: boolean;
  frozen?: boolean;
  /** What requires the lock as it is, for the error when it does not match (default `--frozen`). */
  frozenBy?: string;
  update?: boolean;
  workers?: string;
  /** Prune presets, comma-separated (`--prune`); default METAFLOW_PREBUILT_PRUNE. */
  prune?: string;
  /** Build only these steps' images (e.g. the steps that run remotely); default every step. */
  steps?: readonly string[];
  /** Steps that ask for a GPU beyond what the flow file says (a command line's `--with kubernetes:gpu=1`): on the GPU base image. */
  gpuSteps?: readonly string[];
  /** The datastore the command line runs the flow with (`--datastore`): its packages are pinned (see {@link LockFlowOptions.datastore}). */
  datastore?: string;
  onEvent?: (event: DeployEvent) => void;
  onLocked?: (lock: LockFlowResult) => void;
  /** Awaited once the flow is locked, before any image is looked at or built: a throw stops the deploy. */
  beforeDeploy?: (lock: LockFlowResult) => Promise<void>;
  onMaterialized?: (envId: string, result: MaterializeResult) => void;
}

export interface DeployFlowResult extends DeployResult {
  lock: LockFlowResult;
  settings: DeploySettings;
  recipe: string;
  registry: string;
  buildService: string | null;
  /** The recorded prefetch profile handed to the build service (see prefetch-profile.ts), null for none; it lays out only lazily pulled layers (each image's `layout` says). */
  prefetchProfile: PrefetchProfile | null;
  /** The wheels the lock took at a direct URL (a dependency's `bar @ https://other-host/…`), one per env holding it; each also told as a note. */
  directUrls: FlowDirectUrlWheel[];
}

/** The recipe's runner (core's `createRecipeRunner`: it refuses prune presets with micromamba), its materializer created on first use. */
function recipeRunner(name: RecipeName, scope: AppScope, options: DeployFlowOptions, settings: DeploySettings): RecipeRunner {
  const materializer = lazyMaterializer({
    env: scope.env,
    // A cached package that did not match the lock (removed, downloaded again), a wait for another download: shown as notes.
    onNote: (note) => options.onEvent?.({ type: 'note', message: note.message }),
    ...(options.onMaterialized ? { onMaterialized: options.onMaterialized } : {}),
  });
  return createRecipeRunner(name, { materializer, prune: settings.prune, pruneSetting: settings.pruneSetting, tempDir: buildContextsDir(scope), tempDirSetting: CACHE_DIR_SETTING });
}

/**
 * Where build contexts are made: `<prebuilt cache>/contexts`, on the file system of the extraction
 * cache the materializer hard-links the env from — not TMPDIR, often a tmpfs (RAM), where every file
 * of a multi-GB env would be copied instead.
 */
function buildContextsDir(scope: AppScope): string {
  return join(prebuiltCacheDir(scope.env), 'contexts');
}

/**
 * `@prebuilt/conda`'s env materializer (what its `createMaterializedRecipeRunner` gives core's
 * runner), created on the first env to materialize: a deploy that builds nothing never loads the
 * materializer and its codecs. One materializer (one package cache) serves every env.
 */
function lazyMaterializer(options: EnvMaterializerOptions): EnvMaterializer {
  let materializer: Promise<EnvMaterializer> | undefined;
  return {
    async materialize(request) {
      materializer ??= import('@prebuilt/conda').then(({ createEnvMaterializer }) => createEnvMaterializer(options));
      return (await materializer).materialize(request);
    },
  };
}

/** Locks the flow (its envs being read by `envs`), reporting stalled network reads as `waiting` events. */
function lockWithWaits(file: string, scope: AppScope, options: DeployFlowOptions, envs: Promise<FlowEnvs>): Promise<LockFlowResult> {
  const locking = (): Promise<LockFlowResult> =>
    lockFlow(file, scope, {
      envs,
      onNote: (message) => options.onEvent?.({ type: 'note', message }),
      ...(options.frozen ? { frozen: true } : {}),
      ...(options.frozenBy !== undefined ? { frozenBy: options.frozenBy } : {}),
      ...(options.update ? { update: true } : {}),
      ...(options.datastore !== undefined ? { datastore: options.datastore } : {}),
    });
  const onEvent = options.onEvent;
  return onEvent ? withNetworkWaits((wait) => onEvent({ type: 'waiting', ...wait }), locking) : locking();
}

/** The steps to deploy: `only` (each must be a step of the flow), else every step; `gpu` also asks GPUs for those steps. */
function stepsToDeploy(file: string, lock: LockFlowResult, only: readonly string[] | undefined, gpu: readonly string[] = []): { name: string; gpu: boolean }[] {
  const all = lock.envs.steps;
  const unknown = (only ?? []).filter((name) => !all.some((step) => step.step === name));
  if (unknown.length > 0) {
    throw new InputError(`${file} has no step ${unknown.join(', ')} (its steps: ${all.map((step) => step.step).join(', ')}).`, {
      file,
      hint: 'Name steps of the flow, or build every step with prebuilt build.',
    });
  }
  const chosen = only ? new Set(only) : undefined;
  return all.filter((step) => !chosen || chosen.has(step.step)).map((step) => ({ name: step.step, gpu: step.gpu || gpu.includes(step.step) }));
}

/**
 * The note for a flow none of whose steps asks for a package: most likely a flow without
 * @conda/@pypi, whose images then hold python and Metaflow's own dependencies alone.
 */
function packagelessNote(envs: FlowEnvs): string | undefined {
  const steps = envs.steps.filter((step) => !step.disabled);
  if (steps.length === 0 || steps.some((step) => Object.keys(step.conda).length + Object.keys(step.pypi).length > 0)) return undefined;
  return `no step of ${envs.flow} asks for a conda or PyPI package (@conda, @pypi, @conda_base, @pypi_base): each of its images holds python and Metaflow's own dependencies alone`;
}

/** Locks the flow and deploys (or plans) its images. */
export async function deployFlow(file: string, scope: AppScope, options: DeployFlowOptions = {}): Promise<DeployFlowResult> {
  // Conflicting flags are said before any work (the flow read, the backends created).
  checkLockFlags(options);
  const settings = deploySettings(scope.env, { ...(options.workers !== undefined ? { workers: options.workers } : {}), ...(options.prune !== undefined ? { prune: options.prune } : {}) });
  const recipeName = selectRecipeName({ env: scope.env });
  if (recipeName === 'micromamba') checkMicromambaImageSetting(scope.env);
  // The datastore Metaflow will run with, whose packages the lock pins: one it refuses (click's
  // choice: `--datastore ftp`, an empty METAFLOW_DEFAULT_DATASTORE) is exit 2 before any work.
  metaflowDatastore({ env: scope.env, cwd: scope.cwd, ...(options.datastore !== undefined ? { datastore: options.datastore } : {}) });
  // The flow is read by a python3 subprocess: started now, it runs while the backends are created
  // and checked. Its errors still come after theirs (it is awaited where it was before).
  const envs = readFlowEnvs(file, scope);
  for (const note of deploySettingsNotes(scope)) options.onEvent?.({ type: 'note', message: note });
  const registry = (await createSelectedBackend('image-registry', scope)).backend;
  let ahead: BaseImageAhead | undefined;
  let buildService: BuildService | undefined;
  const prefetchProfile = prefetchProfileOf(file, scope);
  const serviceScope = withPrefetchProfile(scope, prefetchProfile);
  let creating: Promise<BuildService> | undefined;
  const getBuildService = (): Promise<BuildService> => (creating ??= createSelectedBackend('build-service', serviceScope).then(({ backend }) => (buildService = backend)));
  const recipe = recipeRunner(recipeName, scope, options, settings);
  // Build contexts and private Docker configs a killed run (SIGKILL skips every cleanup) left behind.
  await sweepStaleRunTempDirs();
  await sweepStaleRunTempDirs({ tempDir: buildContextsDir(scope) });
  try {
    // Configuration is checked before any work: the selected build service is resolved, created and
    // checked (daemon reachable, settings complete) before the flow is locked, even when every image
    // turns out to be present, so an unknown or misconfigured build service never passes unnoticed.
    if (!options.plan) await checkBuildService(await getBuildService(), scope.signal);
    // A plan does not create it (its settings may be unset where plans run: expected-layout.ts), but
    // one that cannot be found or loaded (a misspelt name) is the build's first error: said now,
    // not after a plan that ends "Nothing to build".
    else if (options.findBuildService) await resolveSelectedBackend('build-service', serviceScope);
    // Nothing reaches the registry before the build service is checked; then, while the flow is still read, its base image.
    ahead = baseImageAhead(registry, settings.baseImage, scope);
    options.onEvent?.({ type: 'resolving', steps: 0 });
    const lock = await lockWithWaits(file, scope, options, envs);
    options.onLocked?.(lock);
    await options.beforeDeploy?.(lock);
    const packageless = packagelessNote(lock.envs);
    if (packageless) options.onEvent?.({ type: 'note', message: packageless });
    // Each image the build checks, reuses or pushes is marked used (before the registry is asked):
    // prebuilt gc on this machine keeps it (image-use-marks.ts). A plan builds no image map.
    const onEvent = options.plan ? options.onEvent : markingImageUse(ImageUseMarks.of(scope.env), options.onEvent);
    // As `prebuilt lock` names them: a wheel from a host no setting names, whether resolved now or by the lock's author.
    const lockedFlowEnvs = lockedEnvs(lock);
    for (const message of directUrlNotes(lockedFlowEnvs)) options.onEvent?.({ type: 'note', message });
    const result = await deploy({
      flow: lock.envs.flow,
      steps: stepsToDeploy(file, lock, options.steps, options.gpuSteps),
      lock: async () => lock.steps,
      registry: ahead?.registry ?? registry,
      ...(options.plan ? {} : { buildService: getBuildService, buildLock: buildLockFor(scope.env) }),
      // A present image laid out otherwise (another prefetch profile, EROFS layers for a tar build) is rebuilt.
      imageLayout: expectedImageLayout({ serviceName: selectedBackendNames(scope.env).buildService.name, plan: options.plan === true, service: getBuildService }),
      recipe,
      baseImage: settings.baseImage,
      gpuBaseImage: settings.gpuBaseImage,
      registryCache: settings.registryCache,
      ...(settings.workers !== undefined ? { workers: settings.workers } : {}),
      ...(options.force ? { force: true } : {}),
      ...(options.plan ? { plan: true } : {}),
      signal: scope.signal,
      ...(onEvent ? { onEvent } : {}),
    });
    const buildServiceName = options.plan ? null : (buildService?.name ?? selectedBackendNames(scope.env).buildService.name);
    // Each step's packages in Metaflow's terms: the extension checks them against Metaflow's before it deploys the step.
    return { ...result, imageMap: withStepPackages(result.imageMap, lock.steps), lock, settings, recipe: recipeName, registry: registry.name, buildService: buildServiceName, prefetchProfile: prefetchProfile ?? null, directUrls: flowDirectUrlWheels(lockedFlowEnvs) };
  } finally {
    ahead?.stop();
    await buildService?.close?.();
    await registry.close?.();
  }
}

/**
 * The base image's digest asked for while the flow is read (base-image-ahead.ts), on the first
 * target platform (METAFLOW_PREBUILT_PLATFORM, else linux-64: most locks have that one); none when
 * that setting is invalid — locking reports it, as before.
 */
function baseImageAhead(registry: ImageRegistry, baseImage: string, scope: AppScope): BaseImageAhead | undefined {
  let platform: string;
  try {
    platform = dockerPlatform(targetPlatforms({ env: scope.env })[0]!);
  } catch {
    return undefined;
  }
  return askBaseImageAhead(registry, baseImage, platform, scope.signal);
}
