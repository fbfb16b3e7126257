/**
 * Which image tags builds on this machine used lately, for `prebuilt gc`'s minimum age: a build
 * marks each image it checks, reuses or pushes (`<cache dir>/images-used/<hash of the tag>`, its
 * mtime the last use) as it works — the mark is made before the registry is asked, so a gc that
 * finds no mark before it deletes ran before the build asked: the build then finds the image gone
 * and builds it again. gc keeps an image whose tag was marked within its minimum age, reading the
 * marks once for the plan and again just before each deletion.
 *
 * Only builds sharing the cache directory are seen (this machine, or hosts sharing it as a volume);
 * best effort: a mark that cannot be written (a read-only cache, another user's mark in a shared
 * one) is logged, never fails the build.
 */
import { createHash } from 'node:crypto';
import { closeSync, constants, lstatSync, lutimesSync, mkdirSync, openSync, readdirSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { createLogger, errorMessage, prebuiltCacheDir, type DeployEvent } from '@prebuilt/core';

const log = createLogger('prebuilt:image-use');

/** Marks unused for this long are removed by gc. */
const FORGET_AFTER_MS = 30 * 24 * 3_600_000;

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

  /** Records that a build uses the image `ref` (`host/repository:tag`) now. Synchronous, a few system calls. */
  mark(ref: string, now: Date = new Date()): void {
    const path = this.#path(ref);
    try {
      // A mark there already: its mtime moved (lutimes: a symlink planted at the name gets its own
      // times changed, never its target's; and a symlink is no mark).
      lutimesSync(path, now, now);
      return;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') return log('cannot mark %s as used in %s: %s', ref, path, errorMessage(error));
    }
    try {
      if (!this.#made) mkdirSync(this.dir, { recursive: true });
      this.#made = true;
      // A new mark names its image (for whoever looks in the directory); O_EXCL never follows a symlink.
      const fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o644);
      try {
        writeSync(fd, `${ref}\n`);
      } finally {
        closeSync(fd);
      }
      lutimesSync(path, now, now);
    } catch (error) {
      log('cannot mark %s as used in %s: %s', ref, path, errorMessage(error));
    }
  }

  /** When a build on this machine last used `ref`; undefined when none did (or the mark is gone). */
  lastUse(ref: string): Date | undefined {
    const stats = lstatSync(this.#path(ref), { throwIfNoEntry: false });
    return stats?.isFile() ? stats.mtime : undefined;
  }

  /** Removes marks older than 30 days (best effort). */
  forgetOld(now: Date = new Date()): void {
    let names: string[];
    try {
      names = readdirSync(this.dir);
    } catch {
      return;
    }
    for (const name of names) {
      const path = join(this.dir, name);
      const stats = lstatSync(path, { throwIfNoEntry: false });
      if (stats && now.getTime() - stats.mtimeMs > FORGET_AFTER_MS) rmSync(path, { force: true });
    }
  }
}

/** The phases of an image a deploy marks: `checking` comes before the registry is asked; `present` and `built` when the image map will name it. */
const MARKED = new Set(['checking', 'present', 'built']);

/** A deploy's event handler that marks each image the deploy checks, reuses or pushes, then passes the event on. */
export function markingImageUse(marks: ImageUseMarks, onEvent: ((event: DeployEvent) => void) | undefined): (event: DeployEvent) => void {
  return (event) => {
    if (event.type === 'image' && MARKED.has(event.phase)) marks.mark(event.tag);
    onEvent?.(event);
  };
}
