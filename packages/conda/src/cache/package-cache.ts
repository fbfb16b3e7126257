import { constants, createReadStream } from 'node:fs';
import { lstat, open, rename, rm, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  CACHE_DIR_SETTING,
  acquireFileLock,
  BODY_LIMITS,
  CancelledError,
  ConfigError,
  createLogger,
  diskFullError,
  errorMessage,
  fileKind,
  InputError,
  makeDirectory,
  mapLimit,
  unwritableDirectoryError,
  netFetch,
  networkTimeouts,
  PrebuiltError,
  prepareCacheDir,
  urlCredentialsFromEnv,
  type LockedPackage,
  type NetResponse,
  type NetworkTimeouts,
  type UrlCredentials,
} from '@prebuilt/core';
import { prebuiltCacheDir } from '../resolve/cache-dir.js';
import { PackageDownloadError, PackageIntegrityError } from './errors.js';
import { archiveHasher, sha256File, type ArchiveDigests } from './sha256-file.js';
import { checkEntry, forgetEntry, recordVerified } from './verified-entry.js';

const log = createLogger('conda:cache');

/** Environment variable naming the cache directory: core's CACHE_DIR_SETTING, under the name this package has always exported. */
export { CACHE_DIR_SETTING as CACHE_DIR_ENV };

/**
 * The cache directory: the explicit option, then `$METAFLOW_PREBUILT_CACHE_DIR`, then
 * `$XDG_CACHE_HOME/prebuilt`, then `~/.cache/prebuilt` (the same directory the resolver caches
 * repodata in). Package files live in its `pkgs/` subdirectory.
 */
export function defaultCacheDir(options: { cacheDir?: string; env?: Record<string, string | undefined> } = {}): string {
  return options.cacheDir ? resolve(options.cacheDir) : prebuiltCacheDir(options.env ?? process.env);
}

/** Download progress, reported after every chunk and every finished file. */
export interface DownloadProgress {
  /** Files present in the cache (already there or finished now). */
  filesDone: number;
  filesTotal: number;
  /** Bytes present in the cache, of `bytesTotal`. */
  bytesDone: number;
  bytesTotal: number;
  /** Bytes transferred over the network in this call. */
  bytesDownloaded: number;
  /** Files that were already cached (and still matched the lock) when the call started. */
  filesCached: number;
  /** The file this event is about. */
  filename: string;
  event: 'cached' | 'started' | 'data' | 'finished';
}

/**
 * Something the user should know that is not an error: a cached entry that did not match the lock
 * (removed and downloaded again), or a wait for another process's download of the same file.
 */
export interface CacheNote {
  kind: 'entry-mismatch' | 'waiting';
  /** The cache entry (or its lock file) concerned. */
  path: string;
  filename: string;
  message: string;
}

export interface PackageCacheOptions {
  /** Cache directory; see {@link defaultCacheDir}. */
  cacheDir?: string;
  env?: Record<string, string | undefined>;
  /** Downloads running at once (default 6). */
  concurrency?: number;
  /** Attempts per file on network errors, each resuming where the last stopped (default 3). */
  attempts?: number;
  /** The fetch implementation (default: global fetch). */
  fetch?: typeof fetch;
  /** Receives notes (see {@link CacheNote}); the CLI renders them. */
  onNote?: (note: CacheNote) => void;
  /**
   * Credentials for package URLs, by origin (default: those in the channel and index URLs of `env`,
   * see `urlCredentialsFromEnv`): a locked URL never carries them, the download gets them back.
   */
  credentials?: UrlCredentials;
}

export interface EnsureOptions {
  onProgress?: (progress: DownloadProgress) => void;
  signal?: AbortSignal;
}

export interface EnsureResult {
  /** sha256 → absolute path of the verified file in the cache. */
  paths: Map<string, string>;
  /**
   * sha256 → the file's md5, hashed with its sha256 when it was downloaded or last verified (kept
   * in its verified record, trusted while its metadata is unchanged: see verified-entry.ts). A
   * file another process downloaded while this one waited has none here.
   */
  md5: Map<string, string>;
  filesDownloaded: number;
  bytesDownloaded: number;
  filesCached: number;
}

type Downloadable = Pick<LockedPackage, 'url' | 'sha256' | 'size' | 'filename'>;

/** One file to download: its sha256, what the lock says of it, and where its progress goes. */
interface DownloadJob {
  sha: string;
  pkg: Downloadable;
  signal: AbortSignal | undefined;
  onBytes: (n: number) => void;
  onStart: () => void;
}

