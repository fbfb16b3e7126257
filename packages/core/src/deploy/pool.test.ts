import { describe, expect, it } from 'vitest';
import { mapLimit, mapPool } from './pool.js';

/** A task that records how many run at once and ends after a short wait (the longer, the earlier its item). */
function tracked() {
  const seen = { inFlight: 0, most: 0, started: [] as number[] };
  const task = async (item: number): Promise<number> => {
    seen.started.push(item);
    seen.inFlight += 1;
    seen.most = Math.max(seen.most, seen.inFlight);
    await new Promise((resolve) => setTimeout(resolve, 10 - item));
    seen.inFlight -= 1;
    if (item === 3) throw new Error('item 3 failed');
    return item * 10;
  };
  return { seen, task };
}

describe('mapLimit and mapPool (at most `limit` tasks at once, results in item order)', () => {
  it('mapLimit runs at most limit tasks at once, takes the items in order, keeps their order in the results', async () => {
    const { seen, task } = tracked();
    expect(await mapLimit([0, 1, 2, 4, 5, 6], 2, task)).toEqual([0, 10, 20, 40, 50, 60]);
    expect(seen.most).toBe(2);
    expect(seen.started).toEqual([0, 1, 2, 4, 5, 6]);
  });

  it('mapLimit rejects with a task\'s rejection; a limit of 0 still runs the items one at a time', async () => {
    await expect(mapLimit([1, 2, 3, 4], 2, tracked().task)).rejects.toThrow('item 3 failed');
    const { seen, task } = tracked();
    expect(await mapLimit([1, 2], 0, task)).toEqual([10, 20]);
    expect(seen.most).toBe(1);
    expect(await mapLimit([], 4, task)).toEqual([]);
  });

  it('mapPool settles every task, a rejection (or a synchronous throw) in its place', async () => {
    const { seen, task } = tracked();
    const settled = await mapPool([1, 3, 5], 2, (item, index) => {
      if (index === 2) throw new Error('thrown at once');
      return task(item);
    });
    expect(settled.map((s) => (s.status === 'fulfilled' ? s.value : (s.reason as Error).message))).toEqual([10, 'item 3 failed', 'thrown at once']);
    expect(seen.most).toBe(2);
  });
});
