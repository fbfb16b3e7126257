import { chmod, mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { prebuiltCacheDir, prepareCacheDir } from './cache-dir.js';

describe('prebuiltCacheDir', () => {
  it('prefers METAFLOW_PREBUILT_CACHE_DIR, then XDG_CACHE_HOME, then ~/.cache', () => {
    expect(prebuiltCacheDir({ METAFLOW_PREBUILT_CACHE_DIR: '/x/c', XDG_CACHE_HOME: '/xdg' })).toBe('/x/c');
    expect(prebuiltCacheDir({ XDG_CACHE_HOME: '/xdg' })).toBe('/xdg/prebuilt');
    expect(prebuiltCacheDir({ XDG_CACHE_HOME: 'relative' })).toBe(`${homedir()}/.cache/prebuilt`);
    expect(prebuiltCacheDir({})).toBe(`${homedir()}/.cache/prebuilt`);
  });
});

describe('prepareCacheDir', () => {
  let work: string;
  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'prebuilt-cache-dir-'));
  });
  afterAll(() => rm(work, { recursive: true, force: true }));

  it('makes a missing cache directory and its missing parents private to its user (0700) even under umask 000, an existing parent left as it is; no note', async () => {
    const previous = process.umask(0);
    try {
      const dir = join(work, 'xdg', 'prebuilt');
      expect(await prepareCacheDir(dir)).toBeUndefined();
      expect((await stat(dir)).mode & 0o7777).toBe(0o700);
      // Made 0777 (umask 000), another user could rename prebuilt's cache away and plant their own.
      expect((await stat(join(work, 'xdg'))).mode & 0o7777).toBe(0o700);
      expect((await stat(work)).mode & 0o7777).toBe(0o700);
      await chmod(join(work, 'xdg'), 0o755);
      expect(await prepareCacheDir(join(work, 'xdg', 'other'))).toBeUndefined();
      expect((await stat(join(work, 'xdg'))).mode & 0o7777).toBe(0o755);
    } finally {
      process.umask(previous);
    }
  });

  it('an existing directory others may write in (no sticky bit) keeps working, with a note saying the risk and the fix; its mode is left as it is', async () => {
    const dir = join(work, 'shared');
    await mkdir(dir);
    await chmod(dir, 0o777);
    const note = await prepareCacheDir(dir);
    expect(note).toBe(
      `the cache directory ${dir} (mode 0777) can be written by every user: whoever can write there can plant or replace files a build reads or puts in an image. ` +
        `Keep it private (chmod 700 ${dir}), or set METAFLOW_PREBUILT_CACHE_DIR to a directory only you can write; a cache shared on purpose keeps working.`,
    );
    expect((await stat(dir)).mode & 0o7777).toBe(0o777);
    await chmod(dir, 0o770);
    expect(await prepareCacheDir(dir)).toContain('(mode 0770) can be written by its group');
  });

  it('no note for a private directory, a group-readable one, or a shared one with the sticky bit', async () => {
    for (const mode of [0o700, 0o755, 0o1777]) {
      const dir = join(work, `mode-${mode.toString(8)}`);
      await mkdir(dir);
      await chmod(dir, mode);
      expect(await prepareCacheDir(dir), mode.toString(8)).toBeUndefined();
    }
  });

  it('a path it cannot make gets no note and no error (whoever writes there first reports it, naming the setting)', async () => {
    await writeFile(join(work, 'file'), '');
    expect(await prepareCacheDir(join(work, 'file', 'prebuilt'))).toBeUndefined();
  });
});
