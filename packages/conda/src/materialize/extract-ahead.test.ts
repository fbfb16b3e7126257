/** Extractions ahead of the linking: bounded running and finished-but-not-taken, in order, stopped by a failure. */
import { describe, expect, it } from 'vitest';
import { EXTRACT_AHEAD, EXTRACTED_AHEAD, extractAhead } from './extract-ahead.js';

interface Job {
  item: number;
  resolve: () => void;
  reject: (error: Error) => void;
  released: boolean;
}

/** Extractions the test finishes by hand, recorded in the order they were started. */
function manualExtractions() {
  const jobs: Job[] = [];
  const extract = (item: number) =>
    new Promise<{ item: number; release: () => Promise<void> }>((resolve, reject) => {
      const job: Job = { item, resolve: () => resolve({ item, release: async () => void (job.released = true) }), reject, released: false };
      jobs.push(job);
    });
  return { jobs, extract };
}

/** Lets the extractions' settled callbacks run. */
const tick = () => new Promise((resolve) => setImmediate(resolve));

describe('extractAhead', () => {
  it('keeps the defaults of a full build: four running at once, sixteen finished waiting', () => {
    expect(EXTRACT_AHEAD).toBe(3);
    expect(EXTRACTED_AHEAD).toBe(16);
  });

  it('keeps extracting while the consumer holds a package: at most `running` at once, `finished` waiting, in item order', async () => {
    const { jobs, extract } = manualExtractions();
    const items = Array.from({ length: 20 }, (_, i) => i);
    const ahead = extractAhead(items, () => true, extract, { running: 2, finished: 5 });
    const first = ahead.take(0);
    expect(jobs.map((j) => j.item)).toEqual([0, 1]);
    jobs[0]!.resolve();
    expect((await first).item).toBe(0);
    // The consumer is busy with item 0: the extractions after it go on as each finishes.
    for (let round = 0; round < 10; round++) {
      for (const job of jobs.slice(1)) job.resolve();
      await tick();
    }
    // Each one finishing started the next while fewer than 5 waited: 1..6 finished (6 started while 5 ran), none running.
    expect(jobs.map((j) => j.item)).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect((await ahead.take(1)).item).toBe(1);
    await tick();
    expect(jobs.length).toBe(7); // still 5 waiting (2..6)
    expect((await ahead.take(2)).item).toBe(2);
    expect(jobs.map((j) => j.item)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8]); // 4 waiting: room for two running
    jobs[7]!.resolve();
    await tick();
    expect(jobs.length).toBe(9); // 3..7 waiting again: 9 not started
    for (const job of jobs) job.resolve();
    await ahead.settle();
    expect(jobs.filter((j) => j.released).map((j) => j.item)).toEqual([3, 4, 5, 6, 7, 8]); // none started once settling
  });

  it('skips the items it does not extract (wheels) and hands each taken one over once', async () => {
    const { jobs, extract } = manualExtractions();
    const items = [0, 1, 2, 3, 4, 5];
    const ahead = extractAhead(items, (i) => i % 2 === 0, extract, { running: 4, finished: 4 });
    const taken = ahead.take(0);
    expect(jobs.map((j) => j.item)).toEqual([0, 2, 4]);
    for (const job of jobs) job.resolve();
    expect((await taken).item).toBe(0);
    expect((await ahead.take(4)).item).toBe(4);
    await ahead.settle();
    // Item 2 was never taken: released by settle; the taken ones are the consumer's.
    expect(jobs.map((j) => [j.item, j.released])).toEqual([
      [0, false],
      [2, true],
      [4, false],
    ]);
  });

  it('starts nothing after a failed extraction; the failure reaches the consumer; settle releases what finished untaken', async () => {
    const { jobs, extract } = manualExtractions();
    const items = Array.from({ length: 10 }, (_, i) => i);
    const ahead = extractAhead(items, () => true, extract, { running: 3, finished: 8 });
    const first = ahead.take(0);
    jobs[0]!.resolve();
    await first;
    jobs[1]!.reject(new Error('corrupt archive'));
    jobs[2]!.resolve();
    jobs[3]!.resolve();
    await tick();
    // 1's failure came before 2 and 3 finished: nothing after 3 was started.
    expect(jobs.map((j) => j.item)).toEqual([0, 1, 2, 3]);
    await expect(ahead.take(1)).rejects.toThrow('corrupt archive');
    await ahead.settle();
    expect(jobs.filter((j) => j.released).map((j) => j.item)).toEqual([2, 3]);
  });
});
