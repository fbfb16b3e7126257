/**
 * Repodata of conda channels, fetched over HTTP(S) (or read from `file://`), cached on disk.
 *
 * A cached copy is used as is while the server's `Cache-Control: max-age` says it is fresh;
 * after that it is revalidated with `If-None-Match` / `If-Modified-Since` (a 304 costs nothing).
 * Within one process each URL is fetched at most once.
 */
import { mkdir, readFile, stat } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { CancelledError, ResolutionError, createLogger, errorMessage, sha256Hex } from '@prebuilt/core';
import { writeFileAtomic } from './write-atomic.js';

const log = createLogger('conda:repodata');

interface CacheMeta {
  url: string;
  etag?: string;
  lastModified?: string;
  /** Epoch ms until which the copy is fresh without asking. */
  freshUntil: number;
}

/** Repodata text of one channel subdir, or null when the channel has no such subdir (404). */
export type RepodataText = Buffer | null;

export interface RepodataCacheOptions {
  /** Directory for cached repodata; omit to cache in memory only. */
  dir?: string;
  /** Refetch even when the cached copy is fresh. */
  refresh?: boolean;
  fetch?: typeof fetch;
  signal?: AbortSignal;
}

function maxAgeMs(cacheControl: string | null): number {
  if (!cacheControl || /no-cache|no-store/i.test(cacheControl)) return 0;
  const match = /max-age=(\d+)/i.exec(cacheControl);
  return match ? Number(match[1]) * 1000 : 0;
}

export class RepodataCache {
  readonly #memory = new Map<string, Promise<RepodataText>>();
  readonly #options: RepodataCacheOptions;

  constructor(options: RepodataCacheOptions = {}) {
    this.#options = options;
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
    let meta: CacheMeta | undefined;
    if (metaPath) {
      try {
        meta = JSON.parse(await readFile(metaPath, 'utf8')) as CacheMeta;
        if (meta.url !== url) meta = undefined;
      } catch {
        meta = undefined;
      }
    }
    const cached = async (): Promise<Buffer | undefined> => {
      try {
        return bodyPath ? await readFile(bodyPath) : undefined;
      } catch {
        return undefined;
      }
    };
    if (meta && !this.#options.refresh && Date.now() < meta.freshUntil) {
      const body = await cached();
      if (body !== undefined) {
        log('fresh from cache: %s', url);
        return body;
      }
    }

    const headers: Record<string, string> = { accept: 'application/json' };
    if (meta?.etag) headers['if-none-match'] = meta.etag;
    if (meta?.lastModified) headers['if-modified-since'] = meta.lastModified;
    let response: Response;
    try {
      response = await (this.#options.fetch ?? fetch)(url, { headers, signal: this.#options.signal ?? null });
    } catch (error) {
      if (this.#options.signal?.aborted) throw new CancelledError(`Reading ${url} was cancelled.`, { cause: this.#options.signal.reason });
      const cause = (error as { cause?: unknown }).cause ?? error;
      throw new ResolutionError(`Cannot reach conda channel: GET ${url} failed: ${errorMessage(cause)}.`, {
        cause: error,
        hint: 'Check the channel URL (METAFLOW_PREBUILT_CONDA_CHANNELS) and your network or proxy settings.',
      });
    }
    const freshUntil = Date.now() + maxAgeMs(response.headers.get('cache-control'));
    if (response.status === 304 && meta) {
      const body = await cached();
      if (body !== undefined) {
        log('not modified: %s', url);
        if (metaPath) await writeFileAtomic(metaPath, JSON.stringify({ ...meta, freshUntil }));
        return body;
      }
    }
    if (response.status === 404) {
      await response.body?.cancel();
      log('no such subdir (404): %s', url);
      return null;
    }
    if (!response.ok) {
      await response.body?.cancel();
      throw new ResolutionError(`Conda channel answered ${response.status} ${response.statusText} for ${url}.`, {
        hint: 'Check the channel URL (METAFLOW_PREBUILT_CONDA_CHANNELS) and any credentials it needs.',
      });
    }
    let body: Buffer;
    try {
      body = Buffer.from(await response.arrayBuffer());
    } catch (error) {
      throw new ResolutionError(`Reading repodata from ${url} failed: ${errorMessage(error)}.`, { cause: error });
    }
    // A proxy's HTML error page or a cut-off answer is not repodata: say so, and do not cache it.
    // (A cheap check of the first and last bytes; a full parse of a large repodata.json is costly.)
    const text = body.toString('utf8', 0, Math.min(body.length, 64)).trimStart();
    const tail = body.toString('utf8', Math.max(0, body.length - 64)).trimEnd();
    if (!text.startsWith('{') || !tail.endsWith('}')) {
      const looksLike = /^<(!doctype|html)/i.test(text) ? 'an HTML page' : text === '' ? 'an empty body' : 'something that is not JSON (or is cut off)';
      throw new ResolutionError(`Conda channel answered ${looksLike} instead of repodata JSON for ${url} (status ${response.status}, content-type ${response.headers.get('content-type') ?? 'none'}).`, {
        hint: 'Check the channel URL (METAFLOW_PREBUILT_CONDA_CHANNELS): a proxy or login page may be answering instead of the channel.',
      });
    }
    if (dir && bodyPath && metaPath) {
      await mkdir(dir, { recursive: true });
      await writeFileAtomic(bodyPath, body);
      const next: CacheMeta = { url, freshUntil };
      const etag = response.headers.get('etag');
      const lastModified = response.headers.get('last-modified');
      if (etag) next.etag = etag;
      if (lastModified) next.lastModified = lastModified;
      await writeFileAtomic(metaPath, JSON.stringify(next));
    }
    log('fetched %s (%d bytes)', url, body.length);
    return body;
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
