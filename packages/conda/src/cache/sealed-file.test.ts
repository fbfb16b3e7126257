import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stampOf } from './extraction-cache.js';
import { openSealedFile, writeSealedFileSync } from './sealed-file.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'prebuilt-sealed-file-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

const MTIME = 1_700_000_000;

describe('sealed cache files', () => {
  it('writes a file with the normalised mode and the mtime, and returns the stamp lstat gives afterwards', async () => {
    const path = join(dir, 'plain');
    const stamp = writeSealedFileSync(path, Buffer.from('print(1)\n'), { mode: 0o600, mtime: MTIME });
    expect(await readFile(path, 'utf8')).toBe('print(1)\n');
    expect(stamp).toEqual(stampOf(path));
    expect(stamp.mode).toBe(0o644);
    expect(stamp.mtimeNs).toBe(`${MTIME}000000000`);
    expect(stamp.size).toBe(9);
  });

  it('keeps the executable bits as 0755 even when the umask narrows the mode it is created with', async () => {
    const previous = process.umask(0o077);
    try {
      const stamp = writeSealedFileSync(join(dir, 'tool'), Buffer.from('#!/bin/sh\n'), { mode: 0o700, mtime: MTIME });
      expect(stamp.mode).toBe(0o755);
      expect(stampOf(join(dir, 'tool'))?.mode).toBe(0o755);
    } finally {
      process.umask(previous);
    }
  });

  it('seals a streamed file whose mode the umask narrowed: 0755, the stamp lstat gives', async () => {
    const previous = process.umask(0o077);
    try {
      const path = join(dir, 'streamed-tool');
      const { handle, seal } = await openSealedFile(path, { mode: 0o700, mtime: MTIME });
      let stamp;
      try {
        await handle.write(Buffer.alloc(70_000, 1));
        stamp = await seal();
      } finally {
        await handle.close();
      }
      expect(stamp.mode).toBe(0o755);
      expect(stamp).toEqual(stampOf(path));
    } finally {
      process.umask(previous);
    }
  });

  it('seals a streamed file before it is closed, with the same stamp as lstat', async () => {
    const path = join(dir, 'big');
    const { handle, seal } = await openSealedFile(path, { mode: 0o644, mtime: MTIME });
    let stamp;
    try {
      await handle.write(Buffer.alloc(300_000, 7));
      await handle.write(Buffer.alloc(1000, 8));
      stamp = await seal();
    } finally {
      await handle.close();
    }
    expect(stamp).toEqual(stampOf(path));
    expect(stamp.size).toBe(301_000);
    expect(stamp.mtimeNs).toBe(`${MTIME}000000000`);
  });

  it('never replaces an existing file (O_EXCL): a name already taken fails', async () => {
    const path = join(dir, 'taken');
    await writeFile(path, 'theirs');
    expect(() => writeSealedFileSync(path, Buffer.from('ours'), { mode: 0o644, mtime: MTIME })).toThrow(/EEXIST/);
    await expect(openSealedFile(path, { mode: 0o644, mtime: MTIME })).rejects.toThrow(/EEXIST/);
    expect(await readFile(path, 'utf8')).toBe('theirs');
  });
});