const SHA256 = /^[0-9a-f]{64}$/;
/** Cache entries checked at once (each an lstat and a small read; libuv's pool runs 4 at a time by default). */
const CHECK_CONCURRENCY = 16;

/**
 * A content-addressed cache of package files: `<cacheDir>/pkgs/<sha256>`.
 *
 * A file enters the cache only after its sha256 and size matched the lock, by a rename from
 * `<sha256>.partial`, so a half-downloaded entry is never used. An interrupted download resumes
 * from its partial file with an HTTP Range request. Processes on this machine download one file
 * one at a time (a lock file `<sha256>.lock` beside it); a process that waited finds it cached.
 * Every call checks the entries it returns against the lock (`<sha256>.verified` beside each, see
 * verified-entry.ts): one that no longer matches is removed, noted (`onNote`) and downloaded again.
 */
export class PackageCache {
  readonly dir: string;
  readonly concurrency: number;
  readonly attempts: number;
  readonly #fetch: typeof fetch;
  readonly #onNote: ((note: CacheNote) => void) | undefined;
  readonly #credentials: UrlCredentials;
  readonly #timeouts: NetworkTimeouts;
  readonly #inflight = new Map<string, Promise<ArchiveDigests | undefined>>();

  constructor(options: PackageCacheOptions = {}) {
    this.dir = defaultCacheDir(options);
    this.concurrency = Math.max(1, options.concurrency ?? 6);
    this.attempts = Math.max(1, options.attempts ?? 3);
    this.#fetch = options.fetch ?? globalThis.fetch;
    this.#onNote = options.onNote;
    this.#credentials = options.credentials ?? urlCredentialsFromEnv(options.env ?? process.env);
    this.#timeouts = networkTimeouts({ env: options.env ?? process.env });
  }

  /** Where the verified file with this sha256 lives (whether or not it is there yet). */
  pathFor(sha256: string): string {
    return join(this.dir, 'pkgs', sha256.toLowerCase());
  }

  /** Whether a verified file with this sha256 is in the cache (a regular file: never a symlink put at its name). */
  async has(sha256: string): Promise<boolean> {
    try {
      return (await lstat(this.pathFor(sha256))).isFile();
    } catch {
      return false;
    }
  }

