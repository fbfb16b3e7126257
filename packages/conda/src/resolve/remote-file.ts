/**
 * Size and sha256 of a package file when the index did not say: HEAD for the size, a streamed
 * GET for the hash. `file://` URLs are read from disk.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { BODY_LIMITS, NetworkError, ResolutionError, netFetch, redactUrl, type NetResponse, type NetworkTimeouts, type UrlCredentials } from '@prebuilt/core';
import { sourceFetchError } from './unreachable-source.js';

/** How remote files are reached: the transport, the configured credentials, the timeouts. */
export interface RemoteFileOptions {
  fetch?: typeof fetch;
  credentials?: UrlCredentials;
  timeouts?: NetworkTimeouts;
  signal?: AbortSignal;
}

function unreachable(url: string, method: string, error: unknown): unknown {
  if (error instanceof NetworkError) return error;
  return sourceFetchError(error, { service: `package host ${new URL(url).origin}`, request: `${method} ${url}`, hint: 'Check that the package URL in the lock is reachable from this machine (network, proxy, channel mirror).' });
}

async function request(url: string, method: string, options: RemoteFileOptions): Promise<NetResponse> {
  const { credentials } = options;
  try {
    return await netFetch(credentials ? credentials.requestUrl(url) : url, {
      method,
      what: 'package file',
      ...(options.fetch ? { fetch: options.fetch } : {}),
      ...(options.timeouts ? { timeouts: options.timeouts } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
      ...(credentials ? { authorize: (hop: URL) => credentials.authorizationFor(hop) } : {}),
    });
  } catch (error) {
    throw unreachable(url, method, error);
  }
}

/** Byte size of a file, from a HEAD request's content-length (or by reading it when the server gives none). */
export async function remoteSize(url: string, options: RemoteFileOptions = {}): Promise<number> {
  if (url.startsWith('file:')) return (await stat(fileURLToPath(url))).size;
  const response = await request(url, 'HEAD', options);
  await response.cancel();
  const length = response.headers.get('content-length');
  if (response.status >= 200 && response.status < 300 && length !== null && /^\d+$/.test(length)) {
    // The lock's reader takes a safe integer only: a lock holding more could not be read again.
    if (!Number.isSafeInteger(Number(length))) {
      throw new ResolutionError(`${redactUrl(url)} is ${length} bytes long, its host says (HEAD: Content-Length); no package file is that big. Refusing to lock it.`, {
        hint: 'The host is misconfigured or hostile; use another channel or index.',
      });
    }
    return Number(length);
  }
  return (await remoteDigest(url, options)).size;
}

/** sha256 (hex) and size of a file, streamed. */
export async function remoteDigest(url: string, options: RemoteFileOptions = {}): Promise<{ sha256: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  if (url.startsWith('file:')) {
    for await (const chunk of createReadStream(fileURLToPath(url))) {
      hash.update(chunk as Buffer);
      size += (chunk as Buffer).length;
    }
    return { sha256: hash.digest('hex'), size };
  }
  const response = await request(url, 'GET', options);
  if (response.status < 200 || response.status >= 300) {
    await response.prefix(BODY_LIMITS.error);
    throw new ResolutionError(`GET ${url} answered ${response.status} ${response.statusText}.`);
  }
  try {
    for await (const chunk of response.chunks()) {
      hash.update(chunk);
      size += chunk.length;
    }
  } catch (error) {
    throw unreachable(url, 'GET', error);
  }
  return { sha256: hash.digest('hex'), size };
}
