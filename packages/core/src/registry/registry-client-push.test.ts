import { createHash, randomBytes } from 'node:crypto';
import { expect, it } from 'vitest';
import type { RegistryCredentials } from '../contracts.js';
import { CancelledError, InputError, LoginRequiredError } from '../errors.js';
import { Secret } from '../secret.js';
import { uniqueRepo } from './__fixtures__/push-image.js';
import { describeOrFailInCi, registriesMissing, testServices } from './__fixtures__/test-services.js';
import { MediaType } from './media-types.js';
import { RegistryClient, type RegistryClientOptions } from './registry-client.js';

const services = testServices();
const missing = registriesMissing(services);
const FAST: RegistryClientOptions = { dockerConfig: false, retry: { attempts: 2, baseDelayMs: 20, maxDelayMs: 200 }, timeoutMs: 10_000 };

const digestOf = (bytes: Uint8Array): string => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
const creds = (registry: string, username: string, password: string): RegistryCredentials => ({ registry, username, password: new Secret(password), source: 'test credentials' });

interface Flavour {
  name: string;
  host: () => string;
  credentials: () => RegistryCredentials | undefined;
}

const flavours: Flavour[] = [
  { name: 'plain', host: () => services.registries!.plain.host, credentials: () => undefined },
  { name: 'basic (htpasswd)', host: () => services.registries!.basic.host, credentials: () => creds(services.registries!.basic.host, services.registries!.basic.username, services.registries!.basic.password) },
  { name: 'token (Bearer)', host: () => services.registries!.token.host, credentials: () => creds(services.registries!.token.host, services.registries!.token.username, services.registries!.token.password) },
];

for (const flavour of flavours) {
  describeOrFailInCi(`RegistryClient push operations against the ${flavour.name} registry`, missing, () => {
    const client = (): RegistryClient => {
      const c = flavour.credentials();
      return new RegistryClient({ ...FAST, ...(c ? { credentials: c } : {}) });
    };

    it('uploads a small blob in one PUT, then finds it present and reads it back', async () => {
      const host = flavour.host();
      const repo = `${host}/${uniqueRepo('push')}`;
      const data = randomBytes(1000);
      const digest = digestOf(data);
      const c = client();
      expect(await c.uploadBlob(repo, digest, data)).toEqual({ status: 'uploaded', bytesSent: 1000 });
      expect(c.stats).toMatchObject({ bytesSent: 1000, blobsUploaded: 1 });
      expect(await c.uploadBlob(repo, digest, data)).toEqual({ status: 'exists', bytesSent: 0 });
      expect(c.stats).toMatchObject({ bytesSent: 1000, blobsExisting: 1 });
      expect(Buffer.from(await c.getBlob(repo, digest)).equals(data)).toBe(true);
      expect(await c.headBlob(repo, digest)).toEqual({ exists: true, size: 1000 });
    });

    it('uploads a large blob in PATCH chunks, reporting progress', async () => {
      const repo = `${flavour.host()}/${uniqueRepo('chunks')}`;
      const data = randomBytes(250_000);
      const digest = digestOf(data);
      const progress: number[] = [];
      const c = client();
      const result = await c.uploadBlob(repo, digest, data, { chunkSize: 100_000, onProgress: (sent) => progress.push(sent) });
      expect(result).toEqual({ status: 'uploaded', bytesSent: 250_000 });
      expect(progress).toEqual([100_000, 200_000, 250_000]);
      expect(Buffer.from(await c.getBlob(repo, digest)).equals(data)).toBe(true);
    });

    it('mounts a blob from another repository of the registry instead of uploading it', async () => {
      const host = flavour.host();
      const from = uniqueRepo('mount-from');
      const to = uniqueRepo('mount-to');
      const data = randomBytes(5000);
      const digest = digestOf(data);
      const c = client();
      await c.uploadBlob(`${host}/${from}`, digest, data);
      const before = c.stats.bytesSent;
      expect(await c.uploadBlob(`${host}/${to}`, digest, data, { mountFrom: [from] })).toEqual({ status: 'mounted', bytesSent: 0 });
      expect(c.stats.bytesSent).toBe(before);
      expect(await c.headBlob(`${host}/${to}`, digest)).toMatchObject({ exists: true });
    });

    it('calls a lazy data source only when the blob must really be uploaded', async () => {
      const host = flavour.host();
      const repo = `${host}/${uniqueRepo('lazy')}`;
      const data = randomBytes(2000);
      const digest = digestOf(data);
      const c = client();
      let calls = 0;
      const source = async (): Promise<Uint8Array> => {
        calls += 1;
        return data;
      };
      expect(await c.uploadBlob(repo, digest, source)).toEqual({ status: 'uploaded', bytesSent: 2000 });
      expect(await c.uploadBlob(repo, digest, source)).toEqual({ status: 'exists', bytesSent: 0 });
      expect(calls).toBe(1);
    });

    it('uploads when the mount source lacks the blob (the registry opens an upload instead)', async () => {
      const host = flavour.host();
      const data = randomBytes(3000);
      const c = client();
      const result = await c.uploadBlob(`${host}/${uniqueRepo('mount-miss')}`, digestOf(data), data, { mountFrom: [uniqueRepo('empty')] });
      expect(result).toEqual({ status: 'uploaded', bytesSent: 3000 });
    });

    it('puts a manifest by tag and returns the digest the registry reports on HEAD', async () => {
      const host = flavour.host();
      const repo = `${host}/${uniqueRepo('manifest')}`;
      const c = client();
      const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }));
      await c.uploadBlob(repo, digestOf(config), config);
      const manifest = Buffer.from(
        JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociManifest, config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: digestOf(config), size: config.length }, layers: [] }),
      );
      const digest = await c.putManifest(`${repo}:v1`, manifest, MediaType.ociManifest);
      expect(digest).toBe(digestOf(manifest));
      const head = await c.headManifest(`${repo}:v1`);
      expect(head.exists && head.digest).toBe(digest);
    });
  });
}

