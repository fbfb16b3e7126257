import type { BuildService, DeployImage, ImageLayout, PreparedBuild } from '../contracts.js';
import { dockerPlatform } from '../env-model.js';
import { layoutChange } from '../image-layout.js';
import { createLogger } from '../logger.js';
import type { ImageJob } from './deploy-job.js';
import { envPrefix } from './image-map.js';
import { describeFailure, service } from './service-failure.js';

const log = createLogger('deploy');

/**
 * One image's way through the deploy: is it in the registry (unless --force or no registry
 * cache)? In a plan, stop there. Otherwise take the build lock, check again when another process
 * held it, then build.
 */
export async function processImage(job: ImageJob): Promise<DeployImage> {
  const { options, useCache } = job.run;
  if (useCache && (!options.force || options.plan)) {
    const present = await checkRegistry(job);
    if (present) return present;
  }
  if (options.plan) {
    job.phase('missing');
    return job.done(useCache ? 'missing' : 'unchecked');
  }
  if (!options.buildLock) return buildImage(job);
  const held = await options.buildLock(
    { envId: job.envId, tag: job.tag },
    {
      ...(job.signal ? { signal: job.signal } : {}),
      onWait: (holder) =>
        job.phase('waiting', `another prebuilt process is building this image${holder ? `: ${holder}` : ''}; waiting since ${new Date().toISOString().slice(11, 19)} UTC`),
    },
  );
  try {
    if (held.waited && useCache && !options.force) {
      const present = await checkRegistry(job);
      if (present) return present;
    }
    return await buildImage(job);
  } finally {
    await held.release();
  }
}

/**
 * The image's result when the registry has it already, laid out as this build would lay it out
 * (see `DeployOptions.imageLayout`); undefined when it must be built. In a plan, an image laid out
 * otherwise is `missing` with the reason.
 */
async function checkRegistry(job: ImageJob): Promise<DeployImage | undefined> {
  job.phase('checking');
  const { registry, plan } = job.run.options;
  const layout = await job.expectedLayout();
  const existence = await service(() => registry.imageExists(job.tag, { signal: job.signal, ...(layout ? { annotations: true } : {}) }));
  if (!existence.exists) return undefined;
  // A registry that does not read annotations (a third-party one) gives none: the image is kept, as before layouts.
  const found = existence.annotations?.[layout?.annotation ?? ''];
  const refused = layout?.refusedLayers && existence.layerMediaTypes?.some((type) => layout.refusedLayers!.mediaTypes.includes(type));
  if (layout && existence.annotations && (found !== layout.value || refused)) {
    const change = found !== layout.value ? layoutChange(layout, found) : layout.refusedLayers!.change;
    log('%s: %s (%s: %s, this build: %s)', job.tag, change, layout.annotation, found ?? 'none', layout.value ?? 'none');
    if (plan) {
      job.phase('missing', change);
      return job.done('missing', { reason: change, ...reportedLayout(layout) });
    }
    job.phase('checking', change);
    return undefined;
  }
  job.phase('present');
  return job.done('present', { ...(existence.digest ? { digest: existence.digest } : {}), ...reportedLayout(layout) });
}

/** `{ layout }` of an image's result: the layout's value where it has one and is reported (see `ImageLayout.reported`). */
function reportedLayout(layout: ImageLayout | undefined): { layout?: string } {
  return layout?.value !== undefined && layout.reported !== false ? { layout: layout.value } : {};
}

/** Materializes, builds, pushes and verifies one image. */
async function buildImage(job: ImageJob): Promise<DeployImage> {
  const buildService = await service(job.run.buildService);
  job.phase('materializing');
  let prepared: PreparedBuild;
  try {
    prepared = await job.run.options.recipe.prepare({
      lock: job.image.lock,
      envId: job.envId,
      prefix: envPrefix(job.envId),
      base: job.image.base,
      ...(job.signal ? { signal: job.signal } : {}),
      onProgress: (progress) => job.run.emit({ type: 'progress', envId: job.envId, ...progress }),
    });
  } catch (error) {
    if (job.signal?.aborted) throw error;
    // This env cannot be materialized (a package that cannot be relocated, a corrupt download):
    // it fails now, visibly, while the other images go on.
    const failed = describeFailure(error);
    return job.fail(failed.reason, [], failed.hint);
  }
  try {
    return await buildAndVerify(job, prepared, buildService);
  } finally {
    await prepared.dispose();
  }
}

/** Builds and pushes the prepared context, then reads the pushed image back from the registry. */
async function buildAndVerify(job: ImageJob, prepared: PreparedBuild, buildService: BuildService): Promise<DeployImage> {
  const { registry } = job.run.options;
  const signal = job.signal;
  job.phase('building');
  const logTail: string[] = [];
  const pushCredentials = await service(() => registry.pushCredentials({ ...(signal ? { signal } : {}) }));
  const result = await service(() =>
    buildService.buildAndPush({
      dockerfile: prepared.dockerfile,
      contextDir: prepared.contextDir,
      imageTag: job.tag,
      pushCredentials,
      platform: dockerPlatform(job.image.lock.platform),
      log: (line) => {
        logTail.push(line);
        if (logTail.length > 50) logTail.shift();
        job.run.emit({ type: 'log', envId: job.envId, line });
      },
      onPhase: (value) => job.phase(value),
      note: (message) => job.run.emit({ type: 'note', message }),
      ...(signal ? { signal } : {}),
      envId: job.envId,
    }),
  );
  if (!result.ok) return job.fail(result.reason, result.logTail);
  job.phase('verifying');
  const existence = await service(() => registry.imageExists(job.tag, { signal }));
  if (!existence.exists) return job.fail(`The build service reported a push of ${job.tag}, but the registry does not have it.`, logTail.slice(-30));
  if (existence.digest && existence.digest !== result.digest) {
    log('digest from the build service (%s) differs from the registry (%s) for %s', result.digest, existence.digest, job.tag);
  }
  job.phase('built');
  const layout = await job.expectedLayout();
  return job.done('built', { digest: existence.digest ?? result.digest, ...reportedLayout(layout) });
}
