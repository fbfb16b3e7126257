import type { DeployOptions, DeployResult } from '../contracts.js';
import { CancelledError } from '../errors.js';
import { withNetworkWaits } from '../net/network-wait.js';
import { buildImageMap } from './build-image-map.js';
import { runBuildPool } from './build-pool.js';
import { lazyBuildService } from './build-service.js';
import type { DeployRun } from './deploy-run.js';
import { planDeploy, planPlatforms } from './plan.js';
import { publishIndexes } from './publish-index.js';

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

/** The stages in order: lock, plan, build pool, image indexes, image map. */
async function deployImages(options: DeployOptions): Promise<DeployResult> {
  const run: DeployRun = {
    options,
    emit: options.onEvent ?? (() => {}),
    signal: options.signal,
    useCache: options.registryCache !== false,
    buildService: lazyBuildService(options.buildService, options.signal),
  };
  const throwIfAborted = (): void => {
    if (run.signal?.aborted) throw new CancelledError('The deploy was cancelled.', { cause: run.signal.reason });
  };
  run.emit({ type: 'resolving', steps: options.steps.length });
  const locks = await options.lock({ ...(run.signal ? { signal: run.signal } : {}) });
  throwIfAborted();
  const plan = await planDeploy(options, locks);
  run.emit({ type: 'resolved', images: plan.images.length, indexes: plan.indexes.length, platforms: planPlatforms(plan) });
  throwIfAborted();
  const results = await runBuildPool(plan.images, run);
  // Image indexes over the platforms' images, once those are in the registry.
  results.push(...(await publishIndexes(plan.indexes, results, run)));
  const imageMap = await buildImageMap(options, plan, results);
  return { imageMap, images: results, failures: results.filter((image) => image.status === 'failed') };
}