  /**
   * Makes every file present and verified in the cache, downloading at most `concurrency` at once.
   * Rejects with PackageIntegrityError (hash mismatch), PackageDownloadError or CancelledError.
   */
  async ensure(packages: readonly Downloadable[], options: EnsureOptions = {}): Promise<EnsureResult> {
    const { signal, onProgress } = options;
    const unique = uniqueBySha256(packages);
    // A cache directory made here is private to its user (0700). Whether an existing one is writable
    // by others is said once by the command, before it locks (prepareCacheDir's note): not again here.
    await prepareCacheDir(this.dir);
    await makeDirectory(join(this.dir, 'pkgs')).catch((error: unknown) => {
      const where = { dir: this.dir, doing: 'creating the package cache', setting: CACHE_DIR_SETTING };
      throw diskFullError(error, where) ?? unwritableDirectoryError(error, where) ?? error;
    });

    const state = {
      filesDone: 0,
      filesTotal: unique.size,
      bytesDone: 0,
      bytesTotal: [...unique.values()].reduce((sum, p) => sum + p.size, 0),
      bytesDownloaded: 0,
      filesCached: 0,
    };
    const emit = (filename: string, event: DownloadProgress['event']): void => {
      onProgress?.({ ...state, filename, event });
    };

    const paths = new Map([...unique.keys()].map((sha) => [sha, this.pathFor(sha)] as const));
    const md5 = new Map<string, string>();
    const matches = await this.#checkEntries([...unique]);
    const pending: [string, Downloadable][] = [];
    for (const [i, [sha, pkg]] of [...unique].entries()) {
      const known = matches[i];
      if (known !== undefined) {
        md5.set(sha, known);
        state.filesDone += 1;
        state.filesCached += 1;
        state.bytesDone += pkg.size;
        emit(pkg.filename, 'cached');
      } else {
        pending.push([sha, pkg]);
      }
    }

    let filesDownloaded = 0;
    let next = 0;
    let failed: unknown;
    const worker = async (): Promise<void> => {
      while (next < pending.length && failed === undefined) {
        const [sha, pkg] = pending[next++]!;
        try {
          const downloaded = await this.#ensureOne({
            sha,
            pkg,
            signal,
            onBytes: (bytes) => {
              state.bytesDone += bytes;
              state.bytesDownloaded += bytes;
              emit(pkg.filename, 'data');
            },
            onStart: () => emit(pkg.filename, 'started'),
          });
          if (downloaded) {
            filesDownloaded += 1;
            md5.set(sha, downloaded.md5);
          }
          state.filesDone += 1;
          emit(pkg.filename, 'finished');
        } catch (error) {
          // A full disk is no download failure: name the cache directory and the setting that moves it.
          failed ??= diskFullError(error, { dir: join(this.dir, 'pkgs'), doing: `downloading ${pkg.filename}`, setting: CACHE_DIR_SETTING }) ?? error;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.concurrency, pending.length) }, worker));
    if (failed !== undefined) throw failed;
    return { paths, md5, filesDownloaded, bytesDownloaded: state.bytesDownloaded, filesCached: state.filesCached };
  }

  /** Each entry's md5 when it is in the cache and still the locked file (else undefined), checked concurrently (a few syscalls each; a hash only when one changed), in the given order. */
  async #checkEntries(entries: readonly [string, Downloadable][]): Promise<(string | undefined)[]> {
    return mapLimit(entries, CHECK_CONCURRENCY, ([sha, pkg]) => this.#stillMatches(sha, pkg));
  }

  /**
   * Whether the cached entry of `sha` is the locked file: checked against the record kept beside
   * it when it was verified (size, inode, mtime, ctime), and hashed again when they differ (see
   * verified-entry.ts). An entry that does not match — tampered with, truncated, corrupt — is
   * removed with a note naming it, and downloaded again like a missing one. Returns the entry's
   * md5 when it matches.
   */
  async #stillMatches(sha: string, pkg: Downloadable): Promise<string | undefined> {
    const entry = this.pathFor(sha);
    const check = await checkEntry(entry, { sha256: sha, size: pkg.size });
    if (check.state === 'ok') {
      if (check.hashed) log('verified %s by hashing it (its metadata changed since it was last verified)', entry);
      return check.md5;
    }
    if (check.state === 'mismatch') {
      const message = `The cached package ${entry} (${pkg.filename}) does not match the lock: ${check.problem}. It was removed and is downloaded again.`;
      log('%s', message);
      this.#onNote?.({ kind: 'entry-mismatch', path: entry, filename: pkg.filename, message });
      await forgetEntry(entry);
    }
    return undefined;
  }

  /** Downloads one file unless another call in this process already does; its digests when it downloaded. */
  #ensureOne(job: DownloadJob): Promise<ArchiveDigests | undefined> {
    const { sha } = job;
    const running = this.#inflight.get(sha);
    if (running) return running.then(() => undefined);
    const promise = this.#download(job).finally(() => this.#inflight.delete(sha));
    this.#inflight.set(sha, promise);
    return promise;
  }

  async #download(job: DownloadJob): Promise<ArchiveDigests | undefined> {
    const { sha, pkg, signal } = job;
    const final = this.pathFor(sha);
    job.onStart();
    const lock = await acquireFileLock(`${final}.lock`, {
      purpose: `download ${pkg.url}`,
      onWait: (_owner, holder) =>
        this.#onNote?.({ kind: 'waiting', path: `${final}.lock`, filename: pkg.filename, message: `Waiting for ${pkg.filename}, which another prebuilt process downloads: ${holder}.` }),
      ...(signal ? { signal } : {}),
    });
    try {
      if (lock.waitedFor !== undefined && (await this.has(sha))) return undefined;
      return await this.#downloadLocked(job);
    } finally {
      await lock.release();
    }
  }

  /** Downloads `job`'s file into `<entry>.partial`, checks it against the lock and moves it into place; under the entry's lock. */
  async #downloadLocked(job: DownloadJob, fresh = false): Promise<ArchiveDigests> {
    const { sha, pkg, signal } = job;
    const final = this.pathFor(sha);
    const partial = `${final}.partial`;
    // A partial file left by an earlier (killed) process is resumed; if the result is wrong, that
    // partial was spoiled: it is discarded and the file downloaded once more from the start.
    if (pkg.url.startsWith('file:')) await checkLocalFile(pkg);
    const resumed = !fresh && (await partialSize(partial)) > 0;
    let got: ArchiveDigests & { size: number };
    for (let attempt = 1; ; attempt += 1) {
      throwIfAborted(signal, pkg.url);
      try {
        got = await this.#transfer(job, partial);
        break;
      } catch (error) {
        if (error instanceof PackageIntegrityError) {
          await rm(partial, { force: true });
          throw error;
        }
        if (error instanceof PackageDownloadError && error.status !== undefined && error.status < 500) throw error;
        // (isInstance is PrebuiltError's: true for every PrebuiltError, a stalled read too; the code tells.)
        const cancelled = PrebuiltError.isInstance(error) && error.code === 'cancelled';
        if (cancelled || attempt >= this.attempts) {
          if (cancelled) throw error;
          throw error instanceof PackageDownloadError
            ? error
            : new PackageDownloadError(`Downloading ${pkg.url} failed after ${attempt} attempts: ${PrebuiltError.isInstance(error) ? error.message : errorMessage(error)}.`, { url: pkg.url }, {
                cause: error,
                hint: 'Check that the channel or index is reachable and run again; the download resumes where it stopped.',
              });
        }
        log('attempt %d for %s failed: %s; resuming', attempt, pkg.url, errorMessage(error));
      }
    }
    // Hashed as it streamed in (the bytes of an earlier partial file first): no second pass.
    const { sha256: actual, md5, size } = got;
    if (actual !== sha || size !== pkg.size) {
      await rm(partial, { force: true });
      if (resumed) {
        log('%s resumed from an earlier partial file does not match; downloading it again', pkg.url);
        return this.#downloadLocked(job, true);
      }
      throw new PackageIntegrityError(
        `${pkg.url} does not match the lock: expected sha256 ${sha} (${pkg.size} bytes), got sha256 ${actual} (${size} bytes). The downloaded file was discarded.`,
        { url: pkg.url, expectedSha256: sha, actualSha256: actual },
        { hint: 'The file on the server changed since the lock was made, or the download was corrupted. Re-create the lock with `prebuilt lock`, or try again.' },
      );
    }
    await rename(partial, final);
    // Recorded after the rename (which moves the ctime), still under the download's lock.
    await recordVerified(final, sha, md5);
    log('cached %s as %s', pkg.url, sha);
    return { sha256: actual, md5 };
  }

  /**
   * Appends the rest of the file to `partial` (resuming with a Range request when it exists),
   * hashing every byte on the way; a server that sends more than the locked size is stopped at
   * once. Returns the sha256 and size of the whole partial file.
   */
  async #transfer({ pkg, signal, onBytes }: DownloadJob, partial: string): Promise<ArchiveDigests & { size: number }> {
    let have = await partialSize(partial);
    if (have > pkg.size) {
      await rm(partial, { force: true });
      have = 0;
    }
    // The sha256 checked against the lock and the md5 of the conda-meta record, from the same bytes.
    const hash = archiveHasher();
    const download: PartialDownload = { pkg, partial, hash, signal, onBytes };
    const hashed = async (): Promise<void> => {
      for await (const chunk of createReadStream(partial, { end: have - 1 })) hash.update(chunk as Buffer);
    };
    if (have === pkg.size && have > 0) {
      await hashed();
      return { ...hash.digest(), size: have };
    }

    if (pkg.url.startsWith('file:')) {
      if (have > 0) await hashed();
      const size = await copyFrom(createReadStream(fileURLToPath(pkg.url), { start: have }), download, have);
      return { ...hash.digest(), size };
    }
    const headers: Record<string, string> = {};
    if (have > 0) headers.range = `bytes=${have}-`;
    let response: NetResponse;
    const credentials = this.#credentials;
    try {
      // A locked URL never carries a channel's token (/t/<token>/): the request gets it back from the setting.
      response = await netFetch(credentials.requestUrl(pkg.url), {
        headers,
        what: `download of ${pkg.filename}`,
        fetch: this.#fetch,
        timeouts: this.#timeouts,
        // Credentials of a configured channel or index, to its own origin only (a redirect elsewhere gets none).
        authorize: (hop) => credentials.authorizationFor(hop),
        ...(signal ? { signal } : {}),
      });
    } catch (error) {
      throwIfAborted(signal, pkg.url);
      throw error;
    }
    if (response.status === 416) {
      // Range not satisfiable: the partial file is stale. Start over.
      await response.cancel();
      await rm(partial, { force: true });
      throw new Error('the server refused to resume (HTTP 416)');
    }
    if (response.status !== 200 && response.status !== 206) {
      await response.prefix(BODY_LIMITS.error);
      throw new PackageDownloadError(`Downloading ${pkg.url} failed: HTTP ${response.status} ${response.statusText}.`, {
        url: pkg.url,
        status: response.status,
      }, {
        hint: response.status === 404
          ? 'The file is gone from the channel or index. Re-create the lock with `prebuilt lock`.'
          : 'Check the URL, credentials and proxy settings, and run again.',
      });
    }
    const append = response.status === 206 && have > 0;
    if (have > 0) log('%s %s at byte %d', append ? 'resuming' : 'restarting', pkg.url, have);
    if (append) await hashed();
    const size = await copyFrom(response.chunks(), download, append ? have : 0);
    return { ...hash.digest(), size };
  }
}

