import { describe, expect, it } from 'vitest';
import { CancelledError } from '../errors.js';
import { SharedFetches } from './shared-fetch.js';

/** A fetch that ends when told to (or when its signal aborts), counting how often one was started. */
function controllable(): { start: (signal: AbortSignal) => Promise<string>; finish: (value: string) => void; started: () => number; aborted: () => boolean } {
  let started = 0;
  let finish: (value: string) => void = () => undefined;
  let signal: AbortSignal | undefined;
  return {
    start: (s) => {
      started += 1;
      signal = s;
      return new Promise<string>((resolve, reject) => {
        finish = resolve;
        s.addEventListener('abort', () => reject(new Error('fetch aborted')), { once: true });
      });
    },
    finish: (value) => finish(value),
    started: () => started,
    aborted: () => signal?.aborted ?? false,
  };
}

describe('SharedFetches', () => {
  it('a request whose signal aborts stops waiting at once; the fetch goes on for the others', async () => {
    const fetches = new SharedFetches<string>();
    const fetch = controllable();
    const other = new AbortController();
    const short = new AbortController();
    const first = fetches.join('k', 'the token', other.signal, fetch.start);
    const second = fetches.join('k', 'the token', short.signal, fetch.start);
    const third = fetches.join('k', 'the token', undefined, fetch.start);
    short.abort(new Error('deadline'));
    await expect(second).rejects.toThrow(CancelledError);
    await expect(second).rejects.toThrow('registry request cancelled: the token');
    expect(fetch.aborted()).toBe(false);
    fetch.finish('t');
    expect(await first).toBe('t');
    expect(await third).toBe('t');
    expect(fetch.started()).toBe(1);
  });

  it('the one that started it stopping does not cancel it for one that joined', async () => {
    const fetches = new SharedFetches<string>();
    const fetch = controllable();
    const starter = new AbortController();
    const joiner = new AbortController();
    const first = fetches.join('k', 'the token', starter.signal, fetch.start);
    const second = fetches.join('k', 'the token', joiner.signal, fetch.start);
    starter.abort();
    await expect(first).rejects.toThrow(CancelledError);
    expect(fetch.aborted()).toBe(false);
    fetch.finish('t');
    expect(await second).toBe('t');
  });

  it('aborts the fetch once every request waiting on it has stopped; the next request starts its own', async () => {
    const fetches = new SharedFetches<string>();
    const fetch = controllable();
    const a = new AbortController();
    const b = new AbortController();
    const first = fetches.join('k', 'the token', a.signal, fetch.start);
    const second = fetches.join('k', 'the token', b.signal, fetch.start);
    a.abort();
    expect(fetch.aborted()).toBe(false);
    b.abort();
    expect(fetch.aborted()).toBe(true);
    await expect(first).rejects.toThrow(CancelledError);
    await expect(second).rejects.toThrow(CancelledError);
    const again = controllable();
    const third = fetches.join('k', 'the token', undefined, again.start);
    again.finish('t2');
    expect(await third).toBe('t2');
    // An already aborted signal never joins.
    await expect(fetches.join('k', 'the token', AbortSignal.abort(), again.start)).rejects.toThrow(CancelledError);
    expect(again.started()).toBe(1);
  });

  it('passes the fetch’s failure to every request waiting on it', async () => {
    const fetches = new SharedFetches<string>();
    const failing = (): Promise<string> => Promise.reject(new Error('token server down'));
    const waiting = [fetches.join('k', 'the token', new AbortController().signal, failing), fetches.join('k', 'the token', undefined, failing)];
    for (const one of waiting) await expect(one).rejects.toThrow('token server down');
  });
});
