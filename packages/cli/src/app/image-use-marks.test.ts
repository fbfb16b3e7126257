import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { DeployEvent } from '@prebuilt/core';
import { afterAll, describe, expect, it } from 'vitest';
import { ImageUseMarks, markingImageUse } from './image-use-marks.js';

const work = mkdtempSync(join(tmpdir(), 'prebuilt-image-use-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));
const REF = '127.0.0.1:5100/team/envs:env-0123456789abcdef-linux-64';

describe('image use marks (what gc on this machine keeps for its minimum age)', () => {
  it('a deploy marks every image it checks, before the registry is asked, and passes each event on', () => {
    const marks = new ImageUseMarks(join(work, 'a', 'images-used'));
    const seen: DeployEvent[] = [];
    const onEvent = markingImageUse(marks, (event) => seen.push(event));
    expect(marks.lastUse(REF)).toBeUndefined();
    const before = Date.now();
    onEvent({ type: 'image', envId: 'e', tag: REF, steps: ['start'], phase: 'checking' });
    onEvent({ type: 'note', message: 'hello' });
    // Only checking, present and built mark (not every progress event of a long build).
    onEvent({ type: 'image', envId: 'e', tag: `${REF}-building`, steps: ['start'], phase: 'building' });
    expect(marks.lastUse(`${REF}-building`)).toBeUndefined();
    expect(marks.lastUse(REF)!.getTime()).toBeGreaterThanOrEqual(before - 1000);
    expect(marks.lastUse(`${REF}-other`)).toBeUndefined();
    expect(seen.map((event) => event.type)).toEqual(['image', 'note', 'image']);
  });

  it('a later use moves the mark; marks older than 30 days are forgotten', () => {
    const marks = new ImageUseMarks(join(work, 'b', 'images-used'));
    const old = new Date(Date.now() - 40 * 86_400_000);
    marks.mark(REF, old);
    marks.mark(`${REF}-recent`);
    expect(marks.lastUse(REF)!.getTime()).toBe(old.getTime());
    marks.forgetOld();
    expect(marks.lastUse(REF)).toBeUndefined();
    expect(marks.lastUse(`${REF}-recent`)).toBeDefined();
  });

  it('never writes through a symlink planted at a mark\'s name (a shared cache), and never fails the build', () => {
    const dir = join(work, 'c', 'images-used');
    const marks = new ImageUseMarks(dir);
    marks.mark(REF);
    const [name] = readdirSync(dir);
    const victim = join(work, 'victim');
    writeFileSync(victim, 'precious');
    rmSync(join(dir, name!));
    symlinkSync(victim, join(dir, name!));
    expect(() => marks.mark(REF)).not.toThrow();
    expect(readFileSync(victim, 'utf8')).toBe('precious');
    // A symlink is no mark.
    expect(marks.lastUse(REF)).toBeUndefined();
  });

  it('forgets nothing through an images-used planted as a symlink to another directory (a co-user of a shared cache), and marks nothing there', () => {
    // Another user of the cache made images-used a symlink to a directory of the victim's (which
    // they cannot write, the victim can): the victim's gc --yes removed every file there older than 30 days.
    const victimDir = join(work, 'd-victim');
    mkdirSync(victimDir);
    const precious = join(victimDir, 'thesis.tex');
    writeFileSync(precious, 'years of work');
    const old = new Date(Date.now() - 400 * 86_400_000);
    utimesSync(precious, old, old);
    mkdirSync(join(work, 'd'));
    const dir = join(work, 'd', 'images-used');
    symlinkSync(victimDir, dir);
    const marks = new ImageUseMarks(dir);
    expect(() => marks.forgetOld()).not.toThrow();
    expect(readFileSync(precious, 'utf8')).toBe('years of work');
    expect(() => marks.mark(REF)).not.toThrow();
    expect(readdirSync(victimDir)).toEqual(['thesis.tex']);
    // Nor are its files marks.
    expect(marks.lastUse(REF)).toBeUndefined();
  });

  it('forgets only old marks: another file in the directory stays, and one it cannot remove (a directory) never fails gc', () => {
    const dir = join(work, 'e', 'images-used');
    const marks = new ImageUseMarks(dir);
    const old = new Date(Date.now() - 40 * 86_400_000);
    marks.mark(REF, old);
    const notes = join(dir, 'README');
    writeFileSync(notes, 'left by someone');
    utimesSync(notes, old, old);
    // A directory at a mark's name (planted, or a mark's name by chance) made rmSync throw: gc --yes failed after deleting.
    const planted = join(dir, 'a'.repeat(40));
    mkdirSync(planted);
    writeFileSync(join(planted, 'x'), 'x');
    utimesSync(planted, old, old);
    expect(() => marks.forgetOld()).not.toThrow();
    expect(marks.lastUse(REF)).toBeUndefined();
    expect(existsSync(notes)).toBe(true);
    expect(existsSync(join(planted, 'x'))).toBe(true);
  });

  it('a mark dated ahead (a clock stepped ahead on a host sharing the cache, a planted date) is a use now (never later than now), and forgotten once more than 30 days ahead', () => {
    const marks = new ImageUseMarks(join(work, 'g', 'images-used'));
    const soon = new Date(Date.now() + 3_600_000);
    const far = new Date(Date.now() + 400 * 86_400_000);
    marks.mark(REF, soon);
    marks.mark(`${REF}-far`, far);
    const now = new Date();
    expect(marks.lastUse(REF, now)!.getTime()).toBe(now.getTime());
    marks.forgetOld(now);
    expect(marks.lastUse(REF, now)).toBeDefined();
    // Kept its image for 400 days and never forgotten.
    expect(marks.lastUse(`${REF}-far`, now)).toBeUndefined();
  });

  it("looks at a bounded number of entries per pass (a co-user's million files in a shared cache held gc's memory and time), and forgets the rest on later passes", () => {
    const marks = new ImageUseMarks(join(work, 'h', 'images-used'));
    const old = new Date(Date.now() - 40 * 86_400_000);
    for (let i = 0; i < 30; i++) marks.mark(`${REF}-${i}`, old);
    const left = (): number => readdirSync(marks.dir).length;
    marks.forgetOld(new Date(), { maxEntries: 10 });
    expect(left()).toBe(20);
    marks.forgetOld(new Date(), { maxEntries: 10 });
    marks.forgetOld(new Date(), { maxEntries: 10 });
    expect(left()).toBe(0);
  });

  it('says why gc cannot read the marks (a symlink or file planted at images-used); none yet, or a directory, reads', () => {
    const base = join(work, 'u');
    mkdirSync(base);
    expect(new ImageUseMarks(join(base, 'none')).unreadable()).toBeUndefined();
    const marks = new ImageUseMarks(join(base, 'dir'));
    marks.mark(REF);
    expect(marks.unreadable()).toBeUndefined();
    mkdirSync(join(base, 'elsewhere'));
    symlinkSync(join(base, 'elsewhere'), join(base, 'link'));
    expect(new ImageUseMarks(join(base, 'link')).unreadable()).toBe(`${join(base, 'link')} is a symlink, not a directory`);
    writeFileSync(join(base, 'file'), '');
    expect(new ImageUseMarks(join(base, 'file')).unreadable()).toBe(`${join(base, 'file')} is a file, not a directory`);
  });

  it("a build that cannot mark (images-used planted as a symlink) says so once in a note, naming the directory; the events still pass on", () => {
    const base = join(work, 'v');
    mkdirSync(join(base, 'elsewhere'), { recursive: true });
    const dir = join(base, 'images-used');
    symlinkSync(join(base, 'elsewhere'), dir);
    const marks = new ImageUseMarks(dir);
    expect(marks.mark(REF)).toBe(`${dir} is not a directory (a symlink?); no marks are kept there`);
    const seen: DeployEvent[] = [];
    const onEvent = markingImageUse(marks, (event) => seen.push(event));
    onEvent({ type: 'image', phase: 'checking', tag: REF } as DeployEvent);
    onEvent({ type: 'image', phase: 'built', tag: REF } as DeployEvent);
    const notes = seen.filter((event) => event.type === 'note');
    expect(notes).toHaveLength(1);
    expect((notes[0] as { message: string }).message).toBe(
      `cannot mark the images this build uses (${dir} is not a directory (a symlink?); no marks are kept there): prebuilt gc sharing this cache directory cannot tell they are in use, and refuses to delete with a minimum age until ${dir} is a directory of yours.`,
    );
    expect(seen.filter((event) => event.type === 'image')).toHaveLength(2);
    expect(readdirSync(join(base, 'elsewhere'))).toEqual([]);
  });

  it('says when a pass left entries unread (more than it reads: junk a co-user put there keeps old marks past it), and not when it read them all', () => {
    const marks = new ImageUseMarks(join(work, 'w', 'images-used'));
    marks.mark(REF);
    for (let i = 0; i < 20; i++) writeFileSync(join(marks.dir, `junk${i}`), '');
    expect(marks.forgetOld(new Date(), { maxEntries: 10 })).toEqual({ unread: true, looked: 10 });
    expect(marks.forgetOld(new Date(), { maxEntries: 21 })).toBeUndefined();
  });

  // Run as another user (root may set any file's times): needs root to switch, setpriv, and the built dist.
  const DIST = fileURLToPath(new URL('../../dist/app/image-use-marks.js', import.meta.url));
  const cannotSwitch = process.getuid?.() !== 0 || !existsSync('/usr/bin/setpriv') || !existsSync(DIST);
  it.skipIf(cannotSwitch)("a build of another user of a shared cache moves a mark the first user made (only a file's owner may set its times: gc took the image for unused since the first user's build)", () => {
    chmodSync(work, 0o755);
    mkdirSync(join(work, 'f'), { mode: 0o755 });
    const dir = join(work, 'f', 'images-used');
    mkdirSync(dir);
    // Shared with the other user (as through a group): writable, no sticky bit.
    chmodSync(dir, 0o777);
    const marks = new ImageUseMarks(dir);
    const earlier = new Date(Date.now() - 2 * 3_600_000);
    marks.mark(REF, earlier);
    expect(marks.lastUse(REF)!.getTime()).toBe(earlier.getTime());
    const script = `import { ImageUseMarks } from ${JSON.stringify(DIST)};
new ImageUseMarks(${JSON.stringify(dir)}).mark(${JSON.stringify(REF)});`;
    const before = Date.now();
    execFileSync('/usr/bin/setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '--input-type=module', '-e', script], { encoding: 'utf8' });
    expect(marks.lastUse(REF)!.getTime()).toBeGreaterThanOrEqual(before - 1000);
    // Only the mark is left (no replacement's temporary file).
    expect(readdirSync(dir)).toHaveLength(1);
  });
});
