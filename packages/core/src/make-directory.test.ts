import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { skipTitle } from '../../../test/services.js';
import { writeFileAtomic } from './atomic-write.js';
import { EnvironmentError } from './errors.js';
import { makeDirectory, unwritableDirectoryError } from './make-directory.js';

// A platform branch, not a missing tool: skipped (saying why) wherever /proc is not Linux's, in CI too.
const notLinux = process.platform === 'linux' ? undefined : `/proc is Linux's, this is ${process.platform}`;

describe('makeDirectory', () => {
  it('creates the missing parents, and again is a no-op', async () => {
    const root = await mkdtemp(join(tmpdir(), 'prebuilt-mkdir-'));
    try {
      const dir = join(root, 'a', 'b', 'c');
      await makeDirectory(dir);
      expect((await stat(dir)).isDirectory()).toBe(true);
      await makeDirectory(dir);
      await makeDirectory(root);
      await Promise.all([makeDirectory(join(root, 'x', 'y')), makeDirectory(join(root, 'x', 'y')), makeDirectory(join(root, 'x', 'z'))]);
      expect((await stat(join(root, 'x', 'z'))).isDirectory()).toBe(true);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  it('with a mode, every directory it makes has exactly that mode under umask 000; existing ones keep theirs', async () => {
    const root = await mkdtemp(join(tmpdir(), 'prebuilt-mkdir-'));
    const previous = process.umask(0);
    try {
      await mkdir(join(root, 'state'), { mode: 0o755 });
      const dir = join(root, 'state', 'prebuilt', 'local-registry');
      await makeDirectory(dir, { mode: 0o700 });
      expect((await stat(join(root, 'state'))).mode & 0o7777).toBe(0o755);
      expect((await stat(join(root, 'state', 'prebuilt'))).mode & 0o7777).toBe(0o700);
      expect((await stat(dir)).mode & 0o7777).toBe(0o700);
      await makeDirectory(join(root, 'plain', 'sub'));
      expect((await stat(join(root, 'plain', 'sub'))).mode & 0o7777).toBe(0o777);
    } finally {
      process.umask(previous);
      await rm(root, { recursive: true, force: true });
    }
  });

  it('a path through a file, or naming a file, is ENOTDIR', async () => {
    const root = await mkdtemp(join(tmpdir(), 'prebuilt-mkdir-'));
    try {
      await writeFile(join(root, 'file'), 'x');
      await expect(makeDirectory(join(root, 'file', 'sub'))).rejects.toMatchObject({ code: 'ENOTDIR' });
      await expect(makeDirectory(join(root, 'file'))).rejects.toMatchObject({ code: 'ENOTDIR' });
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  it.skipIf(notLinux !== undefined)(skipTitle("under /proc, where Node 20's recursive mkdir never returns: ENOENT at once", notLinux), async () => {
    await expect(makeDirectory('/proc/prebuilt-no-such-dir/cache')).rejects.toMatchObject({ code: 'ENOENT' });
  }, 10_000);

  it.skipIf(notLinux !== undefined)(skipTitle('an atomic write there is an EnvironmentError (exit 2) saying why and naming the setting that moves it', notLinux), async () => {
    const error = await writeFileAtomic('/proc/prebuilt-no-such-dir/cache/file.json', '{}', { setting: 'METAFLOW_PREBUILT_CACHE_DIR' }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(EnvironmentError);
    expect((error as EnvironmentError).exitCode).toBe(2);
    expect((error as EnvironmentError).message).toBe("Cannot write /proc/prebuilt-no-such-dir while writing /proc/prebuilt-no-such-dir/cache/file.json: its file system does not take new entries there (ENOENT).");
    expect((error as EnvironmentError).hint).toContain('Set METAFLOW_PREBUILT_CACHE_DIR to a directory you can write');
  }, 10_000);

  it('only permission, read-only, pseudo file system and file-in-the-way errors are mapped', () => {
    const where = { dir: '/x', doing: 'testing' };
    expect(unwritableDirectoryError(Object.assign(new Error('e'), { code: 'EACCES', path: '/x/y' }), where)?.message).toBe('Cannot write /x/y while testing: permission denied (EACCES).');
    expect(unwritableDirectoryError(Object.assign(new Error('e'), { code: 'EROFS' }), where)?.message).toBe('Cannot write /x while testing: a read-only file system (EROFS).');
    expect(unwritableDirectoryError(Object.assign(new Error('e'), { code: 'EIO' }), where)).toBeUndefined();
    expect(unwritableDirectoryError(new Error('no code'), where)).toBeUndefined();
  });
});
