/**
 * "What is the CLI waiting on?": a network read that has had no byte for a few seconds reports it
 * to the listener of the work it runs in (an AsyncLocalStorage scope, so a deploy gets the waits of
 * its own reads, whichever client made them). The orchestrator turns them into `waiting` deploy events.
 */
import { AsyncLocalStorage } from 'node:async_hooks';

export interface NetworkWait {
  /** `host:port` waited on. */
  target: string;
  /** What is read (`blob upload`, `repodata`, `package download`). */
  what: string;
  /** Seconds without a byte so far. */
  seconds: number;
}

export type NetworkWaitListener = (wait: NetworkWait) => void;

const scope = new AsyncLocalStorage<NetworkWaitListener>();

/** Runs `fn` with `listener` receiving the waits of every network read made inside it. */
export function withNetworkWaits<T>(listener: NetworkWaitListener, fn: () => T): T {
  return scope.run(listener, fn);
}

/** The listener of the current scope (captured when a read starts). */
export function currentNetworkWaitListener(): NetworkWaitListener | undefined {
  return scope.getStore();
}

/** A wait as one line: `waiting for 127.0.0.1:5100 (blob upload) — 12 s`. */
export function describeNetworkWait(wait: NetworkWait): string {
  return `waiting for ${wait.target} (${wait.what}) — ${Math.round(wait.seconds)} s`;
}
