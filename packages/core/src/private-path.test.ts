import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, chown, lchown, mkdir, mkdtemp, rm, stat, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repairedDirectoryNote, securePrivatePath, unsafeDirectoryWords } from './private-path.js';

const modeOf = async (path: string): Promise<number> => (await stat(path)).mode & 0o7777;

describe('securePrivatePath', () => {
  let work: string;
  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'prebuilt-private-path-'));
  });
  afterAll(() => rm(work, { recursive: true, force: true }));

  it("makes prebuilt's own directories (below base) that its group or every user may write in 0700; above them only a write bit of every user counts, and the sticky bit makes it safe", async () => {
    const base = join(work, 'a', 'base');
    const dir = join(base, 'prebuilt', 'state');
    await mkdir(dir, { recursive: true });
    await chmod(join(base, 'prebuilt'), 0o770);
    await chmod(dir, 0o755);
    await chmod(base, 0o775);
    await chmod(join(work, 'a'), 0o1777);
    const { repaired, unsafe } = await securePrivatePath(dir, { base });
    expect(repaired).toEqual([{ path: join(base, 'prebuilt'), from: 0o770, to: 0o700 }]);
    expect(unsafe).toEqual([]);
    // Readable by others is not this check's business; the group's write bit on base is left (a private group per user).
    expect(await modeOf(dir)).toBe(0o755);
    expect(await modeOf(base)).toBe(0o775);
    expect(await modeOf(join(work, 'a'))).toBe(0o1777);
    expect(repairedDirectoryNote(repaired[0]!, 'the thing')).toBe(
      `${join(base, 'prebuilt')} (yours) could be written by its group (mode 0770), so they could rename the thing away and plant their own: prebuilt made it 0700.`,
    );
  });

  it.skipIf(process.getuid?.() !== 0)("returns, untouched, an own directory of another user and a directory above of another user every user may write in", async () => {
    const base = join(work, 'b', 'base');
    const dir = join(base, 'prebuilt');
    await mkdir(dir, { recursive: true });
    await chown(dir, 65534, 65534);
    await chmod(dir, 0o777);
    await chmod(join(work, 'b'), 0o777);
    await chown(join(work, 'b'), 65534, 65534);
    const { repaired, unsafe } = await securePrivatePath(dir, { base });
    expect(repaired).toEqual([]);
    expect(unsafe).toEqual([
      { path: dir, mode: 0o777, uid: 65534, why: 'owner' },
      { path: join(work, 'b'), mode: 0o777, uid: 65534, why: 'writable' },
    ]);
    expect(await modeOf(dir)).toBe(0o777);
  });

  it.skipIf(process.getuid?.() !== 0)("never changes a directory of this user that another user's symlink on the path leads to (planted before the check, in a directory of theirs every user may write in): the symlink is unsafe, nothing is repaired", async () => {
    // XDG_STATE_HOME (base) is another user's and every user may write in it: they put
    // `prebuilt` there as a symlink to a directory of ours, which the check followed and made 0700.
    const base = join(work, 'c', 'shared');
    await mkdir(base, { recursive: true });
    await chown(base, 65534, 65534);
    await chmod(base, 0o777);
    const victim = join(work, 'c', 'victim');
    await mkdir(victim);
    await chmod(victim, 0o775);
    const planted = join(base, 'prebuilt');
    await symlink(victim, planted);
    await lchown(planted, 65534, 65534);
    const { repaired, unsafe } = await securePrivatePath(planted, { base });
    expect(repaired).toEqual([]);
    expect(unsafe).toEqual([
      { path: planted, mode: 0o777, uid: 65534, why: 'owner' },
      { path: base, mode: 0o777, uid: 65534, why: 'writable' },
    ]);
    expect(await modeOf(victim)).toBe(0o775);
    // A symlink of this user (or root's, as /lib -> usr/lib) on the path is followed as before.
    const own = join(work, 'c', 'own-link');
    await symlink(victim, own);
    expect(await securePrivatePath(own, { base: join(work, 'c') })).toEqual({ repaired: [{ path: own, from: 0o775, to: 0o700 }], unsafe: [] });
    expect(await modeOf(victim)).toBe(0o700);
  });

  // Run as another user (root reads any directory): needs root to switch, setpriv, and the built dist.
  const DIST = fileURLToPath(new URL('../dist/private-path.js', import.meta.url));
  const cannotSwitch = process.getuid?.() !== 0 || !existsSync('/usr/bin/setpriv') || !existsSync(DIST);
  it.skipIf(cannotSwitch)('a directory of your own that every user may write in but you may not read (0333) is a clear EnvironmentError naming the fix, not a bare EACCES', async () => {
    const base = join(work, 'd', 'base');
    const dir = join(base, 'prebuilt');
    await mkdir(dir, { recursive: true });
    await chmod(work, 0o755);
    await chmod(join(work, 'd'), 0o755);
    await chown(dir, 65534, 65534);
    await chmod(dir, 0o333);
    const script = `import { securePrivatePath } from ${JSON.stringify(DIST)};
try { await securePrivatePath(${JSON.stringify(dir)}, { base: ${JSON.stringify(base)} }); console.log('{}'); }
catch (e) { console.log(JSON.stringify({ name: e.name, message: e.message, hint: e.hint, code: e.code })); }`;
    const out = JSON.parse(execFileSync('/usr/bin/setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '--input-type=module', '-e', script], { encoding: 'utf8' })) as Record<string, string>;
    expect(out).toMatchObject({
      name: 'EnvironmentError',
      message: `${dir} (yours, mode 0333) may be written by other users, and prebuilt cannot make it private: it opens the directory to change its mode safely, and you may not read it.`,
      hint: `Make it private yourself (chmod 700 ${dir}, or chmod o-w ${dir} if it must stay shared with its group), then try again.`,
    });
    expect(await modeOf(dir)).toBe(0o333);
  });
});

describe('unsafeDirectoryWords', () => {
  it('names who can act on an unsafe directory and what its owner should do: another owner, or a write bit of every user', () => {
    expect(unsafeDirectoryWords({ path: '/srv/prebuilt', mode: 0o755, uid: 65534, why: 'owner' })).toEqual({
      who: '/srv/prebuilt belongs to another user (uid 65534), who can',
      fix: 'Remove it (its owner or root can: `rm -r /srv/prebuilt`) so prebuilt makes it again as yours',
    });
    expect(unsafeDirectoryWords({ path: '/shared', mode: 0o777, uid: 0, why: 'writable' })).toEqual({
      who: 'every user may write in /shared (mode 0777, uid 0), so they can',
      fix: 'Ask its owner to run `chmod o-w /shared` (or `chmod +t /shared`)',
    });
  });
});
