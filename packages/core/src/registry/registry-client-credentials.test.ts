/**
 * Concurrent requests share one credential lookup per registry, each waiting within its own
 * signal: one request's cancel ends its own wait, never the lookup for the others; a lookup is
 * aborted once none waits, and made again by the next request.
 */
import { expect, it } from 'vitest';
import type { RegistryCredentials } from '../contracts.js';
import { CancelledError } from '../errors.js';
import { Secret } from '../secret.js';
import { RegistryClient } from './registry-client.js';

const FOUND: RegistryCredentials = { registry: 'registry.example', username: 'u', password: new Secret('p'), source: 'test credentials' };

/** A client whose credentials provider answers when told to (or fails when its signal aborts), counting its lookups. */
function slowProvider(): { client: RegistryClient; answer: () => void; calls: () => number; signal: () => AbortSignal | undefined } {
  let calls = 0;
  let answer: () => void = () => undefined;
  let last: AbortSignal | undefined;
  const client = new RegistryClient({
    dockerConfig: false,
    credentials: (_registry, { signal }) => {
      calls += 1;
      last = signal;
      return new Promise<RegistryCredentials | undefined>((resolve, reject) => {
        answer = () => resolve(FOUND);
        signal?.addEventListener('abort', () => reject(signal.reason), { once: true });
      });
    },
  });
  return { client, answer: () => answer(), calls: () => calls, signal: () => last };
}

it('one request cancelling its wait leaves the shared lookup to the other, whose answer is kept for later requests', async () => {
  const { client, answer, calls, signal } = slowProvider();
  const starter = new AbortController();
  const joiner = new AbortController();
  const first = client.credentialsFor('registry.example', { signal: starter.signal });
  const second = client.credentialsFor('registry.example', { signal: joiner.signal });
  starter.abort(new Error('the first request’s deadline'));
  await expect(first).rejects.toThrow(CancelledError);
  expect(signal()?.aborted).toBe(false);
  answer();
  expect(await second).toBe(FOUND);
  expect(await client.credentialsFor('registry.example')).toBe(FOUND);
  expect(calls()).toBe(1);
});

it('a lookup every request stopped waiting on is aborted; the next request looks up again', async () => {
  const { client, answer, calls, signal } = slowProvider();
  const a = new AbortController();
  const b = new AbortController();
  const first = client.credentialsFor('registry.example', { signal: a.signal });
  const second = client.credentialsFor('registry.example', { signal: b.signal });
  a.abort();
  b.abort();
  await expect(first).rejects.toThrow(CancelledError);
  await expect(second).rejects.toThrow(CancelledError);
  expect(signal()?.aborted).toBe(true);
  const third = client.credentialsFor('registry.example');
  answer();
  expect(await third).toBe(FOUND);
  expect(calls()).toBe(2);
});
