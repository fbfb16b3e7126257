/**
 * One HTTP request the way every network read of prebuilt makes it (registry, channels, PyPI,
 * package downloads):
 *
 * - an idle timeout (no byte of headers or body for N s) and an overall deadline, both settable
 *   ({@link networkTimeouts}); a read idle for a few seconds reports what it waits on
 *   ({@link withNetworkWaits});
 * - redirects followed by hand: the Authorization header is computed per hop by `authorize`, so a
 *   redirect to another origin gets none; a 307/308 re-sends the body (it is a byte array, re-readable);
 * - the body read within a bound ({@link NetResponse.bytes}), or only as far as a message needs
 *   ({@link NetResponse.prefix}), or streamed chunk by chunk.
 */
import { NetworkError } from '../errors.js';
import { metadataAddress } from '../registry/token-realm.js';
import { createLogger } from '../logger.js';
import { networkTimeouts, type NetworkTimeouts } from './network-settings.js';
import { RequestWatch } from './request-watch.js';
import { redactUrl } from './url-credentials.js';

const log = createLogger('net');

export interface NetRequest {
  method?: string;
  /** Request headers; never an Authorization header (use `authorize`). */
  headers?: Record<string, string>;
  body?: Uint8Array | string;
  /** What is read, in the user's words: `manifest`, `blob upload`, `repodata`, `package download`. */
  what: string;
  signal?: AbortSignal;
  /** Default: {@link networkTimeouts} from the environment. */
  timeouts?: NetworkTimeouts;
  /** The Authorization header for one hop's URL, or undefined for none. Called again after every redirect. */
  authorize?: (url: URL) => string | undefined;
  /** Redirects to follow; 0 gives the 3xx answer to the caller. Default 10. */
  maxRedirects?: number;
  /**
   * Whether a 307/308 may carry the body to another origin (default true: a blob upload may go to
   * storage elsewhere). False for a body that is itself a secret (a token request's refresh token).
   */
  bodyToOtherOrigins?: boolean;
  /** Called before each redirect is followed, with its target and the URL that sent it; throws to refuse it (the error is the request's). */
  beforeRedirect?: (to: URL, from: URL) => void;
  /** The transport (default: global fetch). */
  fetch?: typeof fetch;
  /** A stalled read reports every this many ms (default 5 s, or a third of a shorter idle timeout). */
  reportEveryMs?: number;
}

