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
import { CancelledError, NetworkError } from '../errors.js';
import { createLogger } from '../logger.js';
import { NETWORK_ENV, networkTimeouts, type NetworkTimeouts } from './network-settings.js';
import { currentNetworkWaitListener } from './network-wait.js';
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

class Expired {
  constructor(readonly reason: 'idle' | 'deadline') {}
}

export function formatBytes(n: number): string {
  if (n >= 1024 * 1024) return `${+(n / (1024 * 1024)).toFixed(1)} MiB`;
  if (n >= 1024) return `${+(n / 1024).toFixed(1)} KiB`;
  return `${n} bytes`;
}

/** Makes one request (following redirects); see the module comment. */
export async function netFetch(url: string, request: NetRequest): Promise<NetResponse> {
  const timeouts = request.timeouts ?? networkTimeouts();
  const transport = request.fetch ?? globalThis.fetch;
  const listener = currentNetworkWaitListener();
  const reportEvery = request.reportEveryMs ?? Math.min(5000, Math.max(500, timeouts.idleMs / 3));
  const { what } = request;
  const controller = new AbortController();
  const signal = request.signal ? AbortSignal.any([request.signal, controller.signal]) : controller.signal;
  const started = Date.now();
  let current = new URL(url);
  let last = started;
  let nextReport = started + reportEvery;
  let reported = false;
  let finished = false;

  const target = (): string => current.host;
  const activity = (): void => {
    last = Date.now();
    nextReport = last + reportEvery;
    if (reported) {
      reported = false;
      listener?.({ target: target(), what, seconds: 0 });
    }
  };
  const tick = (): void => {
    const now = Date.now();
    if (now - started >= timeouts.deadlineMs) controller.abort(new Expired('deadline'));
    else if (now - last >= timeouts.idleMs) controller.abort(new Expired('idle'));
    else if (now >= nextReport) {
      nextReport += reportEvery;
      reported = true;
      listener?.({ target: target(), what, seconds: (now - last) / 1000 });
    }
  };
  const timer = setInterval(tick, Math.max(20, Math.min(250, timeouts.idleMs / 4)));
  timer.unref();
  const finish = (): void => {
    if (finished) return;
    finished = true;
    clearInterval(timer);
    if (reported) listener?.({ target: target(), what, seconds: 0 });
  };

  /** What a failure of the transport or of reading means: our timeout, the caller's cancel, or itself. */
  const translate = (error: unknown): unknown => {
    finish();
    const reason: unknown = controller.signal.reason;
    if (controller.signal.aborted && reason instanceof Expired) {
      const idle = reason.reason === 'idle';
      const seconds = +((idle ? timeouts.idleMs : timeouts.deadlineMs) / 1000).toFixed(1);
      const setting = idle ? NETWORK_ENV.idleTimeout : NETWORK_ENV.deadline;
      return new NetworkError(
        idle
          ? `${what} from ${target()}: no data for ${seconds} s (${setting})`
          : `${what} from ${target()}: not finished within ${seconds} s (${setting})`,
        { target: target(), what, reason: reason.reason },
        { cause: error, hint: `The server stalled or is very slow; try again, or raise ${setting} (seconds).` },
      );
    }
    if (request.signal?.aborted) return new CancelledError(`${what} from ${target()} was cancelled`, { cause: request.signal.reason });
    return error;
  };

  let method = request.method ?? 'GET';
  let body = request.body;
  let response: Response;
  for (let hop = 0; ; hop++) {
    const headers: Record<string, string> = { ...request.headers };
    if (body === undefined) delete headers['content-type'];
    const authorization = request.authorize?.(current);
    if (authorization !== undefined) headers['authorization'] = authorization;
    try {
      // A fresh copy per attempt: the transport may take ownership of (detach) what it is given.
      const payload = body === undefined ? {} : { body: typeof body === 'string' ? body : body.slice() };
      response = await transport(current, { method, headers, ...payload, signal, redirect: 'manual' });
    } catch (error) {
      throw translate(error);
    }
    activity();
    const location = response.headers.get('location');
    if (!REDIRECTS.has(response.status) || location === null || (request.maxRedirects ?? 10) === 0) break;
    await response.body?.cancel().catch(() => undefined);
    if (hop >= (request.maxRedirects ?? 10)) {
      finish();
      throw new NetworkError(`${what} from ${target()}: more than ${request.maxRedirects ?? 10} redirects`, { target: target(), what, reason: 'redirect' });
    }
    const from = current;
    try {
      current = new URL(location, current);
    } catch (error) {
      finish();
      throw new NetworkError(`${what} from ${target()}: a redirect to an invalid URL`, { target: target(), what, reason: 'redirect' }, { cause: error });
    }
    if (current.protocol !== 'http:' && current.protocol !== 'https:') {
      finish();
      throw new NetworkError(`${what} from ${from.host}: a redirect to ${current.protocol} is not followed`, { target: from.host, what, reason: 'redirect' });
    }
    if (body !== undefined && request.bodyToOtherOrigins === false && current.origin !== from.origin && (response.status === 307 || response.status === 308)) {
      finish();
      throw new NetworkError(`${what} from ${from.host}: a redirect would send the request's body to ${current.host}; refused`, { target: from.host, what, reason: 'redirect' });
    }
    if (response.status === 303 || ((response.status === 301 || response.status === 302) && method === 'POST')) {
      method = method === 'HEAD' ? 'HEAD' : 'GET';
      body = undefined;
    }
    log('%s %s: %d → %s%s', method, redactUrl(from.href), response.status, redactUrl(current.href), from.origin === current.origin ? '' : ' (another origin: no credentials)');
  }

  const res = response;
  if (method === 'HEAD' || res.body === null) finish();

  async function* chunks(): AsyncGenerator<Uint8Array, void, undefined> {
    if (res.body === null) {
      finish();
      return;
    }
    const reader = res.body.getReader();
    try {
      for (;;) {
        let step: Awaited<ReturnType<typeof reader.read>>;
        try {
          step = await reader.read();
        } catch (error) {
          throw translate(error);
        }
        if (step.done) break;
        activity();
        yield step.value;
      }
    } finally {
      finish();
      await reader.cancel().catch(() => undefined);
    }
  }

  const tooLarge = (limit: number): NetworkError =>
    new NetworkError(`${what} from ${target()} is larger than ${formatBytes(limit)}; refused`, { target: target(), what, reason: 'too-large' }, {
      hint: 'The server sent far more than such an answer can be; check that the URL points at the right server.',
    });

  const result: NetResponse = {
    status: res.status,
    statusText: res.statusText,
    headers: res.headers,
    url: current.href,
    async bytes(limit) {
      const announced = Number(res.headers.get('content-length') ?? NaN);
      if (Number.isFinite(announced) && announced > limit) {
        await result.cancel();
        throw tooLarge(limit);
      }
      const parts: Uint8Array[] = [];
      let size = 0;
      for await (const chunk of chunks()) {
        size += chunk.byteLength;
        if (size > limit) throw tooLarge(limit);
        parts.push(chunk);
      }
      return Buffer.concat(parts, size);
    },
    async prefix(limit) {
      const parts: Uint8Array[] = [];
      let size = 0;
      for await (const chunk of chunks()) {
        parts.push(chunk);
        size += chunk.byteLength;
        if (size >= limit) break;
      }
      return Buffer.concat(parts, size).subarray(0, limit);
    },
    chunks,
    async cancel() {
      finish();
      await res.body?.cancel().catch(() => undefined);
    },
  };
  return result;
}
