/**
 * Files derived from one package's extraction and kept with its extraction-cache entry
 * (`<entry>/derived/<key>/`): a package's compiled and re-stamped pycs, which are a pure function
 * of its files, the env's prefix, the python version and the mtime (the caller's `key` hashes
 * them). A rebuild hard-links them into the prefix as it links the package's own files, instead
 * of writing thousands of new files.
 *
 * A set holds numbered files (`0`, `1`, …; a slot may be empty) with the normalised mode 0644 and
 * the env's mtime, and a manifest recording each file's size, inode, mode and mtime, checked as
 * the entry's own files are (extraction-cache.ts): a set with a file changed, missing or replaced
 * is moved aside and removed (discard-aside.ts, as a damaged entry is) and the caller derives the
 * files again — it is never served, and never seen half removed.
 *
 * Power cuts: as an entry's files, a set's are not flushed to disk as they are written; the manifest
 * records the boot they were written in and each file's sha256 (hashed from memory as it is
 * written), and a set written in another boot is checked by content once before its first use in
 * this boot: re-stamped with this boot when every file matches, else discarded and derived again.
 */
import { readFileSync } from 'node:fs';
import { rename, rm, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { createLogger, currentBootId, errorMessage, makeDirectory, markCacheFileUsed, readCacheEntry, sha256Hex, writeFileAtomic } from '@prebuilt/core';
import { discardAside } from './discard-aside.js';
import { sameStamp, stampOf, type FileStamp } from './extraction-cache.js';
import { writeSealedFileSync } from './sealed-file.js';

const log = createLogger('conda:derived-files');

/** Part of the manifest: bump when what a set holds changes (v2: each file's sha256 and the boot). */
const FORMAT = 'derived-v2';

type DerivedStamp = FileStamp & { sha256: string };

interface DerivedManifest {
  format: typeof FORMAT;
  /** The boot the set was written or last checked in (absent: unknown, without /proc). */
  boot?: string;
  /** One slot per derived file, in the caller's order; null: nothing derived for that slot. */
  files: (DerivedStamp | null)[];
}

/** Whether every file of a set written in another boot still holds the bytes it was written with. */
function contentsIntact(dir: string, manifest: DerivedManifest): boolean {
  return manifest.files.every((stamp, i) => {
    if (stamp === null) return true;
    try {
      return typeof stamp.sha256 === 'string' && sha256Hex(readFileSync(join(dir, String(i)))) === stamp.sha256;
    } catch {
      return false;
    }
  });
}

/** The most a set's manifest may take (a stamp is ~100 bytes): a larger one reads as damaged. */
const MAX_MANIFEST_BYTES = 64 * 1024 * 1024;

/** The directory of one derived set of an entry. */
export function derivedSetDir(entryDir: string, key: string): string {
  return join(entryDir, 'derived', key);
}

/**
 * The files of the set at `dir` (one path per slot, undefined for an empty slot) when the set is
 * intact and has `count` slots; undefined when there is none — a damaged set is moved aside and removed.
 */
export async function readDerivedFiles(dir: string, count: number): Promise<(string | undefined)[] | undefined> {
  // Only a regular file is read (core's cache-file.ts): a FIFO, symlink or directory put at its name
  // is a damaged set, never followed, never waited on.
  const read = await readCacheEntry(join(dir, 'manifest.json'), MAX_MANIFEST_BYTES);
  if (read === 'missing') return undefined;
  let manifest: DerivedManifest | undefined;
  try {
    manifest = read === 'unusable' ? undefined : (JSON.parse(read.bytes.toString('utf8')) as DerivedManifest);
  } catch {
    manifest = undefined;
  }
  const boot = currentBootId();
  const otherBoot = boot !== undefined && manifest?.boot !== boot;
  const intact =
    manifest?.format === FORMAT &&
    Array.isArray(manifest.files) &&
    manifest.files.length === count &&
    manifest.files.every((stamp, i) => stamp === null || sameStamp(stampOf(join(dir, String(i))), stamp)) &&
    (!otherBoot || contentsIntact(dir, manifest));
  if (!intact) {
    // Moved aside, then removed: never removed in place, where a build that has just renamed a fresh
    // set into its name, or is linking from it, would see half a set.
    log('derived set %s does not match its manifest; moving it aside and removing it', dir);
    await discardAside(dir).catch((error: unknown) => log('cannot remove derived set %s: %s', dir, errorMessage(error)));
    return undefined;
  }
  if (otherBoot) {
    // Checked: re-stamped with this boot (best effort: checked again next time when it cannot be).
    await writeFileAtomic(join(dir, 'manifest.json'), JSON.stringify({ ...manifest, boot })).catch((error: unknown) => log('cannot re-stamp %s: %s', dir, errorMessage(error)));
  }
  await markCacheFileUsed(join(dir, 'manifest.json'));
  return manifest!.files.map((stamp, i) => (stamp === null ? undefined : join(dir, String(i))));
}

/**
 * Keeps `files` as the set at `dir` (written beside it, renamed into place once complete) and
 * returns their paths as {@link readDerivedFiles} does; undefined when the set cannot be written
 * (the caller then writes the files into the prefix itself).
 */
export async function storeDerivedFiles(dir: string, files: readonly (Uint8Array | undefined)[], mtime: number): Promise<(string | undefined)[] | undefined> {
  const partial = `${dir}.partial-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    await makeDirectory(partial);
    const stamps: (DerivedStamp | null)[] = [];
    for (const [i, data] of files.entries()) {
      if (!data) {
        stamps.push(null);
        continue;
      }
      // Written and sealed (mode, mtime, stamp) through its descriptor: one synchronous call each.
      stamps.push({ ...writeSealedFileSync(join(partial, String(i)), data, { mode: 0o644, mtime }), sha256: sha256Hex(data) });
    }
    const boot = currentBootId();
    const manifest: DerivedManifest = { format: FORMAT, ...(boot ? { boot } : {}), files: stamps };
    await writeFile(join(partial, 'manifest.json'), JSON.stringify(manifest));
    try {
      // Never remove a set in place: another build may be linking from it.
      await rename(partial, dir);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw error;
      log('derived set %s already there: using it', dir);
      await rm(partial, { recursive: true, force: true }).catch(() => undefined);
      return readDerivedFiles(dir, files.length);
    }
    return files.map((data, i) => (data ? join(dir, String(i)) : undefined));
  } catch (error) {
    log('cannot keep derived files in %s: %s', dir, errorMessage(error));
    await rm(partial, { recursive: true, force: true }).catch(() => undefined);
    return undefined;
  }
}
