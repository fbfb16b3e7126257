import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { makeDirectory } from './make-directory.js';

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

  it.skipIf(process.platform !== 'linux')('under /proc, where Node 20\'s recursive mkdir never returns: ENOENT at once', async () => {
    await expect(makeDirectory('/proc/prebuilt-no-such-dir/cache')).rejects.toMatchObject({ code: 'ENOENT' });
  }, 10_000);
});
