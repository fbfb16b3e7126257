/** prebuilt's cache directory and its setting live in core (the CLI needs them without loading this package). */
import { prepareCacheDir, type Logger } from '@prebuilt/core';

export { CACHE_DIR_SETTING, prebuiltCacheDir } from '@prebuilt/core';

/**
 * Prepares the cache directory `dir` once, the first time it is called (later calls wait on the
 * same): core's prepareCacheDir makes it private to its user (0700) when it is missing, so the
 * resolver used as a library — not only through the CLI, which prepares the cache before it locks
 * — never makes it with the umask's mode. The notes about a directory other users may write in are
 * logged (library code never prints; the CLI says it itself).
 */
export function cacheDirPreparation(dir: string, log: Logger): () => Promise<void> {
  let prepared: Promise<void> | undefined;
  return () =>
    (prepared ??= prepareCacheDir(dir).then((notes) => {
      for (const note of notes) log('%s', note);
    }));
}
