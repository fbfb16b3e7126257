import { stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { makeDirectory } from './make-directory.js';

/** The setting that moves the cache directory (named when its disk is full). */
export const CACHE_DIR_SETTING = 'METAFLOW_PREBUILT_CACHE_DIR';

/**
 * prebuilt's cache directory: METAFLOW_PREBUILT_CACHE_DIR, else `$XDG_CACHE_HOME/prebuilt`,
 * else `~/.cache/prebuilt`. Holds repodata, solve results, packages and build locks; safe to
 * delete at any time. Made private to its user when prebuilt makes it ({@link prepareCacheDir}).
 */
export function prebuiltCacheDir(env: Record<string, string | undefined> = process.env): string {
  const explicit = env.METAFLOW_PREBUILT_CACHE_DIR?.trim();
  if (explicit) return resolve(explicit);
  const xdg = env.XDG_CACHE_HOME?.trim();
  // XDG says relative paths are invalid and must be ignored.
  if (xdg && xdg.startsWith('/')) return join(xdg, 'prebuilt');
  return join(homedir(), '.cache', 'prebuilt');
}

/**
 * Makes the cache directory `dir` when it is missing, private to its user (0700, and so are the
 * missing parents it makes, whatever the umask, as XDG asks; existing ones are left as they are),
 * and returns a note when it exists and other users may write in it (group- or world-writable
 * without the sticky bit): anyone who can write there can plant files a build reads, links into an
 * image or waits on. The note says the risk and the fix; a cache shared on purpose (between hosts or
 * users) keeps working. A directory that cannot be made or looked at gets
 * no note: whoever writes in it first reports that, naming the setting.
 */
export async function prepareCacheDir(dir: string): Promise<string | undefined> {
  try {
    await makeDirectory(dir, { mode: 0o700 });
    const mode = (await stat(dir)).mode;
    return sharedWritable(mode) ? sharedCacheNote(dir, mode) : undefined;
  } catch {
    return undefined;
  }
}

/** Writable by the group or by others, without the sticky bit (which keeps others from replacing one's files). */
function sharedWritable(mode: number): boolean {
  return (mode & 0o022) !== 0 && (mode & 0o1000) === 0;
}

function sharedCacheNote(dir: string, mode: number): string {
  const who = (mode & 0o002) !== 0 ? 'every user' : 'its group';
  return (
    `the cache directory ${dir} (mode ${(mode & 0o7777).toString(8).padStart(4, '0')}) can be written by ${who}: ` +
    `whoever can write there can plant or replace files a build reads or puts in an image. ` +
    `Keep it private (chmod 700 ${dir}), or set ${CACHE_DIR_SETTING} to a directory only you can write; a cache shared on purpose keeps working.`
  );
}
