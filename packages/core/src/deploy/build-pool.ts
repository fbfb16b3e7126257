import type { DeployImage } from '../contracts.js';
import { CancelledError } from '../errors.js';
import { processImage } from './build-image.js';
import { ImageJob, imageResult, type PlannedImage } from './deploy-job.js';
import type { DeployRun } from './deploy-run.js';
import { mapPool } from './pool.js';
import { ServiceFailure, describeFailure } from './service-failure.js';

/**
 * Checks, then builds what is missing, `workers` images at once (default min(images, 8)). An image
 * that fails is a failed result; the others go on. A registry or build service failure aborts the
 * pool's signal, which cancels the builds in flight, and is rethrown; so is a cancellation.
 */
export async function runBuildPool(images: readonly PlannedImage[], run: DeployRun): Promise<DeployImage[]> {
  const workers = run.options.workers ?? Math.min(Math.max(images.length, 1), 8);
  // A service failure aborts `stop`, which cancels the builds in flight; the caller's signal does too.
  const stop = new AbortController();
  const inner = run.signal ? AbortSignal.any([run.signal, stop.signal]) : stop.signal;
  const poolRun: DeployRun = { ...run, signal: inner };
  let fatal: { error: unknown } | undefined;
  const settled = await mapPool(images, workers, async (image) => {
    if (inner.aborted) throw new CancelledError('The deploy was cancelled.', { cause: inner.reason });
    try {
      return await processImage(new ImageJob(image, poolRun));
    } catch (error) {
      if (!(error instanceof ServiceFailure)) throw error;
      if (!inner.aborted) {
        fatal = { error: error.error };
        stop.abort(error.error);
      }
      throw error.error;
    }
  });
  return settle(images, settled, { run, inner, fatal });
}

/** The pool's results in plan order; throws the cancellation or service failure that stopped it. */
function settle(
  images: readonly PlannedImage[],
  settled: PromiseSettledResult<DeployImage>[],
  state: { run: DeployRun; inner: AbortSignal; fatal: { error: unknown } | undefined },
): DeployImage[] {
  const results: DeployImage[] = [];
  let cancelled: unknown;
  settled.forEach((outcome, index) => {
    if (outcome.status === 'fulfilled') {
      results.push(outcome.value);
      return;
    }
    if (outcome.reason instanceof CancelledError || state.inner.aborted) {
      cancelled ??= outcome.reason;
      return;
    }
    const image = images[index] as PlannedImage;
    const failed = describeFailure(outcome.reason);
    results.push(imageResult(image, 'failed', { reason: failed.reason, ...(failed.hint ? { hint: failed.hint } : {}), logTail: [], elapsedMs: 0 }));
    new ImageJob(image, state.run).phase('failed', failed.reason);
  });
  const signal = state.run.signal;
  if (signal?.aborted) {
    throw cancelled instanceof CancelledError ? cancelled : new CancelledError('The deploy was cancelled.', { cause: signal.reason });
  }
  if (state.fatal !== undefined) throw state.fatal.error;
  if (cancelled !== undefined) {
    throw cancelled instanceof CancelledError ? cancelled : new CancelledError('The deploy was cancelled.', { cause: cancelled });
  }
  return results;
}
