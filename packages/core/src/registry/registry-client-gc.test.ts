// The registry client's tag listing and manifest deletion (for prebuilt gc): against the real local
// registry (distribution 2.8, deletes enabled), and a FAKE registry for what it cannot show (Link
// pages served by another layout, deletes disabled).
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, RegistryError } from '../errors.js';
import { pushImage, pushIndex, uniqueRepo } from './__fixtures__/push-image.js';
import { describeOrFailInCi, registriesMissing, testServices } from './__fixtures__/test-services.js';
import { pushReferrer } from './referrers.js';
import { RegistryClient, type RegistryClientOptions } from './registry-client.js';
import { completeStoredImages, listRepositoryImages } from './repository-images.js';

const services = testServices();
const missing = registriesMissing(services);
const FAST: RegistryClientOptions = { dockerConfig: false, retry: { attempts: 2, baseDelayMs: 20, maxDelayMs: 200 }, timeoutMs: 10_000 };

describeOrFailInCi('RegistryClient listTags / deleteManifest against the real local registry', missing, () => {
  const host = (): string => services.registries!.plain.host;

  it('lists every tag (distribution 2.8 answers in one page; the Link pages are the fake\'s test below), and none for a repository that does not exist', async () => {
    const repository = uniqueRepo('gc-tags');
    const target = { host: host() };
    for (const tag of ['a', 'b', 'c', 'd', 'e']) await pushImage(target, repository, tag);
    const client = new RegistryClient(FAST);
    expect((await client.listTags(`${host()}/${repository}`, { pageSize: 2 })).sort()).toEqual(['a', 'b', 'c', 'd', 'e']);
    expect(await client.listTags(`${host()}/${uniqueRepo('gc-none')}`)).toEqual([]);
  });

  it('deletes a manifest by digest with its tags; a second delete finds it already gone', async () => {
    const repository = uniqueRepo('gc-delete');
    const image = await pushImage({ host: host() }, repository, 'one');
    const client = new RegistryClient(FAST);
    expect(await client.deleteManifest(`${host()}/${repository}`, image.digest)).toEqual({ deleted: true });
    expect(await client.headManifest(`${host()}/${repository}@${image.digest}`)).toEqual({ exists: false });
    expect(await client.listTags(`${host()}/${repository}`)).toEqual([]);
    expect(await client.deleteManifest(`${host()}/${repository}`, image.digest)).toEqual({ deleted: false });
    await expect(client.deleteManifest(`${host()}/${repository}`, 'one')).rejects.toThrow(/not a sha256 digest/);
  });

  it('lists an index with its platform images and an SBOM artifact found through its sha256-<hex> referrers tag', async () => {
    const repository = uniqueRepo('gc-list');
    const target = { host: host() };
    const index = await pushIndex(target, repository, 'multi');
    const client = new RegistryClient(FAST);
    const subject = { mediaType: 'application/vnd.oci.image.index.v1+json', digest: index.digest, size: 100 };
    const sbom = await pushReferrer(client, { repository: `${host()}/${repository}`, subject, artifactType: 'application/spdx+json', blob: { bytes: Buffer.from('{"spdx":1}'), mediaType: 'application/spdx+json' } });
    expect(sbom.via).toBe('tag-scheme');
    const images = await listRepositoryImages(client, `${host()}/${repository}`);
    const byDigest = new Map(images.map((image) => [image.digest, image]));
    expect(byDigest.get(index.digest)).toMatchObject({ tags: ['multi'], children: [index.amd64.digest, index.arm64.digest] });
    expect(byDigest.get(index.amd64.digest)).toMatchObject({ tags: ['multi-amd64'] });
    expect(byDigest.get(index.amd64.digest)!.blobs!.map((b) => b.digest)).toEqual([index.amd64.digest, index.amd64.configDigest, index.amd64.layerDigest]);
    expect(byDigest.get(sbom.digest)).toMatchObject({ tags: [], subject: index.digest, artifactType: 'application/spdx+json' });
    const referrersTag = images.find((image) => image.tags.includes(index.digest.replace(':', '-')));
    expect(referrersTag?.children).toEqual([sbom.digest]);
    expect(images).toHaveLength(5);
  });

  it("completes a registry's own listing (Docker Hub style: tags only, no blobs) from the manifests, keeping its push time and size", async () => {
    const repository = uniqueRepo('gc-complete');
    const target = { host: host() };
    const index = await pushIndex(target, repository, 'multi');
    const client = new RegistryClient(FAST);
    const subject = { mediaType: 'application/vnd.oci.image.index.v1+json', digest: index.digest, size: 100 };
    const sbom = await pushReferrer(client, { repository: `${host()}/${repository}`, subject, artifactType: 'application/spdx+json', blob: { bytes: Buffer.from('{"spdx":2}'), mediaType: 'application/spdx+json' } });
    const referrersTag = (await client.headManifest(`${host()}/${repository}:${index.digest.replace(':', '-')}`)) as { digest: string };
    const pushedAt = new Date('2026-01-02T03:04:05Z');
    const listed = [
      { digest: index.digest, tags: ['multi'], pushedAt, size: 12345 },
      { digest: referrersTag.digest, tags: [index.digest.replace(':', '-')] },
      { digest: `sha256:${'0'.repeat(64)}`, tags: ['gone'] },
    ];
    const images = await completeStoredImages(client, `${host()}/${repository}`, listed);
    const byDigest = new Map(images.map((image) => [image.digest, image]));
    expect(byDigest.get(index.digest)).toMatchObject({ tags: ['multi'], pushedAt, size: 12345, children: [index.amd64.digest, index.arm64.digest] });
    expect(byDigest.get(index.amd64.digest)!.blobs!.map((b) => b.digest)).toEqual([index.amd64.digest, index.amd64.configDigest, index.amd64.layerDigest]);
    expect(byDigest.get(referrersTag.digest)?.children).toEqual([sbom.digest]);
    expect(byDigest.get(sbom.digest)).toMatchObject({ tags: [], subject: index.digest, artifactType: 'application/spdx+json' });
    expect(byDigest.get(`sha256:${'0'.repeat(64)}`)).toEqual(listed[2]);
    expect(images).toHaveLength(6);
  });
});

