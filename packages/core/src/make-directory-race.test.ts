// makeDirectory when another process puts something where it is about to make a directory: the
// stat that found nothing is raced by a file (or a directory) appearing before its mkdir.
import { mkdir as realMkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';

/** Paths whose stat first says ENOENT, and what appears there before the mkdir. */
const raced = new Map<string, 'file' | 'directory'>();

vi.mock('node:fs/promises', async (importOriginal) => {
  const fs = await importOriginal<typeof import('node:fs/promises')>();
  return {
    ...fs,
    stat: async (path: string, ...rest: unknown[]) => {
      const appears = raced.get(path);
      if (appears) {
        raced.delete(path);
        // Another process is quicker: it makes the entry right after this stat found none.
        if (appears === 'file') await fs.writeFile(path, 'not a directory');
        else await fs.mkdir(path);
        throw Object.assign(new Error(`ENOENT: no such file or directory, stat '${path}'`), { code: 'ENOENT' });
      }
      return (fs.stat as (...args: unknown[]) => Promise<unknown>)(path, ...rest);
    },
  };
});

const { makeDirectory } = await import('./make-directory.js');

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'prebuilt-mkdir-race-'));
});
afterAll(() => rm(root, { recursive: true, force: true }));

describe('makeDirectory raced by another process', () => {
  it('a directory made there meanwhile: fine', async () => {
    const dir = join(root, 'dir-race', 'sub');
    await realMkdir(join(root, 'dir-race'));
    raced.set(dir, 'directory');
    await expect(makeDirectory(dir)).resolves.toBeUndefined();
  });

  it('a file put there meanwhile: ENOTDIR naming it, as when it was there first (not a directory taken as made)', async () => {
    const dir = join(root, 'file-race');
    raced.set(dir, 'file');
    await expect(makeDirectory(dir)).rejects.toMatchObject({ code: 'ENOTDIR', path: dir });
    // A missing parent raced the same way: the child is never attempted through a file.
    const parent = join(root, 'parent-race');
    raced.set(parent, 'file');
    await expect(makeDirectory(join(parent, 'child'))).rejects.toMatchObject({ code: 'ENOTDIR', path: parent });
  });
});
