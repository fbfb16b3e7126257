/**
 * Manifests read from registries, kept by digest in the cache directory
 * (`<cache dir>/manifests/<sha256 hex>`), so an existence check that finds the digest it already
 * holds needs only a manifest HEAD: on Docker Hub a GET counts as a pull against the rate limit, a
 * HEAD does not (see RegistryClient.checkManifest).
 *
 * Only the bytes are kept, under the digest they hash to; a read hashes them again and takes them
 * only when they still do, so a file planted or damaged there (a cache shared with other users) is
 * a miss, never a manifest the registry did not serve. Entries are small (at most
 * {@link MAX_CACHED_MANIFEST_BYTES}), written atomically, read without following a symlink, their
 * mtime the last use; past {@link MAX_CACHED_MANIFESTS} entries, the least recently used go.
 * Trimming lists the directory, so it is not done on every write: a process lists it at its first
 * write, then counts what it writes and lists it again once that count passes the bound (trimming
 * to a tenth below it, so a full cache is not listed again at the next write) or after
 * {@link LIST_EVERY_WRITES} writes (entries other processes wrote are trimmed then).
 * Best effort: a cache that cannot be written (read-only, full) is logged, never fails a build.
 */
import { lstat, readdir, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { writeFileAtomic } from '../atomic-write.js';
import { prebuiltCacheDir } from '../cache-dir.js';
import { markCacheFileUsed, readCacheFile } from '../cache-file.js';
import { errorMessage } from '../errors.js';
import { createLogger } from '../logger.js';
import { makeDirectory } from '../make-directory.js';
import { IMAGE_DIGEST, sha256Digest } from './digest.js';

const log = createLogger('registry:manifest-cache');

/** A manifest larger than this is not kept (an env image's is a few KiB; an index of a few platforms less). */
export const MAX_CACHED_MANIFEST_BYTES = 256 * 1024;

/** Entries kept at most; the least recently used beyond go. */
export const MAX_CACHED_MANIFESTS = 2000;

/** Writes after which a process lists the cache directory again, however few entries it counts. */
export const LIST_EVERY_WRITES = 200;

/** A temp file of a write killed before its rename is removed once this old. */
const STALE_TEMP_MS = 3_600_000;

/** An entry's name (the digest's hex), and the temp file name writeFileAtomic gives one. */
const ENTRY_NAME = /^[0-9a-f]{64}$/;
const TEMP_NAME = /^\.[0-9a-f]{64}\.\d+\.[0-9a-f]{8}\.tmp$/;

/** The manifest cache's directory: `manifests/` in prebuilt's cache directory (METAFLOW_PREBUILT_CACHE_DIR, …). */
export function manifestCacheDir(env: Record<string, string | undefined>): string {
  return join(prebuiltCacheDir(env), 'manifests');
}

export interface ManifestCacheOptions {
  /** Entries kept at most (default {@link MAX_CACHED_MANIFESTS}). */
  maxEntries?: number;
  /** Writes after which the directory is listed again though the count is within the bound (default {@link LIST_EVERY_WRITES}). */
  listEveryWrites?: number;
}

/** What this process knows of a cache directory since it last listed it: shared by every ManifestCache of that directory. */
interface DirectoryCount {
  /** Entries the directory held after the last listing's trim. */
  listed: number;
  /** Writes since. */
  writes: number;
  /** A listing under way: writes meanwhile only count. */
  listing: boolean;
}

const counts = new Map<string, DirectoryCount>();

/**
 * Whether manifests may be written into `dir`: missing (made here, 0700), or this user's own — a
 * directory, or a symlink this user made. A symlink or directory another user of a shared cache
 * directory put at its name is not written through: the manifests of this user's (private) images
 * would land where that user chose, or in a directory that user reads.
 */
async function writableHere(dir: string): Promise<boolean> {
  const info = await lstat(dir).catch(() => undefined);
  if (info === undefined) return true;
  return (info.isDirectory() || info.isSymbolicLink()) && (process.getuid === undefined || info.uid === process.getuid());
}

export class ManifestCache {
  readonly dir: string;
  readonly #maxEntries: number;
  readonly #listEvery: number;

  constructor(dir: string, options: ManifestCacheOptions = {}) {
    this.dir = dir;
    this.#maxEntries = Math.max(1, options.maxEntries ?? MAX_CACHED_MANIFESTS);
    this.#listEvery = Math.max(1, options.listEveryWrites ?? LIST_EVERY_WRITES);
  }

  #path(digest: string): string {
    return join(this.dir, digest.slice('sha256:'.length));
  }

  /** The kept bytes of the manifest `digest` (`sha256:…`) when they hash to it; else undefined. */
  async read(digest: string): Promise<Uint8Array | undefined> {
    if (!IMAGE_DIGEST.test(digest)) return undefined;
    const path = this.#path(digest);
    const bytes = await readCacheFile(path, MAX_CACHED_MANIFEST_BYTES);
    if (!bytes) return undefined;
    const actual = sha256Digest(bytes);
    if (actual !== digest) {
      log('ignoring %s: its bytes hash to %s, not to the digest it is named by', path, actual);
      return undefined;
    }
    await markCacheFileUsed(path);
    return bytes;
  }

  /** Keeps `bytes` (read from a registry and checked to hash to `digest`), then trims the cache to its bound. Never throws. */
  async write(digest: string, bytes: Uint8Array): Promise<void> {
    if (!IMAGE_DIGEST.test(digest) || bytes.length > MAX_CACHED_MANIFEST_BYTES) return;
    if (sha256Digest(bytes) !== digest) return log('not keeping manifest %s: its bytes hash otherwise', digest);
    try {
      if (!(await writableHere(this.dir))) return log('not keeping manifest %s: %s is not a directory of this user (planted in a shared cache?)', digest, this.dir);
      // Made private (0700) when missing, as the cache directory is.
      await makeDirectory(this.dir, { mode: 0o700 });
      await writeFileAtomic(this.#path(digest), bytes);
    } catch (error) {
      return log('cannot keep manifest %s in %s: %s', digest, this.dir, errorMessage(error));
    }
    await this.#trimWhenDue();
  }

  /** Trims when this process has not listed the directory yet, counts more entries than the bound, or has written {@link LIST_EVERY_WRITES} since. */
  async #trimWhenDue(): Promise<void> {
    const key = resolve(this.dir);
    const count = counts.get(key);
    if (count) {
      count.writes += 1;
      if (count.listing || (count.listed + count.writes <= this.#maxEntries && count.writes < this.#listEvery)) return;
    }
    const listing: DirectoryCount = { listed: 0, writes: 0, listing: true };
    counts.set(key, listing);
    try {
      listing.listed = await this.#trim();
      listing.listing = false;
    } catch (error) {
      // Listed again at the next write.
      counts.delete(key);
      log('cannot trim %s: %s', this.dir, errorMessage(error));
    }
  }

  /**
   * Removes temp files left by killed writes, and the least recently used entries beyond the bound
   * (down to a tenth below it); returns the entries left. Only while the directory is one (not a
   * symlink planted in a shared cache), and only names it writes.
   */
  async #trim(): Promise<number> {
    if (!(await lstat(this.dir)).isDirectory()) throw new Error('it is not a directory');
    const names = await readdir(this.dir);
    const now = Date.now();
    for (const name of names.filter((n) => TEMP_NAME.test(n))) {
      const stats = await lstat(join(this.dir, name)).catch(() => undefined);
      if (stats?.isFile() && now - stats.mtimeMs > STALE_TEMP_MS) await rm(join(this.dir, name), { force: true });
    }
    const entries = names.filter((n) => ENTRY_NAME.test(n));
    if (entries.length <= this.#maxEntries) return entries.length;
    const dated = await Promise.all(entries.map(async (name) => ({ name, mtime: (await lstat(join(this.dir, name)).catch(() => undefined))?.mtimeMs ?? 0 })));
    dated.sort((a, b) => a.mtime - b.mtime);
    const keep = this.#maxEntries - Math.floor(this.#maxEntries / 10);
    const excess = dated.slice(0, dated.length - keep);
    log('%s holds %d manifests: removing the %d least recently used', this.dir, entries.length, excess.length);
    for (const { name } of excess) await rm(join(this.dir, name), { force: true });
    return keep;
  }
}
