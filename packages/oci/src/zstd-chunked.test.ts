/**
 * zstd:chunked layers: the footer and skippable frames byte for byte, a layer's TOC round trip
 * (each file and chunk readable at its offset with its digests), cross-checked with the stargz
 * snapshotter's own Go reader (Debian's 0.12 library: the code containerd-stargz-grpc runs), a
 * base layer converted to zstd:chunked, and the service's settings for the format.
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip, gunzipSync } from 'node:zlib';
import { compress, decompress } from '@mongodb-js/zstd';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegistryClient } from '@prebuilt/core/backend';
import { ESTARGZ_CHUNK, TOC_DIGEST_ANNOTATION, UNCOMPRESSED_SIZE_ANNOTATION, tarFileHeader } from './estargz.js';
import { convertLayerToEstargz } from './estargz-base.js';
import { tarLayer, writeLayer, type LayerEntry } from './layer.js';
import { LAYER_FORMAT_ID } from './layer-codec.js';
import { createOciBuildService, ociSettings } from './oci-build-service.js';
import { parseZstdChunkedFooter, singleSegmentFrame, skippableFrame, ZSTD_CHUNKED_CHECKSUM_ANNOTATION, ZSTD_CHUNKED_FOOTER_SIZE, ZSTD_CHUNKED_LEVEL, ZSTD_CHUNKED_POSITION_ANNOTATION, zstdChunkedFooter } from './zstd-chunked.js';
import { readZstdChunkedToc } from './__fixtures__/estargz-toc.js';
import { checkWithSnapshotterReader, estargzChecker } from './__fixtures__/estargz-check.js';
import { describeOrFailInCi, itOrFailInCi, missingFor, pinnedBase, services, uniqueRepo } from './__fixtures__/services.js';
import { thrownConfigError } from './__fixtures__/config-error.js';
import { layerSources } from './__fixtures__/layer-sources.js';

const exec = promisify(execFile);
const sha = (bytes: Buffer): string => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
const checker = await estargzChecker().catch((error: unknown) => ({ reason: `building the Go checker failed: ${String(error)}` }));
const checkerReason = 'reason' in checker ? checker.reason : undefined;

function zstdTool(input: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = execFile('zstd', ['-d', '-q', '-c'], { encoding: 'buffer', maxBuffer: 1 << 30 }, (error, stdout) => (error ? reject(error) : resolve(stdout)));
    child.stdin!.end(input);
  });
}

describe('zstd:chunked: footer and skippable frames', () => {
  it('the footer is 40 bytes: TOC offset, compressed size, uncompressed size, kind 1 (u64 little-endian), "GnUlInUx"; it parses back; other bytes do not parse', () => {
    const footer = zstdChunkedFooter(0x123456789a, 300, 120);
    expect(footer).toHaveLength(ZSTD_CHUNKED_FOOTER_SIZE);
    expect(footer.subarray(0, 8).toString('hex')).toBe('9a78563412000000');
    expect(footer.readBigUInt64LE(8)).toBe(120n);
    expect(footer.readBigUInt64LE(16)).toBe(300n);
    expect(footer.readBigUInt64LE(24)).toBe(1n);
    expect(footer.subarray(32).toString('latin1')).toBe('GnUlInUx');
    expect(parseZstdChunkedFooter(footer)).toEqual({ tocOffset: 0x123456789a, tocCompressedSize: 120, tocSize: 300 });
    expect(parseZstdChunkedFooter(Buffer.alloc(40))).toBeUndefined();
    expect(parseZstdChunkedFooter(footer.subarray(1))).toBeUndefined();
  });

  it("a frame re-declared as a single segment: its window is its content (1, 2 or 4 size bytes), the same blocks, any zstd decodes it; a frame bigger than its 2 MiB window stays as it is", async () => {
    for (const size of [9, 300, 70_000, 2 << 20]) {
      const data = Buffer.from(Array.from({ length: size }, (_, i) => (i * 7919) % 251));
      const frame = singleSegmentFrame(await compress(data, ZSTD_CHUNKED_LEVEL), size);
      expect(frame[4]! & 0b0010_0000, `${size}: single segment`).toBe(0b0010_0000);
      expect((await zstdTool(frame)).equals(data)).toBe(true);
      expect((await decompress(frame)).equals(data)).toBe(true);
    }
    expect(singleSegmentFrame(await compress(Buffer.from('print(1)\n'), ZSTD_CHUNKED_LEVEL), 9).subarray(4, 6).toString('hex')).toBe('2009');
    const big = await compress(randomBytes(3 << 20), ZSTD_CHUNKED_LEVEL);
    expect(singleSegmentFrame(big, 3 << 20)).toBe(big);
  });

  it('a skippable frame is magic 0x184D2A50 and the payload size (little-endian) before the payload, and a zstd decoder skips it', async () => {
    const frame = skippableFrame(Buffer.from('abc'));
    expect(frame.toString('hex')).toBe('502a4d1803000000616263');
    expect(await zstdTool(frame)).toHaveLength(0);
  });
});

describe('zstd:chunked layers', () => {
  let dir: string;
  let entries: LayerEntry[];
  let big: Buffer;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'prebuilt-oci-zchunk-'));
    const sources = await layerSources(dir);
    big = sources.big;
    // A shared object: the static prefetch order puts it before the landmark.
    entries = [...sources.entries, { path: 'opt/env/lib/libx.so', kind: 'file', source: join(dir, 'src/small.py'), mode: 0o755 }];
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('decompresses (system zstd) to exactly the plain tar of the entries in prefetch order: the diff_id is that tar\'s; the annotations; deterministic', async () => {
    const options = { compression: 'zstd:chunked' as const, mtime: 1_700_000_000, prefetch: { mode: 'static' as const } };
    const layer = await writeLayer(entries, join(dir, 'l1'), options);
    const again = await writeLayer(entries, join(dir, 'l2'), options);
    const blob = await readFile(layer.file);
    expect((await readFile(again.file)).equals(blob)).toBe(true);
    expect(layer.digest).toBe(sha(blob));
    const tar = await zstdTool(blob);
    expect(layer.diffId).toBe(sha(tar));
    // No TOC entry in the tar (unlike eStargz): the diff_id is the plain tar's, end-of-archive included.
    const plain = await tarLayer(entries, { mtime: 1_700_000_000, prefetch: { mode: 'static' } });
    expect(layer.diffId).toBe(plain.diffId);
    expect(layer.tarDigest).toBe(plain.diffId);
    expect(layer.annotations![UNCOMPRESSED_SIZE_ANNOTATION]).toBe(String(tar.length));
    const toc = await readZstdChunkedToc(blob);
    expect(layer.annotations![TOC_DIGEST_ANNOTATION]).toBe(sha(toc.json));
    expect(layer.annotations![ZSTD_CHUNKED_CHECKSUM_ANNOTATION]).toBe(sha(toc.compressed));
    expect(layer.annotations![ZSTD_CHUNKED_POSITION_ANNOTATION]).toBe(`${toc.tocOffset}:${toc.compressed.length}:${toc.json.length}:1`);
    // The TOC's skippable frame starts 8 bytes before its zstd frame; the footer's frame ends the blob.
    expect(blob.readUInt32LE(toc.tocOffset - 8)).toBe(0x184d2a50);
    expect(toc.tocOffset + toc.compressed.length + 8 + ZSTD_CHUNKED_FOOTER_SIZE).toBe(blob.length);
    expect(LAYER_FORMAT_ID['zstd:chunked']).not.toMatch(/[:/]/);
  });

  it('TOC round trip: every file and chunk starts a zstd frame at its offset, with its digests; the prefetch landmark after the prioritized files', async () => {
    const layer = await writeLayer(entries, join(dir, 'l3'), { compression: 'zstd:chunked', mtime: 1_700_000_000, prefetch: { mode: 'static' } });
    const blob = await readFile(layer.file);
    const { entries: toc, tocOffset } = await readZstdChunkedToc(blob);
    const byName = (name: string, type = 'reg') => toc.find((e) => e.name.replace(/\/$/, '') === name && e.type === type)!;
    // The first frame of each payload: decompress from its offset on (a decoder reads on across frames) and take its size.
    const readAt = async (offset: number, length: number) => (await decompress(blob.subarray(offset, tocOffset - 8))).subarray(0, length);
    const small = byName('opt/env/small.py');
    expect((await readAt(small.offset!, small.size!)).toString()).toBe('print(1)\n');
    expect(small.digest).toBe(sha(Buffer.from('print(1)\n')));
    expect(byName('opt/env/empty').offset).toBeUndefined();
    const first = byName('opt/env/big.bin');
    const chunks = toc.filter((e) => e.name === 'opt/env/big.bin' && e.type === 'chunk');
    expect(first).toMatchObject({ size: big.length, chunkSize: ESTARGZ_CHUNK, digest: sha(big) });
    expect(chunks.map((c) => [c.chunkOffset, c.chunkSize])).toEqual([[ESTARGZ_CHUNK, ESTARGZ_CHUNK], [2 * ESTARGZ_CHUNK, undefined]]);
    for (const part of [first, ...chunks]) {
      const start = part.chunkOffset ?? 0;
      const length = part.chunkSize ?? big.length - start;
      const bytes = await readAt(part.offset!, length);
      expect(bytes.equals(big.subarray(start, start + length))).toBe(true);
      expect(part.chunkDigest).toBe(sha(bytes));
    }
    // static prefetch: the shared object first, then the landmark, then the rest.
    const names = toc.filter((e) => e.type === 'reg').map((e) => e.name);
    expect(names.indexOf('opt/env/lib/libx.so')).toBeLessThan(names.indexOf('.prefetch.landmark'));
    expect(names.indexOf('.prefetch.landmark')).toBeLessThan(names.indexOf('opt/env/big.bin'));
    const offsets = toc.filter((e) => e.offset !== undefined).map((e) => e.offset!);
    expect(offsets).toEqual([...offsets].sort((a, b) => a - b));
    expect(offsets.at(-1)!).toBeLessThan(tocOffset);
  });

  itOrFailInCi("the stargz snapshotter's Go reader opens it: TOC digest verified, every chunk verified at its offset, each file's content, the unpacked tar is the diff_id", checkerReason, async () => {
    const layer = await writeLayer(entries, join(dir, 'l4'), { compression: 'zstd:chunked', mtime: 1_700_000_000, prefetch: { mode: 'static' } });
    const found = await checkWithSnapshotterReader((checker as { bin: string }).bin, layer.file, layer.annotations![TOC_DIGEST_ANNOTATION]!);
    expect(found.tocDigest).toBe(layer.annotations![TOC_DIGEST_ANNOTATION]);
    expect(found.diffId).toBe(layer.diffId);
    expect(found.files['opt/env/big.bin']).toBe(sha(big));
    expect(found.files['opt/env/small.py']).toBe(sha(Buffer.from('print(1)\n')));
    expect(found.chunks).toBe(3 + 3 + 1); // big.bin's three, the three small files, the landmark (the empty file has none)
    // A wrong TOC digest is refused, as the snapshotter refuses to mount the layer.
    await expect(checkWithSnapshotterReader((checker as { bin: string }).bin, layer.file, sha(Buffer.from('other')))).rejects.toThrow(/invalid TOC JSON/);
  }, 600_000);

  it('a base layer with 512 MiB after its end-of-archive blocks (zeros: a small gzip stream) converts to zstd:chunked keeping them, held a member at a time', async () => {
    const TAIL = 512 << 20;
    const tar = Buffer.concat([tarFileHeader('a.txt', 2), Buffer.from('a\n'), Buffer.alloc(510), Buffer.alloc(1024)]);
    const zeros = Buffer.alloc(4 << 20);
    const whole = createHash('sha256').update(tar);
    for (let left = TAIL; left > 0; left -= zeros.length) whole.update(zeros);
    const digest = `sha256:${whole.digest('hex')}`;
    const blob = join(dir, 'tail.tgz');
    await pipeline(Readable.from((function* () { yield tar; for (let left = TAIL; left > 0; left -= zeros.length) yield zeros; })()), createGzip({ level: 1 }), createWriteStream(blob));
    // The bytes held in buffers, sampled during the conversion: before, the whole tail was (twice, joined at the end).
    let peak = 0;
    const watch = setInterval(() => (peak = Math.max(peak, process.memoryUsage().arrayBuffers)), 5);
    const converted = await convertLayerToEstargz(blob, 'application/vnd.oci.image.layer.v1.tar+gzip', join(dir, 'tail.zc'), { format: 'zstd:chunked' }).finally(() => clearInterval(watch));
    expect(peak).toBeLessThan(128 << 20);
    expect(converted.diffId).toBe(digest);
    expect(converted.annotations[UNCOMPRESSED_SIZE_ANNOTATION]).toBe(String(tar.length + TAIL));
    const { stdout } = await exec('sh', ['-c', `zstd -d -q -c '${join(dir, 'tail.zc')}' | sha256sum`]);
    expect(`sha256:${stdout.split(' ')[0]}`).toBe(digest);
  }, 120_000);

  it('a gzip base layer converts to zstd:chunked of the same tar: same diff_id (no TOC entry), tar+zstd annotations, deterministic; the Go reader opens it', async () => {
    const root = join(dir, 'base');
    await mkdir(join(root, 'etc'), { recursive: true });
    await writeFile(join(root, 'etc/a.conf'), 'a\n');
    await writeFile(join(root, 'big.bin'), Buffer.alloc(5 << 20, 7));
    await exec('ln', [join(root, 'big.bin'), join(root, 'hard.bin')]);
    await exec('tar', ['-czf', join(dir, 'base.tgz'), '--owner=1000', '--group=50', '-C', root, '.']);
    const blob = await readFile(join(dir, 'base.tgz'));
    const GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip';
    const converted = await convertLayerToEstargz(join(dir, 'base.tgz'), GZIP, join(dir, 'base.zc'), { format: 'zstd:chunked' });
    const out = await readFile(join(dir, 'base.zc'));
    expect(converted.digest).toBe(sha(out));
    expect(converted.diffId).toBe(sha(gunzipSync(blob)));
    expect(sha(await zstdTool(out))).toBe(converted.diffId);
    expect(converted.annotations[ZSTD_CHUNKED_POSITION_ANNOTATION]).toMatch(/^\d+:\d+:\d+:1$/);
    expect((await convertLayerToEstargz(join(dir, 'base.tgz'), GZIP, join(dir, 'base2.zc'), { format: 'zstd:chunked' })).digest).toBe(converted.digest);
    // With a profile: the file it names first, then the landmark; still the same files.
    const ordered = await convertLayerToEstargz(join(dir, 'base.tgz'), GZIP, join(dir, 'base3.zc'), { prefetch: ['/etc/a.conf'], format: 'zstd:chunked' });
    const { entries: toc } = await readZstdChunkedToc(await readFile(join(dir, 'base3.zc')));
    const regs = toc.filter((e) => e.type === 'reg').map((e) => e.name.replace(/^\.\//, ''));
    expect(regs.slice(0, 2)).toEqual(['etc/a.conf', '.prefetch.landmark']);
    if (checkerReason === undefined) {
      const found = await checkWithSnapshotterReader((checker as { bin: string }).bin, join(dir, 'base3.zc'), ordered.annotations[TOC_DIGEST_ANNOTATION]!);
      expect(found.diffId).toBe(ordered.diffId);
      expect(Object.values(found.files)).toContain(sha(Buffer.alloc(5 << 20, 7)));
    }
  }, 120_000);
});

describe('zstd:chunked settings', () => {
  it('METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION=zstd:chunked: prefetch static by default, the base may be re-layered; runners that cannot pull zstd refuse it (exit 2)', () => {
    const settings = ociSettings({ env: { METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION: 'zstd:chunked', METAFLOW_PREBUILT_OCI_ESTARGZ_BASE: '1' } });
    expect(settings).toMatchObject({ layerCompression: 'zstd:chunked', prefetch: { mode: 'static' }, estargzBase: true });
    expect(ociSettings({ layerCompression: 'zstd:chunked', env: { METAFLOW_PREBUILT_OCI_PREFETCH: 'off' } }).prefetch).toEqual({ mode: 'off' });
    expect(ociSettings({ env: { METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION: ' ZSTD:Chunked ' } }).layerCompression).toBe('zstd:chunked');
    expect(ociSettings({ env: { METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION: 'zstd:chunked', METAFLOW_PREBUILT_OCI_RUNNERS: 'containerd@1.6' } }).layerCompression).toBe('zstd:chunked');
    const refused = thrownConfigError(() => ociSettings({ env: { METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION: 'zstd:chunked', METAFLOW_PREBUILT_OCI_RUNNERS: 'containerd@1.6,docker@20.10' } }));
    expect(refused.message).toMatch(/zstd:chunked layers were asked for, but docker@20\.10 cannot pull them/);
    expect(thrownConfigError(() => ociSettings({ env: { METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION: 'zstd-chunked' } })).hint).toMatch(/gzip, zstd, estargz, zstd:chunked or erofs/);
  });
});

const missing = missingFor(['registries', 'baseImage']);
type Manifest = { config: { digest: string }; layers: { mediaType: string; digest: string; size: number; annotations?: Record<string, string> }[] };

describeOrFailInCi('oci build service: zstd:chunked layers on the base re-layered as zstd:chunked', missing, () => {
  let work: string;
  const client = new RegistryClient({ dockerConfig: false });
  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'prebuilt-zchunk-base-'));
  });
  afterAll(() => rm(work, { recursive: true, force: true }));

  it("every layer, the base's too, is tar+zstd with the TOC annotations; the base layers keep their diff_ids (the tar is the same); a rebuild converts nothing", async () => {
    await writeFile(join(work, 'hello.txt'), 'hello\n');
    const tag = `${services.registries!.plain.host}/${uniqueRepo('zchunk-base')}:a`;
    const digests: string[] = [];
    const service = createOciBuildService({ env: { METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION: 'zstd:chunked', METAFLOW_PREBUILT_OCI_ESTARGZ_BASE: '1' }, layerCacheDir: join(work, 'cache'), onPushed: (s) => digests.push(s.digest) });
    for (const imageTag of [tag, `${tag}-again`]) {
      const result = await service.buildAndPush({ dockerfile: `FROM ${pinnedBase()!}\nCOPY hello.txt /opt/hello.txt\n`, contextDir: work, imageTag, platform: 'linux/amd64' });
      if (!result.ok) throw new Error(`build failed: ${result.reason}\n${result.logTail.join('\n')}`);
    }
    expect(digests[1]).toBe(digests[0]);
    const manifest = (await client.getManifest(tag)).manifest as Manifest;
    const config = JSON.parse(Buffer.from(await client.getBlob(tag, manifest.config.digest)).toString()) as { rootfs: { diff_ids: string[] } };
    const baseManifest = (await client.getManifest(pinnedBase()!)).manifest as Manifest;
    const baseConfig = JSON.parse(Buffer.from(await client.getBlob(pinnedBase()!, baseManifest.config.digest)).toString()) as { rootfs: { diff_ids: string[] } };
    expect(config.rootfs.diff_ids.slice(0, baseConfig.rootfs.diff_ids.length)).toEqual(baseConfig.rootfs.diff_ids);
    for (const [i, layer] of manifest.layers.entries()) {
      expect(layer.mediaType).toBe('application/vnd.oci.image.layer.v1.tar+zstd');
      expect(layer.annotations?.[ZSTD_CHUNKED_POSITION_ANNOTATION]).toMatch(/:1$/);
      const blob = Buffer.from(await client.getBlob(tag, layer.digest, { size: layer.size }));
      expect(sha(await zstdTool(blob))).toBe(config.rootfs.diff_ids[i]);
    }
  }, 300_000);
});