/** A download into its partial file: the package, the file, what hashes its bytes, its signal and its byte counter. */
interface PartialDownload {
  pkg: Downloadable;
  partial: string;
  hash: { update: (chunk: Uint8Array) => void };
  signal: AbortSignal | undefined;
  onBytes: (n: number) => void;
}

/**
 * Writes `source` to the partial file, hashing it: appended after the `start` bytes already there,
 * or from the beginning when `start` is 0; more than the locked size fails at once.
 */
async function copyFrom(source: AsyncIterable<Uint8Array>, download: PartialDownload, start: number): Promise<number> {
  const { pkg, partial: target, hash, signal, onBytes } = download;
  const append = start > 0;
  // Never through a symlink put at the partial file's name (see partialSize): O_NOFOLLOW refuses one made since.
  const handle = await open(target, constants.O_WRONLY | constants.O_CREAT | constants.O_NOFOLLOW | (append ? constants.O_APPEND : constants.O_TRUNC), 0o644);
  let size = start;
  try {
    for await (const chunk of source) {
      throwIfAborted(signal, target);
      size += chunk.byteLength;
      if (size > pkg.size) {
        throw new PackageIntegrityError(
          `${pkg.filename} (${pkg.url}) is larger than its locked size of ${pkg.size} bytes; the download was stopped and discarded.`,
          { url: pkg.url, expectedSha256: pkg.sha256, actualSha256: 'unknown (stopped at the locked size)' },
          { hint: 'The file on the server is not the one that was locked. Re-create the lock with `prebuilt lock --update` if the change is expected.' },
        );
      }
      hash.update(chunk);
      await handle.write(chunk);
      onBytes(chunk.byteLength);
    }
    await handle.sync();
  } finally {
    await handle.close();
  }
  return size;
}

