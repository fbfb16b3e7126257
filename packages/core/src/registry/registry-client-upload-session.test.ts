// An upload that ends before its closing PUT — cancelled, or the network or the registry failing
// after some chunks — DELETEs its upload session on the real registry (the shared plain one, behind
// a proxy that sees every request of the upload and injects the failure): the session's URL answers
// 404 afterwards, and the error the caller gets is the one that ended the upload.
import { createHash, randomBytes } from 'node:crypto';
import { afterEach, expect, it } from 'vitest';
import { CancelledError, RegistryError } from '../errors.js';
import { startFlakyProxy, type Fault, type FlakyProxy } from './__fixtures__/flaky-proxy.js';
import { uniqueRepo } from './__fixtures__/push-image.js';
import { describeOrFailInCi, registriesMissing, testServices } from './__fixtures__/test-services.js';
import { RegistryClient, type RegistryClientOptions } from './registry-client.js';

const services = testServices();
const FAST: RegistryClientOptions = { dockerConfig: false, retry: { attempts: 2, baseDelayMs: 20, maxDelayMs: 100 }, timeoutMs: 10_000 };
const CHUNK = 64 * 1024;

const proxies: FlakyProxy[] = [];
afterEach(async () => {
  await Promise.all(proxies.splice(0).map((p) => p.close()));
});

/** A proxy in front of the plain registry through which every request of an upload passes; `faults` go to the requests `faultOn` picks. */
async function proxy(faults: Fault[], faultOn?: (method: string, path: string) => boolean): Promise<FlakyProxy> {
  const started = await startFlakyProxy(services.registries!.plain.host, faults, 0, { keepHost: true, ...(faultOn ? { faultOn } : {}) });
  proxies.push(started);
  return started;
}

/** What the registry answers about the upload session it last named (204 while it is open, 404 once dropped). */
async function sessionStatus(registry: FlakyProxy): Promise<number> {
  const location = registry.locations.filter((l) => l.includes('/blobs/uploads/')).at(-1);
  expect(location, 'the registry named an upload session').toBeDefined();
  const res = await fetch(new URL(location!, `http://${registry.host}`), { signal: AbortSignal.timeout(5000) });
  await res.arrayBuffer();
  return res.status;
}

const blob = (size: number): { data: Buffer; digest: string } => {
  const data = randomBytes(size);
  return { data, digest: `sha256:${createHash('sha256').update(data).digest('hex')}` };
};

const methods = (registry: FlakyProxy): string[] => registry.requests.map((r) => r.split(' ')[0]!);

describeOrFailInCi('RegistryClient.uploadBlob ended mid-way drops its upload session (plain registry)', registriesMissing(services), () => {
  it('a cancel after two chunks: CancelledError, and the session is gone', async () => {
    const registry = await proxy([]);
    const { data, digest } = blob(6 * CHUNK);
    const controller = new AbortController();
    const client = new RegistryClient(FAST);
    const error = await client
      .uploadBlob(`${registry.host}/${uniqueRepo('cancelled-session')}`, digest, data, { chunkSize: CHUNK, signal: controller.signal, onProgress: (sent) => sent >= 2 * CHUNK && controller.abort() })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CancelledError);
    expect(methods(registry)).toEqual(['HEAD', 'POST', 'PATCH', 'PATCH', 'DELETE']);
    expect(await sessionStatus(registry)).toBe(404);
  });

  it.each<[string, Fault]>([
    ['the connection dropped', 'reset'],
    ['the registry failing', { status: 500 }],
  ])('%s at the third chunk (after retries): the registry error, and the session is gone', async (_why, fault) => {
    let patches = 0;
    const registry = await proxy([fault, fault], (method) => method === 'PATCH' && ++patches >= 3);
    const { data, digest } = blob(6 * CHUNK);
    const client = new RegistryClient(FAST);
    const error = await client.uploadBlob(`${registry.host}/${uniqueRepo('failed-session')}`, digest, data, { chunkSize: CHUNK }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RegistryError);
    expect((error as RegistryError).message).toMatch(/PATCH .* failed after 2 attempts/);
    expect(methods(registry)).toEqual(['HEAD', 'POST', 'PATCH', 'PATCH', 'PATCH', 'PATCH', 'DELETE']);
    expect(await sessionStatus(registry)).toBe(404);
  });

  it('a DELETE the registry never answers: a cancel still ends within the DELETE’s 2 s, with CancelledError', async () => {
    const registry = await proxy(['hang'], (method) => method === 'DELETE');
    const { data, digest } = blob(4 * CHUNK);
    const controller = new AbortController();
    const client = new RegistryClient(FAST);
    const started = Date.now();
    const error = await client
      .uploadBlob(`${registry.host}/${uniqueRepo('hung-delete')}`, digest, data, { chunkSize: CHUNK, signal: controller.signal, onProgress: () => controller.abort() })
      .catch((e: unknown) => e);
    const took = Date.now() - started;
    expect(error).toBeInstanceOf(CancelledError);
    expect(methods(registry).at(-1)).toBe('DELETE');
    expect(took).toBeGreaterThanOrEqual(1900);
    expect(took).toBeLessThan(4000);
  });

  it('an upload that finished sends no DELETE', async () => {
    const registry = await proxy([]);
    const { data, digest } = blob(100);
    const client = new RegistryClient(FAST);
    expect(await client.uploadBlob(`${registry.host}/${uniqueRepo('closed-session')}`, digest, data)).toEqual({ status: 'uploaded', bytesSent: 100 });
    expect(methods(registry)).toEqual(['HEAD', 'POST', 'PUT']);
  });
});
