/**
 * The base image re-layered as eStargz (METAFLOW_PREBUILT_OCI_ESTARGZ_BASE): a layer converts to
 * eStargz of the same files; the oci service pushes the converted base and names its diff_ids,
 * converts once per base layer; and on an empty node (nothing cached) containerd with the stargz
 * snapshotter pulls the whole image lazily — the base too.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gunzipSync, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, PrebuiltError, RegistryClient } from '@prebuilt/core/backend';
import { BASE_CONVERSION_VERSION, checkConvertibleBase, convertLayerToEstargz, convertedBaseKey } from './estargz-base.js';
import { LAYER_FORMAT_ID } from './layer-codec.js';
import { LayerCache } from './layer-cache.js';
import { TOC_DIGEST_ANNOTATION, UNCOMPRESSED_SIZE_ANNOTATION, tarFileHeader } from './estargz.js';
import { landmarkOffset, readToc } from './__fixtures__/estargz-toc.js';
import { have, stargzMissing, startStargzNode, type PrivateContainerd } from './__fixtures__/containerd.js';
import { startCountingProxy, type CountingProxy } from './__fixtures__/counting-proxy.js';
import { PREFETCH_ONLY } from './__fixtures__/lazy-image.js';
import { describeOrFailInCi, missingFor, pinnedBase, services, uniqueRepo } from './__fixtures__/services.js';
import { createOciBuildService, ociSettings, type PushSummary } from './oci-build-service.js';

const exec = promisify(execFile);
const sha = (bytes: Buffer): string => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
const GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip';

/** How many of this process's file descriptors are open on `file` (removed since, or not). */
async function openOn(file: string): Promise<number> {
  const fds = await readdir('/proc/self/fd');
  const targets = await Promise.all(fds.map((fd) => readlink(join('/proc/self/fd', fd)).catch(() => '')));
  return targets.filter((t) => t === file || t === `${file} (deleted)`).length;
}

async function listTar(tar: Buffer): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const child = execFile('tar', ['-tv'], { encoding: 'utf8', maxBuffer: 1 << 24 }, (error, stdout) => (error ? reject(error) : resolve(stdout.trim().split('\n'))));
    child.stdin!.end(tar);
  });
}

