import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { discardAside } from './discard-aside.js';

let work: string;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'prebuilt-discard-aside-'));
});
afterAll(() => rm(work, { recursive: true, force: true }));

describe('discardAside (a damaged cache directory)', () => {
  it('renames the directory aside and removes it: nothing is left, under its name or beside it', async () => {
    const dir = join(work, 'entry');
    await mkdir(join(dir, 'f', 'lib'), { recursive: true });
    for (let i = 0; i < 50; i++) await writeFile(join(dir, 'f', 'lib', String(i)), 'x');
    expect(await discardAside(dir)).toBe(true);
    expect(existsSync(dir)).toBe(false);
    expect(await readdir(work)).toEqual([]);
  });

  it('a directory already gone is no error (false); another failure to rename it is thrown', async () => {
    expect(await discardAside(join(work, 'never-there'))).toBe(false);
    await writeFile(join(work, 'a-file'), 'x');
    await expect(discardAside(join(work, 'a-file', 'below'))).rejects.toMatchObject({ code: 'ENOTDIR' });
  });
});
