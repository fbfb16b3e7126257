// listImages / deleteImage for prebuilt gc: core's registry client (token exchange with the
// access token google-auth-library gets from a FAKE OAuth endpoint) against a FAKE of Google's
// registry API on 127.0.0.1 (tags/list with the manifest map, DELETE by tag and digest).
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { AuthError, CancelledError, InputError, RegistryError, Secret, registryAccess, type ImageRegistry } from '@prebuilt/core/backend';
import { createGcrRegistry } from './index.js';
import { listGcrImages } from './gcr-images.js';
import { startFakeOAuthServer, type FakeOAuthServer } from './__fixtures__/fake-oauth-server.js';
import { fakeDigest, startFakeGoogleRegistry, type FakeGoogleImage, type FakeGoogleRegistry } from './__fixtures__/fake-google-registry.js';

const CLIENT_ID = 'prebuilt-gc-test.apps.googleusercontent.com';
const REFRESH_TOKEN = `refresh-${randomBytes(8).toString('hex')}`;
const ACCESS_TOKEN = `ya29.${randomBytes(16).toString('hex')}`;
const INDEX = 'application/vnd.oci.image.index.v1+json';
const MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

const image = (tags: string[], timeUploadedMs: number, imageSizeBytes: number, mediaType = MANIFEST): FakeGoogleImage => ({
  tags: new Set(tags),
  mediaType,
  imageSizeBytes,
  timeCreatedMs: 0,
  timeUploadedMs,
});