export interface NetResponse {
  status: number;
  statusText: string;
  headers: Headers;
  /** The URL that answered (after redirects). */
  url: string;
  /** The whole body, failing with NetworkError (`too-large`) as soon as it exceeds `limit` bytes. */
  bytes(limit: number): Promise<Uint8Array>;
  /** At most the first `limit` bytes of the body; the rest is not read. */
  prefix(limit: number): Promise<Uint8Array>;
  /** The body, chunk by chunk (idle timeout and deadline apply between chunks). */
  chunks(): AsyncGenerator<Uint8Array, void, undefined>;
  /** Discards the body. */
  cancel(): Promise<void>;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

export function formatBytes(n: number): string {
  if (n >= 1024 * 1024) return `${+(n / (1024 * 1024)).toFixed(1)} MiB`;
  if (n >= 1024) return `${+(n / 1024).toFixed(1)} KiB`;
  return `${n} bytes`;
}

/** Makes one request (following redirects); see the module comment. */
export async function netFetch(url: string, request: NetRequest): Promise<NetResponse> {
  const timeouts = request.timeouts ?? networkTimeouts();
  const watch = new RequestWatch(new URL(url), request.what, timeouts, request.signal, request.reportEveryMs);
  const { response, method } = await followRedirects(request, watch);
  if (method === 'HEAD' || response.body === null) watch.finish();
  return netResponse(response, watch);
}

/** The method and body of one hop (a 303, or a 301/302 after a POST, turns them into a GET without body). */
interface Hop {
  method: string;
  body: Uint8Array | string | undefined;
}

/** Sends the request, and again to each redirect's target, until an answer that is not followed. */
async function followRedirects(request: NetRequest, watch: RequestWatch): Promise<{ response: Response; method: string }> {
  const maxRedirects = request.maxRedirects ?? 10;
  let hop: Hop = { method: request.method ?? 'GET', body: request.body };
  for (let count = 0; ; count++) {
    const response = await send(request, watch, hop);
    const location = response.headers.get('location');
    if (!REDIRECTS.has(response.status) || location === null || maxRedirects === 0) return { response, method: hop.method };
    await response.body?.cancel().catch(() => undefined);
    if (count >= maxRedirects) {
      throw watch.fail(new NetworkError(`${watch.what} from ${watch.target}: more than ${maxRedirects} redirects`, { target: watch.target, what: watch.what, reason: 'redirect' }));
    }
    const from = watch.url;
    watch.url = redirectTarget(watch, location);
    checkRedirect(request, watch, from, response.status, hop);
    if (request.beforeRedirect) {
      try {
        request.beforeRedirect(watch.url, from);
      } catch (error) {
        watch.finish();
        throw error;
      }
    }
    // After the caller's own check (which may say more): a redirect is the answering server's word,
    // and never sends prebuilt into a cloud metadata service, unless the request already was there.
    const why = metadataAddress(watch.url);
    if (why !== undefined && metadataAddress(from) === undefined) {
      throw watch.fail(new NetworkError(`${watch.what} from ${from.host}: a redirect to ${watch.url.host} is not followed (${why})`, { target: from.host, what: watch.what, reason: 'redirect' }));
    }
    hop = nextHop(response.status, hop);
    log('%s %s: %d → %s%s', hop.method, redactUrl(from.href), response.status, redactUrl(watch.url.href), from.origin === watch.url.origin ? '' : ' (another origin: no credentials)');
  }
}

/** One hop: the headers with this URL's Authorization (none if `authorize` gives none), manual redirects. */
async function send(request: NetRequest, watch: RequestWatch, hop: Hop): Promise<Response> {
  const transport = request.fetch ?? globalThis.fetch;
  const headers: Record<string, string> = { ...request.headers };
  if (hop.body === undefined) delete headers['content-type'];
  const authorization = request.authorize?.(watch.url);
  if (authorization !== undefined) headers['authorization'] = authorization;
  let response: Response;
  try {
    // A fresh copy per attempt: the transport may take ownership of (detach) what it is given.
    const payload = hop.body === undefined ? {} : { body: typeof hop.body === 'string' ? hop.body : hop.body.slice() };
    response = await transport(watch.url, { method: hop.method, headers, ...payload, signal: watch.signal, redirect: 'manual' });
  } catch (error) {
    throw watch.translate(error);
  }
  watch.activity();
  return response;
}

/** The URL a Location header points at, relative to the current hop. */
function redirectTarget(watch: RequestWatch, location: string): URL {
  try {
    return new URL(location, watch.url);
  } catch (error) {
    throw watch.fail(
      new NetworkError(`${watch.what} from ${watch.target}: a redirect to an invalid URL`, { target: watch.target, what: watch.what, reason: 'redirect' }, { cause: error }),
    );
  }
}

/** Refuses a redirect to a scheme other than http(s), or one that would carry a secret body to another origin. */
function checkRedirect(request: NetRequest, watch: RequestWatch, from: URL, status: number, hop: Hop): void {
  const { what } = watch;
  const to = watch.url;
  if (to.protocol !== 'http:' && to.protocol !== 'https:') {
    throw watch.fail(new NetworkError(`${what} from ${from.host}: a redirect to ${to.protocol} is not followed`, { target: from.host, what, reason: 'redirect' }));
  }
  if (hop.body !== undefined && request.bodyToOtherOrigins === false && to.origin !== from.origin && (status === 307 || status === 308)) {
    throw watch.fail(
      new NetworkError(`${what} from ${from.host}: a redirect would send the request's body to ${to.host}; refused`, { target: from.host, what, reason: 'redirect' }),
    );
  }
}

/** The method and body after a redirect with `status`: a 307/308 keeps both. */
function nextHop(status: number, hop: Hop): Hop {
  if (status === 303 || ((status === 301 || status === 302) && hop.method === 'POST')) {
    return { method: hop.method === 'HEAD' ? 'HEAD' : 'GET', body: undefined };
  }
  return hop;
}

/** The answer, its body readable once: whole within a bound, a prefix, or chunk by chunk. */
function netResponse(res: Response, watch: RequestWatch): NetResponse {
  const chunks = (): AsyncGenerator<Uint8Array, void, undefined> => readChunks(res, watch);
  const result: NetResponse = {
    status: res.status,
    statusText: res.statusText,
    headers: res.headers,
    url: watch.url.href,
    async bytes(limit) {
      const announced = Number(res.headers.get('content-length') ?? NaN);
      if (Number.isFinite(announced) && announced > limit) {
        await result.cancel();
        throw tooLarge(watch, limit);
      }
      return readBounded(chunks(), limit, watch);
    },
    prefix: (limit) => readPrefix(chunks(), limit),
    chunks,
    async cancel() {
      watch.finish();
      await res.body?.cancel().catch(() => undefined);
    },
  };
  return result;
}

async function* readChunks(res: Response, watch: RequestWatch): AsyncGenerator<Uint8Array, void, undefined> {
  if (res.body === null) {
    watch.finish();
    return;
  }
  const reader = res.body.getReader();
  try {
    for (;;) {
      let step: Awaited<ReturnType<typeof reader.read>>;
      try {
        step = await reader.read();
      } catch (error) {
        throw watch.translate(error);
      }
      if (step.done) break;
      watch.activity();
      yield step.value;
    }
  } finally {
    watch.finish();
    await reader.cancel().catch(() => undefined);
  }
}

/** The whole body, failing as soon as it exceeds `limit` bytes. */
async function readBounded(chunks: AsyncIterable<Uint8Array>, limit: number, watch: RequestWatch): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of chunks) {
    size += chunk.byteLength;
    if (size > limit) throw tooLarge(watch, limit);
    parts.push(chunk);
  }
  return Buffer.concat(parts, size);
}

/** At most the first `limit` bytes; reading stops there. */
async function readPrefix(chunks: AsyncIterable<Uint8Array>, limit: number): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of chunks) {
    parts.push(chunk);
    size += chunk.byteLength;
    if (size >= limit) break;
  }
  return Buffer.concat(parts, size).subarray(0, limit);
}

function tooLarge(watch: RequestWatch, limit: number): NetworkError {
  return new NetworkError(`${watch.what} from ${watch.target} is larger than ${formatBytes(limit)}; refused`, { target: watch.target, what: watch.what, reason: 'too-large' }, {
    hint: 'The server sent far more than such an answer can be; check that the URL points at the right server.',
  });
}
