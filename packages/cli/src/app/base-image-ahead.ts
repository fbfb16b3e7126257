/**
 * The base image's identity asked for ahead of the deploy: while the flow is read (a python3
 * subprocess the CLI waits for), the registry is asked for the digest of the base image on the
 * platform the deploy will most likely use, and `deploy()` later gets that answer (or its error)
 * instead of asking again. A guess that turns out wrong costs one request; nothing else changes.
 */
import type { ImageRegistry } from '@prebuilt/core';

export interface BaseImageAhead {
  /** `registry`, whose `baseImageIdentity(ref, platform)` answers from the request made ahead (once). */
  registry: ImageRegistry;
  /** Aborts the request made ahead if it is still running (the deploy ended without it). */
  stop(): void;
}

/**
 * Asks `registry` now for `ref` on `platform` (Docker's name, e.g. linux/amd64). The first
 * `baseImageIdentity` call of the returned registry with the same arguments gets that request's
 * promise; an error it rejects with is seen there, never before. Every other member is the
 * registry's own.
 */
export function askBaseImageAhead(registry: ImageRegistry, ref: string, platform: string, signal: AbortSignal): BaseImageAhead {
  const controller = new AbortController();
  // Called from a microtask: even a registry that throws at once rejects the promise, seen later.
  let ahead: ReturnType<ImageRegistry['baseImageIdentity']> | undefined = Promise.resolve().then(() =>
    registry.baseImageIdentity(ref, platform, { signal: AbortSignal.any([signal, controller.signal]) }),
  );
  ahead.catch(() => {});
  const baseImageIdentity: ImageRegistry['baseImageIdentity'] = (wanted, wantedPlatform, options) => {
    if (ahead && wanted === ref && wantedPlatform === platform) {
      const answer = ahead;
      ahead = undefined;
      return answer;
    }
    return registry.baseImageIdentity(wanted, wantedPlatform, options);
  };
  const proxy = new Proxy(registry, {
    get(target, property) {
      if (property === 'baseImageIdentity') return baseImageIdentity;
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
  return { registry: proxy, stop: () => controller.abort() };
}
