/**
 * Repodata of conda channels, fetched over HTTP(S) (or read from `file://`), cached on disk.
 *
 * A cached copy is used as is while the server's `Cache-Control: max-age` says it is fresh,
 * counted from when it was fetched (a copy fetched "later" than now, the clock set back since, is
 * not fresh); after that it is revalidated with `If-None-Match` / `If-Modified-Since` (a 304 costs nothing).
 * Within one process each URL is fetched at most once.
 */
import { readFile, stat } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import {
  BODY_LIMITS,
  CancelledError,
  NetworkError,
  ResolutionError,
  createLogger,
  errorMessage,
  netFetch,
  DEFAULT_REPODATA_MAX_MIB,
  REPODATA_MAX_SIZE_ENV,
  repodataMaxBytes,
  sha256Hex,
  type NetResponse,
  type NetworkTimeouts,
  type UrlCredentials,
  writeFileAtomic,
  readCacheFile,
} from '@prebuilt/core';
import { CACHE_DIR_SETTING, cacheDirPreparation } from './cache-dir.js';
import { sourceFetchError } from './unreachable-source.js';

const log = createLogger('conda:repodata');

interface CacheMeta {
  url: string;
  etag?: string;
  lastModified?: string;
  /** Epoch ms until which the copy is fresh without asking. */
  freshUntil: number;
  /**
   * Epoch ms when the copy was fetched or last revalidated. A copy is fresh only from then on: one
   * fetched while the clock was ahead (set back since) would otherwise read as fresh until the clock
   * caught up — a year ahead, a year of locks against stale repodata. Absent in metadata written by
   * earlier versions: then the copy is revalidated (a 304 costs nothing).
   */
  fetchedAt?: number;
}

/** Whether the copy `meta` describes may be used without asking the channel, by this clock. */
function fresh(meta: CacheMeta, now = Date.now()): boolean {
  return typeof meta.fetchedAt === 'number' && meta.fetchedAt <= now && now < meta.freshUntil;
}

/** Repodata text of one channel subdir, or null when the channel has no such subdir (404). */
export type RepodataText = Buffer | null;

export interface RepodataCacheOptions {
  /** Directory for cached repodata, made private to its user (0700) when missing (see `prepareDir`); omit to cache in memory only. */
  dir?: string;
  /**
   * Whether `dir` is made private to its user (0700) when missing; default true. False where `dir`
   * is a subdirectory of a cache directory already prepared (the resolver's `<cache>/repodata`):
   * it is then made with the umask's mode, as the cache's other subdirectories are, so a cache
   * shared on purpose through its group (setgid, group-writable, umask 002) stays writable by the
   * group — made 0700 by the first user, it refused every other user's repodata.
   */
  prepareDir?: boolean;
  /** Refetch even when the cached copy is fresh. */
  refresh?: boolean;
  fetch?: typeof fetch;
  signal?: AbortSignal;
  /** Credentials of the configured channels, sent as Basic auth to their own origin only. */
  credentials?: UrlCredentials;
  /** Idle timeout and deadline (default from the environment). */
  timeouts?: NetworkTimeouts;
  /** Bound of one repodata.json, in bytes (default {@link repodataMaxBytes}). */
  maxBytes?: number;
}

function maxAgeMs(cacheControl: string | null): number {
  if (!cacheControl || /no-cache|no-store/i.test(cacheControl)) return 0;
  const match = /max-age=(\d+)/i.exec(cacheControl);
  return match ? Number(match[1]) * 1000 : 0;
}

export class RepodataCache {
  readonly #memory = new Map<string, Promise<RepodataText>>();
  readonly #options: RepodataCacheOptions;
  /** Makes `dir` (when missing) private to its user before the first copy is written there (unless `prepareDir` is false). */
  readonly #prepareDir: (() => Promise<void>) | undefined;

  constructor(options: RepodataCacheOptions = {}) {
    this.#options = options;
    this.#prepareDir = options.dir && options.prepareDir !== false ? cacheDirPreparation(options.dir, log) : undefined;
  }

