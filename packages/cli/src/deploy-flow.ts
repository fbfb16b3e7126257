/**
 * The CLI side of a deploy: reads settings, resolves the backends, locks the flow and calls
 * core's `deploy()`. Shared by `plan`, `build` and `run`.
 */
import { createHash } from 'node:crypto';
import { dirname, join, resolve } from 'node:path';
import {
  acquireFileLock,
  checkBuildService,
  ConfigError,
  InputError,
  createMicromambaRecipeRunner,
  deploy,
  diskFullError,
  loadOptionalSetting,
  resolveBackend,
  selectedBackendNames,
  selectRecipeName,
  sweepStaleRunTempDirs,
  writeFileAtomic,
  type BackendKind,
  type BuildLockHandle,
  type BuildService,
  type DeployEvent,
  type DeployResult,
  type ImageMap,
  type ImageRegistry,
  type RecipeRunner,
  withNetworkWaits,
  createResolvedBackend,
} from '@prebuilt/core';
import { createMaterializedRecipeRunner, prebuiltCacheDir, type MaterializeResult } from '@prebuilt/conda';
import type { CliContext } from './cli-context.js';
import { lockFlow, type LockFlowResult } from './commands/lock.js';

export const DEFAULT_BASE_IMAGE = 'python:3.11-slim-bookworm';

export interface DeploySettings {
  baseImage: string;
  gpuBaseImage: string;
  registryCache: boolean;
  workers: number | undefined;
}

const OFF = new Set(['0', 'false', 'no', 'off']);
const ON = new Set(['1', 'true', 'yes', 'on']);

/** The deploy settings from the environment; a bad value is a ConfigError naming the variable. */
export function deploySettings(env: Record<string, string | undefined>, overrides: { workers?: string } = {}): DeploySettings {
  const baseImage =
    loadOptionalSetting({ value: undefined, envVar: 'METAFLOW_PREBUILT_BASE_IMAGE', option: 'baseImage', description: 'The base image', env }) ??
    DEFAULT_BASE_IMAGE;
  const gpuBaseImage =
    loadOptionalSetting({ value: undefined, envVar: 'METAFLOW_PREBUILT_GPU_BASE_IMAGE', option: 'gpuBaseImage', description: 'The GPU base image', env }) ??
    baseImage;
  const rawCache = (env.METAFLOW_PREBUILT_REGISTRY_CACHE ?? '').trim().toLowerCase();
  if (rawCache !== '' && !OFF.has(rawCache) && !ON.has(rawCache)) {
    throw new ConfigError(`METAFLOW_PREBUILT_REGISTRY_CACHE is '${env.METAFLOW_PREBUILT_REGISTRY_CACHE}', not on or off.`, {
      setting: 'METAFLOW_PREBUILT_REGISTRY_CACHE',
      hint: 'Set it to 1 (check the registry before building, the default) or 0 (always build).',
    });
  }
  const rawWorkers = overrides.workers ?? env.METAFLOW_PREBUILT_BUILD_WORKERS;
  let workers: number | undefined;
  if (rawWorkers !== undefined && rawWorkers.trim() !== '') {
    workers = Number(rawWorkers);
    if (!Number.isInteger(workers) || workers < 1 || workers > 64) {
      const from = overrides.workers !== undefined ? '--workers' : 'METAFLOW_PREBUILT_BUILD_WORKERS';
      throw new ConfigError(`${from} is '${rawWorkers}', not a whole number from 1 to 64.`, {
        setting: from,
        hint: `Set ${from} to the number of images to build at once (default: min(images, 8)).`,
      });
    }
  }
  return { baseImage, gpuBaseImage, registryCache: !OFF.has(rawCache), workers };
}

/** The state file: METAFLOW_PREBUILT_STATE_FILE, else `.prebuilt/<Flow>/images.json` beside the flow. */
export function stateFilePath(flowFile: string, flowName: string, env: Record<string, string | undefined>, cwd: string): string {
  const explicit = env.METAFLOW_PREBUILT_STATE_FILE?.trim();
  if (explicit) return resolve(cwd, explicit);
  return join(dirname(resolve(cwd, flowFile)), '.prebuilt', flowName, 'images.json');
}

export async function writeImageMap(path: string, map: ImageMap): Promise<void> {
  await writeFileAtomic(path, `${JSON.stringify(map, null, 2)}\n`, { setting: 'METAFLOW_PREBUILT_STATE_FILE' });
}

/**
 * The inter-process build lock of one image tag: `<cache dir>/locks/build-<hash of tag>.lock`.
 * Two `prebuilt build` runs on this machine never build the same image at once; the second waits,
 * then finds the image in the registry.
 */
export function buildLockFor(env: Record<string, string | undefined>) {
  const dir = join(prebuiltCacheDir(env), 'locks');
  return async (image: { envId: string; tag: string }, options: { signal?: AbortSignal; onWait: (holder?: string) => void }): Promise<BuildLockHandle> => {
    const name = createHash('sha256').update(image.tag).digest('hex').slice(0, 32);
    const lock = await acquireFileLock(join(dir, `build-${name}.lock`), {
      purpose: `build ${image.tag}`,
      onWait: (_owner, holder) => options.onWait(holder),
      ...(options.signal ? { signal: options.signal } : {}),
    }).catch((error: unknown) => {
      throw diskFullError(error, { dir, doing: `taking the build lock of ${image.tag}`, setting: 'METAFLOW_PREBUILT_CACHE_DIR' }) ?? error;
    });
    return { waited: lock.waitedFor !== undefined, release: () => lock.release() };
  };
}

