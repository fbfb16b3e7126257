import { closeSync, constants, fchmodSync, fstatSync, lstatSync, openSync, statSync, type Stats } from 'node:fs';
import { lstat } from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
import { EnvironmentError } from './errors.js';

/** A directory whose mode `securePrivatePath` changed, and why. */
export interface RepairedDirectory {
  path: string;
  /** Its mode before (permission bits). */
  from: number;
  /** Its mode now. */
  to: number;
}

/** A directory on the path that others can use to swap what lies below it, and that is not this user's to repair. */
export interface UnsafeDirectory {
  path: string;
  mode: number;
  uid: number;
  /** `owner`: one of prebuilt's own directories belongs to another user; `writable`: every user may write in it. */
  why: 'owner' | 'writable';
}

/** Writable by every user, without the sticky bit (which keeps others from renaming one's entries). */
const worldWritable = (mode: number): boolean => (mode & 0o002) !== 0 && (mode & 0o1000) === 0;

/** `0777`-style. */
export const octalMode = (mode: number): string => (mode & 0o7777).toString(8).padStart(4, '0');

/** Whether the resolved path `path` lies below the resolved directory `dir`. */
function isBelow(path: string, dir: string): boolean {
  return path.startsWith(dir === sep ? sep : `${dir}${sep}`);
}

/** Whether `link` (an lstat) is a symlink another user than `uid` and root owns: it leads where they choose. */
function othersSymlink(link: Stats, uid: number | undefined): boolean {
  return link.isSymbolicLink() && link.uid !== uid && link.uid !== 0;
}

/**
 * prebuilt's own names between `base` (excluded) and `dir` that are symlinks another user (not
 * root) owns, as `securePrivatePath` reports them (`owner`), found with an lstat each — for the
 * caller to refuse before it makes anything below `base`: `makeDirectory` would follow such a link
 * (planted in a sticky /tmp holding XDG_STATE_HOME) and make this user's directories where its
 * owner chose. A missing name ends the walk; a symlink of this user's own is followed.
 */
export async function foreignSymlinks(dir: string, base: string): Promise<UnsafeDirectory[]> {
  const uid = process.getuid?.();
  if (uid === undefined) return [];
  const target = resolve(dir);
  const top = resolve(base);
  if (target === top || !isBelow(target, top)) return [];
  const found: UnsafeDirectory[] = [];
  let current = top;
  for (const part of target.slice(top.length).split(sep).filter(Boolean)) {
    current = join(current, part);
    const link = await lstat(current).catch(() => undefined);
    if (!link) break;
    if (othersSymlink(link, uid)) found.push({ path: current, mode: link.mode & 0o7777, uid: link.uid, why: 'owner' });
  }
  return found;
}

/**
 * Checks the directories on the way to `dir`, which exists and holds something only this user may
 * change (the development registry's credential, the cache): whoever can write in a directory on
 * that path can rename what is below it away and plant their own. An older prebuilt made its
 * directories with the umask's mode (0777 under umask 000) and nothing repaired them.
 *
 * - prebuilt's own directories — `dir` and those between it and `base` (not `base` itself) — must
 *   belong to this user; one its group or every user may write in is made 0700 (`repaired`).
 * - `base` and the directories above it, up to `/`, are not prebuilt's: only one every user may
 *   write in without the sticky bit (`/tmp` has it) counts; this user's is repaired by removing
 *   that write bit and nothing else. A group-writable one is left alone: with a private group per
 *   user (`umask 002`), most are, harmlessly.
 *
 * What is another user's (or root's, for a non-root user) is not touched but returned in `unsafe`:
 * the caller refuses, or says so. Nothing is checked where the platform has no user ids (Windows).
 *
 * A mode is changed through the directory opened (fchmod), and only when it is the directory
 * checked (same device and inode; what its lstat saw, not a second look by name, which could follow
 * a symlink swapped in between the two): whoever can write in its parent could otherwise swap it for a
 * symlink between the check and the chmod, which followed the link — to a file of this user, or,
 * run as root, to any file of the machine. A path that changed so is an EnvironmentError. A
 * symlink on the path that another user (not root) owns — planted before the check, where they
 * may write — is returned in `unsafe` (`owner`), and then nothing is repaired: it leads where they
 * choose, a directory of this user's the check would take for prebuilt's and change.
 */
export async function securePrivatePath(
  dir: string,
  options: { base?: string } = {},
): Promise<{ repaired: RepairedDirectory[]; unsafe: UnsafeDirectory[] }> {
  return securePrivatePathSync(dir, options);
}

/**
 * {@link securePrivatePath}, synchronously (a few system calls per directory on the path): for
 * callers that must stay synchronous, such as an image registry's factory reading a credential.
 */
