import { execFileSync } from 'node:child_process';
import { lstat, mkdir, mkdtemp, rm, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { markCacheFileUsed, readCacheFile, readCacheFileSync } from './cache-file.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'prebuilt-cache-file-'));
  await writeFile(join(dir, 'regular'), 'cached\n');
  await writeFile(join(dir, 'large'), Buffer.alloc(2048, 1));
  execFileSync('mkfifo', [join(dir, 'fifo')]);
  await symlink(join(dir, 'regular'), join(dir, 'link'));
  await symlink('/dev/zero', join(dir, 'zero'));
  await mkdir(join(dir, 'directory'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

const hung = <T>(promise: Promise<T>): Promise<T | 'hung'> => Promise.race([promise, new Promise<'hung'>((resolve) => setTimeout(() => resolve('hung'), 3000).unref())]);

describe('readCacheFile (a file prebuilt wrote into its cache, at a name others can work out)', () => {
  it('reads a regular file within the bound', async () => {
    expect((await readCacheFile(join(dir, 'regular'), 1024))?.toString()).toBe('cached\n');
    expect(readCacheFileSync(join(dir, 'regular'), 1024)?.toString()).toBe('cached\n');
  });

  it('reads a FIFO, a symlink (to a file or to /dev/zero), a directory, a missing name or a file over the bound as missing, without blocking', async () => {
    for (const name of ['fifo', 'link', 'zero', 'directory', 'missing', 'large']) {
      expect(await hung(readCacheFile(join(dir, name), 1024)), name).toBeUndefined();
      expect(readCacheFileSync(join(dir, name), 1024), name).toBeUndefined();
    }
  });
});

describe('markCacheFileUsed', () => {
  it("sets a regular file's mtime to now; a symlink at the name gets its own times, never its target's", async () => {
    const old = new Date('2020-01-01T00:00:00Z');
    const file = join(dir, 'used');
    const target = join(dir, 'target-of-swapped-link');
    await writeFile(file, 'x');
    await writeFile(target, 'not the cache\'s');
    await utimes(file, old, old);
    await utimes(target, old, old);
    const before = Date.now() - 1000;
    await markCacheFileUsed(file);
    expect((await stat(file)).mtimeMs).toBeGreaterThan(before);
    await symlink(target, join(dir, 'swapped'));
    await markCacheFileUsed(join(dir, 'swapped'));
    expect((await stat(target)).mtimeMs).toBe(old.getTime());
    expect((await lstat(join(dir, 'swapped'))).mtimeMs).toBeGreaterThan(before);
    await expect(markCacheFileUsed(join(dir, 'absent'))).resolves.toBeUndefined();
  });
});
