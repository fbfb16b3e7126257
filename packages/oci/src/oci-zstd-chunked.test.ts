/**
 * zstd:chunked layers end to end: a materialized env (plus a 24 MiB data file no task reads) pushed
 * by the oci build service with METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION=zstd:chunked to the plain
 * test registry, then pulled lazily by containerd with the stargz snapshotter (Debian's 0.12
 * library, `containerd-stargz-grpc` as a proxy snapshotter plugin, `ctr-remote image rpull`) —
 * the task runs after fetching part of the layers by range requests, counted by an HTTP proxy in
 * front of the registry — and pulled normally by containerd's `ctr` (tar+zstd), with the same
 * files in both mounts. The test services' Docker 26 pulls it in full and runs the env; their
 * Docker 20.10 cannot pull zstd. Every other daemon is private to this file.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { RegistryClient } from '@prebuilt/core/backend';
import { TOC_DIGEST_ANNOTATION, UNCOMPRESSED_SIZE_ANNOTATION } from './estargz.js';
import { ZSTD_CHUNKED_CHECKSUM_ANNOTATION, ZSTD_CHUNKED_POSITION_ANNOTATION } from './zstd-chunked.js';
import { landmarkOffset, readZstdChunkedToc, type TocEntry } from './__fixtures__/estargz-toc.js';
import { dockerZstdTests, zstdDockers } from './__fixtures__/docker-zstd.js';
import { buildLazyImage, IMPORT, lazyPullTests, lazySkips, prefetchTests, useContainerd, type LazyImage, type ManifestLayer } from './__fixtures__/lazy-image.js';
import { describeOrFailInCi } from './__fixtures__/services.js';

const exec = promisify(execFile);
const { registries: missing, containerd: containerdReason, stargz: stargzReason } = lazySkips;
const dockers = await zstdDockers();

type Manifest = { mediaType: string; config: { digest: string }; layers: ManifestLayer[] };
const sha = (bytes: Buffer): string => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

/** stdout of a tool given `input` on stdin. */
function tool(command: string, args: string[], input: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = execFile(command, args, { encoding: 'buffer', maxBuffer: 1 << 30 }, (error, stdout) => (error ? reject(error) : resolve(stdout)));
    child.stdin!.end(input);
  });
}

/** Every regular file of the env and the data directory with its sha256, as a sorted listing (the base's files are the same in both mounts). */
const LIST_FILES = ['sh', '-c', 'find /opt -type f -exec sha256sum {} + | sort -k2'];

describeOrFailInCi('oci build service: zstd:chunked layers', missing, () => {
  let image: LazyImage;
  let newLayers: ManifestLayer[];
  let tocs: TocEntry[][];
  const client = new RegistryClient({ dockerConfig: false });

  beforeAll(async () => {
    image = await buildLazyImage('zchunk', 'zstd:chunked');
  }, 600_000);
  afterAll(() => image?.close());

  it('an OCI image whose new layers are tar+zstd with the TOC digest, uncompressed size and zstd:chunked position and checksum annotations; each blob is zstd of the tar its diff_id names, its footer points at the TOC', async () => {
    const manifest = (await client.getManifest(image.tag)).manifest as Manifest;
    expect(manifest.mediaType).toBe('application/vnd.oci.image.manifest.v1+json');
    const config = JSON.parse(Buffer.from(await client.getBlob(image.tag, manifest.config.digest)).toString()) as { rootfs: { diff_ids: string[] } };
    newLayers = manifest.layers.filter((l) => l.annotations?.[TOC_DIGEST_ANNOTATION]);
    const baseCount = manifest.layers.length - newLayers.length;
    expect(newLayers.length).toBe(image.lock.packages.length + 2); // the packages, the env layer, the data file
    tocs = [];
    for (const [i, layer] of newLayers.entries()) {
      expect(layer.mediaType).toBe('application/vnd.oci.image.layer.v1.tar+zstd');
      const blob = Buffer.from(await client.getBlob(image.tag, layer.digest, { size: layer.size }));
      // The system zstd skips the TOC's and the footer's skippable frames: what is left is the tar.
      const tar = await tool('zstd', ['-d', '-q', '-c'], blob);
      expect(sha(tar)).toBe(config.rootfs.diff_ids[baseCount + i]);
      expect(layer.annotations![UNCOMPRESSED_SIZE_ANNOTATION]).toBe(String(tar.length));
      const toc = await readZstdChunkedToc(blob);
      expect(sha(toc.json)).toBe(layer.annotations![TOC_DIGEST_ANNOTATION]);
      expect(sha(toc.compressed)).toBe(layer.annotations![ZSTD_CHUNKED_CHECKSUM_ANNOTATION]);
      expect(layer.annotations![ZSTD_CHUNKED_POSITION_ANNOTATION]).toBe(`${toc.tocOffset}:${toc.compressed.length}:${toc.json.length}:1`);
      tocs.push(toc.entries);
    }
    expect(tocs.at(-1)!.some((e) => e.name === '.no.prefetch.landmark')).toBe(true);
  }, 120_000);

  it('a rebuild compresses nothing: every layer found by the layer cache (which keeps the annotations) exists; same digest', () => {
    const [first, second] = image.pushes;
    expect(second!.digest).toBe(first!.digest);
    expect(second!.layers.every((l) => l.status === 'exists')).toBe(true);
  });

  dockerZstdTests('zstd:chunked layers (in full)', dockers, () => ({ tag: image.tag, command: [`${image.prefix}/bin/python`, '-c', IMPORT], prints: '2.0' }));

  describeOrFailInCi('containerd with the stargz snapshotter, no prefetch: lazy pull', stargzReason, () => {
    lazyPullTests('zstd:chunked', () => image, () => newLayers, (node) => {
      describeOrFailInCi('containerd, ordinary pull (overlayfs, tar+zstd)', containerdReason, () => {
        const containerd = useContainerd();

        it('ctr image pull + run: the env python imports its packages, and every file under /opt is the same as in the lazy mount', async () => {
          const socket = containerd().socket;
          await exec('ctr', ['-a', socket, 'images', 'pull', '--plain-http', image.tag], { timeout: 300_000 });
          const run = (command: string[]) => exec('ctr', ['-a', socket, 'run', '--rm', '--net-host', image.tag, `prebuilt-zchunk-${process.pid}`, ...command], { timeout: 120_000, maxBuffer: 1 << 26 });
          expect((await run([`${image.prefix}/bin/python`, '-c', IMPORT])).stdout.trim()).toBe('2.0');
          const full = (await run(LIST_FILES)).stdout;
          const lazy = (await node.exec(LIST_FILES)).stdout;
          expect(full.split('\n').length).toBeGreaterThan(10);
          expect(full).toContain('/opt/data/unread.bin');
          expect(lazy).toBe(full);
        }, 600_000);
      });
    });
  });

  describeOrFailInCi('containerd with the stargz snapshotter, prefetch on: lazy pull', stargzReason, () => {
    prefetchTests(() => image, () => newLayers, async () => tocs.map((entries) => landmarkOffset(entries)));
  });
});
