import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { writeFileAtomic } from './atomic-write.js';

describe('writeFileAtomic', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'prebuilt-atomic-'));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it('replaces the file, creates missing directories and sets the mode', async () => {
    const path = join(dir, 'a', 'b', 'state.json');
    await writeFileAtomic(path, 'one');
    await writeFileAtomic(path, 'two', { mode: 0o600 });
    expect(await readFile(path, 'utf8')).toBe('two');
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect(await readdir(join(dir, 'a', 'b'))).toEqual(['state.json']);
  });

  it('leaves no temp file behind when the write cannot complete', async () => {
    const path = join(dir, 'target');
    await mkdir(path);
    await writeFile(join(path, 'inside'), 'x');
    await expect(writeFileAtomic(path, 'data')).rejects.toThrow();
    expect(await readdir(dir)).toEqual(['target']);
  });
});
