import type { BaseImageIdentity, DeployOptions, DeployStep } from '../contracts.js';
import { dockerPlatform, type CondaPlatform, type LockedEnv } from '../env-model.js';
import { computeEnvId, indexId } from '../env-id.js';
import { AuthError, ConfigError, LoginRequiredError, PrebuiltError, UnreachableError, errorMessage, type RegistryError } from '../errors.js';
import type { PlannedImage, PlannedIndex } from './deploy-job.js';

/** What `DeployOptions.lock()` gives: step → its lock, one lock per platform, or null (disabled). */
export type StepLockInput = Record<string, LockedEnv | readonly LockedEnv[] | null>;

/**
 * The deploy's plan: one image per distinct env and platform (steps with equal envIds share it)
 * and one image index per distinct multi-platform env (equal indexes shared), in first-seen order.
 */
export interface DeployPlan {
  images: PlannedImage[];
  indexes: PlannedIndex[];
  /** step → its locks, null for a disabled step. */
  locks: Map<string, readonly LockedEnv[] | null>;
}

/** The base image a step is built on. */
export function baseImageOf(options: DeployOptions, step: DeployStep): string {
  return step.gpu && options.gpuBaseImage ? options.gpuBaseImage : options.baseImage;
}

/** A step's locks (one per platform), or null when its env is disabled. */
function locksOf(locks: StepLockInput, step: DeployStep): readonly LockedEnv[] | null {
  const lock = locks[step.name];
  if (lock === undefined) throw new PrebuiltError('internal', `No lock was given for step ${step.name}.`, 1);
  if (lock === null) return null;
  const list = Array.isArray(lock) ? (lock as readonly LockedEnv[]) : [lock as LockedEnv];
  if (list.length === 0) throw new PrebuiltError('internal', `No lock was given for step ${step.name}.`, 1);
  return list;
}

/** Base image identities (a mutable tag resolves to a digest), once per base and platform. */
function baseIdentities(options: DeployOptions): (ref: string, platform: CondaPlatform) => Promise<BaseImageIdentity> {
  const cache = new Map<string, Promise<BaseImageIdentity>>();
  return (ref, platform) => {
    const key = `${ref}\0${platform}`;
    let found = cache.get(key);
    if (!found) {
      found = options.registry.baseImageIdentity(ref, dockerPlatform(platform), { signal: options.signal }).catch((error: unknown) => {
        const setting = ref === options.gpuBaseImage && ref !== options.baseImage ? 'METAFLOW_PREBUILT_GPU_BASE_IMAGE' : 'METAFLOW_PREBUILT_BASE_IMAGE';
        // A registry that wants a login for the base image (often another registry than the one
        // pushed to): the error says it was the base image, and which setting names it.
        if (PrebuiltError.isInstance(error) && (error.code === 'auth' || error.code === 'login-required')) {
          const { registry, source } = error as AuthError | LoginRequiredError;
          const Kind = error.code === 'auth' ? AuthError : LoginRequiredError;
          throw new Kind(`The base image ${ref} (${setting}): ${error.message}`, { registry, source }, { cause: error, ...(error.hint ? { hint: error.hint } : {}) });
        }
        // A base image registry this machine cannot reach (the default base image is on Docker Hub: an
        // air-gapped machine, a proxy) says it was the base image, and that the setting can name one it reaches.
        if (PrebuiltError.isInstance(error) && error.code === 'unreachable') {
          const move = `Or set ${setting} to a base image on a registry this machine reaches (a mirror, your own registry).`;
          throw new UnreachableError(`The base image ${ref} (${setting}): ${error.message}`, { service: (error as UnreachableError).service }, { cause: error, hint: error.hint ? `${error.hint} ${move}` : move });
        }
        // A base image the registry does not have is a setting to fix (exit 2), not a registry fault.
        if (!PrebuiltError.isInstance(error) || error.code !== 'registry' || (error as RegistryError).status !== 404) throw error;
        throw new ConfigError(`${error.message.replace(/\.$/, '')} (${setting}).`, { setting, cause: error, ...(error.hint ? { hint: error.hint } : {}) });
      });
      cache.set(key, found);
    }
    return found;
  };
}

/**
 * Plans the deploy: envIds and tags for every step's locks; a step locked for several platforms
 * gets one image per platform and an image index over them.
 */
export async function planDeploy(options: DeployOptions, locks: StepLockInput): Promise<DeployPlan> {
  const images = new Map<string, PlannedImage>();
  const indexes = new Map<string, PlannedIndex>();
  const stepLocks = new Map<string, readonly LockedEnv[] | null>();
  const baseIdentity = baseIdentities(options);
  const pullTagOf = (tag: string): string => (options.registry.pullTag ? options.registry.pullTag(tag) : tag);
  for (const step of options.steps) {
    const list = locksOf(locks, step);
    stepLocks.set(step.name, list);
    if (list === null) continue;
    const members: PlannedIndex['members'] = [];
    for (const lock of list) {
      const base = await baseIdentity(baseImageOf(options, step), lock.platform);
      const envId = computeEnvId({ lock, baseDigest: base.digest, recipe: options.recipe });
      members.push({ platform: lock.platform, envId });
      const existing = images.get(envId);
      if (existing) existing.steps.push(step.name);
      else {
        const tag = options.registry.imageTag({ envId, platform: lock.platform });
        images.set(envId, { envId, tag, pullTag: pullTagOf(tag), lock, base, steps: [step.name] });
      }
    }
    if (members.length < 2) continue;
    const id = stepIndexId(step, members);
    const existingIndex = indexes.get(id);
    if (existingIndex) existingIndex.steps.push(step.name);
    else {
      const platforms = members.map((m) => m.platform);
      const tag = options.registry.imageTag({ envId: id, platform: platforms[0]!, platforms });
      indexes.set(id, { id, tag, pullTag: pullTagOf(tag), members, steps: [step.name] });
    }
  }
  return { images: [...images.values()], indexes: [...indexes.values()], locks: stepLocks };
}

function stepIndexId(step: DeployStep, members: PlannedIndex['members']): string {
  try {
    return indexId(members);
  } catch (error) {
    throw new PrebuiltError('internal', `The locks of step ${step.name}: ${errorMessage(error)}.`, 1, { cause: error });
  }
}

/** The platforms the plan's images are for, in first-seen order. */
export function planPlatforms(plan: DeployPlan): CondaPlatform[] {
  return [...new Set(plan.images.map((image) => image.lock.platform))];
}