export async function createBackend<K extends BackendKind>(kind: K, context: CliContext): Promise<K extends 'build-service' ? BuildService : ImageRegistry> {
  const names = selectedBackendNames(context.env);
  const selection = kind === 'build-service' ? names.buildService : names.imageRegistry;
  const resolved = await resolveBackend({ kind, name: selection.name, setting: selection.envVar, cwd: context.cwd, cliDir: context.cliDir });
  return createResolvedBackend(resolved, {}, { env: context.env, cwd: context.cwd }, kind === 'build-service' ? 'buildAndPush' : 'imageTag');
}

export interface DeployFlowOptions {
  plan?: boolean;
  force?: boolean;
  frozen?: boolean;
  update?: boolean;
  workers?: string;
  /** Build only these steps' images (e.g. the steps that run remotely); default every step. */
  steps?: readonly string[];
  onEvent?: (event: DeployEvent) => void;
  onLocked?: (lock: LockFlowResult) => void;
  onMaterialized?: (envId: string, result: MaterializeResult) => void;
}

export interface DeployFlowResult extends DeployResult {
  lock: LockFlowResult;
  settings: DeploySettings;
  recipe: string;
  registry: string;
  buildService: string | null;
}

/** Locks the flow and deploys (or plans) its images. */
export async function deployFlow(file: string, context: CliContext, options: DeployFlowOptions = {}): Promise<DeployFlowResult> {
  const settings = deploySettings(context.env, options.workers !== undefined ? { workers: options.workers } : {});
  const recipeName = selectRecipeName({ env: context.env });
  const registry = await createBackend('image-registry', context);
  let buildService: BuildService | undefined;
  // Configuration is checked before any work: the selected build service is resolved, created and
  // checked (daemon reachable, settings complete) before the flow is locked, even when every image
  // turns out to be present, so an unknown or misconfigured build service never passes unnoticed.
  const getBuildService = async (): Promise<BuildService> => (buildService ??= await createBackend('build-service', context));
  const recipe: RecipeRunner =
    recipeName === 'micromamba'
      ? createMicromambaRecipeRunner()
      : createMaterializedRecipeRunner({
          env: context.env,
          // A cached package that did not match the lock (removed, downloaded again), a wait for another download: shown as notes.
          onNote: (note) => options.onEvent?.({ type: 'note', message: note.message }),
          ...(options.onMaterialized ? { onMaterialized: options.onMaterialized } : {}),
        });
  // Build contexts and private Docker configs a killed run (SIGKILL skips every cleanup) left in the temp directory.
  await sweepStaleRunTempDirs();
  try {
    if (!options.plan) await checkBuildService(await getBuildService(), context.signal);
    options.onEvent?.({ type: 'resolving', steps: 0 });
    const onEvent = options.onEvent;
    const locking = (): ReturnType<typeof lockFlow> =>
      lockFlow(file, context, {
        ...(options.frozen ? { frozen: true } : {}),
        ...(options.update ? { update: true } : {}),
      });
    const lock = await (onEvent ? withNetworkWaits((wait) => onEvent({ type: 'waiting', ...wait }), locking) : locking());
    options.onLocked?.(lock);
    const only = options.steps ? new Set(options.steps) : undefined;
    const unknown = [...(only ?? [])].filter((name) => !lock.envs.steps.some((step) => step.step === name));
    if (unknown.length > 0) {
      throw new InputError(`${file} has no step ${unknown.join(', ')} (its steps: ${lock.envs.steps.map((step) => step.step).join(', ')}).`, {
        file,
        hint: 'Name steps of the flow, or build every step with prebuilt build.',
      });
    }
    const result = await deploy({
      flow: lock.envs.flow,
      steps: lock.envs.steps.filter((step) => !only || only.has(step.step)).map((step) => ({ name: step.step, gpu: step.gpu })),
      lock: async () => lock.steps,
      registry,
      ...(options.plan ? {} : { buildService: getBuildService, buildLock: buildLockFor(context.env) }),
      recipe,
      baseImage: settings.baseImage,
      gpuBaseImage: settings.gpuBaseImage,
      registryCache: settings.registryCache,
      ...(settings.workers !== undefined ? { workers: settings.workers } : {}),
      ...(options.force ? { force: true } : {}),
      ...(options.plan ? { plan: true } : {}),
      signal: context.signal,
      ...(options.onEvent ? { onEvent: options.onEvent } : {}),
    });
    return {
      ...result,
      lock,
      settings,
      recipe: recipeName,
      registry: registry.name,
      buildService: options.plan ? null : (buildService?.name ?? selectedBackendNames(context.env).buildService.name),
    };
  } finally {
    await buildService?.close?.();
    await registry.close?.();
  }
}
