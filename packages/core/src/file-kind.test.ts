import { execFileSync } from 'node:child_process';
import { lstatSync, statSync } from 'node:fs';
import { mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fileKind } from './file-kind.js';

describe('fileKind', () => {
  it('names a directory, a FIFO, a device, a symbolic link (lstat) and a regular file as something else', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'prebuilt-file-kind-'));
    try {
      execFileSync('mkfifo', [join(dir, 'fifo')]);
      await writeFile(join(dir, 'file'), 'x');
      await symlink(join(dir, 'file'), join(dir, 'link'));
      expect(fileKind(statSync(dir))).toBe('a directory');
      expect(fileKind(statSync(join(dir, 'fifo')))).toBe('a FIFO');
      expect(fileKind(statSync('/dev/null'))).toBe('a device');
      expect(fileKind(lstatSync(join(dir, 'link')))).toBe('a symbolic link');
      expect(fileKind(statSync(join(dir, 'file'), { bigint: true }))).toBe('something else');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
