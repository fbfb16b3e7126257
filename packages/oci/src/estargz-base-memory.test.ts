/**
 * A base layer of 1 GiB re-layered as eStargz by the oci service in a child process (its peak RSS
 * is the process's own): a gzip layer whose tar is 1 GiB unpacked, with a recorded prefetch
 * profile (the tar unpacked to a temp file and read once, then written in prefetch order from
 * there), and a plain tar layer of 1 GiB (the registry's blob is that big) without one (fetched to
 * a file, streamed). Before, the blob was held whole and, under a profile, its tar unpacked in
 * memory: over 1 GiB either way. The layer is made of zeros (a sparse tar file): it costs the
 * registry's disk, not the test's time. (The same code reorders a plain tar, read from its file:
 * tar-prefetch-order.test.ts.)
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, open, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { createGzip } from 'node:zlib';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { RegistryClient, type ImageManifest } from '@prebuilt/core/backend';
import { startPlainRegistry, type HtpasswdRegistry } from '@prebuilt/fixtures';
import { TOC_DIGEST_ANNOTATION, tarFileHeader } from './estargz.js';
import { landmarkOffset, readToc } from './__fixtures__/estargz-toc.js';
import { describeOrFailInCi, missingFor, uniqueRepo } from './__fixtures__/services.js';

const TAR = 'application/vnd.oci.image.layer.v1.tar';
const GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip';
const MiB = 1024 * 1024;
/** Four files of 256 MiB of zeros, and a small one. */
const BIG_FILES = 4;
const BIG_FILE = 256 * MiB;
/** The child's peak RSS must stay under this: a quarter of the layer (the old conversion held all of it, and more). */
const RSS_LIMIT = 256 * MiB;
const PROFILE = ['/data/zero-2.bin', '/etc/a.conf'];

/** The oci service's build entry, as built (the child runs plain Node). */
const OCI_DIST = fileURLToPath(new URL('../dist/index.js', import.meta.url));

/** The child: builds and pushes an image FROM the base with the eStargz base on; prints its result and its peak RSS. */
const CHILD = `const { createOciBuildService } = await import(${JSON.stringify(OCI_DIST)});
const input = JSON.parse(process.env.PREBUILT_TEST_INPUT);
const service = createOciBuildService({ env: input.env, layerCacheDir: false });
const result = await service.buildAndPush({ dockerfile: input.dockerfile, contextDir: input.contextDir, imageTag: input.imageTag, platform: 'linux/amd64' });
process.stdout.write(JSON.stringify({ ok: result.ok, reason: result.ok ? undefined : result.reason, maxRss: process.resourceUsage().maxRSS * 1024 }));`;

const sha = (bytes: Uint8Array): string => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

async function fileDigest(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file, { highWaterMark: 4 * MiB })) hash.update(chunk as Buffer);
  return `sha256:${hash.digest('hex')}`;
}

/** A tar of 1 GiB + 2 KiB as a sparse file: `etc/a.conf`, then data/zero-<i>.bin of zeros (their bodies are holes). */
async function sparseTar(file: string): Promise<number> {
  const out = await open(file, 'w');
  let at = 0;
  const put = async (bytes: Buffer): Promise<void> => {
    await out.write(bytes, 0, bytes.length, at);
    at += bytes.length;
  };
  try {
    await put(tarFileHeader('etc/a.conf', 2));
    await put(Buffer.concat([Buffer.from('a\n'), Buffer.alloc(510)]));
    for (let i = 0; i < BIG_FILES; i++) {
      await put(tarFileHeader(`data/zero-${i}.bin`, BIG_FILE));
      at += BIG_FILE;
    }
    at += 1024; // the end-of-archive blocks
    await out.truncate(at);
  } finally {
    await out.close();
  }
  return at;
}

interface ChildRun {
  ok: boolean;
  reason?: string;
  maxRss: number;
}

function buildInChild(input: Record<string, unknown>, tmp: string): Promise<ChildRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', CHILD], {
      env: { ...process.env, TMPDIR: tmp, PREBUILT_TEST_INPUT: JSON.stringify(input) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4000)));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) reject(new Error(`the build child exited with ${code}: ${stderr}`));
      else resolve(JSON.parse(stdout) as ChildRun);
    });
  });
}

