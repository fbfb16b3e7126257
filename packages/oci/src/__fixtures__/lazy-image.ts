// The image the lazy-pull tests (oci-estargz.test.ts, oci-zstd-chunked.test.ts) pull: a
// materialized env plus a 24 MiB data file no task reads, pushed by the oci build service in a lazy
// format (twice: the second build finds every layer), and a stargz node that pulls it lazily
// through a counting proxy.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { LayerCompression } from '../layer-codec.js';
import { containerdMissing, have, stargzMissing, startContainerd, startStargzNode, useDaemon, type PrivateContainerd } from './containerd.js';
import { startCountingProxy, type CountingProxy } from './counting-proxy.js';
import { buildEnvImage, IMPORT, type EnvImage } from './env-image.js';
import { missingFor, pinnedBase, services } from './services.js';

export { IMPORT };

const exec = promisify(execFile);

/** Why each part of the lazy-pull tests cannot run here (undefined: it can). */
export const lazySkips = {
  registries: missingFor(['registries', 'baseImage']),
  containerd: await containerdMissing(),
  stargz: await stargzMissing(),
};

/** Prints `True True` when tinyframe's pyc header matches its source's mtime (the import compiles nothing) and the mtime is not before 1970. */
export const PYC_MATCHES_SOURCE =
  'import importlib.util, os, tinyframe; s = tinyframe.__file__; h = open(importlib.util.cache_from_source(s), "rb").read(16); print(int.from_bytes(h[8:12], "little") == int(os.stat(s).st_mtime) & 0xFFFFFFFF, os.stat(s).st_mtime >= 0)';

export type LazyImage = EnvImage;

/** Builds the env (python, tinynum, tinyframe) plus `/opt/data/unread.bin` with the given layer compression, twice. */
export async function buildLazyImage(name: string, compression: LayerCompression): Promise<LazyImage> {
  // A data file no task reads: a lazy pull must not fetch it.
  const extend = async (contextDir: string): Promise<string> => {
    await writeFile(join(contextDir, 'unread.bin'), randomBytes(24 << 20));
    return 'COPY unread.bin /opt/data/unread.bin';
  };
  return buildEnvImage(name, { env: { METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION: compression }, extend, again: true });
}

/** A node that pulls an image lazily: `run` pulls it and runs the import, `exec` runs a command in it. */
export interface LazyNode {
  run: (afterPull?: (proxy: CountingProxy) => Promise<void>) => Promise<CountingProxy>;
  exec: (command: string[]) => Promise<{ stdout: string }>;
}

/**
 * A node with containerd and the stargz snapshotter (config `stargzToml`), the base image on it
 * (gzip layers, not lazily pullable; bases stay on the nodes. Were it not, containerd 1.6's
 * unpacker would fetch every layer after the first one it unpacks), then the image rpulled
 * through the counting proxy and the task run on the stargz snapshotter. Registers its own
 * beforeAll/afterAll; `image` is read when they run.
 */
export function lazyNode(image: () => LazyImage, stargzToml: string): LazyNode {
  let containerd: PrivateContainerd | undefined;
  let proxy: CountingProxy | undefined;
  let proxied: string;
  const name = (what: string): string => `prebuilt-lazy-${what}-${process.pid}-${randomBytes(3).toString('hex')}`;
  beforeAll(async () => {
    proxy = await startCountingProxy(services.registries!.plain.host);
    proxied = image().tag.replace(services.registries!.plain.host, proxy.host);
    containerd = await startStargzNode(stargzToml);
  }, 60_000);
  afterAll(async () => {
    if (containerd) await have('ctr-remote', ['-a', containerd.socket, 'images', 'rm', proxied, pinnedBase()!]);
    await containerd?.stop();
    await proxy?.close();
  }, 60_000);
  const execIn = (command: string[]): Promise<{ stdout: string }> =>
    exec('ctr-remote', ['-a', containerd!.socket, 'run', '--rm', '--snapshotter', 'stargz', '--net-host', proxied, name('exec'), ...command], { timeout: 120_000, maxBuffer: 1 << 26 });
  const run = async (afterPull?: (proxy: CountingProxy) => Promise<void>): Promise<CountingProxy> => {
    const socket = containerd!.socket;
    await exec('ctr-remote', ['-a', socket, 'images', 'rpull', '--plain-http', pinnedBase()!], { timeout: 300_000 });
    proxy!.reset();
    await exec('ctr-remote', ['-a', socket, 'images', 'rpull', '--plain-http', proxied], { timeout: 300_000 });
    await afterPull?.(proxy!);
    const { stdout } = await execIn([`${image().prefix}/bin/python`, '-c', IMPORT]);
    expect(stdout.trim()).toBe('2.0');
    return proxy!;
  };
  return { run, exec: execIn };
}

/** A layer of the image's manifest. */
export interface ManifestLayer {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}

/** Without prefetch: the task ran after fetching, by range requests, less than half of the new layers' bytes, and almost nothing of the data file's layer (the last). */
export async function expectOnlyReadBytesFetched(node: LazyNode, layers: readonly ManifestLayer[]): Promise<void> {
  const proxy = await node.run();
  const fetched = layers.reduce((sum, l) => sum + (proxy.blobBytes.get(l.digest) ?? 0), 0);
  const total = layers.reduce((sum, l) => sum + l.size, 0);
  expect(proxy.ranges.length).toBeGreaterThan(0);
  expect(fetched).toBeLessThan(total * 0.5);
  const data = layers.at(-1)!;
  expect(proxy.blobBytes.get(data.digest) ?? 0).toBeLessThan(data.size / 10);
}

