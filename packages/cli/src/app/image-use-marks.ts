/**
 * Which image tags builds on this machine used lately, for `prebuilt gc`'s minimum age: a build
 * marks each image it checks, reuses or pushes (`<cache dir>/images-used/<hash of the tag>`, its
 * mtime the last use) as it works — the mark is made before the registry is asked, so a gc that
 * finds no mark before it deletes ran before the build asked: the build then finds the image gone
 * and builds it again. gc keeps an image whose tag was marked within its minimum age, reading the
 * marks once for the plan and again just before each deletion.
 *
 * Only builds sharing the cache directory are seen (this machine, or hosts sharing it as a volume);
 * best effort: a mark that cannot be written (a read-only cache) is logged, never fails the build.
 * Another user's mark (a cache shared through its group) is replaced by this user's, whose times
 * only its owner may set.
 * In a cache shared with other users, `images-used` is used only while it is a directory (a symlink
 * planted there by a co-user is no directory of marks: gc would have removed a month-old file of the
 * victim's wherever it pointed), and gc forgets only the files named as marks are.
 *
 * What cannot be checked is never taken for unused: an `images-used` that is there but no directory
 * of marks this user can read (a symlink or file planted at its name, a directory it may not look in)
 * is {@link ImageUseMarks.unreadable}, and gc with a minimum age then deletes nothing (it said
 * "unused" of every image, and deleted those running builds had just named); a build that cannot
 * mark says so in a note ({@link markingImageUse}).
 */
