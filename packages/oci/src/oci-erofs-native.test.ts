/**
 * Native EROFS layers (METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION=erofs) run on containerd ≥ 2.1 with
 * the erofs snapshotter and differ, nothing unpacked: the fixture env built by the oci service with
 * erofs layers, for the test services' containerd (Debian forky's; the runners named by its
 * version, so the media type is the one it takes), is pulled with `--snapshotter erofs` by a private
 * instance. Only the base image's tar layers go through `mkfs.erofs`; each EROFS layer's
 * `layer.erofs` is the blob as pushed (the same sha256), the kernel mounts it, and the env's python
 * imports the env's package. Without the services it skips saying why, except in CI, where it
 * fails saying what to run.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { layerFormat } from '@prebuilt/core';
import { RegistryClient } from '@prebuilt/core/backend';
import { buildEnvImage, IMPORT, type EnvImage } from './__fixtures__/env-image.js';
import { erofsContainerdMissing, useErofsContainerd } from './__fixtures__/erofs-containerd.js';
import { describeOrFailInCi, missingFor, services } from './__fixtures__/services.js';

const reason = missingFor(['registries', 'baseImage']) ?? (await erofsContainerdMissing());

interface Layer {
  mediaType: string;
  digest: string;
}

/** A native EROFS layer's media type (containerd 2.1–2.2's or ≥ 2.3's), as `prebuilt report` tells it. */
const isErofs = (mediaType: string) => layerFormat({ mediaType }) === 'erofs';

async function sha256Of(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return `sha256:${hash.digest('hex')}`;
}

describeOrFailInCi('native EROFS layers on containerd 2.1+ with the erofs snapshotter (the test services\' Debian forky containerd, a private instance)', reason, () => {
  let image: EnvImage;
  let layers: Layer[];
  let diffIds: string[];
  beforeAll(async () => {
    // The runners are the containerd that pulls: its major.minor picks the media type.
    const [major, minor] = /^(\d+)\.(\d+)/.exec(services.erofsContainerd!.version)!.slice(1);
    image = await buildEnvImage('erofsnative', { env: { METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION: 'erofs', METAFLOW_PREBUILT_OCI_RUNNERS: `containerd@${major}.${minor}` } });
    const registry = new RegistryClient({ dockerConfig: false });
    const { manifest } = await registry.getManifest(image.tag);
    const m = manifest as { layers: Layer[]; config: { digest: string } };
    layers = m.layers;
    const config = (await (await fetch(`http://${services.registries!.plain.host}/v2/${image.repo}/blobs/${m.config.digest}`)).json()) as { rootfs: { diff_ids: string[] } };
    diffIds = config.rootfs.diff_ids;
  }, 600_000);
  afterAll(() => image?.close());
  const containerd = useErofsContainerd();

  it('pulls the image without unpacking its EROFS layers (each layer.erofs is the pushed blob, mkfs.erofs runs for the base only) and runs it: the kernel mounts them and the env python imports its package', async () => {
    const native = layers.filter((layer) => isErofs(layer.mediaType));
    const tar = layers.filter((layer) => !isErofs(layer.mediaType));
    expect(native.length).toBeGreaterThan(0);
    expect(tar.length).toBeGreaterThan(0);
    // A native layer's diff_id is its blob's digest.
    for (const layer of native) expect(diffIds[layers.indexOf(layer)]).toBe(layer.digest);

    const node = containerd();
    await node.pull(image.tag);
    expect(await node.mkfsRuns()).toBe(tar.length);
    const snapshots = await node.layers();
    expect(snapshots).toHaveLength(layers.length);
    const hashes = new Set(await Promise.all(snapshots.map((s) => sha256Of(s.file))));
    for (const layer of native) expect(hashes.has(layer.digest), `layer.erofs of ${layer.digest}`).toBe(true);

    const out = await node.run(image.tag, [`${image.prefix}/bin/python`, '-c', IMPORT]);
    expect(out.trim()).toBe('2.0');
    expect((await node.layers()).filter((layer) => layer.mountedAt === undefined)).toEqual([]);
  }, 600_000);
});
