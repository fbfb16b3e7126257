import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readRegularFile, readRegularFileSync, type RegularFileRefusals } from './regular-file.js';

const refuse: RegularFileRefusals = {
  notAFile: (kind) => new Error(`not a file: ${kind}`),
  tooLarge: (size) => new Error(`too large: ${size}`),
};

describe('readRegularFile / readRegularFileSync', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'regular-file-'));
    await writeFile(join(dir, 'small'), 'hello');
    await symlink(join(dir, 'small'), join(dir, 'link'));
    execFileSync('mkfifo', [join(dir, 'fifo')]);
    await symlink(join(dir, 'fifo'), join(dir, 'link-to-fifo'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  const readers = [
    ['async', (path: string, max: number) => readRegularFile(path, max, refuse)],
    ['sync', async (path: string, max: number) => readRegularFileSync(path, max, refuse)],
  ] as const;

  it.each(readers)('%s: reads a regular file within the bound, through a symlink too', async (_name, read) => {
    expect((await read(join(dir, 'small'), 5)).toString()).toBe('hello');
    expect((await read(join(dir, 'link'), 5)).toString()).toBe('hello');
  });

  it.each(readers)("%s: a FIFO (or a symlink to one) and a device are refused with the caller's error, without blocking", async (_name, read) => {
    await expect(read(join(dir, 'fifo'), 5)).rejects.toThrow('not a file: a FIFO');
    await expect(read(join(dir, 'link-to-fifo'), 5)).rejects.toThrow('not a file: a FIFO');
    await expect(read('/dev/zero', 5)).rejects.toThrow('not a file: a device');
    await expect(read(dir, 5)).rejects.toThrow('not a file: a directory');
  });

  it.each(readers)("%s: a file over the bound is refused with its size; a missing one throws the file system's ENOENT", async (_name, read) => {
    await expect(read(join(dir, 'small'), 4)).rejects.toThrow('too large: 5');
    await expect(read(join(dir, 'missing'), 4)).rejects.toMatchObject({ code: 'ENOENT' });
  });
});