/**
 * A `file:` URL of the lock must name a regular file: a lock (a cloned flow's, committed) naming
 * /dev/zero or /dev/urandom filled the cache's disk up to the locked size, a FIFO or /dev/stdin hung.
 */
async function checkLocalFile(pkg: Downloadable): Promise<void> {
  let path: string;
  try {
    path = fileURLToPath(pkg.url);
  } catch (error) {
    throw new InputError(`The lock names ${pkg.url} for ${pkg.filename}, which is not a valid file URL.`, { cause: error, hint: 'Re-create the lock with `prebuilt lock`.' });
  }
  const info = await stat(path).catch(() => undefined);
  if (info === undefined || info.isFile()) return; // a missing file fails as the copy's own error
  throw new InputError(`The lock names ${pkg.url} for ${pkg.filename}, which is ${fileKind(info)}, not a regular file.`, {
    hint: 'A package file: URL names a package file on this machine; re-create the lock with `prebuilt lock`.',
  });
}

/**
 * The size of the partial file of an earlier download, 0 when there is none. Anything there but a
 * regular file — a symlink another user of a shared cache directory planted at this public name
 * (the sha256 is in every lock file), pointing at a file of the user's that the resume would
 * append to — is removed (the link itself, never its target), and the download starts afresh.
 */
async function partialSize(partial: string): Promise<number> {
  const info = await lstat(partial).catch(() => undefined);
  if (info === undefined) return 0;
  if (info.isFile()) return info.size;
  log('%s is not a regular file; removed, downloading afresh', partial);
  await rm(partial, { force: true });
  return 0;
}

function throwIfAborted(signal: AbortSignal | undefined, what: string): void {
  if (signal?.aborted) throw new CancelledError(`Downloading ${what} was cancelled.`, { cause: signal.reason });
}

export { sha256File };

/** The packages by lowercase sha256, first of each kept; a lock entry without a valid sha256 is a ConfigError. */
function uniqueBySha256(packages: readonly Downloadable[]): Map<string, Downloadable> {
  const unique = new Map<string, Downloadable>();
  for (const pkg of packages) {
    const sha = pkg.sha256.toLowerCase();
    if (!SHA256.test(sha)) {
      throw new ConfigError(`The lock entry for ${pkg.filename} has no valid sha256 ('${pkg.sha256}').`, {
        hint: 'Re-create the lock with `prebuilt lock`.',
      });
    }
    if (!unique.has(sha)) unique.set(sha, pkg);
  }
  return unique;
}