  /** `<channel>/<subdir>/repodata.json`, cached. Unreachable or failing → ResolutionError with URL and cause. */
  get(channel: string, subdir: string): Promise<RepodataText> {
    const url = `${channel.replace(/\/+$/, '')}/${subdir}/repodata.json`;
    let pending = this.#memory.get(url);
    if (!pending) {
      pending = this.#load(url);
      this.#memory.set(url, pending);
      pending.catch(() => this.#memory.delete(url));
    }
    return pending;
  }

  async #load(url: string): Promise<RepodataText> {
    if (url.startsWith('file:')) return this.#loadFile(url);
    const dir = this.#options.dir;
    const key = sha256Hex(url).slice(0, 32);
    const bodyPath = dir ? join(dir, `${key}.json`) : undefined;
    const metaPath = dir ? join(dir, `${key}.meta.json`) : undefined;
    const meta = metaPath ? await readMeta(metaPath, url) : undefined;
    const cached = (): Promise<Buffer | undefined> => readCached(bodyPath, this.#options.maxBytes ?? repodataMaxBytes());
    if (meta && !this.#options.refresh && fresh(meta)) {
      const body = await cached();
      if (body !== undefined) {
        log('fresh from cache: %s', url);
        return body;
      }
    }

    const response = await this.#request(url, meta);
    const fetchedAt = Date.now();
    const freshUntil = fetchedAt + maxAgeMs(response.headers.get('cache-control'));
    if (response.status === 304 && meta) {
      const body = await cached();
      if (body !== undefined) {
        log('not modified: %s', url);
        if (metaPath) {
          await this.#prepareDir?.();
          await writeFileAtomic(metaPath, JSON.stringify({ ...meta, freshUntil, fetchedAt }), { setting: CACHE_DIR_SETTING });
        }
        return body;
      }
    }
    if (response.status === 404) {
      await response.cancel();
      log('no such subdir (404): %s', url);
      return null;
    }
    if (response.status < 200 || response.status >= 300) {
      await response.prefix(BODY_LIMITS.error);
      throw new ResolutionError(`Conda channel answered ${response.status} ${response.statusText} for ${url}.`, {
        hint: 'Check the channel URL (METAFLOW_PREBUILT_CONDA_CHANNELS, or channel::package in a decorator) and any credentials it needs.',
      });
    }
    const body = await this.#readBody(url, response);
    checkRepodata(url, body, response);
    if (dir && bodyPath && metaPath) {
      await this.#prepareDir?.();
      await writeFileAtomic(bodyPath, body, { setting: CACHE_DIR_SETTING });
      await writeFileAtomic(metaPath, JSON.stringify(nextMeta(url, fetchedAt, freshUntil, response)), { setting: CACHE_DIR_SETTING });
    }
    log('fetched %s (%d bytes)', url, body.length);
    return body;
  }

  /** GET the repodata, conditional on the cached copy's validators. */
  async #request(url: string, meta: CacheMeta | undefined): Promise<NetResponse> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (meta?.etag) headers['if-none-match'] = meta.etag;
    if (meta?.lastModified) headers['if-modified-since'] = meta.lastModified;
    const credentials = this.#options.credentials;
    try {
      // A channel configured with a token in its path (/t/<token>/) gets it back here, and only here.
      return await netFetch(credentials ? credentials.requestUrl(url) : url, {
        headers,
        what: 'repodata',
        ...(this.#options.signal ? { signal: this.#options.signal } : {}),
        ...(this.#options.fetch ? { fetch: this.#options.fetch } : {}),
        ...(this.#options.timeouts ? { timeouts: this.#options.timeouts } : {}),
        ...(credentials ? { authorize: (hop: URL) => credentials.authorizationFor(hop) } : {}),
      });
    } catch (error) {
      throw this.#failure(url, error, () =>
        sourceFetchError(error, {
          service: `conda channel ${new URL(url).origin}`,
          request: `GET ${url}`,
          hint: 'Check the channel URL (METAFLOW_PREBUILT_CONDA_CHANNELS, or channel::package in a decorator) and your network or proxy settings.',
        }),
      );
    }
  }

  /** The whole body, within the repodata bound. */
  async #readBody(url: string, response: NetResponse): Promise<Buffer> {
    try {
      return Buffer.from(await response.bytes(this.#options.maxBytes ?? repodataMaxBytes()));
    } catch (error) {
      throw this.#failure(url, error, () => new ResolutionError(`Reading repodata from ${url} failed: ${errorMessage(error)}.`, { cause: error }));
    }
  }

  /** A failed read: cancelled by the caller, a NetworkError of the channel, or `other`. */
  #failure(url: string, error: unknown, other: () => Error): Error {
    if (this.#options.signal?.aborted) return new CancelledError(`Reading ${url} was cancelled.`, { cause: this.#options.signal.reason });
    if (error instanceof NetworkError) return this.#networkError(url, error);
    return other();
  }

  /** A stalled, endless or oversize channel answer: a failure of the channel (exit 1), naming it. */
  #networkError(url: string, error: NetworkError): NetworkError {
    const hint =
      error.reason === 'too-large'
        ? `A repodata.json is bounded at ${REPODATA_MAX_SIZE_ENV} MiB (default ${DEFAULT_REPODATA_MAX_MIB}); check the channel URL (METAFLOW_PREBUILT_CONDA_CHANNELS), or raise the bound.`
        : error.hint;
    return new NetworkError(`Conda channel: GET ${url} failed: ${error.message}.`, error, { cause: error, ...(hint ? { hint } : {}) });
  }

  async #loadFile(url: string): Promise<RepodataText> {
    const path = fileURLToPath(url);
    try {
      await stat(path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw new ResolutionError(`Cannot read conda channel file ${path}: ${errorMessage(error)}.`, { cause: error });
    }
    return readFile(path);
  }
}

/** The cached copy's metadata, if it is for this URL and readable. */
async function readMeta(metaPath: string, url: string): Promise<CacheMeta | undefined> {
  try {
    const text = await readCacheFile(metaPath, 64 * 1024);
    if (text === undefined) return undefined;
    const meta = JSON.parse(text.toString('utf8')) as CacheMeta;
    return meta.url === url ? meta : undefined;
  } catch {
    return undefined;
  }
}

/** The cached body (a FIFO or link planted at its name, or one over the bound, reads as none: see cache-file.ts). */
async function readCached(bodyPath: string | undefined, maxBytes: number): Promise<Buffer | undefined> {
  return bodyPath ? readCacheFile(bodyPath, maxBytes) : undefined;
}

/**
 * A proxy's HTML error page or a cut-off answer is not repodata: say so, and do not cache it.
 * (A cheap check of the first and last bytes; a full parse of a large repodata.json is costly.)
 */
function checkRepodata(url: string, body: Buffer, response: NetResponse): void {
  const text = body.toString('utf8', 0, Math.min(body.length, 64)).trimStart();
  const tail = body.toString('utf8', Math.max(0, body.length - 64)).trimEnd();
  if (!text.startsWith('{') || !tail.endsWith('}')) {
    const looksLike = /^<(!doctype|html)/i.test(text) ? 'an HTML page' : text === '' ? 'an empty body' : 'something that is not JSON (or is cut off)';
    throw new ResolutionError(`Conda channel answered ${looksLike} instead of repodata JSON for ${url} (status ${response.status}, content-type ${response.headers.get('content-type') ?? 'none'}).`, {
      hint: 'Check the channel URL (METAFLOW_PREBUILT_CONDA_CHANNELS, or channel::package in a decorator): a proxy or login page may be answering instead of the channel.',
    });
  }
}

/** The metadata stored with a fetched copy: its freshness and validators. */
function nextMeta(url: string, fetchedAt: number, freshUntil: number, response: NetResponse): CacheMeta {
  const next: CacheMeta = { url, freshUntil, fetchedAt };
  const etag = response.headers.get('etag');
  const lastModified = response.headers.get('last-modified');
  if (etag) next.etag = etag;
  if (lastModified) next.lastModified = lastModified;
  return next;
}
