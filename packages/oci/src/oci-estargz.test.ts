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
import { createHash } from 'node:crypto';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { RegistryClient } from '@prebuilt/core/backend';
import { FOOTER_SIZE, TOC_DIGEST_ANNOTATION, UNCOMPRESSED_SIZE_ANNOTATION } from './estargz.js';
import { landmarkOffset, readToc } from './__fixtures__/estargz-toc.js';
import { buildLazyImage, IMPORT, lazyPullTests, lazySkips, prefetchTests, useContainerd, type LazyImage, type ManifestLayer } from './__fixtures__/lazy-image.js';
import { describeOrFailInCi, itOrFailInCi, pullingDockers } from './__fixtures__/services.js';

const exec = promisify(execFile);
const { registries: missing, containerd: containerdReason, stargz: stargzReason } = lazySkips;

type Manifest = { mediaType: string; config: { digest: string }; layers: ManifestLayer[] };
const sha = (bytes: Buffer): string => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

describeOrFailInCi('oci build service: eStargz layers', missing, () => {
  let image: LazyImage;
  let tag: string;
  let prefix: string;
  let newLayers: ManifestLayer[];
  const client = new RegistryClient({ dockerConfig: false });

  beforeAll(async () => {
    image = await buildLazyImage('esgz', 'estargz');
    ({ tag, prefix } = image);
  }, 600_000);
  afterAll(() => image?.close());

  it('an OCI image whose new layers are tar+gzip with the TOC digest and uncompressed size annotations; each blob is valid gzip of the tar its diff_id names, its footer points at the TOC', async () => {
    const manifest = (await client.getManifest(tag)).manifest as Manifest;
    expect(manifest.mediaType).toBe('application/vnd.oci.image.manifest.v1+json');
    const config = JSON.parse(Buffer.from(await client.getBlob(tag, manifest.config.digest)).toString()) as { rootfs: { diff_ids: string[] } };
    newLayers = manifest.layers.filter((l) => l.annotations?.[TOC_DIGEST_ANNOTATION]);
    const baseCount = manifest.layers.length - newLayers.length;
    expect(newLayers.length).toBe(image.lock.packages.length + 2); // the packages, the env layer, the data file
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
    const [first, second] = image.pushes;
    expect(second!.digest).toBe(first!.digest);
    expect(second!.layers.every((l) => l.status === 'exists')).toBe(true);
  });

  for (const docker of pullingDockers()) {
    itOrFailInCi(`${docker.name} pulls it as ordinary gzip and runs it`, docker.missing, async () => {
      const env = { ...process.env, DOCKER_HOST: docker.host };
      await exec('docker', ['pull', tag], { env, timeout: 300_000 });
      try {
        const { stdout } = await exec('docker', ['run', '--rm', '--network=host', tag, `${prefix}/bin/python`, '-c', IMPORT], { env, timeout: 120_000 });
        expect(stdout.trim()).toBe('2.0');
      } finally {
        await exec('docker', ['rmi', '-f', tag], { env }).catch(() => undefined);
      }
    }, 600_000);
  }

  describeOrFailInCi('containerd, ordinary pull (overlayfs)', containerdReason, () => {
    const containerd = useContainerd();

    it('ctr image pull --plain-http, then ctr run: the env python imports its packages', async () => {
      const socket = containerd().socket;
      await exec('ctr', ['-a', socket, 'images', 'pull', '--plain-http', tag], { timeout: 300_000 });
      const { stdout } = await exec('ctr', ['-a', socket, 'run', '--rm', '--net-host', tag, `prebuilt-esgz-${process.pid}`, `${prefix}/bin/python`, '-c', IMPORT], { timeout: 120_000 });
      expect(stdout.trim()).toBe('2.0');
    }, 600_000);
  });

  describeOrFailInCi('containerd with the stargz snapshotter, no prefetch: lazy pull', stargzReason, () => {
    lazyPullTests('eStargz', () => image, () => newLayers);
  });

  describeOrFailInCi('containerd with the stargz snapshotter, prefetch on: lazy pull', stargzReason, () => {
    prefetchTests(() => image, () => newLayers, async () => {
      const tocs = await Promise.all(newLayers.map(async (l) => readToc(Buffer.from(await client.getBlob(tag, l.digest, { size: l.size })))));
      expect(tocs.at(-1)!.entries.some((e) => e.name === '.no.prefetch.landmark')).toBe(true);
      return tocs.map((t) => landmarkOffset(t.entries));
    });
  });
});
