/** How a registry request is retried. */
export interface RetryPolicy {
  /** Attempts in total, including the first (≥ 1). */
  attempts: number;
  /** Delay before the first retry, in ms; it doubles on every further retry. */
  baseDelayMs: number;
  /** Upper bound of one delay, in ms (also caps a server's Retry-After). */
  maxDelayMs: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = { attempts: 4, baseDelayMs: 500, maxDelayMs: 30_000 };

/**
 * The delay a `Retry-After` header asks for, in ms: either delta-seconds or an HTTP date.
 * Undefined when the header is absent or unreadable; never negative.
 */
export function parseRetryAfter(value: string | null | undefined, now: number = Date.now()): number | undefined {
  if (value === null || value === undefined) return undefined;
  const text = value.trim();
  if (text === '') return undefined;
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  if (!/[a-zA-Z]/.test(text)) return undefined;
  const date = Date.parse(text);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, date - now);
}

/**
 * Exponential backoff with jitter for retry number `retry` (1 = first retry):
 * a random delay between half and all of `baseDelayMs * 2^(retry-1)`, capped at `maxDelayMs`.
 */
export function backoffDelay(retry: number, policy: Pick<RetryPolicy, 'baseDelayMs' | 'maxDelayMs'>, random: () => number = Math.random): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** Math.max(0, retry - 1));
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}

/** Statuses worth another attempt: 429 Too Many Requests and every 5xx except 501 Not Implemented. */
export function isRetryableStatus(status: number): boolean {
  return status === 429 || (status >= 500 && status <= 599 && status !== 501);
}

const RETRYABLE_CODES = new Set([
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
]);

/** The error codes along an error's `cause` chain (fetch wraps the socket error in a TypeError). */
function errorCodes(error: unknown): string[] {
  const codes: string[] = [];
  let current: unknown = error;
  for (let depth = 0; depth < 5 && typeof current === 'object' && current !== null; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string') codes.push(code);
    current = (current as { cause?: unknown }).cause;
  }
  return codes;
}

/** The deepest message along an error's `cause` chain: `socket hang up` rather than `fetch failed`. */
export function rootMessage(error: unknown): string {
  let message = error instanceof Error ? error.message : String(error);
  let current: unknown = error instanceof Error ? error.cause : undefined;
  for (let depth = 0; depth < 5 && current instanceof Error; depth++) {
    message = current.message || message;
    current = current.cause;
  }
  return message;
}

/**
 * True for a network failure worth another attempt: a reset or closed connection, a socket hang-up.
 * A refused connection is decided by the caller (retried only once the registry has answered before).
 */
export function isRetryableNetworkError(error: unknown): boolean {
  if (errorCodes(error).some((code) => RETRYABLE_CODES.has(code))) return true;
  return /socket hang up|other side closed|ECONNRESET/i.test(rootMessage(error));
}

export function isConnectionRefused(error: unknown): boolean {
  return errorCodes(error).includes('ECONNREFUSED');
}

/** True when the host name does not resolve (DNS has no such name). */
export function isHostNotFound(error: unknown): boolean {
  return errorCodes(error).includes('ENOTFOUND');
}

/** True when nothing is there to answer: the connection was refused or the host name does not exist. */
export function isNothingThere(error: unknown): boolean {
  return errorCodes(error).some((code) => code === 'ECONNREFUSED' || code === 'ENOTFOUND');
}

/** Waits `ms`, rejecting with the signal's reason when it aborts first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
