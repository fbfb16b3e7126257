import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { TarFormatError } from '../errors.js';
import { MAX_EXTENDED_HEADER } from './tar-extended-headers.js';
import { sealTarHeader } from './tar-header.js';
import { TarEndBlocks, tarStreamEntries } from './tar-stream-reader.js';

/** A ustar header block: `size` written as octal, or base-256 when it does not fit 11 digits. */
function header(name: string, size: number, typeflag = '0'): Buffer {
  const block = Buffer.alloc(512);
  block.write(name, 0, 100, 'utf8');
  block.write('0000644\0', 100, 'latin1');
  if (size < 8 ** 11) block.write(`${size.toString(8).padStart(11, '0')}\0`, 124, 'latin1');
  else {
    block[124] = 0x80;
    block.writeUIntBE(size, 130, 6);
  }
  block.write(typeflag, 156, 'latin1');
  block.write('ustar\x0000', 257, 'latin1');
  return sealTarHeader(block);
}

const pad = (n: number): Buffer => Buffer.alloc((512 - (n % 512)) % 512);
const member = (name: string, data: Buffer, typeflag = '0'): Buffer => Buffer.concat([header(name, data.length, typeflag), data, pad(data.length)]);
const END = Buffer.alloc(1024);

/** A pax record with its length right. */
function record(key: string, value: string): string {
  const rest = ` ${key}=${value}\n`;
  let length = Buffer.byteLength(rest) + 1;
  if (String(length).length + Buffer.byteLength(rest) !== length) length += 1;
  return `${length}${rest}`;
}

/** `pieces` of `data` as a source, counting what was pulled and whether it was closed. */
function source(pieces: Buffer[]): { chunks: AsyncIterable<Buffer>; pulled: () => number; closed: () => boolean } {
  let pulled = 0;
  let closed = false;
  async function* chunks(): AsyncGenerator<Buffer> {
    try {
      for (const piece of pieces) {
        pulled += piece.length;
        yield piece;
      }
    } finally {
      closed = true;
    }
  }
  return { chunks: chunks(), pulled: () => pulled, closed: () => closed };
}

const split = (data: Buffer, size: number): Buffer[] => Array.from({ length: Math.ceil(data.length / size) }, (_, i) => data.subarray(i * size, (i + 1) * size));

/** Every entry (name, type, size, pax path, content), or the error's message. */
async function read(pieces: Buffer[]): Promise<unknown[] | string> {
  const out: unknown[] = [];
  try {
    for await (const { header: h, pax, offset, body } of tarStreamEntries(source(pieces).chunks, 'a.tar', { mergeGlobal: true })) {
      const parts: Buffer[] = [];
      for await (const chunk of body) parts.push(chunk);
      out.push([h.name, h.typeflag, h.size, h.linkname, offset, pax?.get('path'), Buffer.concat(parts).toString('base64')]);
    }
    return out;
  } catch (error) {
    if (!(error instanceof TarFormatError)) throw error;
    return error.message;
  }
}

