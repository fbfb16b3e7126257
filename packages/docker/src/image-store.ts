import { ConfigError, cancelledError, orOption } from '@prebuilt/core/backend';
import type { EngineClient } from './engine-client.js';
import { DOCKER_ENV, type DockerBuilder } from './docker-settings.js';

/** The storage `driver-type` of a daemon that keeps its images in containerd's image store. */
const CONTAINERD_SNAPSHOTTER = 'io.containerd.snapshotter.v1';

/** The first Docker Engine whose BuildKit reads a build context uploaded with `POST /build` under the containerd image store. */
const CONTEXT_FIXED_IN = [27, 5] as const;

interface EngineInfo {
  DriverStatus?: [string, string][] | null;
}

/** True when the daemon keeps its images in containerd's image store (`GET /info`: driver-type io.containerd.snapshotter.v1). */
async function usesContainerdStore(client: EngineClient, signal?: AbortSignal): Promise<boolean> {
  const info = await client.json<EngineInfo>({ method: 'GET', path: '/info', signal });
  return (info.DriverStatus ?? []).some((entry) => Array.isArray(entry) && entry[0] === 'driver-type' && entry[1] === CONTAINERD_SNAPSHOTTER);
}

/** True for a Docker Engine version before 27.5 (`26.1.5+dfsg1`); false for a later or an unreadable one. */
export function beforeContextFix(version: string | undefined): boolean {
  const match = /^(\d+)\.(\d+)/.exec(version ?? '');
  if (!match) return false;
  const [major, minor] = [Number(match[1]), Number(match[2])];
  return major < CONTEXT_FIXED_IN[0] || (major === CONTEXT_FIXED_IN[0] && minor < CONTEXT_FIXED_IN[1]);
}

/**
 * Refuses BuildKit on a Docker Engine before 27.5 with the containerd image store: its BuildKit
 * cannot read a build context sent as the body of `POST /build` (moby/moby#47717) and every build
 * would fail at "load remote build context". The legacy builder and the buildx service work there.
 */
export async function checkBuilder(client: EngineClient, builder: DockerBuilder, version: string | undefined, dockerHost: string, signal?: AbortSignal): Promise<void> {
  if (builder !== 'buildkit' || !beforeContextFix(version)) return;
  // A daemon that does not answer GET /info (an API proxy that forbids it) is let build: the build says what fails.
  const containerdStore = await usesContainerdStore(client, signal).catch(() => {
    if (signal?.aborted) throw cancelledError(signal, 'The Docker build');
    return false;
  });
  if (!containerdStore) return;
  throw new ConfigError(
    `The Docker daemon at ${dockerHost} (Docker Engine ${version}) keeps its images in the containerd image store, where its BuildKit cannot read ` +
      `a build context sent through the Engine API (moby/moby#47717, fixed in Docker Engine ${CONTEXT_FIXED_IN.join('.')}): every BuildKit build would fail.`,
    {
      setting: DOCKER_ENV.builder,
      hint:
        `Use the legacy builder (unset ${DOCKER_ENV.builder}${orOption('builder')}, or set it to 'legacy'), ` +
        `or upgrade Docker Engine to ${CONTEXT_FIXED_IN.join('.')} or later, or use the buildx build service (METAFLOW_PREBUILT_BUILD_SERVICE=buildx).`,
    },
  );
}
