/**
 * Fetches several requests wait on at once (a registry token for one scope), each request with its
 * own signal: a request whose signal aborts stops waiting at once, with CancelledError, while the
 * others go on waiting; the fetch itself is aborted only once every request waiting on it has
 * stopped (a request without a signal waits to the end). So a request with a short deadline of its
 * own (the DELETE of an abandoned upload session: 2 s) is bounded by it even when it joins a fetch
 * another request started, and its deadline never cancels that fetch for the others.
 */
import { CancelledError } from '../errors.js';

interface Running<T> {
  readonly promise: Promise<T>;
  readonly controller: AbortController;
  /** Requests waiting with a signal that has not aborted. */
  waiting: number;
  /** Whether a request without a signal waits on it (it then runs to the end). */
  unbounded: boolean;
}

export class SharedFetches<T> {
  readonly #running = new Map<string, Running<T>>();

  /**
   * The result of the fetch running for `key`, or of one `start`ed now (given the signal that aborts
   * it once nobody waits); `what` names it in the CancelledError of a request that stops waiting.
   */
  join(key: string, what: string, signal: AbortSignal | undefined, start: (signal: AbortSignal) => Promise<T>): Promise<T> {
    if (signal?.aborted) return Promise.reject(new CancelledError(`registry request cancelled: ${what}`, { cause: signal.reason }));
    let running = this.#running.get(key);
    if (!running) {
      const controller = new AbortController();
      const promise = start(controller.signal).finally(() => {
        if (this.#running.get(key) === running) this.#running.delete(key);
      });
      // Each waiting request sees its failure; one that stopped waiting does not need to.
      promise.catch(() => undefined);
      running = { promise, controller, waiting: 0, unbounded: false };
      this.#running.set(key, running);
    }
    if (!signal) {
      running.unbounded = true;
      return running.promise;
    }
    return this.#wait(key, running, what, signal);
  }

  #wait(key: string, running: Running<T>, what: string, signal: AbortSignal): Promise<T> {
    running.waiting += 1;
    return new Promise<T>((resolve, reject) => {
      let done = false;
      const onAbort = (): void => {
        done = true;
        running.waiting -= 1;
        if (running.waiting === 0 && !running.unbounded) {
          // Nobody waits any more: the fetch ends, and a later request starts its own.
          if (this.#running.get(key) === running) this.#running.delete(key);
          running.controller.abort(signal.reason);
        }
        reject(new CancelledError(`registry request cancelled: ${what}`, { cause: signal.reason }));
      };
      const settle = (): boolean => {
        if (done) return false;
        done = true;
        signal.removeEventListener('abort', onAbort);
        running.waiting -= 1;
        return true;
      };
      signal.addEventListener('abort', onAbort, { once: true });
      running.promise.then(
        (value) => {
          if (settle()) resolve(value);
        },
        (error: unknown) => {
          if (settle()) reject(error);
        },
      );
    });
  }
}