/** GNU tar's pax output of a small tree: long names, a long link, a global header, empty and odd-sized files. */
function gnuTar(): Buffer {
  const dir = mkdtempSync(join(tmpdir(), 'prebuilt-tar-stream-'));
  try {
    const deep = `${'d'.repeat(90)}/${'e'.repeat(60)}`;
    mkdirSync(join(dir, deep), { recursive: true });
    writeFileSync(join(dir, deep, `${'n'.repeat(110)}.py`), 'print("long")\n');
    writeFileSync(join(dir, 'odd.bin'), Buffer.alloc(1337, 5));
    writeFileSync(join(dir, 'empty'), '');
    symlinkSync(`${deep}/${'n'.repeat(110)}.py`, join(dir, 'link'));
    return execFileSync('tar', ['--format=pax', '--pax-option=globexthdr.name=g,comment=hi', '-cf', '-', '-C', dir, '--sort=name', '.']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('tarStreamEntries', () => {
  it('reads the same entries however the stream is split: at every byte, and byte by byte', async () => {
    const tar = gnuTar();
    const whole = await read([tar]);
    expect(Array.isArray(whole)).toBe(true);
    expect((whole as unknown[][]).map((e) => e[0])).toContain('./odd.bin');
    expect((whole as unknown[][]).some((e) => String(e[0]).endsWith(`${'n'.repeat(110)}.py`) && e[5] === e[0])).toBe(true);
    expect((whole as unknown[][]).find((e) => e[0] === './link')?.[3]).toMatch(/n{110}\.py$/);
    for (let at = 0; at <= tar.length; at++) expect(await read([tar.subarray(0, at), tar.subarray(at)]), `split at ${at}`).toEqual(whole);
    expect(await read(split(tar, 1))).toEqual(whole);
  }, 60_000);

  it('hands a body on as the source’s own chunks, pulled as the consumer reads: one chunk ahead while it waits on I/O, never more (backpressure)', async () => {
    const data = Buffer.alloc(10 * 65_536, 1);
    const tar = Buffer.concat([member('big', data), END]);
    const src = source(split(tar, 65_536));
    let reads = 0;
    let ahead = 0;
    for await (const { body } of tarStreamEntries(src.chunks, 'a.tar')) {
      for await (const chunk of body) {
        reads += 1;
        expect(chunk.length).toBeGreaterThan(0);
        // The consumer writes the chunk (I/O): meanwhile the next chunk is asked for, no more.
        await new Promise((resolve) => setTimeout(resolve, 2));
        // The header took 512 bytes of the first chunk's.
        expect(src.pulled()).toBeLessThanOrEqual(512 + (reads + 1) * 65_536);
        if (src.pulled() > 512 + reads * 65_536) ahead += 1;
      }
    }
    expect(reads).toBe(11);
    expect(ahead).toBeGreaterThan(5);
  });

  it('skips what a consumer leaves unread, and refuses a body read after the next entry', async () => {
    const tar = Buffer.concat([member('a', Buffer.alloc(3000, 1)), member('b', Buffer.from('bee')), END]);
    const bodies: AsyncIterable<Buffer>[] = [];
    const names: string[] = [];
    for await (const { header: h, body } of tarStreamEntries(source(split(tar, 700)).chunks, 'a.tar')) {
      names.push(h.name);
      bodies.push(body);
    }
    expect(names).toEqual(['a', 'b']);
    await expect((async () => {
      for await (const chunk of bodies[0]!) void chunk;
    })()).rejects.toThrow(/the body of 'a' was read after the next entry/);
  });

  it('refuses a body started during its entry and resumed after the next one (not the next entry\'s bytes)', async () => {
    const tar = Buffer.concat([member('a', Buffer.alloc(3000, 1)), member('b', Buffer.from('bee')), END]);
    let started: AsyncIterator<Buffer> | undefined;
    for await (const { header: h, body } of tarStreamEntries(source(split(tar, 700)).chunks, 'a.tar')) {
      if (h.name !== 'a') continue;
      started = body[Symbol.asyncIterator]();
      expect((await started.next()).value).toEqual(Buffer.alloc(700 - 512, 1));
    }
    await expect(started!.next()).rejects.toThrow(/the body of 'a' was read after the next entry/);
  });

  it('refuses a huge declared size without allocating it: the member runs past the end', async () => {
    const tar = Buffer.concat([header('huge', 2 ** 40), Buffer.alloc(4096)]);
    expect(await read([tar])).toBe("a.tar is corrupt or truncated: reading its tar failed ('huge' runs past the end of the archive).");
  });

  it('refuses a truncated stream: inside a header, a body, a padding, an extended header', async () => {
    const plain = Buffer.concat([member('a', Buffer.from('hello')), END]);
    expect(await read([plain.subarray(0, 300)])).toMatch(/ends inside a header block/);
    expect(await read([plain.subarray(0, 514)])).toMatch(/'a' runs past the end of the archive/);
    expect(await read([plain.subarray(0, 600)])).toMatch(/ends inside a header block/);
    const pax = Buffer.from(record('path', 'x'.repeat(200)));
    expect(await read([Buffer.concat([header('pax', pax.length, 'x'), pax.subarray(0, 100)])])).toMatch(/'pax' runs past the end of the archive/);
    expect(await read([plain.subarray(0, 1024)])).toEqual([['a', 0x30, 5, '', 0, undefined, Buffer.from('hello').toString('base64')]]);
  });

  it('refuses a pax record that lies about its length', async () => {
    const pax = Buffer.from(record('path', 'real-name').replace(/^\d+/, (n) => String(Number(n) + 5)));
    const tar = Buffer.concat([member('pax', pax, 'x'), member('short', Buffer.from('x')), END]);
    expect(await read([tar])).toMatch(/a\.tar is corrupt or truncated: reading its tar failed \(a malformed pax record at byte 0 of a pax header: a length \d+ that does not fit\)/);
  });

  it('refuses header sequences tar readers read two ways, and extended headers no entry follows (at a zero block, at the end)', async () => {
    const pax = (key: string, value: string): Buffer => member('PaxHeader', Buffer.from(record(key, value)), 'x');
    const long = (name: string, type: string): Buffer => member('././@LongLink', Buffer.from(`${name}\0`), type);
    const global = member('GlobalHead', Buffer.from(record('comment', 'hi')), 'g');
    const file = member('a.txt', Buffer.from('hello'));
    const cases: [Buffer[], RegExp][] = [
      [[pax('path', 'evil'), global, file], /a pax global header between a pax header and its entry/],
      [[long('evil', 'L'), global, file], /a pax global header between a GNU long name and its entry/],
      [[long('evil', 'K'), global, member('l', Buffer.alloc(0), '2')], /a pax global header between a GNU long link name and its entry/],
      [[pax('path', 'a'), pax('mtime', '1'), file], /two pax headers for one entry/],
      [[long('a', 'L'), long('b', 'L'), file], /two GNU long names for one entry/],
      [[long('a', 'L'), pax('path', 'b'), file], /a pax path and a GNU long name for one entry/],
      [[pax('path', 'evil'), Buffer.alloc(512), file], /a pax header with no entry after it/],
      [[file, pax('path', 'evil')], /a pax header with no entry after it/],
      [[file, Buffer.alloc(512), file], /a header at byte 1536 after a zero block \(tar readers differ on whether the archive ends there\)/],
      [[file, END, global], /a header at byte 2048 after a zero block/],
    ];
    for (const [members, reason] of cases) {
      const tar = Buffer.concat([...members, END]);
      expect(await read([tar])).toMatch(reason);
      // Without its end-of-archive blocks too (a stream that just stops).
      expect(await read(split(tar.subarray(0, tar.length - END.length), 100))).toMatch(/a\.tar is corrupt or truncated: reading its tar failed \(/);
    }
    // A global header before an entry's extended headers, or on its own, is read.
    expect(await read([Buffer.concat([global, pax('path', 'b.txt'), file, global, END])])).toEqual([['b.txt', 0x30, 5, '', 2048, 'b.txt', Buffer.from('hello').toString('base64')]]);
  });

  it('refuses an extended header over 1 MiB before reading its body', async () => {
    const size = MAX_EXTENDED_HEADER + 1;
    const body = Buffer.from(record('path', 'q'.repeat(size - 20)).padEnd(size, 'q'));
    const src = source([header('pax', size, 'x'), ...split(body, 65_536)]);
    const error = await (async () => {
      for await (const entry of tarStreamEntries(src.chunks, 'a.tar')) void entry;
    })().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TarFormatError);
    expect((error as Error).message).toMatch(/a 1048577-byte extended header/);
    expect(src.pulled()).toBe(512);
    expect(src.closed()).toBe(true);
  });

  it('ends the source when the consumer stops mid-stream (a break, a throw), having pulled no more than it read', async () => {
    const tar = Buffer.concat([member('big', Buffer.alloc(20 * 65_536, 1)), member('next', Buffer.from('n')), END]);
    const broke = source(split(tar, 65_536));
    for await (const { body } of tarStreamEntries(broke.chunks, 'a.tar')) {
      for await (const chunk of body) if (chunk) break;
      break;
    }
    expect(broke.closed()).toBe(true);
    expect(broke.pulled()).toBe(65_536);
    const mine = new Error('stop');
    const stopped = source(split(tar, 65_536));
    await expect((async () => {
      for await (const { body } of tarStreamEntries(stopped.chunks, 'a.tar')) {
        for await (const chunk of body) if (chunk) throw mine;
      }
    })()).rejects.toBe(mine);
    expect(stopped.closed()).toBe(true);
    expect(stopped.pulled()).toBe(65_536);
  });

  it('passes the source’s own error unchanged (a decompressor’s bound)', async () => {
    const bound = new Error('bound passed');
    async function* failing(): AsyncGenerator<Buffer> {
      yield header('a', 5000);
      yield Buffer.alloc(1000);
      throw bound;
    }
    await expect((async () => {
      for await (const { body } of tarStreamEntries(failing(), 'a.tar')) for await (const chunk of body) void chunk;
    })()).rejects.toBe(bound);
  });
});

describe('TarEndBlocks: the block after a tar\'s first zero block, as Go reads it', () => {
  const fed = (pieces: Buffer[]): (() => void) => () => {
    const end = new TarEndBlocks('layer', 1024);
    for (const piece of pieces) end.feed(piece);
    end.end();
  };

  it('passes a second zero block (in pieces), anything after it, zero padding cut short, or nothing', () => {
    expect(fed([Buffer.alloc(100), Buffer.alloc(412), header('hidden.txt', 0), Buffer.alloc(7, 7)])).not.toThrow();
    expect(fed([Buffer.alloc(300)])).not.toThrow();
    expect(fed([])).not.toThrow();
  });

  it('refuses a header after the zero block, a block that is no header, and bytes that are not zeros cut short', () => {
    const h = header('hidden.txt', 0);
    expect(fed([h.subarray(0, 100), h.subarray(100)])).toThrow('layer is corrupt or truncated: reading its tar failed (a header at byte 1536 after a zero block (tar readers differ on whether the archive ends there))');
    expect(fed([Buffer.concat([Buffer.alloc(148), Buffer.from('junk'), Buffer.alloc(360)])])).toThrow(TarFormatError);
    expect(fed([Buffer.alloc(20), Buffer.alloc(30, 7)])).toThrow('it ends inside a header block');
  });
});