describe('eStargz base: converting a layer', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'prebuilt-estargz-base-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('a GNU tar.gz layer (long name, symlink, hard link, owners) becomes eStargz of the same entries: valid gzip, diff_id its tar, TOC and annotations', async () => {
    const root = join(dir, 'root');
    const long = `${'d'.repeat(80)}/${'f'.repeat(90)}.txt`;
    await mkdir(join(root, 'd'.repeat(80)), { recursive: true });
    await writeFile(join(root, long), 'long\n');
    await writeFile(join(root, 'big.bin'), Buffer.alloc(5 << 20, 7));
    await symlink('big.bin', join(root, 'link'));
    await exec('ln', [join(root, 'big.bin'), join(root, 'hard.bin')]);
    await exec('tar', ['-czf', join(dir, 'layer.tgz'), '--owner=1000', '--group=50', '-C', root, '.']);
    const blob = await readFile(join(dir, 'layer.tgz'));
    const converted = await convertLayerToEstargz(join(dir, 'layer.tgz'), GZIP, join(dir, 'out.blob'));
    const out = await readFile(join(dir, 'out.blob'));
    expect(converted.digest).toBe(sha(out));
    expect(converted.size).toBe(out.length);
    const tar = gunzipSync(out);
    expect(converted.diffId).toBe(sha(tar));
    expect(converted.annotations[UNCOMPRESSED_SIZE_ANNOTATION]).toBe(String(tar.length));
    // The same entries (owners, links) in the same order, then the TOC.
    const before = await listTar(gunzipSync(blob));
    const after = await listTar(tar);
    expect(after.slice(0, before.length)).toEqual(before);
    expect(after.slice(before.length).map((l) => l.split(/\s+/).at(-1))).toEqual(['stargz.index.json']);
    const { entries } = readToc(out);
    // Owners and times in the TOC (the snapshotter shows files with them): GNU tar's `./` names, the snapshotter cleans them.
    const entry = entries.find((e) => e.name === `./${long}`) as Record<string, unknown> | undefined;
    expect(entry).toMatchObject({ type: 'reg', uid: 1000, gid: 50, size: 5 });
    expect(entry!['modtime']).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    // The 5 MiB file (whichever name tar stored first; the other is its hard link): two chunks of at most 4 MiB.
    const big = entries.find((e) => e.type === 'reg' && e.size === 5 << 20)!;
    expect(entries.filter((e) => e.name === big.name && e.type === 'chunk')).toHaveLength(1);
    expect(entries.some((e) => e.type === 'hardlink')).toBe(true);
    expect(converted.annotations[TOC_DIGEST_ANNOTATION]).toMatch(/^sha256:[0-9a-f]{64}$/);
    // Reproducible.
    expect((await convertLayerToEstargz(join(dir, 'layer.tgz'), GZIP, join(dir, 'again.blob'))).digest).toBe(converted.digest);
  });

  it('leaves nothing but its output, and that only on success: a cancel while the tar is unpacked or while the layer is written, a corrupt layer', async () => {
    const work = join(dir, 'temp-files');
    await mkdir(work);
    // 64 MiB of zeros, then the profile's file: long enough to be cancelled midway.
    const tar = Buffer.concat([tarFileHeader('zeros.bin', 64 << 20), Buffer.alloc(64 << 20), tarFileHeader('etc/a.conf', 2), Buffer.from('a\n'), Buffer.alloc(510), Buffer.alloc(1024)]);
    await writeFile(join(work, 'in.tgz'), gzipSync(tar, { level: 1 }));
    await writeFile(join(work, 'cut.tgz'), gzipSync(tar.subarray(0, 40 << 20), { level: 1 }));
    const out = join(work, 'out.blob');
    const convert = (blob: string, signal?: AbortSignal) => convertLayerToEstargz(join(work, blob), GZIP, out, { prefetch: ['/etc/a.conf'], ...(signal ? { signal } : {}) });
    // Cancelled once the step's temp file is there: the unpacked tar (first pass), the layer being written (second).
    for (const temp of [`${out}.tar`, `${out}.partial`]) {
      const abort = new AbortController();
      const watch = setInterval(() => existsSync(temp) && abort.abort(), 1);
      const error = await convert('in.tgz', abort.signal).then(() => undefined, (e: unknown) => e);
      clearInterval(watch);
      expect((error as Error | undefined)?.name, `cancelled with ${temp} there`).toBe('AbortError');
      expect((await readdir(work)).sort()).toEqual(['cut.tgz', 'in.tgz']);
      await new Promise((resolve) => setTimeout(resolve, 50));
      for (const file of ['in.tgz', 'out.blob.tar', 'out.blob.partial']) expect(await openOn(join(work, file)), `${file} left open after a cancel with ${temp} there`).toBe(0);
    }
    await expect(convert('cut.tgz')).rejects.toThrow(/'zeros\.bin' runs past the end of the archive/);
    expect((await readdir(work)).sort()).toEqual(['cut.tgz', 'in.tgz']);
    const converted = await convert('in.tgz');
    expect((await readdir(work)).sort()).toEqual(['cut.tgz', 'in.tgz', 'out.blob']);
    expect(converted.digest).toBe(sha(await readFile(out)));
  });

  it('a full disk while the tar is unpacked or the layer written is a DiskFullError naming the directory and the layer; nothing is left', async () => {
    const work = join(dir, 'disk-full');
    await mkdir(work);
    const tar = Buffer.concat([tarFileHeader('etc/a.conf', 2), Buffer.from('a\n'), Buffer.alloc(510), Buffer.alloc(1024)]);
    await writeFile(join(work, 'in.tgz'), gzipSync(tar));
    const out = join(work, 'out.blob');
    // The temp file is /dev/full: every write fails with ENOSPC.
    for (const temp of [`${out}.tar`, `${out}.partial`]) {
      await symlink('/dev/full', temp);
      const error = await convertLayerToEstargz(join(work, 'in.tgz'), GZIP, out, { prefetch: ['/etc/a.conf'], label: 'the base layer sha256:ab of base:1' }).catch((e: unknown) => e);
      expect(PrebuiltError.isInstance(error), String(error)).toBe(true);
      expect((error as PrebuiltError).code).toBe('disk-full');
      expect((error as Error).message).toBe(`No space left on the device of ${work} while converting the base layer sha256:ab of base:1.`);
      expect(await readdir(work)).toEqual(['in.tgz']);
    }
  });

  it('a layer whose output cannot be created leaves no file open: the blob is opened only once the output is', async () => {
    const work = join(dir, 'no-output');
    await mkdir(work);
    const tar = Buffer.concat([tarFileHeader('etc/a.conf', 2), Buffer.from('a\n'), Buffer.alloc(510), Buffer.alloc(1024)]);
    await writeFile(join(work, 'in.tar'), tar);
    await writeFile(join(work, 'in.tgz'), gzipSync(tar));
    for (const [blob, mediaType] of [['in.tar', 'application/vnd.oci.image.layer.v1.tar'], ['in.tgz', GZIP]] as const) {
      // The output's directory does not exist: its temp file cannot be opened.
      const error = await convertLayerToEstargz(join(work, blob), mediaType, join(work, 'missing', 'out.blob')).catch((e: unknown) => e);
      expect((error as NodeJS.ErrnoException).code, String(error)).toBe('ENOENT');
      // A read stream opens its file on the next ticks: give it time to, then none may be open.
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(await openOn(join(work, blob)), `${blob} left open`).toBe(0);
    }
  });

  it('a converted base layer is remembered under the conversion\'s version: one another version of it converted is not found', async () => {
    const digest = `sha256:${'ab'.repeat(32)}`;
    expect(convertedBaseKey(digest, '')).toBe(convertedBaseKey(digest, '', BASE_CONVERSION_VERSION));
    expect(convertedBaseKey(digest, '')).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(convertedBaseKey(digest, '', BASE_CONVERSION_VERSION + 1)).not.toBe(convertedBaseKey(digest, ''));
    expect(convertedBaseKey(digest, '\0prefetch:x')).not.toBe(convertedBaseKey(digest, ''));
    expect(convertedBaseKey(`sha256:${'cd'.repeat(32)}`, '')).not.toBe(convertedBaseKey(digest, ''));
    const dir = await mkdtemp(join(tmpdir(), 'prebuilt-estargz-base-key-'));
    try {
      const cache = new LayerCache(dir);
      const converted = { digest: `sha256:${'12'.repeat(32)}`, size: 10, diffId: `sha256:${'34'.repeat(32)}`, annotations: { [TOC_DIGEST_ANNOTATION]: `sha256:${'56'.repeat(32)}` } };
      // What an older conversion (another version) remembered, on disk: a fresh cache reads the disk, not its memory.
      await cache.setByContent(convertedBaseKey(digest, '', BASE_CONVERSION_VERSION - 1), converted);
      expect(await new LayerCache(dir).getByContent(convertedBaseKey(digest, '', BASE_CONVERSION_VERSION - 1))).toEqual(converted);
      expect(await new LayerCache(dir).getByContent(convertedBaseKey(digest, ''))).toBeUndefined();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('a zstd base layer cannot be converted (a clear ConfigError); eStargz, gzip and tar layers can; the setting needs eStargz layers', () => {
    const layer = (mediaType: string, annotations?: Record<string, string>) => ({ mediaType, digest: `sha256:${'0'.repeat(64)}`, size: 1, ...(annotations ? { annotations } : {}) });
    expect(() => checkConvertibleBase('base:1', [layer(GZIP), layer('application/vnd.oci.image.layer.v1.tar+zstd')])).toThrow(ConfigError);
    expect(() => checkConvertibleBase('base:1', [layer('application/vnd.docker.image.rootfs.diff.tar.gzip'), layer('application/vnd.oci.image.layer.v1.tar'), layer('x', { [TOC_DIGEST_ANNOTATION]: 'sha256:1' })])).not.toThrow();
    expect(() => ociSettings({ env: { METAFLOW_PREBUILT_OCI_ESTARGZ_BASE: '1' } })).toThrow(/needs eStargz or zstd:chunked layers/);
    expect(() => ociSettings({ env: { METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION: 'estargz', METAFLOW_PREBUILT_OCI_ESTARGZ_BASE: 'maybe' } })).toThrow(/neither on nor off/);
    expect(ociSettings({ env: { METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION: 'estargz', METAFLOW_PREBUILT_OCI_ESTARGZ_BASE: 'true' } }).estargzBase).toBe(true);
    // The same on/off words as every other setting (core's loadBooleanSetting): `on` too, any case.
    expect(ociSettings({ env: { METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION: 'estargz', METAFLOW_PREBUILT_OCI_ESTARGZ_BASE: 'On' } }).estargzBase).toBe(true);
    expect(ociSettings({ layerCompression: 'estargz', estargzBase: false, env: { METAFLOW_PREBUILT_OCI_ESTARGZ_BASE: '1' } }).estargzBase).toBe(false);
    expect(ociSettings({ env: { METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION: 'estargz' } }).estargzBase).toBe(false);
  });
});

const missing = missingFor(['registries', 'baseImage']);
const stargzReason = missing ?? (await stargzMissing());
type Manifest = { config: { digest: string }; layers: { mediaType: string; digest: string; size: number; annotations?: Record<string, string> }[] };

describeOrFailInCi('oci build service: big temporary files on disk beside the cache, not in TMPDIR', missing, () => {
  it('copies and converts base layers and builds the new ones in the work directory (TMPDIR unusable: the build still passes), removing its files and those of a killed run', async () => {
    const work = await mkdtemp(join(tmpdir(), 'prebuilt-oci-workdir-'));
    const saved = process.env['TMPDIR'];
    try {
      await writeFile(join(work, 'hello.txt'), 'hello from the env layer\n');
      const workDir = join(work, 'spool');
      // A directory a killed run left (its process is gone): made by a child process that then exits.
      const core = join(import.meta.dirname, '../../core/dist/index.js');
      const { stdout } = await exec(process.execPath, ['--input-type=module', '-e', `import { createRunTempDir } from ${JSON.stringify(core)}; import { mkdir } from 'node:fs/promises'; await mkdir(${JSON.stringify(workDir)}, { recursive: true }); console.log(await createRunTempDir('prebuilt-oci-base-', { tempDir: ${JSON.stringify(workDir)} }));`]);
      const stale = stdout.trim();
      expect(existsSync(stale)).toBe(true);
      // TMPDIR (often a tmpfs: RAM) that cannot be used: a spool there fails the build.
      process.env['TMPDIR'] = join(work, 'no-such-tmp');
      const tag = `${services.registries!.plain.host}/${uniqueRepo('workdir')}`;
      for (const [imageTag, env] of [
        [`${tag}:gzip`, {}],
        [`${tag}:esgz`, { METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION: 'estargz', METAFLOW_PREBUILT_OCI_ESTARGZ_BASE: '1' }],
      ] as const) {
        const service = createOciBuildService({ env, layerCacheDir: false, workDir });
        const result = await service.buildAndPush({ dockerfile: `FROM ${pinnedBase()!}\nCOPY hello.txt /opt/hello.txt\n`, contextDir: work, imageTag, platform: 'linux/amd64' });
        if (!result.ok) throw new Error(`build failed: ${result.reason}\n${result.logTail.join('\n')}`);
      }
      expect(existsSync(stale)).toBe(false);
      expect(await readdir(workDir)).toEqual([]);
    } finally {
      if (saved === undefined) delete process.env['TMPDIR'];
      else process.env['TMPDIR'] = saved;
      await rm(work, { recursive: true, force: true });
    }
  }, 300_000);

  it('a work directory that cannot be made is an EnvironmentError naming what moves it: METAFLOW_PREBUILT_CACHE_DIR, or the option workDir when one is given', async () => {
    const work = await mkdtemp(join(tmpdir(), 'prebuilt-oci-workdir-bad-'));
    try {
      await writeFile(join(work, 'hello.txt'), 'hello\n');
      await writeFile(join(work, 'file'), 'a file in the way\n');
      const build = (options: Parameters<typeof createOciBuildService>[0]) =>
        createOciBuildService(options)
          .buildAndPush({ dockerfile: `FROM ${pinnedBase()!}\nCOPY hello.txt /opt/hello.txt\n`, contextDir: work, imageTag: `${services.registries!.plain.host}/${uniqueRepo('workdir')}:bad`, platform: 'linux/amd64' })
          .catch((e: unknown) => e);
      const fromSetting = JSON.stringify(await build({ env: { METAFLOW_PREBUILT_CACHE_DIR: join(work, 'file') }, layerCacheDir: false }));
      expect(fromSetting).toContain(`Cannot write ${join(work, 'file')}`);
      expect(fromSetting).toContain('Set METAFLOW_PREBUILT_CACHE_DIR to a directory you can write');
      const fromOption = JSON.stringify(await build({ env: {}, layerCacheDir: false, workDir: join(work, 'file', 'spool') }));
      expect(fromOption).toContain(`Cannot write ${join(work, 'file')}`);
      expect(fromOption).toContain("Set the oci build service's option 'workDir' to a directory you can write");
      expect(fromOption).not.toContain('METAFLOW_PREBUILT_CACHE_DIR');
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  }, 120_000);
});

describeOrFailInCi('oci build service: the base re-layered as eStargz', missing, () => {
  let work: string;
  let tag: string;
  const client = new RegistryClient({ dockerConfig: false });
  const pushes: PushSummary[] = [];

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'prebuilt-estargz-base-svc-'));
    await writeFile(join(work, 'hello.txt'), 'hello from the env layer\n');
    tag = `${services.registries!.plain.host}/${uniqueRepo('esgz-base')}:a`;
    const service = createOciBuildService({ env: { METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION: 'estargz', METAFLOW_PREBUILT_OCI_ESTARGZ_BASE: '1' }, layerCacheDir: join(work, 'cache'), onPushed: (s) => pushes.push(s) });
    for (const imageTag of [tag, `${tag}-again`]) {
      const result = await service.buildAndPush({ dockerfile: `FROM ${pinnedBase()!}\nCOPY hello.txt /opt/hello.txt\n`, contextDir: work, imageTag, platform: 'linux/amd64' });
      if (!result.ok) throw new Error(`build failed: ${result.reason}\n${result.logTail.join('\n')}`);
    }
  }, 300_000);
  afterAll(() => (work ? rm(work, { recursive: true, force: true }) : undefined));

  it('every layer, the base\'s too, is eStargz (TOC annotations) and the config names each one\'s tar; a rebuild converts nothing (same digest, base layers exist)', async () => {
    const manifest = (await client.getManifest(tag)).manifest as Manifest;
    const config = JSON.parse(Buffer.from(await client.getBlob(tag, manifest.config.digest)).toString()) as { rootfs: { diff_ids: string[] } };
    expect(manifest.layers.length).toBeGreaterThan(1);
    expect(config.rootfs.diff_ids.length).toBe(manifest.layers.length);
    for (const [i, layer] of manifest.layers.entries()) {
      expect(layer.mediaType).toBe(GZIP);
      expect(layer.annotations?.[TOC_DIGEST_ANNOTATION]).toMatch(/^sha256:/);
      const blob = Buffer.from(await client.getBlob(tag, layer.digest, { size: layer.size }));
      expect(sha(gunzipSync(blob))).toBe(config.rootfs.diff_ids[i]);
    }
    const [first, second] = pushes;
    expect(second!.digest).toBe(first!.digest);
    expect(second!.baseLayers.every((l) => l.status === 'exists')).toBe(true);
    expect(first!.baseLayers.map((l) => l.digest)).toEqual(manifest.layers.slice(0, first!.baseLayers.length).map((l) => l.digest));
  }, 120_000);

  it('the layer cache remembers each converted base layer under the conversion\'s version (convertedBaseKey): a conversion of another version is not reused', async () => {
    const base = (await client.getManifest(pinnedBase()!)).manifest as Manifest;
    const records = join(work, 'cache', LAYER_FORMAT_ID.estargz, 'content');
    const manifest = (await client.getManifest(tag)).manifest as Manifest;
    for (const [i, layer] of base.layers.entries()) {
      const hex = (version: number) => convertedBaseKey(layer.digest, '', version).slice('sha256:'.length);
      expect((await readFile(join(records, hex(BASE_CONVERSION_VERSION)), 'utf8')).split(/\s/)[0]).toBe(manifest.layers[i]!.digest);
      expect(existsSync(join(records, hex(BASE_CONVERSION_VERSION + 1)))).toBe(false);
    }
  });

  it('FROM scratch: nothing to re-layer, the image is its own layers', async () => {
    const scratchTag = tag.replace(/:a$/, ':scratch');
    const service = createOciBuildService({ env: { METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION: 'estargz', METAFLOW_PREBUILT_OCI_ESTARGZ_BASE: '1' }, layerCacheDir: false });
    const result = await service.buildAndPush({ dockerfile: 'FROM scratch\nCOPY hello.txt /opt/hello.txt\n', contextDir: work, imageTag: scratchTag, platform: 'linux/amd64' });
    expect(result.ok).toBe(true);
    expect(((await client.getManifest(scratchTag)).manifest as Manifest).layers).toHaveLength(1);
  }, 60_000);

  describeOrFailInCi('an empty node: containerd with the stargz snapshotter', stargzReason, () => {
    let node: PrivateContainerd | undefined;
    let proxy: CountingProxy | undefined;
    beforeAll(async () => {
      proxy = await startCountingProxy(services.registries!.plain.host);
      node = await startStargzNode('noprefetch = true\nno_background_fetch = true\nno_prometheus = true\n');
    }, 60_000);
    afterAll(async () => {
      await node?.stop();
      await proxy?.close();
    }, 60_000);

    it('rpull + run with nothing on the node: the task runs after fetching part of the base layer, not all of it', async () => {
      const proxied = tag.replace(services.registries!.plain.host, proxy!.host);
      await exec('ctr-remote', ['-a', node!.socket, 'images', 'rpull', '--plain-http', proxied], { timeout: 300_000 });
      const { stdout } = await exec('ctr-remote', ['-a', node!.socket, 'run', '--rm', '--snapshotter', 'stargz', '--net-host', proxied, `prebuilt-esgz-base-${process.pid}`, 'sh', '-c', 'cat /opt/hello.txt; stat -c "%U:%G %Y" /etc/shadow'], { timeout: 120_000 });
      // The base's owners and times as the TOC states them (root:shadow, not root:root; not year 1).
      const [hello, shadow] = stdout.trim().split('\n');
      expect(hello).toBe('hello from the env layer');
      expect(shadow).toMatch(/^root:shadow \d+$/);
      const base = ((await client.getManifest(tag)).manifest as Manifest).layers[0]!;
      expect(proxy!.ranges.length).toBeGreaterThan(0);
      expect(proxy!.blobBytes.get(base.digest) ?? 0).toBeLessThan(base.size / 2);
      await have('ctr-remote', ['-a', node!.socket, 'images', 'rm', proxied]);
    }, 600_000);
  });

  describe('with a recorded prefetch profile', () => {
    let profiled: string;
    let baseLayer: Manifest['layers'][number];
    let toc: ReturnType<typeof readToc>['entries'];
    beforeAll(async () => {
      await writeFile(join(work, 'profile.txt'), '# recorded\n/opt/hello.txt\n/usr/lib/os-release\n/etc/shadow\n');
      profiled = tag.replace(/:a$/, ':profiled');
      const env = { METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION: 'estargz', METAFLOW_PREBUILT_OCI_ESTARGZ_BASE: '1', METAFLOW_PREBUILT_OCI_PREFETCH: join(work, 'profile.txt') };
      const result = await createOciBuildService({ env, layerCacheDir: join(work, 'cache') }).buildAndPush({ dockerfile: `FROM ${pinnedBase()!}\nCOPY hello.txt /opt/hello.txt\n`, contextDir: work, imageTag: profiled, platform: 'linux/amd64' });
      if (!result.ok) throw new Error(`build failed: ${result.reason}`);
      baseLayer = ((await client.getManifest(profiled)).manifest as Manifest).layers[0]!;
      toc = readToc(Buffer.from(await client.getBlob(profiled, baseLayer.digest, { size: baseLayer.size }))).entries;
    }, 300_000);

    it('the base layer is converted again, in prefetch order: the profile\'s base files before its landmark, the others after', async () => {
      const plain = ((await client.getManifest(tag)).manifest as Manifest).layers[0]!;
      expect(baseLayer.digest).not.toBe(plain.digest);
      const offset = (name: string): number => toc.find((e) => e.name.replace(/^\.?\//, '') === name && e.type === 'reg')!.offset!;
      const landmark = landmarkOffset(toc)!;
      expect(offset('usr/lib/os-release')).toBeLessThan(landmark);
      expect(offset('etc/shadow')).toBeLessThan(landmark);
      expect(offset('etc/passwd')).toBeGreaterThan(landmark);
    });

    describeOrFailInCi('an empty node with prefetch on', stargzReason, () => {
      let node: PrivateContainerd | undefined;
      let proxy: CountingProxy | undefined;
      beforeAll(async () => {
        proxy = await startCountingProxy(services.registries!.plain.host);
        node = await startStargzNode(PREFETCH_ONLY);
      }, 60_000);
      afterAll(async () => {
        await node?.stop();
        await proxy?.close();
      }, 60_000);

      it('rpull + run: the base layer is prefetched by one range request from 0 past its landmark, and the profile\'s base file is not fetched on its own', async () => {
        const proxied = profiled.replace(services.registries!.plain.host, proxy!.host);
        await exec('ctr-remote', ['-a', node!.socket, 'images', 'rpull', '--plain-http', proxied], { timeout: 300_000 });
        // The prefetch runs after the mount; wait for its response before the task reads (see oci-estargz.test.ts).
        for (let i = 0; i < 600 && !(proxy!.completedRanges.get(baseLayer.digest) ?? []).some((r) => /^bytes=0-/.test(r)); i++) await new Promise((r) => setTimeout(r, 100));
        await new Promise((r) => setTimeout(r, 1000));
        const { stdout } = await exec('ctr-remote', ['-a', node!.socket, 'run', '--rm', '--snapshotter', 'stargz', '--net-host', proxied, `prebuilt-esgz-base-pf-${process.pid}`, 'sh', '-c', 'cat /opt/hello.txt; grep -c . /usr/lib/os-release'], { timeout: 120_000 });
        expect(stdout.trim().split('\n')[0]).toBe('hello from the env layer');
        const landmark = landmarkOffset(toc)!;
        const ranges = (proxy!.blobRanges.get(baseLayer.digest) ?? []).flatMap((r) => [...r.matchAll(/(\d+)-(\d+)/g)].map((m) => [Number(m[1]), Number(m[2])] as const));
        expect(ranges.some(([start, end]) => start === 0 && end + 1 >= landmark), JSON.stringify(ranges)).toBe(true);
        expect(ranges.filter(([start]) => start > 0 && start < landmark), 'per-file requests before the landmark').toEqual([]);
        await have('ctr-remote', ['-a', node!.socket, 'images', 'rm', proxied]);
      }, 600_000);
    });
  });
});
