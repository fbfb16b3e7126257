/**
 * containerd 2.1's erofs snapshotter and differ run what the oci build service pushes: an image with
 * ordinary (tar+gzip) layers — the fixture env on the test base image, pushed to the plain test
 * registry — is pulled by the test services' containerd 2.1 (Debian forky's, a private instance for
 * this file) with `--snapshotter erofs`. Every layer is converted by `mkfs.erofs --tar=f` into a
 * `layer.erofs` (an EROFS image: its superblock magic), the kernel mounts those as erofs when the
 * container runs, and the env's python imports the env's package. Without the services it skips
 * saying why, except in CI, where it fails saying what to run.
 */
import { open } from 'node:fs/promises';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { RegistryClient } from '@prebuilt/core/backend';
import { buildEnvImage, IMPORT, type EnvImage } from './__fixtures__/env-image.js';
import { erofsContainerdMissing, useErofsContainerd } from './__fixtures__/erofs-containerd.js';
import { describeOrFailInCi, missingFor } from './__fixtures__/services.js';

const reason = missingFor(['registries', 'baseImage']) ?? (await erofsContainerdMissing());

/** EROFS_SUPER_MAGIC_V1, little-endian at byte 1024 of an EROFS image. */
const EROFS_MAGIC = 0xe0f5e1e2;

async function superblockMagic(file: string): Promise<number> {
  const handle = await open(file, 'r');
  try {
    const { buffer } = await handle.read(Buffer.alloc(4), 0, 4, 1024);
    return buffer.readUInt32LE(0);
  } finally {
    await handle.close();
  }
}

describeOrFailInCi('containerd 2.1 with the erofs snapshotter and differ (the test services\' Debian forky containerd, a private instance)', reason, () => {
  let image: EnvImage;
  let layerCount: number;
  beforeAll(async () => {
    image = await buildEnvImage('erofsrt');
    const { manifest } = await new RegistryClient({ dockerConfig: false }).getManifest(image.tag);
    layerCount = (manifest as { layers: unknown[] }).layers.length;
  }, 600_000);
  afterAll(() => image?.close());
  const containerd = useErofsContainerd();

  it('pulls the gzip-layered image with --snapshotter erofs, each layer converted by mkfs.erofs into an EROFS layer.erofs, and runs it: the kernel mounts the layers as erofs and the env python imports its package', async () => {
    const node = containerd();
    expect(await node.ctr(['version'])).toMatch(/Server:\s+Version:\s+2\.([1-9]|\d\d+)\./);
    await node.pull(image.tag);
    expect(layerCount).toBeGreaterThan(1);
    expect(await node.mkfsRuns()).toBe(layerCount);
    const layers = await node.layers();
    expect(layers).toHaveLength(layerCount);
    for (const layer of layers) expect(await superblockMagic(layer.file), layer.file).toBe(EROFS_MAGIC);
    expect(await node.ctr(['snapshots', '--snapshotter', 'erofs', 'ls'])).toMatch(/Committed/);

    const out = await node.run(image.tag, [`${image.prefix}/bin/python`, '-c', IMPORT]);
    expect(out.trim()).toBe('2.0');
    // The snapshotter keeps each layer it lent to a container mounted: erofs, from its layer.erofs.
    expect((await node.layers()).filter((layer) => layer.mountedAt === undefined)).toEqual([]);
  }, 600_000);
});
