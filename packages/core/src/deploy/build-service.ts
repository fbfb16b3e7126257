import type { BuildService, DeployOptions } from '../contracts.js';
import { PrebuiltError } from '../errors.js';

/** The build service, created (and checked) on first use: a deploy with nothing to build never loads it. */
export function lazyBuildService(source: DeployOptions['buildService'], signal: AbortSignal | undefined): () => Promise<BuildService> {
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
