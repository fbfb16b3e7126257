/**
 * Size and sha256 of a package file when the index did not say: HEAD for the size, a streamed
 * GET for the hash. `file://` URLs are read from disk.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { ResolutionError, errorMessage } from '@prebuilt/core';

function unreachable(url: string, error: unknown): ResolutionError {
  const cause = (error as { cause?: unknown }).cause ?? error;
  return new ResolutionError(`Cannot fetch ${url}: ${errorMessage(cause)}.`, { cause: error });
}

/** Byte size of a file, from a HEAD request's content-length (or by reading it when the server gives none). */
export async function remoteSize(url: string, fetchImpl: typeof fetch = fetch): Promise<number> {
  if (url.startsWith('file:')) return (await stat(fileURLToPath(url))).size;
  let response: Response;
  try {
    response = await fetchImpl(url, { method: 'HEAD' });
  } catch (error) {
    throw unreachable(url, error);
  }
  const length = response.headers.get('content-length');
  if (response.ok && length !== null && /^\d+$/.test(length)) return Number(length);
  return (await remoteDigest(url, fetchImpl)).size;
}

/** sha256 (hex) and size of a file, streamed. */
export async function remoteDigest(url: string, fetchImpl: typeof fetch = fetch): Promise<{ sha256: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  if (url.startsWith('file:')) {
    for await (const chunk of createReadStream(fileURLToPath(url))) {
      hash.update(chunk as Buffer);
      size += (chunk as Buffer).length;
    }
    return { sha256: hash.digest('hex'), size };
  }
  let response: Response;
  try {
    response = await fetchImpl(url);
  } catch (error) {
    throw unreachable(url, error);
  }
  if (!response.ok || !response.body) {
    await response.body?.cancel();
    throw new ResolutionError(`GET ${url} answered ${response.status} ${response.statusText}.`);
  }
  for await (const chunk of response.body) {
    hash.update(chunk);
    size += chunk.length;
  }
  return { sha256: hash.digest('hex'), size };
}
