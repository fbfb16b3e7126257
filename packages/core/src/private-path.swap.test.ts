import { chmod, mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';

// Whoever can write in a directory's parent can swap the directory for a symlink between the
// moment securePrivatePath looks at it and the moment it changes its mode. The swap is made here
// right after securePrivatePath's look at the path (its lstat, with `onLstat`), or after a stat or
// an open of it.
const swap = vi.hoisted(() => ({ path: undefined as string | undefined, to: undefined as string | undefined, done: false, onLstat: false }));

vi.mock('node:fs', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:fs')>();
  const after = (path: unknown, lstat = false): void => {
    if (lstat !== swap.onLstat) return;
    if (swap.done || swap.path === undefined || String(path) !== swap.path) return;
    swap.done = true;
    real.renameSync(swap.path, `${swap.path}.moved`);
    real.symlinkSync(swap.to!, swap.path);
  };
  const wrapped = {
    ...real,
    lstatSync: ((path: Parameters<typeof real.lstatSync>[0], ...rest: unknown[]) => {
      const result = (real.lstatSync as (...args: unknown[]) => unknown)(path, ...rest);
      after(path, true);
      return result;
    }) as typeof real.lstatSync,
    statSync: ((path: Parameters<typeof real.statSync>[0], ...rest: unknown[]) => {
      const result = (real.statSync as (...args: unknown[]) => unknown)(path, ...rest);
      after(path);
      return result;
    }) as typeof real.statSync,
    openSync: ((path: Parameters<typeof real.openSync>[0], ...rest: unknown[]) => {
      const result = (real.openSync as (...args: unknown[]) => unknown)(path, ...rest);
      after(path);
      return result;
    }) as typeof real.openSync,
  };
  return { ...wrapped, default: wrapped };
});

const { securePrivatePath } = await import('./private-path.js');
const { EnvironmentError } = await import('./errors.js');

describe('securePrivatePath with a directory swapped for a symlink between its check and its repair', () => {
  let work: string;
  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'prebuilt-private-path-swap-'));
  });
  afterAll(() => rm(work, { recursive: true, force: true }));

  for (const kind of ['a file', 'a directory']) {
    it(`never changes the mode of ${kind} a symlink swapped in names (as root: any of the machine, /etc/shadow made 0700): it says the path changed`, async () => {
      const root = join(work, kind.replace(/\W/g, '-'));
      const base = join(root, 'base');
      const dir = join(base, 'prebuilt');
      await mkdir(dir, { recursive: true });
      await chmod(dir, 0o777);
      const victim = join(root, 'victim');
      if (kind === 'a file') await writeFile(victim, "not prebuilt's\n");
      else await mkdir(victim);
      await chmod(victim, 0o755);
      Object.assign(swap, { path: dir, to: victim, done: false, onLstat: true });
      const error = await securePrivatePath(dir, { base }).catch((e: unknown) => e);
      expect(swap.done).toBe(true);
      expect((await stat(victim)).mode & 0o7777).toBe(0o755);
      expect(EnvironmentError.isInstance(error)).toBe(true);
      expect((error as Error).message).toBe(`${dir} changed while prebuilt checked who may write in it (it is no longer the directory checked), so its mode was not changed.`);
    });
  }

  it('repairs the directory it checked when nothing swaps it (the same directory opened)', async () => {
    const base = join(work, 'kept', 'base');
    const dir = join(base, 'prebuilt');
    await mkdir(dir, { recursive: true });
    await chmod(dir, 0o777);
    Object.assign(swap, { path: undefined, to: undefined, done: false, onLstat: false });
    const { repaired } = await securePrivatePath(dir, { base });
    expect((await stat(dir)).mode & 0o7777).toBe(0o700);
    expect(repaired).toEqual([{ path: dir, from: 0o777, to: 0o700 }]);
  });

  it("never changes the mode of a directory of this user's a symlink swapped in between the path's lstat and what follows names: it says the path changed", async () => {
    // The lstat saw prebuilt's directory, the stat after it followed the swapped-in symlink to the
    // victim, which the repair took for the directory checked and made 0700.
    const root = join(work, 'after-lstat');
    const base = join(root, 'base');
    const dir = join(base, 'prebuilt');
    await mkdir(dir, { recursive: true });
    await chmod(dir, 0o777);
    const victim = join(root, 'project');
    await mkdir(victim);
    await chmod(victim, 0o775);
    Object.assign(swap, { path: dir, to: victim, done: false, onLstat: true });
    const error = await securePrivatePath(dir, { base }).catch((e: unknown) => e);
    expect(swap.done).toBe(true);
    expect((await stat(victim)).mode & 0o7777).toBe(0o775);
    expect(EnvironmentError.isInstance(error)).toBe(true);
    expect((error as Error).message).toBe(`${dir} changed while prebuilt checked who may write in it (it is no longer the directory checked), so its mode was not changed.`);
  });
});
