/**
 * EROFS layers end to end on the build side: the example env pushed by the oci build service with
 * METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION=erofs (mkfs.erofs from PATH: erofs-utils ≥ 1.8, which
 * scripts/setup.sh installs) to the plain test registry, compared with the gzip build of the same
 * context: media types, diff_ids, reproducibility, a one-package change, and each EROFS image's
 * files (fsck.erofs --extract) against the tar layer's. Pulling and running it needs containerd ≥ 2.1
 * with the erofs snapshotter: not here.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { lstat, mkdir, readdir, readFile, readlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { EROFS_LAYOUT_ANNOTATION, RegistryClient } from '@prebuilt/core/backend';
import { envPrefix } from '@prebuilt/core';
import type { PushSummary } from './oci-build-service.js';
import { LAYER_FORMAT_ID } from './layer-codec.js';
import { have } from './__fixtures__/containerd.js';
import { buildExampleImage, startExampleEnv, type ExampleEnv } from './__fixtures__/env-image.js';
import { describeOrFailInCi, missingFor, services, uniqueRepo } from './__fixtures__/services.js';

const exec = promisify(execFile);
const erofsUtils = (await have('mkfs.erofs', ['--version'])) !== undefined && (await have('fsck.erofs', ['--version'])) !== undefined;
const missing = missingFor(['registries', 'baseImage']) ?? (erofsUtils ? undefined : 'needs erofs-utils ≥ 1.8 on PATH (mkfs.erofs and fsck.erofs; scripts/setup.sh installs them)');

type Manifest = { mediaType: string; config: { digest: string }; layers: { mediaType: string; digest: string; size: number }[]; annotations?: Record<string, string> };

const OLD_TYPE = 'application/vnd.oci.image.layer.v1.erofs';
const NEW_TYPE = 'application/vnd.erofs.layer.v1';

/** Every entry under `root` (root itself left out): its type, permission bits, size, link target and a file's sha256. */
async function tree(root: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (rel: string): Promise<void> => {
    for (const name of (await readdir(join(root, rel))).sort()) {
      const path = rel ? `${rel}/${name}` : name;
      const full = join(root, path);
      const stat = await lstat(full);
      const mode = (stat.mode & 0o7777).toString(8);
      if (stat.isDirectory()) {
        out[path] = `dir ${mode}`;
        await walk(path);
      } else if (stat.isSymbolicLink()) out[path] = `symlink -> ${await readlink(full)}`;
      else out[path] = `file ${mode} ${stat.size} ${createHash('sha256').update(await readFile(full)).digest('hex')}`;
    }
  };
  await walk('');
  return out;
}

