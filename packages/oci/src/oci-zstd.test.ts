/**
 * zstd layers end to end: a materialized env pushed by the oci build service with
 * METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION=zstd to the plain test registry, compared with the gzip
 * build of the same context, then pulled and run by the runtimes of this machine — the test
 * services' two Docker daemons (zstd needs Docker Engine ≥ 23.0: their Docker 26 pulls and runs it,
 * their Docker 20.10 cannot pull it) and containerd (≥ 1.5: the system's 1.6 and the test services'
 * 1.7, each a private instance on its own socket and state directory, started for this file and
 * stopped after it).
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { RegistryClient } from '@prebuilt/core/backend';
import { envPrefix, type LockedEnv } from '@prebuilt/core';
import { buildExampleImage, startExampleEnv, type ExampleEnv } from './__fixtures__/env-image.js';
import { containerdMissing, have, startContainerd, type PrivateContainerd } from './__fixtures__/containerd.js';
import { dockerZstdTests, zstdDockers } from './__fixtures__/docker-zstd.js';
import { describeOrFailInCi, missingFor, services, uniqueRepo } from './__fixtures__/services.js';

const exec = promisify(execFile);
const missing = missingFor(['registries', 'baseImage']);

const dockers = await zstdDockers();
const containerdReason = await containerdMissing();

type Manifest = { mediaType: string; config: { digest: string }; layers: { mediaType: string; digest: string; size: number }[] };

describeOrFailInCi('oci build service: zstd layers', missing, () => {
  let example: ExampleEnv;
  let lock: LockedEnv;
  const prefix = envPrefix('zstdtest');
  let zstdTag: string;
  let zstdDigest: string;
  const client = new RegistryClient({ dockerConfig: false });

  beforeAll(async () => {
    example = await startExampleEnv('zstd');
    lock = example.lock([['tinynum', '.tar.bz2', '1.4.0'], ['tinyframe', '.conda'], ['tinycli', '.conda']], ['tinycli']);
  }, 600_000);
  afterAll(async () => {
    await example?.close();
  });

  async function build(env: Record<string, string>, cacheName: string, imageTag: string): Promise<string> {
    const [summary] = await buildExampleImage(example, { lock, envId: 'zstdtest', cacheDir: join(example.work, cacheName), imageTags: [imageTag], service: { env } });
    return summary!.digest;
  }

  async function manifestOf(tag: string): Promise<{ manifest: Manifest; diffIds: string[] }> {
    const manifest = (await client.getManifest(tag)).manifest as Manifest;
    const config = JSON.parse(Buffer.from(await client.getBlob(tag, manifest.config.digest)).toString()) as { rootfs: { diff_ids: string[] } };
    return { manifest, diffIds: config.rootfs.diff_ids };
  }

  it('an OCI image with tar+zstd layers (base layers stay gzip), the same diff_ids as the gzip build, the same digest from two cache dirs', async () => {
    const repo = `${services.registries!.plain.host}/${uniqueRepo('zstd')}`;
    zstdTag = `${repo}:zstd`;
    zstdDigest = await build({ METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION: 'zstd' }, 'cache-a', zstdTag);
    const again = await build({ METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION: 'zstd' }, 'cache-b', `${repo}:zstd-again`);
    expect(again).toBe(zstdDigest);
    await build({ METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION: 'gzip' }, 'cache-a', `${repo}:gzip`);

    const zstd = await manifestOf(zstdTag);
    const gzip = await manifestOf(`${repo}:gzip`);
    expect(zstd.manifest.mediaType).toBe('application/vnd.oci.image.manifest.v1+json');
    const baseCount = gzip.manifest.layers.length - lock.packages.length - 1;
    expect(baseCount).toBeGreaterThan(0);
    const [zBase, zNew] = [zstd.manifest.layers.slice(0, baseCount), zstd.manifest.layers.slice(baseCount)];
    expect(zBase.map((l) => l.digest)).toEqual(gzip.manifest.layers.slice(0, baseCount).map((l) => l.digest));
    expect(new Set(zBase.map((l) => l.mediaType))).toEqual(new Set(['application/vnd.oci.image.layer.v1.tar+gzip']));
    expect(zNew).toHaveLength(lock.packages.length + 1);
    expect(new Set(zNew.map((l) => l.mediaType))).toEqual(new Set(['application/vnd.oci.image.layer.v1.tar+zstd']));
    expect(new Set(gzip.manifest.layers.slice(baseCount).map((l) => l.mediaType)).size).toBe(1);
    expect(gzip.manifest.layers.slice(baseCount)[0]!.mediaType).toMatch(/tar\.gzip$|tar\+gzip$/);
    // Same files, other codec: diff_ids equal, blob digests not.
    expect(zstd.diffIds).toEqual(gzip.diffIds);
    zNew.forEach((layer, i) => expect(layer.digest).not.toBe(gzip.manifest.layers[baseCount + i]!.digest));

    // Each pushed zstd blob: the system zstd decompresses it to the tar whose sha256 is its diff_id.
    for (const [i, layer] of zNew.entries()) {
      const blob = Buffer.from(await client.getBlob(zstdTag, layer.digest, { size: layer.size }));
      expect(blob.length).toBe(layer.size);
      const tar = await new Promise<Buffer>((resolve, reject) => {
        const child = execFile('zstd', ['-d', '-q', '-c'], { encoding: 'buffer', maxBuffer: 1 << 30 }, (error, stdout) => (error ? reject(error) : resolve(stdout)));
        child.stdin!.end(blob);
      });
      expect(`sha256:${createHash('sha256').update(tar).digest('hex')}`).toBe(zstd.diffIds[baseCount + i]);
    }
  }, 600_000);

  dockerZstdTests('zstd layers', dockers, () => ({ tag: zstdTag, command: [`${prefix}/bin/python`, '-c', 'import tinyframe; print(tinyframe.Frame([1, 2, 3]).mean())'], prints: '2.0' }));

  // The system's containerd (Debian bookworm's 1.6) and the test services' containerd 1.7 (Debian
  // trixie's, the one Docker 26 runs on), each a private instance on its own socket.
  const modernBin = services.modernDocker ? join(services.modernDocker.root, 'usr', 'bin') : undefined;
  const containerds = [
    { name: 'containerd (the system\'s, a private instance on its own socket)', binDir: undefined, reason: containerdReason },
    { name: 'containerd 1.7 (the test services\' modern runtimes, a private instance on its own socket)', binDir: modernBin, reason: containerdReason ?? (modernBin ? undefined : missingFor(['modernDocker'])) },
  ];
  for (const { name, binDir, reason } of containerds) {
    describeOrFailInCi(name, reason, () => {
      let containerd: PrivateContainerd | undefined;
      let socket: string;

      beforeAll(async () => {
        containerd = await startContainerd({ binDir });
        socket = containerd.socket;
      }, 60_000);
      afterAll(async () => {
        if (containerd) await have('ctr', ['-a', socket, 'images', 'rm', zstdTag]);
        await containerd?.stop();
      }, 60_000);

      it('containerd pulls the zstd image (ctr image pull --plain-http) and runs it (ctr run --net-host): the env python imports its packages', async () => {
        const { stdout: version } = await exec('ctr', ['-a', socket, 'version']);
        if (binDir) expect(version).toMatch(/Server:\s+Version:\s+1\.7\./);
        await exec('ctr', ['-a', socket, 'images', 'pull', '--plain-http', zstdTag], { timeout: 300_000 });
        const { stdout: images } = await exec('ctr', ['-a', socket, 'images', 'ls', '-q']);
        expect(images).toContain(zstdTag);
        const id = `prebuilt-zstd-${process.pid}`;
        const { stdout } = await exec(
          'ctr',
          ['-a', socket, 'run', '--rm', '--net-host', zstdTag, id, `${prefix}/bin/python`, '-c', 'import tinyframe; print(tinyframe.Frame([1, 2, 3]).mean())'],
          { timeout: 120_000 },
        );
        expect(stdout.trim()).toBe('2.0');
        const { stdout: resolved } = await exec('ctr', ['-a', socket, 'images', 'ls']);
        expect(resolved).toContain(zstdDigest);
      }, 600_000);
    });
  }
});
