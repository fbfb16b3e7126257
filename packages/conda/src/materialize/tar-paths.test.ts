/**
 * The same hostile tar must get the same verdict whichever path reads it: the in-memory reader
 * (readTarBuffer: a .conda body decompressed natively) and the streaming one (readTarStream: a
 * .tar.bz2, or a body too big to decompress in one call). Each case goes through both readers,
 * in chunks of several sizes, and through extractCondaPackage as a .conda and as a .tar.bz2.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sealTarHeader } from '@prebuilt/core';
import { readTarStream } from './archive.js';
import { extractCondaPackage } from './conda-extract.js';
import { readTarBuffer } from './tar-buffer.js';
import { bzip2Sync, infoEntries, rawTar, rawZip, zstdSync } from './__fixtures__/helpers.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'prebuilt-tar-paths-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

/** A copy of `tar` with `edit` applied to the header block at `at`, its checksum resealed. */
function editHeader(tar: Buffer, at: number, edit: (block: Buffer) => void): Buffer {
  const out = Buffer.from(tar);
  const block = out.subarray(at, at + 512);
  edit(block);
  sealTarHeader(block);
  return out;
}

const LONG = `${'p'.repeat(120)}.py`;

/** A member of type `type` holding `data`, its header written by hand. */
function rawMember(name: string, data: Buffer, type = '0'): Buffer {
  const header = Buffer.alloc(512);
  header.write(name, 0, 100, 'utf8');
  header.write('0000644\0', 100, 'latin1');
  header.write(`${data.length.toString(8).padStart(11, '0')}\0`, 124, 'latin1');
  header.write(type, 156, 'latin1');
  header.write('ustar\x0000', 257, 'latin1');
  return Buffer.concat([sealTarHeader(header), data, Buffer.alloc((512 - (data.length % 512)) % 512)]);
}
const paxMember = (body: string, type = 'x'): Buffer => rawMember('PaxHeader', Buffer.from(`${body.length + String(body.length + 3).length + 1} ${body}`), type);
const longMember = (name: string, type: string): Buffer => rawMember('././@LongLink', Buffer.from(`${name}\0`), type);
const fileMember = rawMember('a.txt', Buffer.from('hello'));

/** Header sequences tar readers read two ways: each is refused with its reason, by both readers. */
const AMBIGUOUS: [string, Buffer, RegExp][] = [
  ['a pax header, then a global one', Buffer.concat([paxMember('path=evil.txt\n'), paxMember('comment=hi\n', 'g'), fileMember]), /a pax global header between a pax header and its entry/],
  ['a GNU long name, then a global header', Buffer.concat([longMember('evil.txt', 'L'), paxMember('comment=hi\n', 'g'), fileMember]), /a pax global header between a GNU long name and its entry/],
  ['two pax headers', Buffer.concat([paxMember('path=evil.txt\n'), paxMember('mtime=1\n'), fileMember]), /two pax headers for one entry/],
  ['two GNU long names', Buffer.concat([longMember('evil.txt', 'L'), longMember('b.txt', 'L'), fileMember]), /two GNU long names for one entry/],
  ['a GNU long name and a pax path', Buffer.concat([longMember('evil.txt', 'L'), paxMember('path=b.txt\n'), fileMember]), /a pax path and a GNU long name for one entry/],
  ['a pax header before a zero block', Buffer.concat([paxMember('path=evil.txt\n'), Buffer.alloc(512), fileMember]), /a pax header with no entry after it/],
  ['a pax header at the end', Buffer.concat([fileMember, paxMember('path=evil.txt\n')]), /a pax header with no entry after it/],
  ['a file after a zero block', Buffer.concat([fileMember, Buffer.alloc(512), rawMember('hidden.txt', Buffer.from('x'))]), /a header at byte 1536 after a zero block \(tar readers differ on whether the archive ends there\)/],
  ['a file after the end-of-archive blocks', Buffer.concat([fileMember, Buffer.alloc(1024), rawMember('hidden.txt', Buffer.from('x'))]), /a header at byte 2048 after a zero block/],
  ['a directory with a size', Buffer.concat([rawMember('d/', Buffer.from(fileMember), '5')]), /'d\/' is a directory of 1024 bytes \(tar readers differ on whether data follows it\)/],
  // Python's tarfile (conda) expands a sparse file to its holes and data; these readers would install the packed data (or the map) as its bytes.
  ['a pax GNU sparse file (0.1)', Buffer.concat([paxMember('GNU.sparse.map=0,5\n'), fileMember]), /'a.txt' is a pax GNU sparse file \(tar readers differ on its bytes: sparse entries are not supported\)/],
  ['a pax GNU sparse file (1.0)', Buffer.concat([paxMember('GNU.sparse.major=1\n'), rawMember('GNUSparseFile.0/a.txt', Buffer.from('1\n0\n5\n'))]), /'GNUSparseFile.0\/a.txt' is a pax GNU sparse file/],
  ['an old GNU sparse file (type S)', rawMember('s.txt', Buffer.from('hello'), 'S'), /'s.txt' is a GNU sparse file/],
  ['a symbolic link with a size', Buffer.concat([rawMember('l', Buffer.from(fileMember), '2')]), /'l' is a symbolic link of 1024 bytes/],
  ['an old-style directory (type NUL, a name ending in /) with a size', Buffer.concat([rawMember('d/', Buffer.from(fileMember), '\0')]), /'d\/' is a directory of 1024 bytes/],
];

