/**
 * Removing a damaged cache directory (an extraction-cache entry, a derived pyc set) without a
 * moment where it is half there: it is renamed aside first — one atomic step, after which its
 * name is free and a reader finds either nothing or the fresh copy another build renamed into
 * place — then removed under the aside name. A crash in between leaves `<dir>.stale-…`, which the
 * cache's prune removes after a day; so does a removal that fails once the name is free — in a
 * cache shared by two users, one can rename the other's entry aside (the cache directory is
 * writable by both) but not empty its directories: that is no reason to fail a build that only
 * needed the name.
 */
import { randomBytes } from 'node:crypto';
import { rename, rm } from 'node:fs/promises';
import { createLogger, errorMessage } from '@prebuilt/core';

const log = createLogger('conda:cache');

/** Renames `dir` aside, then removes it (best effort: see the module comment); false when it was already gone. */
export async function discardAside(dir: string): Promise<boolean> {
  const aside = `${dir}.stale-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    await rename(dir, aside);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw error;
  }
  await rm(aside, { recursive: true, force: true }).catch((error: unknown) => log('cannot remove %s, left for a prune: %s', aside, errorMessage(error)));
  return true;
}
