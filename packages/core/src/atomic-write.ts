import { randomBytes } from 'node:crypto';
import { open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { diskFullError } from './disk-full.js';
import { makeDirectory, unwritableDirectoryError } from './make-directory.js';

/**
 * Writes a file atomically: the data goes to a temp file beside the target, is flushed to disk,
 * and is renamed over the target. A process killed mid-write leaves the previous file intact.
 */
export async function writeFileAtomic(
  path: string,
  data: string | Uint8Array,
  /** `setting`: the setting that moves this file elsewhere, named when its disk is full. */
  options: { mode?: number; setting?: string } = {},
): Promise<void> {
  const dir = dirname(path);
  const where = { dir, doing: `writing ${path}`, ...(options.setting ? { setting: options.setting } : {}) };
  const full = (error: unknown): unknown => diskFullError(error, where) ?? unwritableDirectoryError(error, where) ?? error;
  await makeDirectory(dir).catch((error: unknown) => {
    throw full(error);
  });
  const temp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const handle = await open(temp, 'w', options.mode ?? 0o644).catch((error: unknown) => {
    throw full(error);
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
}