describe('gcr listImages/deleteImage: core registry client against a FAKE Google registry API (and a FAKE OAuth endpoint) on 127.0.0.1', () => {
  let oauth: FakeOAuthServer;
  let fake: FakeGoogleRegistry;
  let dir: string;
  let registry: ImageRegistry;
  let repository: string;
  beforeAll(async () => {
    oauth = await startFakeOAuthServer({ clientId: CLIENT_ID, refreshToken: REFRESH_TOKEN, accessToken: ACCESS_TOKEN });
    fake = await startFakeGoogleRegistry({ user: 'oauth2accesstoken', password: ACCESS_TOKEN });
    dir = await mkdtemp(join(tmpdir(), 'prebuilt-gcr-gc-'));
    await writeFile(join(dir, 'adc.json'), JSON.stringify({ type: 'authorized_user', client_id: CLIENT_ID, client_secret: 'client-secret-value', refresh_token: REFRESH_TOKEN }));
  });
  afterAll(async () => {
    await fake?.close();
    await oauth?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });
  beforeEach(async () => {
    fake.requests.length = 0;
    fake.pageSize = 1000;
    fake.denyDelete = false;
    fake.delayMs = 0;
    const name = `gc-${randomBytes(3).toString('hex')}`;
    repository = `prebuilt-test/${name}`;
    registry = await createGcrRegistry({
      host: fake.host,
      project: 'prebuilt-test',
      image: name,
      keyFile: join(dir, 'adc.json'),
      googleAuth: { clientOptions: { endpoints: { oauth2TokenUrl: oauth.tokenUrl } } },
      env: {},
      client: { retry: { attempts: 1 }, timeoutMs: 10_000 },
    });
  });

  it('lists every image from the manifest map of tags/list, page by page along the Link header: tags, upload time, size, media type', async () => {
    const seeded = new Map([
      [fakeDigest(`${repository}-1`), image(['env-a-amd64', 'env-a'], 1_700_000_000_123, 4096, INDEX)],
      [fakeDigest(`${repository}-2`), image([], 1_700_000_100_000, 2048)],
      [fakeDigest(`${repository}-3`), image(['env-b-arm64'], 1_700_000_200_000, 1)],
      [fakeDigest(`${repository}-4`), image([], 1_700_000_300_000, 0)],
      [fakeDigest(`${repository}-5`), image(['x'], 1_700_000_400_000, 77)],
    ]);
    fake.repositories.set(repository, seeded);
    fake.pageSize = 2;
    const listed = await registry.listImages!();
    const expected = [...seeded].map(([digest, one]) => ({ digest, tags: [...one.tags], mediaType: one.mediaType, pushedAt: new Date(one.timeUploadedMs), size: one.imageSizeBytes }));
    expect(listed.sort((a, b) => a.digest.localeCompare(b.digest))).toEqual(expected.sort((a, b) => a.digest.localeCompare(b.digest)));
    const lists = fake.requests.filter((r) => r.path.includes('/tags/list') && r.scope !== '-');
    expect(lists).toHaveLength(3);
    expect(lists[1]!.path).toMatch(/\?n=2&last=sha256:/);
    expect(lists.every((r) => r.scope === `repository:${repository}:pull`)).toBe(true);
  });

  it('a listing whose Link header names a page already read is stopped, not followed forever', async () => {
    fake.repositories.set(repository, new Map([[fakeDigest(`${repository}-1`), image(['a'], 1, 1)]]));
    fake.loopPages = true;
    try {
      const error = await registry.listImages!().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(RegistryError);
      expect((error as RegistryError).message).toBe(`registry ${fake.host} listed the tags of ${repository} in a loop (page 2 is one it gave before); stopped`);
      expect(fake.requests.filter((r) => r.path.includes('/tags/list') && r.scope !== '-')).toHaveLength(1);
    } finally {
      fake.loopPages = false;
    }
  });

  it('a listing of distinct pages without end stops at its byte bound, before holding more', async () => {
    fake.repositories.set(repository, new Map(Array.from({ length: 20 }, (_, i) => [fakeDigest(`${repository}-${i}`), image([`t${i}`], 1, 1)] as const)));
    fake.pageSize = 1;
    const credentials = { registry: fake.host, username: 'oauth2accesstoken', password: new Secret(ACCESS_TOKEN), source: 'test' };
    const access = registryAccess({ host: fake.host, credentials, env: {}, dockerConfig: false, insecure: false, client: { retry: { attempts: 1 }, timeoutMs: 10_000 } });
    const error = await listGcrImages({ host: fake.host, repository, access, maxListingBytes: 1024 }, undefined).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RegistryError);
    const lists = fake.requests.filter((r) => r.path.includes('/tags/list') && r.scope !== '-');
    // Stopped at the page that took it past 1 KiB: far fewer than the 20 pages there are.
    expect(lists.length).toBeGreaterThan(1);
    expect(lists.length).toBeLessThan(20);
    expect((error as RegistryError).message).toBe(`registry ${fake.host} listed the tags of ${repository} in more than 1 KiB (${lists.length} pages); stopped`);
  });

  it('a repository that does not exist (yet) holds no images', async () => {
    expect(await registry.listImages!()).toEqual([]);
  });

  it('deletes an image: each tag first, then the digest (Google refuses a tagged digest), with a pull,push token; an image already gone is no error', async () => {
    const [gone, kept] = [fakeDigest(`${repository}-gone`), fakeDigest(`${repository}-kept`)];
    fake.repositories.set(repository, new Map([[gone, image(['old-1', 'old-2'], 1, 1)], [kept, image(['keep'], 2, 2)]]));
    await registry.deleteImage!(gone);
    const deletes = fake.requests.filter((r) => r.method === 'DELETE' && r.scope !== '-');
    expect(deletes.map((r) => r.path)).toEqual([`/v2/${repository}/manifests/old-1`, `/v2/${repository}/manifests/old-2`, `/v2/${repository}/manifests/${encodeURIComponent(gone)}`]);
    expect(deletes.every((r) => r.scope === `repository:${repository}:pull,push`)).toBe(true);
    expect((await registry.listImages!()).map((one) => one.digest)).toEqual([kept]);

    fake.requests.length = 0;
    await expect(registry.deleteImage!(gone)).resolves.toBeUndefined();
    expect(fake.requests.filter((r) => r.method === 'DELETE')).toEqual([]);
  });

  it('a batch deleted with the tags its listing gave makes no tags/list per image (a HEAD per tag); a tag moved since the listing is left alone', async () => {
    const batch = [1, 2, 3, 4].map((n) => fakeDigest(`${repository}-batch-${n}`));
    const kept = fakeDigest(`${repository}-batch-kept`);
    fake.repositories.set(repository, new Map([...batch.map((d, n) => [d, image([`env-${n}-amd64`], n + 1, 1)] as const), [kept, image(['keep'], 9, 1)]]));
    fake.pageSize = 2;
    const isList = (r: { path: string; scope: string }) => r.path.includes('/tags/list') && r.scope !== '-';
    const listed = await registry.listImages!();
    const listPages = fake.requests.filter(isList).length;
    expect(listPages).toBe(3);
    // Rebuilt since the listing: env-3-amd64 now names the kept image.
    fake.repositories.get(repository)!.get(batch[3]!)!.tags.delete('env-3-amd64');
    fake.repositories.get(repository)!.get(kept)!.tags.add('env-3-amd64');
    for (const d of batch) await registry.deleteImage!(d, { tags: listed.find((one) => one.digest === d)!.tags });
    expect(fake.requests.filter(isList)).toHaveLength(listPages);
    expect(fake.requests.filter((r) => r.method === 'HEAD' && r.scope !== '-')).toHaveLength(4);
    const deleted = fake.requests.filter((r) => r.method === 'DELETE' && r.scope !== '-').map((r) => decodeURIComponent(r.path.split('/').at(-1)!));
    expect(deleted).toEqual(['env-0-amd64', batch[0], 'env-1-amd64', batch[1], 'env-2-amd64', batch[2], batch[3]]);
    expect([...fake.repositories.get(repository)!.keys()]).toEqual([kept]);
    expect(fake.repositories.get(repository)!.get(kept)!.tags).toEqual(new Set(['keep', 'env-3-amd64']));
    // Without the listed tags, each delete reads tags/list itself.
    fake.requests.length = 0;
    fake.repositories.get(repository)!.set(batch[0]!, image(['again'], 1, 1));
    await registry.deleteImage!(batch[0]!);
    expect(fake.requests.filter(isList)).toHaveLength(1);
    expect([...fake.repositories.get(repository)!.keys()]).toEqual([kept]);
  });

  it('a refused delete is an AuthError saying which Google roles it needs, never the access token; a bad digest is an InputError', async () => {
    const digest = fakeDigest(`${repository}-denied`);
    fake.repositories.set(repository, new Map([[digest, image(['t'], 1, 1)]]));
    fake.denyDelete = true;
    const error = await registry.deleteImage!(digest).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AuthError);
    expect((error as AuthError).message).toContain('artifactregistry.repositories.deleteArtifacts');
    expect((error as AuthError).hint).toContain('roles/artifactregistry.repoAdmin');
    expect(`${(error as Error).message} ${(error as AuthError).hint} ${(error as AuthError).source}`).not.toContain(ACCESS_TOKEN);
    expect(fake.repositories.get(repository)!.get(digest)!.tags).toEqual(new Set(['t']));
    await expect(registry.deleteImage!('sha256:../../x')).rejects.toBeInstanceOf(InputError);
  });

  it('an aborted signal is a CancelledError: before any request, and for a request in flight', async () => {
    await expect(registry.listImages!({ signal: AbortSignal.abort() })).rejects.toBeInstanceOf(CancelledError);
    await expect(registry.deleteImage!(fakeDigest('x'), { signal: AbortSignal.abort() })).rejects.toBeInstanceOf(CancelledError);
    expect(fake.requests).toEqual([]);
    fake.delayMs = 2000;
    const started = Date.now();
    await expect(registry.listImages!({ signal: AbortSignal.timeout(100) })).rejects.toBeInstanceOf(CancelledError);
    expect(Date.now() - started).toBeLessThan(1500);
  });

  it('a registry whose tags/list lacks the manifest map (not Google) is a RegistryError saying so', async () => {
    fake.repositories.set(repository, new Map([[fakeDigest(repository), image(['t'], 1, 1)]]));
    fake.googleExtension = false;
    try {
      const error = await registry.listImages!().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(RegistryError);
      expect((error as RegistryError).message).toContain("without Google's manifest map");
      expect((error as RegistryError).hint).toContain('METAFLOW_PREBUILT_GCR_HOST');
    } finally {
      fake.googleExtension = true;
    }
  });
});
