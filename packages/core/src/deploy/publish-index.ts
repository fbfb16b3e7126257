import type { DeployImage, RegistryCredentials } from '../contracts.js';
import { dockerPlatform } from '../env-model.js';
import { CancelledError, PrebuiltError, type RegistryError } from '../errors.js';
import { pushImageIndex, readImageIndex } from '../registry/image-index.js';
import { parsePlatform, platformMatches } from '../registry/platform.js';
import { IndexJob, type PlannedIndex } from './deploy-job.js';
import type { DeployRun } from './deploy-run.js';
import { describeFailure } from './service-failure.js';

type PushCredentials = () => Promise<RegistryCredentials | undefined>;

/**
 * Publishes the image indexes over the platforms' images (`results`, which are marked `memberOf`
 * their indexes), all at once. Credentials refused or the registry unreachable fail every index
 * alike: that error is thrown, not N failures.
 */
export async function publishIndexes(indexes: readonly PlannedIndex[], results: readonly DeployImage[], run: DeployRun): Promise<DeployImage[]> {
  const byEnvId = new Map(results.map((image) => [image.envId, image]));
  let credentials: Promise<RegistryCredentials | undefined> | undefined;
  const pushCredentials: PushCredentials = () => (credentials ??= run.options.registry.pushCredentials({ ...(run.signal ? { signal: run.signal } : {}) }));
  const published = await Promise.allSettled(
    indexes.map((index) => {
      const members = index.members.map((m) => byEnvId.get(m.envId) as DeployImage);
      for (const member of members) member.memberOf = [...(member.memberOf ?? []), index.id];
      return publishIndex(new IndexJob(index, members, run), pushCredentials);
    }),
  );
  if (run.signal?.aborted) throw new CancelledError('The deploy was cancelled.', { cause: run.signal.reason });
  const thrown = published.find((outcome): outcome is PromiseRejectedResult => outcome.status === 'rejected');
  if (thrown) throw thrown.reason;
  return published.map((outcome) => (outcome as PromiseFulfilledResult<DeployImage>).value);
}

/**
 * Publishes (or finds) the image index of a multi-platform env. Its platforms' images must all be
 * in the registry; one that failed fails the index. An index already under the tag is reused only
 * when it names exactly the platforms' current images (a platform image rebuilt since, e.g. with
 * --force by a single-platform deploy, gets a new index). Pushing an index moves one small manifest.
 */
async function publishIndex(job: IndexJob, pushCredentials: PushCredentials): Promise<DeployImage> {
  const { options } = job.run;
  const members = job.members;
  const failed = members.filter((m) => m.status === 'failed');
  if (failed.length > 0) return job.fail(`Its ${failed.map((m) => `${m.platform} image (env ${m.envId})`).join(' and ')} failed to build.`);
  if (members.some((m) => m.status === 'missing' || m.status === 'unchecked')) {
    // A plan: a platform image would be built, so its index would be pushed.
    job.phase('missing');
    return job.done(members.some((m) => m.status === 'missing') ? 'missing' : 'unchecked');
  }
  const undigested = members.find((m) => m.digest === undefined);
  if (undigested) {
    return job.fail(`The registry ${options.registry.name} gave no digest for ${undigested.tag}, so the image index cannot name it.`, 'The registry backend must report the manifest digest of an image that exists.');
  }
  try {
    // A platform image built now has a new digest: its index must be pushed anew, without asking.
    if (job.run.useCache && (!options.force || options.plan) && !members.some((m) => m.status === 'built')) {
      const found = await findPublished(job, pushCredentials);
      if (found) return found;
    } else if (options.plan) {
      job.phase('missing');
      return job.done(job.run.useCache ? 'missing' : 'unchecked');
    }
    return await pushIndex(job, pushCredentials);
  } catch (error) {
    if (job.signal?.aborted || error instanceof CancelledError) throw error;
    // Credentials refused or missing, or the registry unreachable: not this index's failure (see publishIndexes).
    if (PrebuiltError.isInstance(error) && (error.code === 'auth' || error.code === 'login-required' || (error.code === 'registry' && (error as RegistryError).status === undefined))) throw error;
    const failure = describeFailure(error);
    return job.fail(failure.reason, failure.hint);
  }
}

/** The index's platform images, as an index names them. */
function indexEntries(job: IndexJob): { digest: string; platform: string }[] {
  return job.members.map((m) => ({ digest: m.digest as string, platform: dockerPlatform(m.platform) }));
}

/** The index's result when the tag names an index of exactly its images; in a plan, `missing` when it does not. */
async function findPublished(job: IndexJob, pushCredentials: PushCredentials): Promise<DeployImage | undefined> {
  const { options } = job.run;
  const images = indexEntries(job);
  job.phase('checking');
  const credentials = await pushCredentials();
  const current = await (options.readIndex ?? readImageIndex)({ imageTag: job.tag, ...(credentials ? { pushCredentials: credentials } : {}), ...(job.signal ? { signal: job.signal } : {}) });
  const same =
    current !== undefined &&
    current.images.length === images.length &&
    images.every((image) => current.images.some((c) => c.digest === image.digest && platformMatches(parsePlatform(c.platform), image.platform)));
  if (same) {
    job.phase('present');
    return job.done('present', { digest: current.digest });
  }
  if (!options.plan) return undefined;
  job.phase('missing', current ? 'the index names other images than the platforms\' current ones' : undefined);
  return job.done('missing');
}

/** Pushes the index and reads it back from the registry. */
async function pushIndex(job: IndexJob, pushCredentials: PushCredentials): Promise<DeployImage> {
  const { options } = job.run;
  job.phase('pushing', `image index of ${job.members.map((m) => m.platform).join(', ')}`);
  const credentials = await pushCredentials();
  const pushed = await (options.pushIndex ?? pushImageIndex)({
    imageTag: job.tag,
    images: indexEntries(job),
    ...(credentials ? { pushCredentials: credentials } : {}),
    ...(job.signal ? { signal: job.signal } : {}),
  });
  job.phase('verifying');
  const existence = await options.registry.imageExists(job.tag, { signal: job.signal });
  if (!existence.exists) return job.fail(`The image index ${job.tag} was pushed, but the registry does not have it.`);
  job.phase('built');
  return job.done('built', { digest: existence.digest ?? pushed.digest });
}
