/**
 * Runs `task` over `items` with at most `limit` in flight, taken in item order; the results keep
 * the items' order. The first rejection rejects the whole (the tasks in flight still run to their
 * end, and the workers go on taking items, as `Promise.all` over the workers does): for tasks
 * whose failure fails the caller; {@link mapPool} when every task must settle.
 */
export async function mapLimit<T, R>(items: readonly T[], limit: number, task: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const index = next++;
      results[index] = await task(items[index] as T, index);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  return results;
}

/**
 * Runs `task` over `items` with at most `limit` in flight, in item order.
 * Every task runs to completion (or rejection); results keep the items' order.
 */
export async function mapPool<T, R>(
  items: readonly T[],
  limit: number,
  task: (item: T, index: number) => Promise<R>,
): Promise<PromiseSettledResult<R>[]> {
  return mapLimit(items, limit, async (item, index): Promise<PromiseSettledResult<R>> => {
    try {
      return { status: 'fulfilled', value: await task(item, index) };
    } catch (reason) {
      return { status: 'rejected', reason };
    }
  });
}
