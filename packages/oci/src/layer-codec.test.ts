import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CancelledError } from '@prebuilt/core/backend';
import { LAYER_FORMAT_ID, OCI_LAYER_MEDIA_TYPE, ZSTD_BLOCK, layerCompressor, type TarCompression } from './layer-codec.js';
import { layerDiffId, tarLayer, writeLayer, type LayerEntry } from './layer.js';

async function compress(compression: TarCompression, data: Buffer, writeSize = 64 << 10): Promise<Buffer> {
  const chunks: Buffer[] = [];
  const pieces: Buffer[] = [];
  for (let i = 0; i < data.length; i += writeSize) pieces.push(data.subarray(i, i + writeSize));
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      chunks.push(chunk);
      callback();
    },
  });
  await pipeline([Readable.from(pieces), ...layerCompressor(compression), sink] as unknown as NodeJS.ReadWriteStream[]);
  return Buffer.concat(chunks);
}

/** Runs a system tool with `input` on stdin, returning stdout. */
function tool(command: string, args: string[], input: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = execFile(command, args, { encoding: 'buffer', maxBuffer: 1 << 30 }, (error, stdout) => (error ? reject(error) : resolve(stdout)));
    child.stdin!.end(input);
  });
}

// Compressible but not trivial: text-like bytes with some noise, 9.5 MiB (three zstd frames).
const data = Buffer.concat(Array.from({ length: 19 }, (_, i) => Buffer.concat([Buffer.from(`block ${i} `.repeat(20_000)), randomBytes(512 << 10).map((b) => 97 + (b % 8))]))).subarray(0, (9 << 20) + (512 << 10));

describe('layer compression (Node zlib gzip, zstd frames)', () => {
  it('gzip: fixed header (mtime 0, OS Unix), the system gzip accepts it, same bytes for the same input whatever the write sizes', async () => {
    const gz = await compress('gzip', data);
    expect([...gz.subarray(0, 4)]).toEqual([0x1f, 0x8b, 8, 0]);
    expect(gz.readUInt32LE(4)).toBe(0);
    expect(gz[9]).toBe(3);
    await expect(tool('gzip', ['-t'], gz)).resolves.toBeDefined();
    expect(gunzipSync(gz).equals(data)).toBe(true);
    expect((await compress('gzip', data, 7777)).equals(gz)).toBe(true);
    expect(gz.length).toBeLessThan(data.length / 2);
  });

  it('zstd: the system zstd decompresses it to the same bytes; deterministic whatever the write sizes; one frame per 4 MiB block', async () => {
    const zst = await compress('zstd', data);
    expect(zst.readUInt32LE(0)).toBe(0xfd2fb528);
    await expect(tool('zstd', ['-t', '-q'], zst)).resolves.toBeDefined();
    expect((await tool('zstd', ['-d', '-q', '-c'], zst)).equals(data)).toBe(true);
    expect((await compress('zstd', data, 1 << 20)).equals(zst)).toBe(true);
    expect((await compress('zstd', data, 12345)).equals(zst)).toBe(true);
    // Frames start with the magic number: ceil(size / block) of them.
    let frames = 0;
    for (let at = zst.indexOf(Buffer.from([0x28, 0xb5, 0x2f, 0xfd])); at >= 0; at = zst.indexOf(Buffer.from([0x28, 0xb5, 0x2f, 0xfd]), at + 1)) frames++;
    expect(frames).toBeGreaterThanOrEqual(Math.ceil(data.length / ZSTD_BLOCK));
    expect(zst.length).toBeLessThan(data.length / 2);
  });

  it('zstd of nothing is one valid empty frame', async () => {
    const zst = await compress('zstd', Buffer.alloc(0));
    expect((await tool('zstd', ['-d', '-q', '-c'], zst)).length).toBe(0);
  });

  it('media types and format ids differ per compression', () => {
    expect(OCI_LAYER_MEDIA_TYPE).toEqual({
      gzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
      zstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
      estargz: 'application/vnd.oci.image.layer.v1.tar+gzip',
      'zstd:chunked': 'application/vnd.oci.image.layer.v1.tar+zstd',
    });
    expect(new Set(Object.values(LAYER_FORMAT_ID)).size).toBe(5);
    expect(LAYER_FORMAT_ID.erofs).toBe('erofs-tar-f-zlz4-C262144-T0-mkfs-time-Uclear-quiet');
  });
});

describe('writeLayer: tar, both hashes and compression in one streaming pass', () => {
  let dir: string;
  let entries: LayerEntry[];
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'prebuilt-oci-codec-'));
    await mkdir(join(dir, 'src/pkg'), { recursive: true });
    await writeFile(join(dir, 'src/pkg/big.bin'), data);
    await writeFile(join(dir, 'src/pkg/small.py'), 'print(1)\n');
    entries = [
      { path: 'opt/env/pkg/big.bin', kind: 'file', source: join(dir, 'src/pkg/big.bin'), mode: 0o644 },
      { path: 'opt/env/pkg/small.py', kind: 'file', source: join(dir, 'src/pkg/small.py'), mode: 0o644 },
    ];
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it.each(['gzip', 'zstd'] as const)('%s: digest is the sha256 of the file, diff_id the sha256 of the tar; a second build gives the same bytes', async (compression) => {
    const tar = await tarLayer(entries, { mtime: 1_700_000_000 });
    const first = await writeLayer(entries, join(dir, `${compression}-1`), { compression, mtime: 1_700_000_000 });
    const second = await writeLayer(entries, join(dir, `${compression}-2`), { compression, mtime: 1_700_000_000 });
    const blob = await readFile(first.file);
    expect(first.digest).toBe(`sha256:${createHash('sha256').update(blob).digest('hex')}`);
    expect(first.size).toBe(blob.length);
    expect(first.diffId).toBe(tar.diffId);
    expect(first.tarSize).toBe(tar.tar.length);
    expect(first.entries).toBe(5);
    expect(second.digest).toBe(first.digest);
    expect((await readFile(second.file)).equals(blob)).toBe(true);
    const unpacked = compression === 'zstd' ? await tool('zstd', ['-d', '-q', '-c'], blob) : await tool('gzip', ['-d', '-c'], blob);
    expect(unpacked.equals(tar.tar)).toBe(true);
    expect(await layerDiffId(entries, { mtime: 1_700_000_000 })).toEqual({ diffId: tar.diffId, tarSize: tar.tar.length, entries: 5 });
    // The system tar lists what was written.
    const listing = await tool('tar', ['-t'], unpacked);
    expect(listing.toString().trim().split('\n')).toEqual(['opt/', 'opt/env/', 'opt/env/pkg/', 'opt/env/pkg/big.bin', 'opt/env/pkg/small.py']);
  });

  it('an aborted signal stops it with CancelledError', async () => {
    const controller = new AbortController();
    controller.abort();
    await expect(writeLayer(entries, join(dir, 'cancelled'), { compression: 'zstd', signal: controller.signal })).rejects.toBeInstanceOf(CancelledError);
  });

  it('a missing source file fails the layer with the file named', async () => {
    const broken: LayerEntry[] = [...entries, { path: 'opt/env/pkg/gone', kind: 'file', source: join(dir, 'src/gone') }];
    await expect(writeLayer(broken, join(dir, 'broken'), { compression: 'gzip' })).rejects.toThrow(/gone/);
  });
});

