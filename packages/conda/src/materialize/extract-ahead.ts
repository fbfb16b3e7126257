/**
 * The conda packages of a lock extracted ahead of the main thread, which links them in lock order
 * (materialize.ts): extraction (in a worker, extract-pool.ts) overlaps linking and the bytecode pass.
 */

/**
 * Extractions running at once ahead of the package being linked, at most, beside it: each holds
 * its decompressed tar in memory while it runs.
 */
export const EXTRACT_AHEAD = 3;

/**
 * Extractions finished but not taken yet, at most. A finished extraction holds only its entry list
 * and `info/` files (its files are on disk), so the worker keeps extracting while the main thread
 * links and settles a large package (sympy's 1,473 pycs) instead of idling until the next package
 * is taken; the main thread then waits less for the packages after it.
 */
export const EXTRACTED_AHEAD = 16;

export interface AheadLimits {
  /** Extractions running at once (default {@link EXTRACT_AHEAD} + 1). */
  running: number;
  /** Extractions finished and not taken (default {@link EXTRACTED_AHEAD}). */
  finished: number;
}

export interface ExtractionsAhead<T> {
  /** Waits for the extraction of `items[i]` (one `extract` selected), which is then the caller's. */
  take(i: number): Promise<T>;
  /** Starts no more, waits for every started extraction and releases those never taken (after a failure). */
  settle(): Promise<void>;
}

/**
 * Extracts the items `extract` selects, in their order, ahead of a consumer taking them in that
 * order: at most `limits.running` running and `limits.finished` finished but not taken; each one
 * finishing, or taken, starts the next. After a failed extraction none is started (the consumer
 * meets the failure when it takes it, or at `settle`).
 */
export function extractAhead<P, T extends { release: () => Promise<void> }>(
  items: readonly P[],
  selected: (item: P) => boolean,
  extract: (item: P) => Promise<T>,
  limits: AheadLimits = { running: EXTRACT_AHEAD + 1, finished: EXTRACTED_AHEAD },
): ExtractionsAhead<T> {
  const started = new Map<number, Promise<T>>();
  const taken = new Set<number>();
  const running = new Set<number>();
  let stopped = false;
  const startMore = (): void => {
    let finished = 0;
    for (let i = 0; i < items.length && !stopped && running.size < limits.running && finished < limits.finished; i++) {
      if (!selected(items[i]!) || taken.has(i)) continue;
      if (started.has(i)) {
        if (!running.has(i)) finished += 1;
        continue;
      }
      running.add(i);
      const job = extract(items[i]!);
      started.set(i, job);
      job.then(
        () => {
          running.delete(i);
          startMore();
        },
        () => {
          // Awaited by take() or settle().
          running.delete(i);
          stopped = true;
        },
      );
    }
  };
  return {
    take(i: number): Promise<T> {
      startMore();
      const job = started.get(i);
      if (!job) throw new Error(`extractAhead: item ${i} was not started (taken out of order, or after a failure).`);
      taken.add(i);
      startMore();
      return job;
    },
    async settle(): Promise<void> {
      stopped = true;
      for (const [i, job] of started) {
        if (taken.has(i)) continue;
        await job.then((extraction) => extraction.release(), () => undefined);
      }
    },
  };
}
