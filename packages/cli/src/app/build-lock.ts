/** The inter-process build lock of one image tag, under the cache directory. */
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { CACHE_DIR_SETTING, acquireFileLock, diskFullError, prebuiltCacheDir, unwritableDirectoryError, type BuildLockHandle } from '@prebuilt/core';

/**
 * The inter-process build lock of one image tag: `<cache dir>/locks/build-<hash of tag>.lock`.
 * Two `prebuilt build` runs on this machine never build the same image at once; the second waits,
 * then finds the image in the registry.
 */
export function buildLockFor(env: Record<string, string | undefined>) {
  const dir = join(prebuiltCacheDir(env), 'locks');
  return async (image: { envId: string; tag: string }, options: { signal?: AbortSignal; onWait: (holder?: string) => void }): Promise<BuildLockHandle> => {
    const name = createHash('sha256').update(image.tag).digest('hex').slice(0, 32);
    const lock = await acquireFileLock(join(dir, `build-${name}.lock`), {
      purpose: `build ${image.tag}`,
      onWait: (_owner, holder) => options.onWait(holder),
      ...(options.signal ? { signal: options.signal } : {}),
    }).catch((error: unknown) => {
      // A full disk, or a directory this user cannot write (another user's cache, a read-only mount).
      const where = { dir, doing: `taking the build lock of ${image.tag}`, setting: CACHE_DIR_SETTING };
      throw diskFullError(error, where) ?? unwritableDirectoryError(error, where) ?? error;
    });
    return { waited: lock.waitedFor !== undefined, release: () => lock.release() };
  };
}