describeOrFailInCi('oci build service: a 1 GiB base layer re-layered as eStargz in bounded memory', missingFor(['registries']), () => {
  let dir: string;
  let registry: HtpasswdRegistry;
  let base: string;
  const client = new RegistryClient({ dockerConfig: false });

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'prebuilt-estargz-base-memory-'));
    await writeFile(join(dir, 'hello.txt'), 'hello\n');
    // A registry of its own, its storage removed after: the shared ones would keep 1 GiB a run.
    registry = await startPlainRegistry();
    const tarFile = join(dir, 'layer.tar');
    const size = await sparseTar(tarFile);
    await pipeline(createReadStream(tarFile, { highWaterMark: 4 * MiB }), createGzip({ level: 1 }), createWriteStream(join(dir, 'layer.tgz')));
    const diffId = await fileDigest(tarFile);
    const gz = await fileDigest(join(dir, 'layer.tgz'));
    base = `${registry.host}/${uniqueRepo('big-base')}`;
    await client.uploadBlob(base, diffId, { file: tarFile, size });
    const gzSize = (await stat(join(dir, 'layer.tgz'))).size;
    await client.uploadBlob(base, gz, { file: join(dir, 'layer.tgz'), size: gzSize });
    await rm(tarFile);
    const push = async (tag: string, layers: { mediaType: string; digest: string; size: number }[]): Promise<void> => {
      const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: layers.map(() => diffId) }, config: {} }));
      await client.uploadBlob(base, sha(config), config);
      const manifest = { schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(config), size: config.length }, layers };
      await client.putManifest(`${base}:${tag}`, Buffer.from(JSON.stringify(manifest)), manifest.mediaType);
    };
    await push('gzip', [{ mediaType: GZIP, digest: gz, size: gzSize }]);
    await push('plain', [{ mediaType: TAR, digest: diffId, size }]);
    await writeFile(join(dir, 'profile'), `${PROFILE.join('\n')}\n`);
  }, 180_000);
  afterAll(async () => {
    await registry?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** Builds FROM `tag` in a child with its own TMPDIR; the pushed image's base layers (as converted), the child's peak RSS and what its TMPDIR holds after. */
  async function build(tag: string, env: Record<string, string>): Promise<{ run: ChildRun; layers: ImageManifest['layers']; left: string[]; repo: string }> {
    const tmp = join(dir, `tmp-${tag}`);
    await mkdir(tmp);
    const repo = `${registry.host}/${uniqueRepo('big-env')}`;
    const imageTag = `${repo}:${tag}`;
    const run = await buildInChild({ env: { METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION: 'estargz', METAFLOW_PREBUILT_OCI_ESTARGZ_BASE: '1', ...env }, dockerfile: `FROM ${base}:${tag}\nCOPY hello.txt /opt/hello.txt\n`, contextDir: dir, imageTag }, tmp);
    const left = await readdir(tmp);
    await rm(tmp, { recursive: true, force: true });
    expect(run.ok, run.reason).toBe(true);
    const { manifest } = await client.getManifest(imageTag);
    return { run, layers: (manifest as ImageManifest).layers, left, repo };
  }

  /** The TOC of a converted base layer (a few MiB: zeros compress). */
  async function toc(repo: string, layer: ImageManifest['layers'][number]): Promise<ReturnType<typeof readToc>['entries']> {
    expect(layer.annotations?.[TOC_DIGEST_ANNOTATION]).toMatch(/^sha256:/);
    return readToc(Buffer.from(await client.getBlob(repo, layer.digest, { size: layer.size }))).entries;
  }

  it('a gzip layer of a 1 GiB tar with a recorded profile: reordered (the profile\'s files before the landmark), peak RSS well under the layer, no temp file left', async () => {
    const { run, layers, left, repo } = await build('gzip', { METAFLOW_PREBUILT_OCI_PREFETCH: join(dir, 'profile') });
    console.log(`peak RSS converting a gzip layer of a 1 GiB tar under a profile: ${(run.maxRss / MiB).toFixed(0)} MiB`);
    expect(run.maxRss).toBeLessThan(RSS_LIMIT);
    expect(left).toEqual([]);
    const entries = await toc(repo, layers[0]!);
    const at = (name: string): number => entries.find((e) => e.name === name)!.offset!;
    const landmark = landmarkOffset(entries)!;
    expect(landmark).toBeDefined();
    expect(at('data/zero-2.bin')).toBeLessThan(landmark);
    expect(at('etc/a.conf')).toBeLessThan(landmark);
    expect(at('data/zero-0.bin')).toBeGreaterThan(landmark);
    expect(entries.filter((e) => e.type === 'reg' && e.size === BIG_FILE)).toHaveLength(BIG_FILES);
  }, 240_000);

  it('a plain tar layer of 1 GiB without a profile: streamed in its own order, peak RSS well under the layer, no temp file left', async () => {
    const { run, layers, left, repo } = await build('plain', {});
    console.log(`peak RSS converting a 1 GiB plain tar layer without a profile: ${(run.maxRss / MiB).toFixed(0)} MiB`);
    expect(run.maxRss).toBeLessThan(RSS_LIMIT);
    expect(left).toEqual([]);
    const entries = await toc(repo, layers[0]!);
    expect(landmarkOffset(entries)).toBeUndefined();
    expect(entries.filter((e) => e.type === 'reg').map((e) => e.name).slice(0, 2)).toEqual(['etc/a.conf', 'data/zero-0.bin']);
  }, 240_000);
});