import { createHash, randomBytes } from 'node:crypto';
import { accessSync, closeSync, constants, lstatSync, lutimesSync, mkdirSync, opendirSync, openSync, renameSync, rmSync, unlinkSync, writeSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { createLogger, errorMessage, prebuiltCacheDir, type DeployEvent } from '@prebuilt/core';

const log = createLogger('prebuilt:image-use');

/** Marks unused for this long (or dated this far ahead) are removed by gc. */
const FORGET_AFTER_MS = 30 * 24 * 3_600_000;

/** Entries of `images-used` one gc pass looks at, at most: a mark per image tag builds used in 30 days is far fewer. */
const FORGET_SCAN_MAX = 100_000;

/** A mark's name: the first 40 hex digits of its tag's sha256 (and a replacement's, left by a build killed before its rename). */
const MARK_NAME = /^[0-9a-f]{40}(\.[0-9a-z]+-[0-9a-f]{8}\.tmp)?$/;

export class ImageUseMarks {
  readonly dir: string;
  #made = false;

  constructor(dir: string) {
    this.dir = dir;
  }

  static of(env: Record<string, string | undefined>): ImageUseMarks {
    return new ImageUseMarks(join(prebuiltCacheDir(env), 'images-used'));
  }

  #path(ref: string): string {
    return join(this.dir, createHash('sha256').update(ref).digest('hex').slice(0, 40));
  }

  /** The directory of marks as it is now when it is one (not a symlink to one, not a file); else undefined. */
  #dirStats(): Stats | undefined {
    const stats = lstatSync(this.dir, { throwIfNoEntry: false });
    return stats?.isDirectory() ? stats : undefined;
  }

  /**
   * Why gc cannot read the marks, as a clause (`<dir> is a symlink, not a directory`); undefined
   * when it can, or when there are none yet (no `images-used`: no build sharing this cache ran).
   */
  unreadable(): string | undefined {
    let stats: Stats | undefined;
    try {
      stats = lstatSync(this.dir, { throwIfNoEntry: false });
      if (stats === undefined) return undefined;
      if (stats.isDirectory()) {
        accessSync(this.dir, constants.R_OK | constants.X_OK);
        return undefined;
      }
    } catch (error) {
      return `${this.dir} cannot be read (${errorMessage(error)})`;
    }
    return `${this.dir} is ${stats.isSymbolicLink() ? 'a symlink' : 'a file'}, not a directory`;
  }

  /**
   * Records that a build uses the image `ref` (`host/repository:tag`) now. Synchronous, a few system
   * calls. Never throws: returns why it could not mark (the mark then protects nothing), else undefined.
   */
  mark(ref: string, now: Date = new Date()): string | undefined {
    const path = this.#path(ref);
    try {
      if (!this.#made) {
        mkdirSync(this.dir, { recursive: true });
        if (!this.#dirStats()) return cannotMark(ref, `${this.dir} is not a directory (a symlink?); no marks are kept there`);
        this.#made = true;
      }
    } catch (error) {
      return cannotMark(ref, `${this.dir}: ${errorMessage(error)}`);
    }
    try {
      // A mark there already: its mtime moved (lutimes: a symlink planted at the name gets its own
      // times changed, never its target's; and a symlink is no mark).
      lutimesSync(path, now, now);
      return undefined;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      // Another user's mark (a cache shared through its group): only its owner may set its times, and
      // left as it was it kept that user's last use, so gc deleted the image this build is about to name.
      if (code === 'EPERM' || code === 'EACCES') return this.#replace(path, ref, now);
      if (code !== 'ENOENT') return cannotMark(ref, `${path}: ${errorMessage(error)}`);
    }
    try {
      // A new mark names its image (for whoever looks in the directory); O_EXCL never follows a symlink.
      writeMark(path, ref, now);
      return undefined;
    } catch (error) {
      return cannotMark(ref, `${path}: ${errorMessage(error)}`);
    }
  }

  /** Puts a mark of this user's, dated `now`, in place of the one at `path` (a rename: allowed in a directory the group may write in without the sticky bit). */
  #replace(path: string, ref: string, now: Date): string | undefined {
    const temporary = `${path}.${process.pid.toString(36)}-${randomBytes(4).toString('hex')}.tmp`;
    try {
      writeMark(temporary, ref, now);
      renameSync(temporary, path);
      return undefined;
    } catch (error) {
      rmSync(temporary, { force: true });
      return cannotMark(ref, `${path} (another user's mark): ${errorMessage(error)}`);
    }
  }

  /**
   * When a build on this machine last used `ref`; undefined when none did (or the mark is gone). A
   * mark dated ahead of `now` (a clock ahead, on a host sharing the cache) is a use now.
   */
  lastUse(ref: string, now: Date = new Date()): Date | undefined {
    if (!this.#dirStats()) return undefined;
    const stats = lstatSync(this.#path(ref), { throwIfNoEntry: false });
    if (!stats?.isFile()) return undefined;
    return stats.mtimeMs > now.getTime() ? now : stats.mtime;
  }

  /**
   * Removes marks older than 30 days, or dated more than 30 days ahead (best effort, never throws;
   * the first `maxEntries` entries, default 100 000, of the directory a pass): regular files named as marks are,
   * in the directory of marks while it is the directory first read (a co-user of a shared cache who
   * swaps it for a symlink meanwhile stops the pass). Returns how many entries it left unread (more
   * than `maxEntries`: while they stay, a pass does not get past them), else undefined.
   */
  forgetOld(now: Date = new Date(), options: { maxEntries?: number } = {}): { unread: true; looked: number } | undefined {
    const dir = this.#dirStats();
    if (!dir) return undefined;
    let names: string[];
    let more: boolean;
    try {
      ({ names, more } = firstNames(this.dir, options.maxEntries ?? FORGET_SCAN_MAX));
    } catch {
      return undefined;
    }
    for (const name of names) {
      if (!MARK_NAME.test(name)) continue;
      const path = join(this.dir, name);
      try {
        const stats = lstatSync(path, { throwIfNoEntry: false });
        // Dated more than 30 days ahead too (a clock stepped ahead, a planted date): such a mark kept its image for as long, never forgotten.
        if (!stats?.isFile() || Math.abs(now.getTime() - stats.mtimeMs) <= FORGET_AFTER_MS) continue;
        const still = this.#dirStats();
        if (still?.ino !== dir.ino || still.dev !== dir.dev) {
          log('%s changed while old marks were removed; stopped', this.dir);
          return undefined;
        }
        unlinkSync(path);
      } catch (error) {
        log('cannot remove the old mark %s: %s', path, errorMessage(error));
      }
    }
    return more ? { unread: true, looked: names.length } : undefined;
  }
}

/**
 * The first `max` names of a directory, read a few at a time: a co-user of a shared cache can put
 * any number of entries in `images-used`, and gc would have read every name into memory and looked
 * at each. The rest are looked at by later passes (those removed make room); `more`: there were more.
 */
function firstNames(dir: string, max: number): { names: string[]; more: boolean } {
  const names: string[] = [];
  const handle = opendirSync(dir);
  try {
    let entry = handle.readSync();
    for (; entry !== null && names.length < max; entry = handle.readSync()) names.push(entry.name);
    return { names, more: entry !== null };
  } finally {
    handle.closeSync();
  }
}

/** Logs why `ref` could not be marked, and returns it. */
function cannotMark(ref: string, why: string): string {
  log('cannot mark %s as used: %s', ref, why);
  return why;
}

/** Writes a new mark at `path` (O_EXCL: never through a symlink), dated `at`. */
function writeMark(path: string, ref: string, at: Date): void {
  const fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o644);
  try {
    writeSync(fd, `${ref}\n`);
  } finally {
    closeSync(fd);
  }
  lutimesSync(path, at, at);
}

/** The phases of an image a deploy marks: `checking` comes before the registry is asked; `present` and `built` when the image map will name it. */
const MARKED = new Set(['checking', 'present', 'built']);

/**
 * A deploy's event handler that marks each image the deploy checks, reuses or pushes, then passes
 * the event on; the first mark it cannot make is told in a note (once): gc on this machine then
 * cannot see that this build uses its images.
 */
export function markingImageUse(marks: ImageUseMarks, onEvent: ((event: DeployEvent) => void) | undefined): (event: DeployEvent) => void {
  let told = false;
  return (event) => {
    const failed = event.type === 'image' && MARKED.has(event.phase) ? marks.mark(event.tag) : undefined;
    if (failed !== undefined && !told) {
      told = true;
      onEvent?.({
        type: 'note',
        message: `cannot mark the images this build uses (${failed}): prebuilt gc sharing this cache directory cannot tell they are in use, and refuses to delete with a minimum age until ${marks.dir} is a directory of yours.`,
      });
    }
    onEvent?.(event);
  };
}