describeOrFailInCi('RegistryClient push errors', missing, () => {
  it('refuses data that does not match the digest, before sending anything', async () => {
    const c = new RegistryClient(FAST);
    const error = await c.uploadBlob(`${services.registries!.plain.host}/${uniqueRepo('bad')}`, digestOf(Buffer.from('a')), Buffer.from('b')).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InputError);
    expect(c.stats.bytesSent).toBe(0);
  });

  it('reports a push without credentials to the Basic registry as a LoginRequiredError (exit 2)', async () => {
    const c = new RegistryClient({ ...FAST, dockerConfig: false });
    const data = Buffer.from('x');
    const error = await c.uploadBlob(`${services.registries!.basic.host}/${uniqueRepo('anon')}`, digestOf(data), data).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LoginRequiredError);
    expect((error as LoginRequiredError).exitCode).toBe(2);
  });

  it('rejects with CancelledError when the signal is aborted', async () => {
    const c = new RegistryClient(FAST);
    const data = Buffer.from('y');
    const controller = new AbortController();
    controller.abort();
    const error = await c.uploadBlob(`${services.registries!.plain.host}/${uniqueRepo('abort')}`, digestOf(data), data, { signal: controller.signal }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CancelledError);
  });
});

describeOrFailInCi('RegistryClient: one upload of a blob into a repository at a time in this process (plain registry)', missing, () => {
  /** A blob source held back until `release()`: its upload stays between its HEAD and its commit. */
  const held = (data: Uint8Array) => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    return { source: async () => (await gate, data), release };
  };

  it('two clients putting one blob into one repository at once (the envs of a build sharing a layer): one uploads, the other waits and finds it', async () => {
    const repo = `${services.registries!.plain.host}/${uniqueRepo('same-blob')}`;
    const data = randomBytes(300_000);
    const digest = digestOf(data);
    const first = held(data);
    const a = new RegistryClient(FAST);
    const b = new RegistryClient(FAST);
    let secondCalled = false;
    const uploads = [a.uploadBlob(repo, digest, first.source, { chunkSize: 100_000 }), b.uploadBlob(repo, digest, async () => ((secondCalled = true), data), { chunkSize: 100_000 })];
    // Without the wait, the second's HEAD saw no blob and uploaded it too, both committing it (the registry's race).
    setTimeout(first.release, 300);
    expect(await Promise.all(uploads)).toEqual([{ status: 'uploaded', bytesSent: 300_000 }, { status: 'exists', bytesSent: 0 }]);
    expect(secondCalled).toBe(false);
    expect(b.stats).toMatchObject({ blobsUploaded: 0, blobsExisting: 1, bytesSent: 0 });
  });

  it('a waiting upload goes on by itself when the one it waited for fails; other repositories never wait', async () => {
    const host = services.registries!.plain.host;
    const repo = `${host}/${uniqueRepo('same-blob-fail')}`;
    const other = `${host}/${uniqueRepo('same-blob-other')}`;
    const data = randomBytes(2000);
    const digest = digestOf(data);
    const first = held(data);
    const failing = expect(new RegistryClient(FAST).uploadBlob(repo, digest, async () => { throw new Error('the layer could not be read'); })).rejects.toThrow('the layer could not be read');
    const blocked = new RegistryClient(FAST).uploadBlob(other, digest, first.source);
    const elsewhere = await Promise.race([new RegistryClient(FAST).uploadBlob(`${host}/${uniqueRepo('same-blob-third')}`, digest, data), blocked.then(() => 'blocked first')]);
    expect(elsewhere).toEqual({ status: 'uploaded', bytesSent: 2000 });
    const second = new RegistryClient(FAST).uploadBlob(repo, digest, data);
    await failing;
    expect(await second).toEqual({ status: 'uploaded', bytesSent: 2000 });
    first.release();
    expect(await blocked).toEqual({ status: 'uploaded', bytesSent: 2000 });
  });
});
