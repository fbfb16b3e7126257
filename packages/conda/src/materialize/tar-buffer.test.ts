/** The in-memory tar reader: the same entries as the streaming reader (GNU tar's gnu, pax and ustar output), hostile headers refused. */
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readTarStream, type TarEntryHeader } from './archive.js';
import { ArchiveError } from './errors.js';
import { readTarBuffer } from './tar-buffer.js';
import { rawTar } from './__fixtures__/helpers.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'prebuilt-tar-buffer-'));
  const tree = join(dir, 'tree');
  const deep = `${'d'.repeat(90)}/${'e'.repeat(90)}/${'f'.repeat(60)}`;
  await mkdir(join(tree, deep), { recursive: true });
  await writeFile(join(tree, deep, `${'n'.repeat(120)}.py`), 'print("long")\n');
  await writeFile(join(tree, 'small.txt'), 'small\n');
  await writeFile(join(tree, 'big.bin'), Buffer.alloc(700_001, 3));
  await writeFile(join(tree, 'empty'), '');
  await symlink(`${deep}/${'n'.repeat(120)}.py`, join(tree, 'long-link'));
  execFileSync('chmod', ['755', join(tree, 'small.txt')]);
});
afterAll(() => rm(dir, { recursive: true, force: true }));

type Seen = TarEntryHeader & { content: string };

async function viaBuffer(tar: Buffer): Promise<Seen[]> {
  const seen: Seen[] = [];
  await readTarBuffer(tar, 't.conda', async (header, content) => {
    const chunks = [...content];
    seen.push({ ...header, content: Buffer.concat(chunks).toString('base64') });
  });
  return seen;
}

async function viaStream(tar: Buffer): Promise<Seen[]> {
  const seen: Seen[] = [];
  async function* chunks() {
    for (let at = 0; at < tar.length; at += 10_000) yield tar.subarray(at, at + 10_000);
  }
  await readTarStream(chunks(), 't.conda', async (header, content) => {
    const parts: Buffer[] = [];
    for await (const chunk of content) parts.push(chunk);
    seen.push({ ...header, content: Buffer.concat(parts).toString('base64') });
  });
  return seen;
}

const byPath = (list: Seen[]) => [...list].sort((a, b) => (a.path < b.path ? -1 : 1));

describe('readTarBuffer', () => {
  for (const format of ['gnu', 'pax', 'ustar'] as const) {
    it(`reads GNU tar's ${format} format as the streaming reader does (long names, links, modes, empty and large files)`, async () => {
      const file = join(dir, `${format}.tar`);
      // ustar cannot hold the 120-character name: that format gets the short entries only.
      const members = format === 'ustar' ? ['small.txt', 'big.bin', 'empty'] : ['.'];
      execFileSync('tar', [`--format=${format}`, '-cf', file, '-C', join(dir, 'tree'), ...members]);
      const tar = await readFile(file);
      const got = await viaBuffer(tar);
      expect(byPath(got)).toEqual(byPath(await viaStream(tar)));
      expect(got.find((e) => e.path.endsWith('small.txt'))).toMatchObject({ type: 'file', mode: 0o755, size: 6 });
      if (format !== 'ustar') {
        expect(got.some((e) => e.path.endsWith(`${'n'.repeat(120)}.py`) && e.path.length > 300)).toBe(true);
        expect(got.find((e) => e.path.endsWith('long-link'))?.linkTarget?.length).toBeGreaterThan(300);
      }
    });
  }

  it("reads tar-stream's own output (the fixtures' packer)", async () => {
    const tar = await rawTar([{ name: 'a/', type: 'directory' }, { name: 'a/x', data: 'x' }, { name: 'a/l', type: 'symlink', linkname: 'x' }, { name: 'a/h', type: 'link', linkname: 'a/x' }]);
    expect(await viaBuffer(tar)).toEqual(await viaStream(tar));
  });

  it('refuses a header whose checksum does not match, naming the package', async () => {
    const tar = Buffer.from(await rawTar([{ name: 'x', data: 'hello' }]));
    tar[0] = 'y'.charCodeAt(0);
    await expect(viaBuffer(tar)).rejects.toThrow(ArchiveError);
    await expect(viaBuffer(tar)).rejects.toThrow(/t\.conda is corrupt or truncated.*checksum/);
  });

  it('refuses a pax record that lies about its length (core\'s strict reader), naming the package', async () => {
    const tar = Buffer.from(await rawTar([{ name: `${'p'.repeat(120)}.py`, data: 'x' }]));
    expect(tar[156]).toBe('x'.charCodeAt(0));
    const body = tar.subarray(512, 1024);
    body[0] = '9'.charCodeAt(0); // the first record's length, one more digit's worth than it is
    await expect(viaBuffer(tar)).rejects.toThrow(ArchiveError);
    await expect(viaBuffer(tar)).rejects.toThrow(/t\.conda is corrupt or truncated: reading its tar failed \(a malformed pax record at byte 0 of a pax header/);
  });

  it('refuses a member that runs past the end, and an archive cut inside a header', async () => {
    const tar = await rawTar([{ name: 'x', data: Buffer.alloc(5000, 1) }]);
    await expect(viaBuffer(tar.subarray(0, 512 + 1024))).rejects.toThrow(/runs past the end/);
    await expect(viaBuffer(tar.subarray(0, 100))).rejects.toThrow(/ends inside a header/);
  });

  it('refuses an entry type a package may not contain (a device, a fifo)', async () => {
    const tar = Buffer.from(await rawTar([{ name: 'dev', data: '' }]));
    tar[156] = '3'.charCodeAt(0);
    let sum = 0;
    for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 32 : tar[i]!;
    tar.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
    await expect(viaBuffer(tar)).rejects.toThrow(/contains 'dev' of type character-device, which a package may not contain/);
  });

  it('counts the bytes as a stream reader reads them: headers before an entry, its content after it', async () => {
    const tar = await rawTar([{ name: 'a', data: Buffer.alloc(1000, 1) }, { name: 'b', data: 'bb' }]);
    let total = 0;
    const before: number[] = [];
    await readTarBuffer(tar, 't.conda', async () => void before.push(total), (n) => (total += n));
    expect(before).toEqual([512, 512 + 1024 + 512]);
    expect(total).toBe(tar.length);
  });

  it('passes the handler’s own typed errors unchanged', async () => {
    const tar = await rawTar([{ name: 'x', data: 'hello' }]);
    const mine = new ArchiveError('mine', 'p.conda');
    await expect(readTarBuffer(tar, 'p.conda', async () => Promise.reject(mine))).rejects.toBe(mine);
  });
});