export function securePrivatePathSync(
  dir: string,
  options: { base?: string } = {},
): { repaired: RepairedDirectory[]; unsafe: UnsafeDirectory[] } {
  const repaired: RepairedDirectory[] = [];
  const unsafe: UnsafeDirectory[] = [];
  const uid = process.getuid?.();
  if (uid === undefined) return { repaired, unsafe };
  const target = resolve(dir);
  const base = resolve(options.base ?? dirname(target));
  const own = target === base || isBelow(target, base);
  // Every directory is looked at before any is changed: a symlink of another user's on the path
  // (planted where they may write) leads where they choose — to a directory of this user's, which a
  // repair would change — so with one there, nothing is.
  const repairs: { path: string; found: Stats; from: number; to: number }[] = [];
  let foreignLink = false;
  for (let current = target, mine = own && target !== base; ; ) {
    const link = lstatSync(current);
    if (othersSymlink(link, uid)) {
      unsafe.push({ path: current, mode: link.mode & 0o7777, uid: link.uid, why: 'owner' });
      foreignLink = true;
    } else {
      // What the lstat saw, unless it was a symlink (this user's or root's, followed): a second look
      // by name could follow a symlink swapped in since, to a directory the repair then took for this one.
      const found = link.isSymbolicLink() ? statSync(current) : link;
      const mode = found.mode & 0o7777;
      if (mine) {
        if (found.uid !== uid) unsafe.push({ path: current, mode, uid: found.uid, why: 'owner' });
        else if ((mode & 0o022) !== 0) repairs.push({ path: current, found, from: mode, to: 0o700 });
      } else if (worldWritable(mode)) {
        if (found.uid !== uid) unsafe.push({ path: current, mode, uid: found.uid, why: 'writable' });
        else repairs.push({ path: current, found, from: mode, to: mode & ~0o002 });
      }
    }
    const parent = dirname(current);
    if (parent === current) break;
    current = parent;
    mine = mine && current !== base;
  }
  if (foreignLink) return { repaired, unsafe };
  for (const { path, found, from, to } of repairs) {
    chmodChecked(path, found, to);
    repaired.push({ path, from, to });
  }
  return { repaired, unsafe };
}

/** Sets the mode of the directory at `path` when it is still the one `checked` described; else an EnvironmentError. */
function chmodChecked(path: string, checked: { dev: number; ino: number; mode: number }, mode: number): void {
  const changed = (cause?: unknown): EnvironmentError =>
    new EnvironmentError(`${path} changed while prebuilt checked who may write in it (it is no longer the directory checked), so its mode was not changed.`, {
      ...(cause === undefined ? {} : { cause }),
      hint: 'Someone who can write in its parent directory may be swapping it: see who owns the parent and make it writable by you alone, then try again.',
    });
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_DIRECTORY);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOTDIR' || code === 'ENOENT' || code === 'ELOOP') throw changed(error);
    // Yours, but not readable by you (0333): it is opened to change its mode safely, which needs read.
    if (code === 'EACCES' || code === 'EPERM') {
      throw new EnvironmentError(
        `${path} (yours, mode ${octalMode(checked.mode)}) may be written by other users, and prebuilt cannot make it private: it opens the directory to change its mode safely, and you may not read it.`,
        { cause: error, hint: `Make it private yourself (chmod 700 ${path}, or chmod o-w ${path} if it must stay shared with its group), then try again.` },
      );
    }
    throw error;
  }
  try {
    const now = fstatSync(fd);
    if (now.dev !== checked.dev || now.ino !== checked.ino) throw changed();
    fchmodSync(fd, mode);
  } finally {
    closeSync(fd);
  }
}

/** Who, besides its owner, may write in a directory of `mode` (its group's or every user's write bit set), for a message. */
export function writersOf(mode: number): 'every user' | 'its group' {
  return (mode & 0o002) !== 0 ? 'every user' : 'its group';
}

/** One sentence saying what `securePrivatePath` repaired and why. */
export function repairedDirectoryNote(repaired: RepairedDirectory, what: string): string {
  return (
    `${repaired.path} (yours) could be written by ${writersOf(repaired.from)} (mode ${octalMode(repaired.from)}), so they could rename ${what} away and plant their own: ` +
    `prebuilt made it ${octalMode(repaired.to)}.`
  );
}

/**
 * The words for an {@link UnsafeDirectory} `securePrivatePath` found, for the caller's message:
 * `who`, the start of a clause naming who can act on it — `/x belongs to another user (uid 65534),
 * who can` or `every user may write in /x (mode 0777, uid 0), so they can` — and `fix`, a sentence
 * without its end telling its owner what to do, which the caller ends with its own other way.
 */
export function unsafeDirectoryWords(unsafe: UnsafeDirectory): { who: string; fix: string } {
  const { path, mode, uid } = unsafe;
  return unsafe.why === 'owner'
    ? { who: `${path} belongs to another user (uid ${uid}), who can`, fix: `Remove it (its owner or root can: \`rm -r ${path}\`) so prebuilt makes it again as yours` }
    : { who: `every user may write in ${path} (mode ${octalMode(mode)}, uid ${uid}), so they can`, fix: `Ask its owner to run \`chmod o-w ${path}\` (or \`chmod +t ${path}\`)` };
}