describe('RegistryClient listTags / deleteManifest against a FAKE registry', () => {
  let server: Server;
  let host: string;
  const pages: Record<string, { tags: string[] | null; next?: string }> = {
    '/v2/team/app/tags/list?n=1000': { tags: ['x'], next: '</v2/team/app/tags/list?last=x&n=1000>; rel="next"' },
    '/v2/team/app/tags/list?last=x&n=1000': { tags: ['y'] },
    '/v2/team/empty/tags/list?n=1000': { tags: null },
    '/v2/team/loop/tags/list?n=1000': { tags: ['z'], next: '</v2/team/loop/tags/list?n=1000>; rel="next"' },
    '/v2/team/away/tags/list?n=1000': { tags: ['w'], next: '<http://127.0.0.2:1/v2/team/away/tags/list?last=w>; rel="next"' },
  };
  beforeAll(async () => {
    server = createServer((req, res) => {
      const page = pages[req.url ?? ''];
      const endless = /^\/v2\/team\/endless\/tags\/list\?n=1000(?:&last=(\d+))?$/.exec(req.url ?? '');
      if (req.method === 'GET' && endless) {
        // A new page every time, each 4 KiB of tags: never a loop, never an end.
        const n = Number(endless[1] ?? 0) + 1;
        const link = `</v2/team/endless/tags/list?n=1000&last=${n}>; rel="next"`;
        return res.writeHead(200, { 'content-type': 'application/json', link }).end(JSON.stringify({ name: 'team/endless', tags: Array.from({ length: 64 }, (_, i) => `t${n}-${i}-${'x'.repeat(48)}`) }));
      }
      if (req.method === 'GET' && page) {
        return res.writeHead(200, { 'content-type': 'application/json', ...(page.next ? { link: page.next } : {}) }).end(JSON.stringify({ name: 'team/app', tags: page.tags }));
      }
      if (req.method === 'DELETE' && req.url?.startsWith('/v2/team/disabled/')) {
        return res.writeHead(405, { 'content-type': 'application/json' }).end(JSON.stringify({ errors: [{ code: 'UNSUPPORTED', message: 'The operation is unsupported.' }] }));
      }
      if (req.method === 'DELETE' && req.url?.startsWith('/v2/team/broken/')) return res.writeHead(400).end('{"errors":[{"code":"DIGEST_INVALID"}]}');
      res.writeHead(404).end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
  });
  const client = (): RegistryClient => new RegistryClient({ dockerConfig: false, retry: { attempts: 1 } });
  const digest = `sha256:${'b'.repeat(64)}`;

  it('follows the Link header to the next page; a null tag list is empty; a page naming itself is a loop error', async () => {
    expect(await client().listTags(`${host}/team/app`)).toEqual(['x', 'y']);
    expect(await client().listTags(`${host}/team/empty`)).toEqual([]);
    await expect(client().listTags(`${host}/team/loop`)).rejects.toThrow(/in a loop/);
  });

  it('stops a listing without end at its byte bound, before holding more', async () => {
    const error = await client().listTags(`${host}/team/endless`, { maxBytes: 16 * 1024 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RegistryError);
    expect((error as Error).message).toBe(`registry ${host} listed the tags of team/endless in more than 16 KiB (5 pages); stopped`);
  });

  it('a next page on another host is refused before any request goes there (credentials stay with their host)', async () => {
    const error = await client().listTags(`${host}/team/away`).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RegistryError);
    expect((error as Error).message).toContain('on another host (127.0.0.2:1)');
  });

  it('a registry with deletes disabled (405 UNSUPPORTED) is a ConfigError that says how to enable them', async () => {
    const error = await client().deleteManifest(`${host}/team/disabled`, digest).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).message).toMatch(/deletes are disabled/);
    expect((error as ConfigError).hint).toMatch(/storage\.delete\.enabled: true/);
    expect((error as ConfigError).exitCode).toBe(2);
  });

  it('another refusal is a RegistryError with the registry\'s reason', async () => {
    await expect(client().deleteManifest(`${host}/team/broken`, digest)).rejects.toSatisfy((e: unknown) => e instanceof RegistryError && /DIGEST_INVALID/.test(e.message));
  });
});
