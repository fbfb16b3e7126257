import { ConfigError } from '@prebuilt/core/backend';
import { isZstdCompression, type LayerCompression } from './layer-codec.js';

/** Env var naming the container runtimes that pull the images (`containerd@1.6,docker@20.10`). */
export const RUNNERS_ENV = 'METAFLOW_PREBUILT_OCI_RUNNERS';

/** A container runtime of the deployment's nodes and its version (`[major, minor]`). */
export interface Runner {
  runtime: RunnerRuntime;
  version: readonly [number, number];
}

/**
 * The first version of each runtime that pulls `tar+zstd` layers: containerd 1.5; Docker Engine
 * 23.0 (moby/moby#41759 — 20.10 fails with "unexpected EOF"; Docker with the containerd image store
 * pulls what its containerd pulls).
 */
export const ZSTD_SINCE = { containerd: [1, 5], docker: [23, 0] } as const satisfies Record<string, readonly [number, number]>;

export type RunnerRuntime = keyof typeof ZSTD_SINCE;

const RUNTIMES = Object.keys(ZSTD_SINCE) as RunnerRuntime[];

function runnersError(raw: string, why: string): ConfigError {
  return new ConfigError(`The runners '${raw}' cannot be read: ${why}.`, {
    setting: RUNNERS_ENV,
    hint: `Set ${RUNNERS_ENV} (or the option 'runners') to the runtimes of every node that runs the images and their oldest version, comma-separated, e.g. 'containerd@1.6,docker@20.10' (runtimes: ${RUNTIMES.join(', ')}).`,
  });
}

/** Parses `containerd@1.6, docker@20.10.24` (case and spaces ignored; the patch level is not needed). */
export function parseRunners(raw: string): Runner[] {
  const runners = raw.split(',').map((s) => s.trim()).filter(Boolean).map((item) => {
    const match = /^([a-z-]+)@(\d+)(?:\.(\d+))?(?:\.\d+)*$/i.exec(item);
    if (!match) throw runnersError(raw, `'${item}' is not <runtime>@<version>`);
    const runtime = match[1]!.toLowerCase();
    if (!(RUNTIMES as string[]).includes(runtime)) throw runnersError(raw, `'${match[1]}' is not a runtime prebuilt knows`);
    return { runtime: runtime as RunnerRuntime, version: [Number(match[2]), Number(match[3] ?? 0)] as const };
  });
  if (runners.length === 0) throw runnersError(raw, 'it names no runtime');
  return runners;
}

export function pullsZstd(runner: Runner): boolean {
  const [major, minor] = ZSTD_SINCE[runner.runtime];
  return runner.version[0] > major || (runner.version[0] === major && runner.version[1] >= minor);
}

const show = (r: Runner) => `${r.runtime}@${r.version.join('.')}`;

/**
 * The layer compression given the one asked for (if any) and the runners (if known): zstd by
 * default when every runner pulls it, else gzip; zstd (or zstd:chunked) asked for while a runner cannot pull it is a
 * ConfigError rather than images that fail to pull on that node.
 */
export function compressionForRunners(asked: LayerCompression | undefined, runners: readonly Runner[] | undefined): LayerCompression {
  const unable = (runners ?? []).filter((r) => !pullsZstd(r));
  if (asked && isZstdCompression(asked) && unable.length > 0) {
    throw new ConfigError(`${asked} layers were asked for, but ${unable.map(show).join(' and ')} cannot pull them (containerd ≥ 1.5 and Docker Engine ≥ 23.0 can).`, {
      setting: 'METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION',
      hint: `Use gzip (the default for these runners), or upgrade those nodes and update ${RUNNERS_ENV}.`,
    });
  }
  if (asked) return asked;
  return runners && runners.length > 0 && unable.length === 0 ? 'zstd' : 'gzip';
}
