/** The streaming decoders and the zip directory reader: correct output, bounded expansion, hostile framing refused. */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deflateRawSync } from 'node:zlib';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { crc32Update, crc32UpdateJs, readTarStream } from './archive.js';
import { bzip2Chunks } from './bzip2-stream.js';
import { ArchiveError } from './errors.js';
import { ExpansionBudget } from './expansion-budget.js';
import { readZipDirectory, zipMemberChunks } from './zip-file.js';
import { zstdChunks, zstdOutputBound, zstdStreamChunks } from './zstd-stream.js';
import { bzip2Sync, rawTar, rawZip, zstdSync } from './__fixtures__/helpers.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'prebuilt-streams-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function collect(chunks: AsyncIterable<Buffer>): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const chunk of chunks) out.push(chunk);
  return Buffer.concat(out);
}

async function* once(data: Buffer, piece = 7): AsyncGenerator<Buffer> {
  for (let i = 0; i < data.length; i += piece) yield data.subarray(i, i + piece);
}

const text = (n: number): Buffer => Buffer.from(Array.from({ length: n }, (_, i) => `line ${i} of the test input\n`).join(''));

describe('crc32Update (zip members)', () => {
  it('gives the IEEE CRC-32, natively or in JS, continued across pieces', () => {
    const check = Buffer.from('123456789');
    expect(crc32Update(0, check)).toBe(0xcbf43926);
    expect(crc32UpdateJs(0, check)).toBe(0xcbf43926);
    const data = Buffer.alloc(100_003);
    for (let i = 0; i < data.length; i++) data[i] = (i * 7919) & 0xff;
    const whole = crc32UpdateJs(0, data);
    let pieces = 0;
    for (let at = 0; at < data.length; at += 16_384) pieces = crc32Update(pieces, data.subarray(at, at + 16_384));
    expect(pieces).toBe(whole);
    expect(crc32Update(0, new Uint8Array(0))).toBe(0);
  });
});

describe('bzip2Chunks', () => {
  it('decodes concatenated streams (as pbzip2 writes them) block by block', async () => {
    const a = text(50_000);
    const b = text(20_000);
    const file = join(dir, 'x.tar.bz2');
    await writeFile(file, Buffer.concat([bzip2Sync(a), bzip2Sync(b)]));
    expect((await collect(bzip2Chunks(file, 'x.tar.bz2', new ExpansionBudget('x.tar.bz2', 1e9)))).equals(Buffer.concat([a, b]))).toBe(true);
  });

  it('stops a bomb as soon as the bound is passed, having decoded at most one block more', async () => {
    const file = join(dir, 'bomb.tar.bz2');
    const zeros = bzip2Sync(Buffer.alloc(32 * 1024 * 1024));
    await writeFile(file, Buffer.concat(Array.from({ length: 32 }, () => zeros)));
    const budget = new ExpansionBudget('bomb.tar.bz2', 0);
    budget.declare(10 * 1024 * 1024);
    const error = await collect(bzip2Chunks(file, 'bomb.tar.bz2', budget)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ArchiveError);
    expect((error as Error).message).toMatch(/package bomb\.tar\.bz2 expands beyond its declared size/);
    expect(budget.used).toBeLessThanOrEqual(10 * 1024 * 1024 + 64 * 1024);
  });

  it('fails on a truncated stream naming the package', async () => {
    const file = join(dir, 't.tar.bz2');
    const whole = bzip2Sync(text(50_000));
    await writeFile(file, whole.subarray(0, whole.length - 20));
    await expect(collect(bzip2Chunks(file, 't.tar.bz2', new ExpansionBudget('t.tar.bz2', 1e9)))).rejects.toThrow(/t\.tar\.bz2 is corrupt or truncated/);
  });
});

describe('zstdChunks', () => {
  it('decodes concatenated frames and skips skippable frames, whatever the input chunking', async () => {
    const a = text(40_000);
    const b = text(10_000);
    const skippable = Buffer.alloc(8 + 5);
    skippable.writeUInt32LE(0x184d2a53, 0);
    skippable.writeUInt32LE(5, 4);
    const data = Buffer.concat([zstdSync(a), skippable, zstdSync(b)]);
    expect((await collect(zstdChunks(once(data), 'x.conda', new ExpansionBudget('x.conda', 1e9)))).equals(Buffer.concat([a, b]))).toBe(true);
  });

  it('refuses a frame that asks for a window above zstd’s own limit', async () => {
    const frame = Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x00, 18 << 3, 0x01, 0x00, 0x00]);
    await expect(collect(zstdChunks(once(frame), 'w.conda', new ExpansionBudget('w.conda', 1e9)))).rejects.toThrow(/asks for a zstd window of 268435456 bytes/);
  });

  it('stops a bomb at the bound and fails on truncation', async () => {
    const bomb = zstdSync(Buffer.alloc(64 * 1024 * 1024));
    const budget = new ExpansionBudget('b.conda', 0);
    budget.declare(1024 * 1024);
    await expect(collect(zstdChunks(once(bomb, 65536), 'b.conda', budget))).rejects.toThrow(/package b\.conda expands beyond its declared size/);
    expect(budget.used).toBeLessThanOrEqual(1024 * 1024 + 128 * 1024);
    const whole = zstdSync(text(10_000));
    await expect(collect(zstdChunks(once(whole.subarray(0, whole.length - 10)), 't.conda', new ExpansionBudget('t.conda', 1e9)))).rejects.toThrow(/t\.conda is corrupt or truncated/);
  });
});

