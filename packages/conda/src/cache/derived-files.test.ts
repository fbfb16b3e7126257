import { lstat, mkdir, mkdtemp, readdir, readFile, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import { currentBootId } from '@prebuilt/core';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { derivedSetDir, readDerivedFiles, storeDerivedFiles } from './derived-files.js';

// A pass-through rm that can run one hook first: another build at work while a set is being removed.
const hooks = vi.hoisted(() => ({ beforeRm: undefined as ((path: string) => Promise<void>) | undefined }));
vi.mock('node:fs/promises', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:fs/promises')>();
  const rm: typeof actual.rm = async (path, options) => {
    const hook = hooks.beforeRm;
    hooks.beforeRm = undefined;
    if (hook) await hook(String(path));
    return actual.rm(path, options);
  };
  return { ...actual, rm, default: { ...actual, rm } };
});

let work: string;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'prebuilt-derived-'));
});
afterAll(() => rm(work, { recursive: true, force: true }));

const MTIME = 1_700_000_000;
const files = [Buffer.from('first pyc'), undefined, Buffer.from('third pyc')];

describe('derived files (an extraction-cache entry\'s compiled pycs)', () => {
  it('stores a set with normalised mode and mtime, and reads it back (hit); a missing set or another slot count is a miss', async () => {
    const dir = derivedSetDir(join(work, 'entry-a'), 'k1');
    expect(await readDerivedFiles(dir, 3)).toBeUndefined();
    const stored = await storeDerivedFiles(dir, files, MTIME);
    expect(stored).toEqual([join(dir, '0'), undefined, join(dir, '2')]);
    const info = await lstat(join(dir, '0'));
    expect(info.mode & 0o7777).toBe(0o644);
    expect(info.mtimeMs).toBe(MTIME * 1000);
    expect(await readDerivedFiles(dir, 3)).toEqual(stored);
    expect(readFileSync(stored![2]!, 'utf8')).toBe('third pyc');
    expect(await readDerivedFiles(derivedSetDir(join(work, 'entry-a'), 'k2'), 3)).toBeUndefined();
    // Nothing but the set is left beside it (no partial directory).
    expect(await readdir(join(work, 'entry-a', 'derived'))).toEqual(['k1']);
  });

  it('a set written in another boot is checked by content once: lost bytes under intact stamps are never served, an intact set is re-stamped with this boot', async (ctx) => {
    const boot = currentBootId();
    if (boot === undefined) return ctx.skip('no /proc/sys/kernel/random/boot_id here');
    const otherBoot = async (dir: string) => {
      const path = join(dir, 'manifest.json');
      await writeFile(path, JSON.stringify({ ...JSON.parse(await readFile(path, 'utf8')), boot: 'another-boot' }));
    };
    const intact = derivedSetDir(join(work, 'entry-boot-intact'), 'k');
    await storeDerivedFiles(intact, files, MTIME);
    expect(JSON.parse(await readFile(join(intact, 'manifest.json'), 'utf8')).boot).toBe(boot);
    await otherBoot(intact);
    expect(await readDerivedFiles(intact, 3)).toEqual([join(intact, '0'), undefined, join(intact, '2')]);
    expect(JSON.parse(await readFile(join(intact, 'manifest.json'), 'utf8')).boot).toBe(boot);

    const lost = derivedSetDir(join(work, 'entry-boot-lost'), 'k');
    await storeDerivedFiles(lost, files, MTIME);
    await otherBoot(lost);
    // Zeros where the bytes were (a power cut before write-back): same inode, size, mode and mtime.
    const before = await lstat(join(lost, '2'));
    await writeFile(join(lost, '2'), Buffer.alloc(before.size));
    await utimes(join(lost, '2'), MTIME, MTIME);
    expect((await lstat(join(lost, '2'))).mtimeMs).toBe(before.mtimeMs);
    expect(await readDerivedFiles(lost, 3)).toBeUndefined();
    expect(await lstat(lost).catch(() => undefined)).toBeUndefined();
  });

  it('a set whose file changed (also through a hard link), went missing, or whose manifest does not parse is removed, never served', async () => {
    const cases: [string, (dir: string) => Promise<void>][] = [
      ['changed', (dir) => writeFile(join(dir, '0'), 'tampered')],
      ['missing', (dir) => rm(join(dir, '2'))],
      ['manifest', (dir) => writeFile(join(dir, 'manifest.json'), '{not json')],
    ];
    for (const [name, damage] of cases) {
      const dir = derivedSetDir(join(work, `entry-${name}`), 'k');
      await storeDerivedFiles(dir, files, MTIME);
      await damage(dir);
      expect(await readDerivedFiles(dir, 3), name).toBeUndefined();
      expect(await lstat(dir).catch(() => undefined), name).toBeUndefined();
      // Derived again, it is served again.
      await storeDerivedFiles(dir, files, MTIME);
      expect(await readDerivedFiles(dir, 3), name).toHaveLength(3);
    }
  });

  it('a FIFO, symlink or directory planted at a set\'s manifest name reads as a damaged set (removed, derived again), never followed, never waited on', async () => {
    const outside = join(work, 'outside-manifest.json');
    const cases: [string, (path: string) => Promise<void>][] = [
      ['fifo', async (path) => void execFileSync('mkfifo', [path])],
      ['symlink', async (path) => symlink(outside, path)],
      ['directory', (path) => mkdir(path).then(() => undefined)],
    ];
    for (const [name, plant] of cases) {
      const dir = derivedSetDir(join(work, `entry-planted-${name}`), 'k');
      await storeDerivedFiles(dir, files, MTIME);
      // A manifest that matches the set, kept outside it: a link to it must not be followed.
      await writeFile(outside, readFileSync(join(dir, 'manifest.json')));
      await rm(join(dir, 'manifest.json'));
      await plant(join(dir, 'manifest.json'));
      const read = await Promise.race([readDerivedFiles(dir, 3), new Promise<'hung'>((resolve) => setTimeout(() => resolve('hung'), 3000).unref())]);
      expect(read, name).toBeUndefined();
      expect(await lstat(dir).catch(() => undefined), name).toBeUndefined();
      await storeDerivedFiles(dir, files, MTIME);
      expect(await readDerivedFiles(dir, 3), name).toHaveLength(3);
    }
  });

  it('a damaged set is moved aside before it is removed: a fresh set another build renames into its name meanwhile is served whole', async () => {
    const entry = join(work, 'entry-race');
    const dir = derivedSetDir(entry, 'k');
    await storeDerivedFiles(dir, files, MTIME);
    await writeFile(join(dir, '0'), 'tampered');
    let fresh: (string | undefined)[] | undefined;
    let removing = '';
    hooks.beforeRm = async (path) => {
      removing = path;
      // While the damaged set is being removed, another build derives the set again and renames it into place.
      fresh = await storeDerivedFiles(dir, files, MTIME);
    };
    expect(await readDerivedFiles(dir, 3)).toBeUndefined();
    expect(removing).toMatch(/[/]k\.stale-\d+-[0-9a-f]{8}$/);
    expect(fresh).toEqual([join(dir, '0'), undefined, join(dir, '2')]);
    expect(await readDerivedFiles(dir, 3)).toEqual(fresh);
    expect(readFileSync(join(dir, '0'), 'utf8')).toBe('first pyc');
    // The damaged set is gone, aside name included.
    expect(await readdir(join(entry, 'derived'))).toEqual(['k']);
  });

  it('a set that cannot be written is no failure: undefined, nothing left behind', async () => {
    const entry = join(work, 'entry-file');
    await writeFile(entry, 'a file where the entry directory should be');
    expect(await storeDerivedFiles(derivedSetDir(entry, 'k'), files, MTIME)).toBeUndefined();
  });
});