/** Hostile (and two sound) tars, by what they do. */
async function cases(): Promise<[string, Buffer][]> {
  const plain = await rawTar([{ name: 'a.txt', data: 'hello' }, { name: 'b.txt', data: Buffer.alloc(1500, 2) }]);
  const paxed = await rawTar([{ name: LONG, data: 'x' }]);
  const lying = Buffer.from(paxed);
  lying[512] = '9'.charCodeAt(0); // the first pax record's length, lying
  const badChecksum = Buffer.from(plain);
  badChecksum[0] = 'z'.charCodeAt(0);
  // A pax header announcing 1 MiB + 1 bytes, and that many bytes of records after it.
  const record = (length: number): string => `${length} path=${'q'.repeat(length - String(length).length - 7)}\n`;
  const bigBody = Buffer.from(record(1024 * 1024 + 1));
  const bigPax = Buffer.concat([
    editHeader(paxed.subarray(0, 512), 0, (b) => b.write(`${bigBody.length.toString(8).padStart(11, '0')}\0`, 124, 'latin1')),
    bigBody,
    Buffer.alloc(512 - (bigBody.length % 512)),
    paxed.subarray(1024),
  ]);
  return [
    ['a sound tar', plain],
    ['a sound tar with a pax header', paxed],
    ['a pax record lying about its length', lying],
    ['a pax header over 1 MiB', bigPax],
    ['a header whose checksum does not match', badChecksum],
    ['a member cut short', plain.subarray(0, 512 + 512 + 512 + 1024)],
    ['an archive cut inside a header', plain.subarray(0, 512 + 512 + 100)],
    ['a member cut inside its padding', plain.subarray(0, 512 + 100)],
    ['a huge declared size (base-256)', editHeader(plain, 0, (b) => { b.fill(0, 124, 136); b[124] = 0x80; b.writeUIntBE(2 ** 40, 130, 6); })],
    ['a size that is not octal', editHeader(plain, 0, (b) => b.write('0000000009x\0', 124, 'latin1'))],
    ['a character device', editHeader(plain, 0, (b) => { b[156] = '3'.charCodeAt(0); })],
    // Go and Python's tarfile read no data after a directory's header, whatever its size: what follows is their next header.
    ['a directory with a size', editHeader(plain, 0, (b) => { b[156] = '5'.charCodeAt(0); })],
    ['a header of neither ustar nor GNU', editHeader(plain, 0, (b) => b.write('xxxxx', 257, 'latin1'))],
    ['garbage after the end', Buffer.concat([plain, Buffer.alloc(300, 7)])],
    ...AMBIGUOUS.map(([what, tar]): [string, Buffer] => [what, Buffer.concat([tar, Buffer.alloc(1024)])]),
  ];
}

/** What a reader makes of a tar: its entries (with their content), or its error's message. */
type Verdict = { entries: unknown[] } | { error: string };

async function inMemory(tar: Buffer): Promise<Verdict> {
  const entries: unknown[] = [];
  try {
    await readTarBuffer(tar, 'x.conda', async (header, content) => void entries.push({ ...header, content: Buffer.concat([...content]).toString('base64') }));
    return { entries };
  } catch (error) {
    return { error: (error as Error).message };
  }
}

