import { ConfigError } from '@prebuilt/core/backend';
import { OCI_LAYER_MEDIA_TYPE, isZstdCompression, type LayerCompression } from './layer-codec.js';
import { atLeast } from './version.js';

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

/**
 * The first version of each runtime that mounts native EROFS layers (its erofs snapshotter and
 * differ copy the blob and mount it, nothing unpacked): containerd 2.1. Docker Engine's own storage
 * drivers never do; Docker with the containerd image store on such a containerd (`"storage-driver":
 * "erofs"`) pulls what that containerd pulls, so its nodes are named by their containerd.
 */
export const EROFS_SINCE = { containerd: [2, 1], docker: undefined } as const satisfies Record<RunnerRuntime, readonly [number, number] | undefined>;

/**
 * The media type containerd's erofs differ takes for a native EROFS layer, by the version since
 * which it does (each newer entry replaces the one before): 2.1 and 2.2 take any
 * `application/vnd.oci.image.layer.*.erofs` without a `+suffix`; 2.3 takes only
 * `application/vnd.erofs.layer…` (images.MediaTypeErofsLayer).
 */
export const EROFS_MEDIA_TYPES = [
  { since: [2, 1], mediaType: 'application/vnd.oci.image.layer.v1.erofs' },
  { since: [2, 3], mediaType: 'application/vnd.erofs.layer.v1' },
] as const satisfies readonly { since: readonly [number, number]; mediaType: string }[];

export function pullsZstd(runner: Runner): boolean {
  return atLeast(runner.version, ZSTD_SINCE[runner.runtime]);
}

const show = (r: Runner) => `${r.runtime}@${r.version.join('.')}`;

/** The media types of zstd layers (zstd and zstd:chunked, and their non-distributable form): what a runner that does not pull zstd fails on. */
export const ZSTD_LAYER_MEDIA_TYPES: readonly string[] = [OCI_LAYER_MEDIA_TYPE.zstd, 'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd'];

/**
 * Refuses a base image with a zstd layer when `unable` (the runners that cannot pull zstd, see
 * {@link zstdUnpullableBy}) is not empty: the image would carry that layer, fail to pull on them,
 * and be rebuilt by every build (its layout refuses zstd layers).
 */
export function checkBaseForRunners(ref: string, layers: readonly { mediaType: string }[], unable: readonly string[]): void {
  if (unable.length === 0 || !layers.some((layer) => ZSTD_LAYER_MEDIA_TYPES.includes(layer.mediaType))) return;
  throw new ConfigError(`The base image ${ref} has zstd layers, which ${unable.join(' and ')} (${RUNNERS_ENV}) cannot pull.`, {
    setting: 'METAFLOW_PREBUILT_BASE_IMAGE',
    // The service is not told which setting named the FROM: a GPU step's is METAFLOW_PREBUILT_GPU_BASE_IMAGE.
    hint: `Use a base image with gzip layers (METAFLOW_PREBUILT_BASE_IMAGE, or METAFLOW_PREBUILT_GPU_BASE_IMAGE for GPU steps), or upgrade those nodes and update ${RUNNERS_ENV}.`,
  });
}

/** The runners that cannot pull zstd layers, as named in the setting (`docker@20.10`); empty when the runners are not known. */
export function zstdUnpullableBy(runners: readonly Runner[] | undefined): string[] {
  return (runners ?? []).filter((r) => !pullsZstd(r)).map(show);
}

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

function erofsError(message: string, hint: string, setting = 'METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION'): ConfigError {
  return new ConfigError(`erofs layers were asked for, but ${message}`, { setting, hint });
}

/** `containerd ≥ 2.1 and < 2.3 takes only …; containerd ≥ 2.3 takes only …`. */
const EROFS_TYPES_TEXT = EROFS_MEDIA_TYPES.map((t, i) => {
  const next = EROFS_MEDIA_TYPES[i + 1];
  return `containerd ≥ ${t.since.join('.')}${next ? ` and < ${next.since.join('.')}` : ''} takes only ${t.mediaType}`;
}).join('; ');

/**
 * The media type of EROFS layers that every runner mounts: only containerd ≥ 2.1 does, and no
 * type is taken by both 2.1/2.2 and ≥ 2.3, so the runners must be known, all containerd ≥ 2.1, and
 * on one side of 2.3 — else a ConfigError saying which runner is in the way.
 */
export function erofsMediaType(runners: readonly Runner[] | undefined): string {
  if (!runners || runners.length === 0) {
    throw erofsError(
      `${RUNNERS_ENV} is not set: their media type depends on the containerd that pulls them, and only containerd ≥ 2.1 with its erofs snapshotter mounts them.`,
      `Set ${RUNNERS_ENV} to the containerd of every node that runs the images, e.g. 'containerd@2.1'.`,
      RUNNERS_ENV,
    );
  }
  const unable = runners.filter((r) => EROFS_SINCE[r.runtime] === undefined || !atLeast(r.version, EROFS_SINCE[r.runtime]!));
  if (unable.length > 0) {
    const docker = unable.some((r) => r.runtime === 'docker')
      ? ` Docker Engine pulls native EROFS layers only with the containerd image store on a containerd ≥ ${EROFS_SINCE.containerd.join('.')} with the erofs snapshotter ("storage-driver": "erofs"), and such a node is named by its containerd (containerd@${EROFS_SINCE.containerd.join('.')}), not docker;`
      : '';
    throw erofsError(
      `${unable.map(show).join(' and ')} cannot pull them:${docker} only containerd ≥ ${EROFS_SINCE.containerd.join('.')} with the erofs snapshotter and differ mounts them.`,
      `Use zstd (or gzip) layers for these nodes, or run the images on containerd ≥ ${EROFS_SINCE.containerd.join('.')} nodes only and update ${RUNNERS_ENV}.`,
    );
  }
  const typeOf = (r: Runner) => EROFS_MEDIA_TYPES.filter((t) => atLeast(r.version, t.since)).at(-1)!.mediaType;
  const types = new Set(runners.map(typeOf));
  if (types.size > 1) {
    throw erofsError(
      `no EROFS layer media type is mounted by all of ${runners.map(show).join(', ')}: ${EROFS_TYPES_TEXT}.`,
      `Upgrade the older nodes to containerd ≥ ${EROFS_MEDIA_TYPES.at(-1)!.since.join('.')} (and update ${RUNNERS_ENV}), or build these images with zstd layers.`,
    );
  }
  return [...types][0]!;
}
