/**
 * eStargz layers end to end: a materialized env (plus a 24 MiB data file no task reads) pushed by the
 * oci build service with METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION=estargz to the plain test registry,
 * then pulled as ordinary gzip by the Docker daemon and by containerd, and lazily by containerd with
 * the stargz snapshotter (`containerd-stargz-grpc` as a proxy snapshotter plugin, `ctr-remote image
 * rpull`): the task runs after fetching only part of the layers' bytes, counted by an HTTP proxy in
 * front of the registry; with the snapshotter's prefetch on, each layer's prioritized files (the
 * default static choice) arrive in one range request up to its `.prefetch.landmark`. Every daemon
 * is private to this file (own sockets and directories).
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegistryClient, type BaseImageIdentity } from '@prebuilt/core/backend';
import { envPrefix, type LockedEnv } from '@prebuilt/core';
import { createMaterializedRecipeRunner, PackageCache } from '@prebuilt/conda';
import { fixtureLock, generateExampleFixtures, startFixtureServer, type FixtureServer, type GeneratedFixtures } from '@prebuilt/fixtures';
import { FOOTER_SIZE, TOC_DIGEST_ANNOTATION, UNCOMPRESSED_SIZE_ANNOTATION } from './estargz.js';
import { landmarkOffset, readToc } from './__fixtures__/estargz-toc.js';
import { createOciBuildService, type PushSummary } from './oci-build-service.js';
import { containerdMissing, have, stargzMissing, startContainerd, startStargzNode, type PrivateContainerd } from './__fixtures__/containerd.js';
import { startCountingProxy, type CountingProxy } from './__fixtures__/counting-proxy.js';
import { missingFor, pinnedBase, services, uniqueRepo } from './__fixtures__/services.js';

const exec = promisify(execFile);
const missing = missingFor(['registries', 'baseImage']);
const dockerMissing = missingFor(['registries', 'baseImage', 'docker']);
const title = (name: string, reason: string | undefined): string => (reason ? `${name} [skipped: ${reason}]` : name);
const containerdReason = await containerdMissing();
const stargzReason = await stargzMissing();

type Layer = { mediaType: string; digest: string; size: number; annotations?: Record<string, string> };
type Manifest = { mediaType: string; config: { digest: string }; layers: Layer[] };
const sha = (bytes: Buffer): string => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
const IMPORT = 'import tinyframe; print(tinyframe.Frame([1, 2, 3]).mean())';

describe.skipIf(missing !== undefined)(title('oci build service: eStargz layers', missing), () => {
  let work: string;
  let fixtures: GeneratedFixtures;
  let server: FixtureServer;
  let lock: LockedEnv;
  let tag: string;
  let repo: string;
  let newLayers: Layer[];
  const prefix = envPrefix('esgz');
  const client = new RegistryClient({ dockerConfig: false });
  const pushes: PushSummary[] = [];

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'prebuilt-oci-estargz-'));
    fixtures = await generateExampleFixtures(join(work, 'fixtures'));
    server = await startFixtureServer({ channels: { main: fixtures.channelDir }, indexes: { main: fixtures.indexDir } });
    const python = fixtures.python.find((a) => a.subdir === 'linux-64') ?? fixtures.python[0]!;
    const pick = (name: string, format: string, version?: string): string =>
      fixtures.channel.artifacts.find((a) => a.record.name === name && a.format === format && (a.subdir === 'noarch' || a.subdir === 'linux-64') && (!version || a.record.version === version))!.filename;
    lock = fixtureLock(fixtures, server, { conda: [python.filename, pick('tinynum', '.tar.bz2', '1.4.0'), pick('tinyframe', '.conda')], wheels: [] }, { pythonVersion: python.record.version, condaRequested: ['tinyframe'] });
    repo = uniqueRepo('esgz');
    tag = `${services.registries!.plain.host}/${repo}:estargz`;
    const runner = createMaterializedRecipeRunner({ cache: new PackageCache({ cacheDir: join(work, 'cache') }), tempDir: work });
    const base: BaseImageIdentity = { ref: services.baseImage!.ref, digest: services.baseImage!.digest, pinned: pinnedBase()! };
    const prepared = await runner.prepare({ lock, envId: 'esgz', prefix, base });
    try {
      // A data file no task reads: a lazy pull must not fetch it.
      await writeFile(join(prepared.contextDir, 'unread.bin'), randomBytes(24 << 20));
      const service = createOciBuildService({ env: { METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION: 'estargz' }, layerCacheDir: join(work, 'oci-layers'), onPushed: (s) => pushes.push(s) });
      const dockerfile = `${prepared.dockerfile.trimEnd()}\nCOPY unread.bin /opt/data/unread.bin\n`;
      // Twice: the second build finds every layer through the layer cache and the registry.
      for (const imageTag of [tag, `${tag}-again`]) {
        const result = await service.buildAndPush({ dockerfile, contextDir: prepared.contextDir, imageTag, platform: 'linux/amd64' });
        if (!result.ok) throw new Error(`build failed: ${result.reason}\n${result.logTail.join('\n')}`);
      }
    } finally {
      await prepared.dispose();
    }
  }, 600_000);
  afterAll(async () => {
    await server?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('an OCI image whose new layers are tar+gzip with the TOC digest and uncompressed size annotations; each blob is valid gzip of the tar its diff_id names, its footer points at the TOC', async () => {
    const manifest = (await client.getManifest(tag)).manifest as Manifest;
    expect(manifest.mediaType).toBe('application/vnd.oci.image.manifest.v1+json');
    const config = JSON.parse(Buffer.from(await client.getBlob(tag, manifest.config.digest)).toString()) as { rootfs: { diff_ids: string[] } };
    newLayers = manifest.layers.filter((l) => l.annotations?.[TOC_DIGEST_ANNOTATION]);
    const baseCount = manifest.layers.length - newLayers.length;
    expect(newLayers.length).toBe(lock.packages.length + 2); // the packages, the env layer, the data file
    expect(manifest.layers.slice(0, baseCount).every((l) => l.annotations === undefined)).toBe(true);
    for (const [i, layer] of newLayers.entries()) {
      expect(layer.mediaType).toBe('application/vnd.oci.image.layer.v1.tar+gzip');
      const blob = Buffer.from(await client.getBlob(tag, layer.digest, { size: layer.size }));
      const tar = gunzipSync(blob);
      expect(sha(tar)).toBe(config.rootfs.diff_ids[baseCount + i]);
      expect(layer.annotations![UNCOMPRESSED_SIZE_ANNOTATION]).toBe(String(tar.length));
      const tocOffset = parseInt(blob.subarray(blob.length - FOOTER_SIZE + 16, blob.length - FOOTER_SIZE + 32).toString('latin1'), 16);
      const tocTar = gunzipSync(blob.subarray(tocOffset, blob.length - FOOTER_SIZE));
      const size = parseInt(tocTar.subarray(124, 136).toString('latin1'), 8);
      expect(sha(tocTar.subarray(512, 512 + size))).toBe(layer.annotations![TOC_DIGEST_ANNOTATION]);
    }
  }, 120_000);

  it('a rebuild compresses nothing: every layer found by the layer cache (which keeps the eStargz diff_id and annotations) exists; same digest', () => {
    const [first, second] = pushes;
    expect(second!.digest).toBe(first!.digest);
    expect(second!.layers.every((l) => l.status === 'exists')).toBe(true);
  });

  it.skipIf(dockerMissing !== undefined)(title('the Docker daemon pulls it as ordinary gzip and runs it', dockerMissing), async () => {
    const env = { ...process.env, DOCKER_HOST: services.dockerHost! };
    await exec('docker', ['pull', tag], { env, timeout: 300_000 });
    try {
      const { stdout } = await exec('docker', ['run', '--rm', '--network=host', tag, `${prefix}/bin/python`, '-c', IMPORT], { env, timeout: 120_000 });
      expect(stdout.trim()).toBe('2.0');
    } finally {
      await exec('docker', ['rmi', '-f', tag], { env }).catch(() => undefined);
    }
  }, 600_000);

  describe.skipIf(containerdReason !== undefined)(title('containerd, ordinary pull (overlayfs)', containerdReason), () => {
    let containerd: PrivateContainerd | undefined;
    beforeAll(async () => {
      containerd = await startContainerd();
    }, 60_000);
    afterAll(() => containerd?.stop(), 60_000);

    it('ctr image pull --plain-http, then ctr run: the env python imports its packages', async () => {
      const socket = containerd!.socket;
      await exec('ctr', ['-a', socket, 'images', 'pull', '--plain-http', tag], { timeout: 300_000 });
      const { stdout } = await exec('ctr', ['-a', socket, 'run', '--rm', '--net-host', tag, `prebuilt-esgz-${process.pid}`, `${prefix}/bin/python`, '-c', IMPORT], { timeout: 120_000 });
      expect(stdout.trim()).toBe('2.0');
    }, 600_000);
  });

  /**
   * A node with containerd and the stargz snapshotter (config `stargzToml`), the base image on it
   * (gzip layers, not lazily pullable; bases stay on the nodes. Were it not, containerd 1.6's
   * unpacker would fetch every layer after the first one it unpacks), then the image rpulled
   * through the counting proxy and the task run on the stargz snapshotter.
   */
  function lazyNode(stargzToml: string): { run: (afterPull?: (proxy: CountingProxy) => Promise<void>) => Promise<CountingProxy>; exec: (command: string[]) => Promise<{ stdout: string }> } {
    let containerd: PrivateContainerd | undefined;
    let proxy: CountingProxy | undefined;
    let proxied: string;
    beforeAll(async () => {
      proxy = await startCountingProxy(services.registries!.plain.host);
      proxied = `${proxy.host}/${repo}:estargz`;
      containerd = await startStargzNode(stargzToml);
    }, 60_000);
    afterAll(async () => {
      if (containerd) await have('ctr-remote', ['-a', containerd.socket, 'images', 'rm', proxied, pinnedBase()!]);
      await containerd?.stop();
      await proxy?.close();
    }, 60_000);
    const run = async (afterPull?: (proxy: CountingProxy) => Promise<void>): Promise<CountingProxy> => {
      const socket = containerd!.socket;
      await exec('ctr-remote', ['-a', socket, 'images', 'rpull', '--plain-http', pinnedBase()!], { timeout: 300_000 });
      proxy!.reset();
      await exec('ctr-remote', ['-a', socket, 'images', 'rpull', '--plain-http', proxied], { timeout: 300_000 });
      await afterPull?.(proxy!);
      const { stdout } = await exec('ctr-remote', ['-a', socket, 'run', '--rm', '--snapshotter', 'stargz', '--net-host', proxied, `prebuilt-esgz-lazy-${process.pid}`, `${prefix}/bin/python`, '-c', IMPORT], { timeout: 120_000 });
      expect(stdout.trim()).toBe('2.0');
      return proxy!;
    };
    /** Runs a command in the (already pulled) image on the stargz snapshotter. */
    const execIn = (command: string[]) => exec('ctr-remote', ['-a', containerd!.socket, 'run', '--rm', '--snapshotter', 'stargz', '--net-host', proxied, `prebuilt-esgz-exec-${process.pid}`, ...command], { timeout: 120_000 });
    return { run, exec: execIn };
  }

  describe.skipIf(stargzReason !== undefined)(title('containerd with the stargz snapshotter, no prefetch: lazy pull', stargzReason), () => {
    // No prefetch and no background fetch: only what the task reads is fetched.
    const node = lazyNode('noprefetch = true\nno_background_fetch = true\nno_prometheus = true\n');

    it('ctr-remote image rpull + run, base image on the node: the task runs after fetching only part of the eStargz layers (the unread 24 MiB file not at all)', async () => {
      const proxy = await node.run();
      const fetched = newLayers.reduce((sum, l) => sum + (proxy.blobBytes.get(l.digest) ?? 0), 0);
      const total = newLayers.reduce((sum, l) => sum + l.size, 0);
      expect(proxy.ranges.length).toBeGreaterThan(0);
      expect(fetched).toBeLessThan(total * 0.5);
      const data = newLayers.at(-1)!;
      expect(proxy.blobBytes.get(data.digest) ?? 0).toBeLessThan(data.size / 10);
    }, 600_000);

    it('the lazily mounted files keep their mtimes (the TOC states them): the env\'s pycs match their sources, so the import compiles nothing', async () => {
      const check = 'import importlib.util, os, tinyframe; s = tinyframe.__file__; h = open(importlib.util.cache_from_source(s), "rb").read(16); print(int.from_bytes(h[8:12], "little") == int(os.stat(s).st_mtime) & 0xFFFFFFFF, os.stat(s).st_mtime >= 0)';
      const { stdout } = await node.exec([`${prefix}/bin/python`, '-c', check]);
      expect(stdout.trim()).toBe('True True');
    }, 120_000);
  });

  describe.skipIf(stargzReason !== undefined)(title('containerd with the stargz snapshotter, prefetch on: lazy pull', stargzReason), () => {
    // The snapshotter's default prefetch (up to each layer's .prefetch.landmark); no background fetch, so what is counted is prefetch + on-demand reads.
    const node = lazyNode('no_background_fetch = true\nno_prometheus = true\n');

    it('each layer with prioritized files is prefetched by one range request from 0 past its landmark, and the files before the landmark are then read from the prefetched data, not fetched one by one; the data layer (.no.prefetch.landmark) is not prefetched', async () => {
      const tocs = await Promise.all(newLayers.map(async (l) => readToc(Buffer.from(await client.getBlob(tag, l.digest, { size: l.size })))));
      const prefetched = newLayers.filter((_, i) => landmarkOffset(tocs[i]!.entries) !== undefined);
      expect(prefetched.length).toBeGreaterThan(0);
      // The snapshotter prefetches in the background after the pull and does not hold reads back
      // until it is done: on a loaded machine the task's first reads can go out before the
      // prefetch arrives (a race of the snapshotter's, seen in CI). Wait until every prefetch
      // response has been sent in full, and a moment for the snapshotter to store it, then run.
      const prefetchesDone = async (proxy: CountingProxy): Promise<void> => {
        const done = (): boolean =>
          prefetched.every((layer) => (proxy.completedRanges.get(layer.digest) ?? []).some((r) => /^bytes=0-/.test(r)));
        for (let i = 0; i < 600 && !done(); i++) await new Promise((r) => setTimeout(r, 100));
        expect(done(), 'every layer with prioritized files got its prefetch range request within 60 s of the pull').toBe(true);
        await new Promise((r) => setTimeout(r, 1000));
      };
      const proxy = await node.run(prefetchesDone);
      // Range requests starting inside a prefetched range: the prefetch has served those files.
      const inside: [number, number][] = [];
      for (const [i, layer] of newLayers.entries()) {
        const landmark = landmarkOffset(tocs[i]!.entries);
        // Range headers, multi-range ones included: [start, end] of each range.
        const starts = (proxy.blobRanges.get(layer.digest) ?? []).flatMap((r) => [...r.matchAll(/(\d+)-(\d+)/g)].map((m) => [Number(m[1]), Number(m[2])] as const));
        if (landmark === undefined) continue;
        expect(starts.some(([start, end]) => start === 0 && end + 1 >= landmark), `layer ${i}: one range from 0 to its landmark at ${landmark}: ${JSON.stringify(starts)}`).toBe(true);
        inside.push(...starts.filter(([start]) => start > 0 && start < landmark));
      }
      expect(inside, 'per-file requests before a landmark').toEqual([]);
      const data = newLayers.at(-1)!;
      expect(tocs.at(-1)!.entries.some((e) => e.name === '.no.prefetch.landmark')).toBe(true);
      expect(proxy.blobBytes.get(data.digest) ?? 0).toBeLessThan(data.size / 10);
    }, 600_000);
  });
});
