import { stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { makeDirectory } from './make-directory.js';
import { octalMode, repairedDirectoryNote, securePrivatePath, unsafeDirectoryWords, writersOf, type UnsafeDirectory } from './private-path.js';

/** The setting that moves the cache directory (named when its disk is full). */
export const CACHE_DIR_SETTING = 'METAFLOW_PREBUILT_CACHE_DIR';

/**
 * prebuilt's cache directory: METAFLOW_PREBUILT_CACHE_DIR, else `$XDG_CACHE_HOME/prebuilt`,
 * else `~/.cache/prebuilt`. Holds repodata, solve results, packages and build locks; safe to
 * delete at any time. Made private to its user when prebuilt makes it ({@link prepareCacheDir}).
 */
export function prebuiltCacheDir(env: Record<string, string | undefined> = process.env): string {
  const explicit = env[CACHE_DIR_SETTING]?.trim();
  if (explicit) return resolve(explicit);
  const xdg = env.XDG_CACHE_HOME?.trim();
  // XDG says relative paths are invalid and must be ignored.
  if (xdg && xdg.startsWith('/')) return join(xdg, 'prebuilt');
  return join(homedir(), '.cache', 'prebuilt');
}

/**
 * Makes the cache directory `dir` when it is missing, private to its user (0700, and so are the
 * missing parents it makes, whatever the umask, as XDG asks), and returns notes:
 * - when it exists and other users may write in it (group- or world-writable without the sticky
 *   bit): anyone who can write there can plant files a build reads, links into an image or waits
 *   on. The note says the risk and the fix; a cache shared on purpose (between hosts or users)
 *   keeps working, its mode left as it is.
 * - when a directory above it can be written by every user (without the sticky bit), so anyone
 *   can rename the cache away and plant their own (an older prebuilt made the parents it made with
 *   the umask's mode, 0777 under umask 000): one of this user's loses that write bit, and a note
 *   says so; another user's is left as it is, and a note says the risk and the fix (core's
 *   securePrivatePath). Sharing the cache never needs that.
 * A directory that cannot be made or looked at gets no note: whoever writes in it first reports
 * that, naming the setting.
 */
export async function prepareCacheDir(dir: string): Promise<string[]> {
  try {
    await makeDirectory(dir, { mode: 0o700 });
    const { repaired, unsafe } = await securePrivatePath(dirname(resolve(dir)), { base: dirname(resolve(dir)) });
    const notes = repaired.map((r) => repairedDirectoryNote(r, "prebuilt's cache"));
    for (const u of unsafe) notes.push(unsafeParentNote(dir, u));
    const mode = (await stat(dir)).mode;
    if (sharedWritable(mode)) notes.push(sharedCacheNote(dir, mode));
    return notes;
  } catch {
    return [];
  }
}

function unsafeParentNote(dir: string, u: UnsafeDirectory): string {
  const { who, fix } = unsafeDirectoryWords(u);
  return (
    `${who} rename the cache directory ${dir} away and plant their own files, which a build reads or puts in an image. ` +
    `${fix}, or set ${CACHE_DIR_SETTING} to a directory only you can write.`
  );
}

/** Writable by the group or by others, without the sticky bit (which keeps others from replacing one's files). */
function sharedWritable(mode: number): boolean {
  return (mode & 0o022) !== 0 && (mode & 0o1000) === 0;
}

function sharedCacheNote(dir: string, mode: number): string {
  return (
    `the cache directory ${dir} (mode ${octalMode(mode)}) can be written by ${writersOf(mode)}: ` +
    `whoever can write there can plant or replace files a build reads or puts in an image. ` +
    `Keep it private (chmod 700 ${dir}), or set ${CACHE_DIR_SETTING} to a directory only you can write; a cache shared on purpose keeps working.`
  );
}
