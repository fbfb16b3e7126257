import { chmod, chown, mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
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
      expect(await prepareCacheDir(dir)).toEqual([]);
      expect((await stat(dir)).mode & 0o7777).toBe(0o700);
      // Made 0777 (umask 000), another user could rename prebuilt's cache away and plant their own.
      expect((await stat(join(work, 'xdg'))).mode & 0o7777).toBe(0o700);
      expect((await stat(work)).mode & 0o7777).toBe(0o700);
      await chmod(join(work, 'xdg'), 0o755);
      expect(await prepareCacheDir(join(work, 'xdg', 'other'))).toEqual([]);
      expect((await stat(join(work, 'xdg'))).mode & 0o7777).toBe(0o755);
    } finally {
      process.umask(previous);
    }
  });

  it('an existing directory others may write in (no sticky bit) keeps working, with a note saying the risk and the fix; its mode is left as it is', async () => {
    const dir = join(work, 'shared');
    await mkdir(dir);
    await chmod(dir, 0o777);
    const notes = await prepareCacheDir(dir);
    expect(notes).toEqual([
      `the cache directory ${dir} (mode 0777) can be written by every user: whoever can write there can plant or replace files a build reads or puts in an image. ` +
        `Keep it private (chmod 700 ${dir}), or set METAFLOW_PREBUILT_CACHE_DIR to a directory only you can write; a cache shared on purpose keeps working.`,
    ]);
    expect((await stat(dir)).mode & 0o7777).toBe(0o777);
    await chmod(dir, 0o770);
    expect((await prepareCacheDir(dir))[0]).toContain('(mode 0770) can be written by its group');
  });

  it('no note for a private directory, a group-readable one, or a shared one with the sticky bit', async () => {
    for (const mode of [0o700, 0o755, 0o1777]) {
      const dir = join(work, `mode-${mode.toString(8)}`);
      await mkdir(dir);
      await chmod(dir, mode);
      expect(await prepareCacheDir(dir), mode.toString(8)).toEqual([]);
    }
  });

  it('a path it cannot make gets no note and no error (whoever writes there first reports it, naming the setting)', async () => {
    await writeFile(join(work, 'file'), '');
    expect(await prepareCacheDir(join(work, 'file', 'prebuilt'))).toEqual([]);
  });

  it('a directory above it of ours that every user may write in (an older prebuilt made it under umask 000) loses that write bit, with a note; once', async () => {
    const previous = process.umask(0);
    try {
      const xdg = join(work, 'old-xdg');
      await mkdir(join(xdg, 'prebuilt'), { recursive: true, mode: 0o777 });
      const dir = join(xdg, 'prebuilt');
      expect(await prepareCacheDir(dir)).toEqual([
        `${xdg} (yours) could be written by every user (mode 0777), so they could rename prebuilt's cache away and plant their own: prebuilt made it 0775.`,
        // The cache directory itself may be shared on purpose: said, not changed.
        `the cache directory ${dir} (mode 0777) can be written by every user: whoever can write there can plant or replace files a build reads or puts in an image. ` +
          `Keep it private (chmod 700 ${dir}), or set METAFLOW_PREBUILT_CACHE_DIR to a directory only you can write; a cache shared on purpose keeps working.`,
      ]);
      expect((await stat(xdg)).mode & 0o7777).toBe(0o775);
      expect((await stat(dir)).mode & 0o7777).toBe(0o777);
      await chmod(dir, 0o700);
      expect(await prepareCacheDir(dir)).toEqual([]);
    } finally {
      process.umask(previous);
    }
  });

  it.skipIf(process.getuid?.() !== 0)('a directory above it of another user that every user may write in is not changed: a note says the risk and the fix', async () => {
    const parent = join(work, 'theirs');
    await mkdir(parent);
    await chmod(parent, 0o777);
    await chown(parent, 65534, 65534);
    const dir = join(parent, 'prebuilt');
    expect(await prepareCacheDir(dir)).toEqual([
      `every user may write in ${parent} (mode 0777, uid 65534), so they can rename the cache directory ${dir} away and plant their own files, which a build reads or puts in an image. ` +
        `Ask its owner to run \`chmod o-w ${parent}\` (or \`chmod +t ${parent}\`), or set METAFLOW_PREBUILT_CACHE_DIR to a directory only you can write.`,
    ]);
    expect((await stat(parent)).mode & 0o7777).toBe(0o777);
    expect((await stat(dir)).mode & 0o7777).toBe(0o700);
  });
});