describeOrFailInCi('oci build service: erofs layers', missing, () => {
  let example: ExampleEnv;
  let work: string;
  const prefix = envPrefix('erofstest');
  const client = new RegistryClient({ dockerConfig: false });

  beforeAll(async () => {
    example = await startExampleEnv('erofs');
    work = example.work;
  }, 600_000);
  afterAll(async () => {
    await example?.close();
  });

  /** The env (python, tinynum at that version, tinycli) built with these settings, one layer per package; `cacheName` the layer cache. */
  async function build(env: Record<string, string>, cacheName: string, imageTag: string, tinynum = '1.4.0'): Promise<PushSummary> {
    const lock = example.lock([['tinynum', '.tar.bz2', tinynum], ['tinycli', '.conda']], ['tinycli']);
    const service = { env: { METAFLOW_PREBUILT_OCI_LAYERS: 'per-package', ...env }, layerCacheDir: join(work, cacheName) };
    const [summary] = await buildExampleImage(example, { lock, envId: 'erofstest', cacheDir: join(work, 'packages'), imageTags: [imageTag], service });
    return summary!;
  }

  async function manifestOf(tag: string): Promise<{ manifest: Manifest; diffIds: string[] }> {
    const manifest = (await client.getManifest(tag)).manifest as Manifest;
    const config = JSON.parse(Buffer.from(await client.getBlob(tag, manifest.config.digest)).toString()) as { rootfs: { diff_ids: string[] } };
    return { manifest, diffIds: config.rootfs.diff_ids };
  }

  const erofs = (runners: string) => ({ METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION: 'erofs', METAFLOW_PREBUILT_OCI_RUNNERS: runners });

  it('an OCI image whose env layers are EROFS images (base layers stay tar), diff_id = blob digest, the same digest from two cache dirs; the media type follows the runners', async () => {
    const repo = `${services.registries!.plain.host}/${uniqueRepo('erofs')}`;
    const first = await build(erofs('containerd@2.1'), 'cache-a', `${repo}:erofs`);
    const again = await build(erofs('containerd@2.2.1'), 'cache-b', `${repo}:erofs-again`);
    expect(again.digest).toBe(first.digest);
    expect(again.layers.every((l) => l.status === 'exists')).toBe(true);
    const newType = await build(erofs('containerd@2.3'), 'cache-a', `${repo}:erofs-new-type`);
    await build({ METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION: 'gzip' }, 'cache-a', `${repo}:gzip`);

    const image = await manifestOf(`${repo}:erofs`);
    const gzip = await manifestOf(`${repo}:gzip`);
    expect(image.manifest.mediaType).toBe('application/vnd.oci.image.manifest.v1+json');
    const baseCount = gzip.manifest.layers.length - first.layers.length;
    expect(baseCount).toBeGreaterThan(0);
    const [base, env] = [image.manifest.layers.slice(0, baseCount), image.manifest.layers.slice(baseCount)];
    expect(base.map((l) => l.digest)).toEqual(gzip.manifest.layers.slice(0, baseCount).map((l) => l.digest));
    expect(base.every((l) => /tar\+gzip$/.test(l.mediaType))).toBe(true);
    expect(image.diffIds.slice(0, baseCount)).toEqual(gzip.diffIds.slice(0, baseCount));
    expect(new Set(env.map((l) => l.mediaType))).toEqual(new Set([OLD_TYPE]));
    // A native EROFS layer has no uncompressed form: its diff_id is its own digest.
    expect(image.diffIds.slice(baseCount)).toEqual(env.map((l) => l.digest));
    expect(env.map((l) => l.digest)).toEqual(first.layers.map((l) => l.digest));

    // containerd ≥ 2.3: the same blobs under its media type.
    const newer = await manifestOf(`${repo}:erofs-new-type`);
    expect(newType.digest).not.toBe(first.digest);
    expect(new Set(newer.manifest.layers.slice(baseCount).map((l) => l.mediaType))).toEqual(new Set([NEW_TYPE]));
    // The manifest records the EROFS media type (what a later build checks the image against); a tar image records none.
    expect(image.manifest.annotations).toEqual({ [EROFS_LAYOUT_ANNOTATION]: OLD_TYPE });
    expect(newer.manifest.annotations).toEqual({ [EROFS_LAYOUT_ANNOTATION]: NEW_TYPE });
    expect(gzip.manifest.annotations).toBeUndefined();
    expect(newer.manifest.layers.map((l) => l.digest)).toEqual(image.manifest.layers.map((l) => l.digest));
    // Its layers came from the layer cache (the env layer by its tar's digest): the diff_ids still the blobs' digests.
    expect(newType.layers.every((l) => l.status === 'exists')).toBe(true);
    expect(newer.diffIds).toEqual(image.diffIds);

    // The layer cache keeps erofs layers apart, under the options and mkfs.erofs's version.
    const { stdout } = await exec('mkfs.erofs', ['--version']);
    const version = /erofs-utils\)\s+(\S+)/.exec(stdout)![1]!;
    expect(await readdir(join(work, 'cache-a'))).toEqual(expect.arrayContaining([LAYER_FORMAT_ID.gzip, `${LAYER_FORMAT_ID.erofs}-mkfs${version}`]));

    // Each EROFS image holds what the gzip build's tar layer holds: names, modes, sizes, link targets, bytes.
    for (const [i, layer] of env.entries()) {
      const dir = join(work, 'layers', String(i));
      await mkdir(join(dir, 'tar'), { recursive: true });
      await writeFile(join(dir, 'layer.erofs'), Buffer.from(await client.getBlob(`${repo}:erofs`, layer.digest, { size: layer.size })));
      await exec('fsck.erofs', [`--extract=${join(dir, 'erofs')}`, join(dir, 'layer.erofs')]);
      const tarLayer = gzip.manifest.layers[baseCount + i]!;
      await writeFile(join(dir, 'layer.tar.gz'), Buffer.from(await client.getBlob(`${repo}:gzip`, tarLayer.digest, { size: tarLayer.size })));
      await exec('tar', ['-xzf', join(dir, 'layer.tar.gz'), '-C', join(dir, 'tar'), '--no-same-owner', '-p']);
      const fromTar = await tree(join(dir, 'tar'));
      expect(Object.keys(fromTar).length).toBeGreaterThan(1);
      expect(await tree(join(dir, 'erofs'))).toEqual(fromTar);
    }
    // The interpreter's layer, with symlinks and executables, is among them.
    const all = await Promise.all(env.map((_, i) => tree(join(work, 'layers', String(i), 'erofs'))));
    const merged = Object.assign({}, ...all) as Record<string, string>;
    expect(Object.values(merged).some((v) => v.startsWith('symlink -> '))).toBe(true);
    expect(merged[`${prefix.slice(1)}/bin/python3.11`] ?? merged[`${prefix.slice(1)}/bin/python`]).toMatch(/^(file 755|symlink)/);
  }, 600_000);

  it('built twice by one service (the second from its layer cache in memory), the same manifest digest: EROFS layers carry no annotations either way', async () => {
    const repo = `${services.registries!.plain.host}/${uniqueRepo('erofs')}`;
    const lock = example.lock([['tinynum', '.tar.bz2', '1.4.0'], ['tinycli', '.conda']], ['tinycli']);
    const service = { env: { METAFLOW_PREBUILT_OCI_LAYERS: 'per-package', ...erofs('containerd@2.1') }, layerCacheDir: join(work, 'cache-twice') };
    const [first, second] = await buildExampleImage(example, { lock, envId: 'erofstest', cacheDir: join(work, 'packages'), imageTags: [`${repo}:a`, `${repo}:b`], service });
    expect(second!.digest).toBe(first!.digest);
    const { manifest } = await manifestOf(`${repo}:b`);
    expect(manifest.layers.filter((l) => 'annotations' in l)).toEqual([]);
  });

  it('a one-package change pushes only that package\'s EROFS layer and the env layer', async () => {
    const repo = `${services.registries!.plain.host}/${uniqueRepo('erofs-change')}`;
    const first = await build(erofs('containerd@2.1'), 'cache-change', `${repo}:a`, '1.3.0');
    expect(first.layers.every((l) => l.status === 'uploaded')).toBe(true);
    const second = await build(erofs('containerd@2.1'), 'cache-change', `${repo}:b`, '1.4.0');
    const uploaded = second.layers.filter((l) => l.status === 'uploaded').map((l) => l.name);
    expect(uploaded).toEqual([expect.stringMatching(/^tinynum-1\.4\.0/), 'env']);
    expect(second.layers.filter((l) => l.status === 'exists')).toHaveLength(first.layers.length - 2);
  }, 600_000);
});