describe('zstdChunks: native and streaming paths', () => {
  it('bounds a stream from its headers alone: at least its output, and refuses a truncated one', () => {
    const data = Buffer.concat([zstdSync(text(300_000)), zstdSync(Buffer.alloc(500_000))]);
    const bound = zstdOutputBound(data, 'x.conda');
    expect(bound).toBeGreaterThanOrEqual(800_000);
    expect(() => zstdOutputBound(data.subarray(0, data.length - 3), 'x.conda')).toThrow(/x\.conda is corrupt or truncated/);
  });

  it('gives the same bytes natively (a stream within the budget) as the streaming decoder, counting them all', async () => {
    const content = Buffer.concat([text(200_000), Buffer.alloc(300_000, 7)]);
    const data = zstdSync(content);
    const native = new ExpansionBudget('n.conda', 1e9);
    const streamed = new ExpansionBudget('s.conda', 1e9);
    expect((await collect(zstdChunks(once(data, 4096), 'n.conda', native))).equals(content)).toBe(true);
    expect((await collect(zstdStreamChunks(once(data, 4096), 's.conda', streamed))).equals(content)).toBe(true);
    expect(native.used).toBe(content.length);
    expect(streamed.used).toBe(content.length);
  });

  it('fails a corrupt block natively naming the package', async () => {
    const data = Buffer.from(zstdSync(text(100_000)));
    data[data.length - 20] = data[data.length - 20]! ^ 0xff;
    await expect(collect(zstdChunks(once(data, 4096), 'c.conda', new ExpansionBudget('c.conda', 1e9)))).rejects.toThrow(/c\.conda is corrupt or truncated/);
  });
});

describe('readZipDirectory and zipMemberChunks', () => {
  it('refuses members whose data overlap (the overlapping zip bomb)', async () => {
    const zip = rawZip([
      { name: 'a.txt', data: 'aaaa' },
      { name: 'b.txt', data: 'bbbb' },
    ]);
    // Point b's central entry at a's data.
    let p = zip.readUInt32LE(zip.length - 22 + 16);
    p += 46 + zip.readUInt16LE(p + 28);
    zip.writeUInt32LE(0, p + 42);
    await writeFile(join(dir, 'o.whl'), zip);
    await expect(readZipDirectory(join(dir, 'o.whl'), 'o.whl')).rejects.toThrow(/the data of 'a\.txt' and 'b\.txt' overlap/);
  });

  it('reads a stored member in pieces of `storedRead` bytes (1 MiB by default; whole for a .conda body), CRC-checked either way', async () => {
    const data = text(120_000); // ~3.3 MB
    const zip = rawZip([{ name: 'pkg-x.tar.zst', data }]);
    await writeFile(join(dir, 'x.conda'), zip);
    const [member] = await readZipDirectory(join(dir, 'x.conda'), 'x.conda');
    const pieces = async (storedRead?: number) => {
      const out: Buffer[] = [];
      for await (const chunk of zipMemberChunks(join(dir, 'x.conda'), member!, 'x.conda', new ExpansionBudget('x.conda', zip.length), member!.size, storedRead)) out.push(chunk);
      expect(Buffer.concat(out).equals(data)).toBe(true);
      return out.length;
    };
    expect(await pieces()).toBe(Math.ceil(data.length / (1024 * 1024)));
    expect(await pieces(64 * 1024 * 1024)).toBe(1);
    // The same member with its CRC broken fails read whole too.
    const cd = zip.readUInt32LE(zip.length - 22 + 16);
    zip.writeUInt32LE((zip.readUInt32LE(cd + 16) ^ 1) >>> 0, cd + 16);
    await writeFile(join(dir, 'x.conda'), zip);
    const [broken] = await readZipDirectory(join(dir, 'x.conda'), 'x.conda');
    await expect(collect(zipMemberChunks(join(dir, 'x.conda'), broken!, 'x.conda', new ExpansionBudget('x.conda', zip.length), broken!.size, 64 * 1024 * 1024))).rejects.toThrow(/x\.conda is corrupt or truncated: 'pkg-x\.tar\.zst' fails its CRC check/);
  });

  it('stops a member that inflates past its declared size at once', async () => {
    const big = Buffer.alloc(8 * 1024 * 1024);
    const deflated = deflateRawSync(big);
    const zip = rawZip([{ name: 'big.bin', data: deflated }]);
    // Make it a deflate member declaring 1000 bytes.
    const cd = zip.readUInt32LE(zip.length - 22 + 16);
    zip.writeUInt16LE(8, cd + 10);
    zip.writeUInt32LE(1000, cd + 24);
    await writeFile(join(dir, 'b.whl'), zip);
    const [member] = await readZipDirectory(join(dir, 'b.whl'), 'b.whl');
    const budget = new ExpansionBudget('b.whl', zip.length);
    await expect(collect(zipMemberChunks(join(dir, 'b.whl'), member!, 'b.whl', budget))).rejects.toThrow(/package b\.whl expands beyond its declared size at member 'big\.bin'/);
    expect(budget.used).toBeLessThanOrEqual(1000);
  });
});

describe('readTarStream', () => {
  it('passes a file system error of an entry (a full disk) through unchanged, with no unhandled rejection', async () => {
    const tar = await rawTar([
      { name: 'a.txt', data: 'a' },
      { name: 'b.txt', data: 'b' },
    ]);
    const full = Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', syscall: 'write' });
    const error = await readTarStream(once(tar, 100), 'x.tar.bz2', async () => {
      throw full;
    }).catch((e: unknown) => e);
    expect(error).toBe(full);
    // Let any stray rejection surface before the test ends (vitest fails on unhandled ones).
    await new Promise((resolve) => setTimeout(resolve, 50));
  });
});