async function streamed(tar: Buffer, piece: number): Promise<Verdict> {
  const entries: unknown[] = [];
  async function* chunks(): AsyncGenerator<Buffer> {
    for (let at = 0; at < tar.length; at += piece) yield tar.subarray(at, at + piece);
  }
  try {
    await readTarStream(chunks(), 'x.conda', async (header, content) => {
      const parts: Buffer[] = [];
      for await (const chunk of content) parts.push(chunk);
      entries.push({ ...header, content: Buffer.concat(parts).toString('base64') });
    });
    return { entries };
  } catch (error) {
    return { error: (error as Error).message };
  }
}

describe('hostile tars: the same verdict in memory and streamed', () => {
  it('gives the same entries or the same error on both readers, whatever the chunking', async () => {
    for (const [what, tar] of await cases()) {
      const expected = await inMemory(tar);
      if (what.startsWith('a sound')) expect(expected, what).toHaveProperty('entries');
      else expect(expected, what).toHaveProperty('error');
      // Byte by byte for the small ones; every size that splits a header or a body otherwise.
      for (const piece of tar.length < 20_000 ? [1, 7, 511, 512, 513, 64 * 1024] : [511, 513, 4096, 64 * 1024]) expect(await streamed(tar, piece), `${what}, in pieces of ${piece}`).toEqual(expected);
    }
  }, 60_000);

  it('refuses each header sequence tar readers read two ways with its reason, in memory and streamed', async () => {
    for (const [what, tar, reason] of AMBIGUOUS) {
      const whole = Buffer.concat([tar, Buffer.alloc(1024)]);
      expect(await inMemory(whole), what).toEqual({ error: expect.stringMatching(reason) });
      expect(await streamed(whole, 100), what).toEqual({ error: expect.stringMatching(reason) });
    }
  });

  it('refuses a pax header then a global one in a package read whole (.conda) and streamed (.tar.bz2), naming the package', async () => {
    const info = await rawTar(infoEntries('x', [{ _path: 'a.txt' }]));
    const body = Buffer.concat([AMBIGUOUS[0]![1], Buffer.alloc(1024)]);
    const condaFile = join(dir, 'y-1.0-h0.conda');
    await writeFile(condaFile, rawZip([{ name: 'info-y-1.0-h0.tar.zst', data: zstdSync(info) }, { name: 'pkg-y-1.0-h0.tar.zst', data: zstdSync(body) }]));
    const bz2File = join(dir, 'y-1.0-h0.tar.bz2');
    await writeFile(bz2File, bzip2Sync(Buffer.concat([info.subarray(0, info.length - 1024), body])));
    const message = /y-1\.0-h0\.(conda|tar\.bz2) is corrupt or truncated: reading its tar failed \(a pax global header between a pax header and its entry/;
    await expect(extractCondaPackage(condaFile, 'y-1.0-h0.conda', join(dir, 'scratch-y-conda'))).rejects.toThrow(message);
    await expect(extractCondaPackage(bz2File, 'y-1.0-h0.tar.bz2', join(dir, 'scratch-y-bz2'))).rejects.toThrow(message);
  });

  it('refuses a lying pax record in a package read whole (.conda) and streamed (.tar.bz2), naming the package', async () => {
    const info = await rawTar(infoEntries('x', [{ _path: LONG }]));
    const [, lying] = (await cases()).find(([what]) => what.startsWith('a pax record lying'))!;
    const condaFile = join(dir, 'x-1.0-h0.conda');
    await writeFile(condaFile, rawZip([{ name: 'info-x-1.0-h0.tar.zst', data: zstdSync(info) }, { name: 'pkg-x-1.0-h0.tar.zst', data: zstdSync(lying) }]));
    const bz2File = join(dir, 'x-1.0-h0.tar.bz2');
    // One tar: the info entries without their end-of-archive blocks, then the package's.
    await writeFile(bz2File, bzip2Sync(Buffer.concat([info.subarray(0, info.length - 1024), lying])));
    const message = /is corrupt or truncated: reading its tar failed \(a malformed pax record at byte 0 of a pax header: a length \d+ that does not fit\)/;
    await expect(extractCondaPackage(condaFile, 'x-1.0-h0.conda', join(dir, 'scratch-conda'))).rejects.toThrow(message);
    await expect(extractCondaPackage(bz2File, 'x-1.0-h0.tar.bz2', join(dir, 'scratch-bz2'))).rejects.toThrow(message);
  });
});