/**
 * With prefetch: each layer with a landmark (`landmarks[i]`, its offset) is prefetched by one range
 * request from 0 past it, and no file before a landmark is fetched on its own; the data layer (the
 * last, no landmark) stays almost unfetched.
 */
export async function expectPrefetchedByRange(node: LazyNode, layers: readonly ManifestLayer[], landmarks: readonly (number | undefined)[]): Promise<void> {
  const prefetched = layers.filter((_, i) => landmarks[i] !== undefined);
  expect(prefetched.length).toBeGreaterThan(0);
  // The snapshotter prefetches in the background after the pull and does not hold reads back
  // until it is done: on a loaded machine the task's first reads can go out before the
  // prefetch arrives (a race of the snapshotter's, seen in CI). Wait until every prefetch
  // response has been sent in full, and a moment for the snapshotter to store it, then run.
  const prefetchesDone = async (proxy: CountingProxy): Promise<void> => {
    const done = (): boolean => prefetched.every((layer) => (proxy.completedRanges.get(layer.digest) ?? []).some((r) => /^bytes=0-/.test(r)));
    for (let i = 0; i < 600 && !done(); i++) await new Promise((r) => setTimeout(r, 100));
    expect(done(), 'every layer with prioritized files got its prefetch range request within 60 s of the pull').toBe(true);
    await new Promise((r) => setTimeout(r, 1000));
  };
  const proxy = await node.run(prefetchesDone);
  // Range requests starting inside a prefetched range: the prefetch has served those files.
  const inside: [number, number][] = [];
  for (const [i, layer] of layers.entries()) {
    const landmark = landmarks[i];
    // Range headers, multi-range ones included: [start, end] of each range.
    const starts = (proxy.blobRanges.get(layer.digest) ?? []).flatMap((r) => [...r.matchAll(/(\d+)-(\d+)/g)].map((m) => [Number(m[1]), Number(m[2])] as [number, number]));
    if (landmark === undefined) continue;
    expect(starts.some(([start, end]) => start === 0 && end + 1 >= landmark), `layer ${i}: one range from 0 to its landmark at ${landmark}: ${JSON.stringify(starts)}`).toBe(true);
    inside.push(...starts.filter(([start]) => start > 0 && start < landmark));
  }
  expect(inside, 'per-file requests before a landmark').toEqual([]);
  const data = layers.at(-1)!;
  expect(landmarks.at(-1)).toBeUndefined();
  expect(proxy.blobBytes.get(data.digest) ?? 0).toBeLessThan(data.size / 10);
}

/** A private containerd (overlayfs) for the enclosing describe: started before its tests, stopped after them. */
export function useContainerd(): () => PrivateContainerd {
  return useDaemon(() => startContainerd());
}

/** The snapshotter fetching only what the task reads: no prefetch, no background fetch. */
const NO_PREFETCH = 'noprefetch = true\nno_background_fetch = true\nno_prometheus = true\n';
/**
 * The snapshotter's default prefetch (up to each layer's .prefetch.landmark), no background fetch: what is counted is prefetch + on-demand reads.
 * `sync_add`: the prefetch is stored (every 50 kB chunk of the fetched range) before it counts as done. By default
 * the snapshotter writes the chunks to its cache directory in the background, keeping only a few in memory, so on a
 * loaded machine a read right after the prefetch missed a chunk still being written and fetched it again (seen in
 * CI and here: one 50,000-byte range request before the landmark).
 */
export const PREFETCH_ONLY = 'prefetch_timeout_sec = 30\nno_background_fetch = true\nno_prometheus = true\n[directory_cache]\nsync_add = true\n';

/**
 * The lazy pull's tests, for the enclosing describe: on a node without prefetch, the task runs
 * after fetching only part of the new `layers` (of the `format` named in the titles) and the lazily
 * mounted files keep their mtimes; then `more` (its tests on the same node, after those).
 */
export function lazyPullTests(format: string, image: () => LazyImage, layers: () => ManifestLayer[], more?: (node: LazyNode) => void): void {
  const node = lazyNode(image, NO_PREFETCH);
  it(`ctr-remote image rpull + run, base image on the node: the task runs after fetching only part of the ${format} layers by range requests (the unread 24 MiB file not at all)`, async () => {
    await expectOnlyReadBytesFetched(node, layers());
  }, 600_000);
  it("the lazily mounted files keep their mtimes (the TOC states them): the env's pycs match their sources, so the import compiles nothing", async () => {
    const { stdout } = await node.exec([`${image().prefix}/bin/python`, '-c', PYC_MATCHES_SOURCE]);
    expect(stdout.trim()).toBe('True True');
  }, 120_000);
  more?.(node);
}

/** The prefetch's test, for the enclosing describe: see expectPrefetchedByRange; `landmarks` read when it runs. */
export function prefetchTests(image: () => LazyImage, layers: () => ManifestLayer[], landmarks: () => Promise<(number | undefined)[]>): void {
  const node = lazyNode(image, PREFETCH_ONLY);
  it('each layer with prioritized files is prefetched by one range request from 0 past its landmark, and the files before the landmark are then read from the prefetched data, not fetched one by one; the data layer (.no.prefetch.landmark) is not prefetched', async () => {
    await expectPrefetchedByRange(node, layers(), await landmarks());
  }, 600_000);
}
