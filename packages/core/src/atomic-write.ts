import { randomBytes } from 'node:crypto';
import { open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { diskFullError } from './disk-full.js';
import { createLogger } from './logger.js';
import { makeDirectory, unwritableDirectoryError } from './make-directory.js';

const log = createLogger('core:atomic-write');

/**
 * Writes a file atomically and durably: the data goes to a temp file beside the target, is flushed
 * to disk (fsync), renamed over the target, and the directory is flushed too, so the rename itself
 * survives a power cut. A process killed mid-write leaves the previous file intact; a power cut
 * leaves the previous file or the new one, never an empty or partial one (ext4 in its default
 * data=ordered mode mostly saves a rename over an existing file, but not a new file; xfs and btrfs
 * differ — hence both flushes). The directories `makeDirectory` creates on the way are not flushed:
 * after a power cut such a file may be missing, as if never written, never damaged.
 */
export async function writeFileAtomic(
  path: string,
  data: string | Uint8Array,
  /**
   * `setting`: the setting that moves this file elsewhere, named when its disk is full or its
   * directory cannot be written; `hint`: what to do when its directory cannot be written, in place of
   * the setting's.
   */
  options: { mode?: number; setting?: string; hint?: string } = {},
): Promise<void> {
  const dir = dirname(path);
  const where = { dir, doing: `writing ${path}`, ...(options.setting ? { setting: options.setting } : {}) };
  /** `path`: what could not be written, in place of the error's own (the temp file's name, which the user never sees). */
  const full = (error: unknown, path?: string): unknown =>
    diskFullError(error, where) ?? unwritableDirectoryError(error, { ...where, ...(options.hint ? { hint: options.hint } : {}), ...(path ? { path } : {}) }) ?? error;
  await makeDirectory(dir).catch((error: unknown) => {
    throw full(error);
  });
  const temp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const handle = await open(temp, 'w', options.mode ?? 0o644).catch((error: unknown) => {
    // The directory refused a new file: named as such.
    throw full(error, dir);
  });
  try {
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, path);
  } catch (error) {
    await rm(temp, { force: true });
    throw full(error);
  }
  await syncDirectory(dir);
}

/**
 * Flushes a directory's entries to disk (fsync on the directory), so a file just renamed or linked
 * into it is there after a power cut. Best effort: a file system that cannot fsync a directory
 * (EINVAL, ENOTSUP, EISDIR; Windows' EPERM) or a directory that cannot be opened for reading
 * (mode 0333) is skipped with a log line — the write itself succeeded.
 */
export async function syncDirectory(dir: string): Promise<void> {
  let handle;
  try {
    handle = await open(dir, 'r');
    await handle.sync();
  } catch (error) {
    log('cannot flush the directory %s to disk: %s', dir, (error as Error).message);
  } finally {
    await handle?.close().catch(() => undefined);
  }
}
