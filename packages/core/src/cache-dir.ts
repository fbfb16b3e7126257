import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

/** The setting that moves the cache directory (named when its disk is full). */
export const CACHE_DIR_SETTING = 'METAFLOW_PREBUILT_CACHE_DIR';

/**
 * prebuilt's cache directory: METAFLOW_PREBUILT_CACHE_DIR, else `$XDG_CACHE_HOME/prebuilt`,
 * else `~/.cache/prebuilt`. Holds repodata, solve results, packages and build locks; safe to
 * delete at any time.
 */
export function prebuiltCacheDir(env: Record<string, string | undefined> = process.env): string {
  const explicit = env.METAFLOW_PREBUILT_CACHE_DIR?.trim();
  if (explicit) return resolve(explicit);
  const xdg = env.XDG_CACHE_HOME?.trim();
  // XDG says relative paths are invalid and must be ignored.
  if (xdg && xdg.startsWith('/')) return join(xdg, 'prebuilt');
  return join(homedir(), '.cache', 'prebuilt');
}
