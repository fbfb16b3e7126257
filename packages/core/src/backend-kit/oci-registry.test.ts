import { randomBytes } from 'node:crypto';
import { lstat, mkdtemp, readFile, rename, rm, symlink, writeFile } from 'node:fs/promises';
import type { IncomingHttpHeaders } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { RegistryCredentials } from '../contracts.js';
import { AuthError, ConfigError } from '../errors.js';
import { startFlakyProxy, type Fault, type FlakyProxyOptions } from '../registry/__fixtures__/flaky-proxy.js';
import { pushImage } from '../registry/__fixtures__/push-image.js';
import { ManifestCache } from '../registry/manifest-cache.js';
import { RegistryClient } from '../registry/registry-client.js';
import { describeOrFailInCi, missingFor, testServices } from '../registry/__fixtures__/test-services.js';
import { Secret } from '../secret.js';
import { createOciRegistry } from './oci-registry.js';
import { explicitCredentials } from './registry-credentials.js';
import { flagSetting } from './settings.js';

const services = testServices();
const missing = missingFor(['registries', 'baseImage'], services);
const FAST = { retry: { attempts: 1 }, timeoutMs: 5000 };
const ENV_ID = '0123456789abcdef';
const repo = () => `oci-registry-test/${randomBytes(4).toString('hex')}`;

describe('createOciRegistry: what the base supplies without a registry', () => {
  it('tags <host>/<repository>:env-<envId>-<arch>, keeps the pull tag unless given one, and hands out a copy of the pull config', async () => {
    const pullConfig = { kubernetes: { imagePullSecrets: ['pull'] } };
    const registry = createOciRegistry({ name: 'x', host: 'registry.example:5000', repository: 'acme/images', pullConfig, dockerConfig: false });
    expect(registry.name).toBe('x');
    expect(registry.imageTag({ envId: ENV_ID, platform: 'linux-aarch64' })).toBe(`registry.example:5000/acme/images:env-${ENV_ID}-arm64`);
    expect(registry.pullTag).toBeUndefined();
    const config = await registry.pullConfig('t');
    config.kubernetes!.imagePullSecrets!.push('changed');
    expect(await registry.pullConfig('t')).toEqual({ kubernetes: { imagePullSecrets: ['pull'] } });
    const renamed = createOciRegistry({ name: 'x', host: 'a:1', repository: 'r', pullTag: (tag) => tag.replace('a:1', 'b:2') });
    expect(renamed.pullTag!(renamed.imageTag({ envId: ENV_ID, platform: 'linux-64' }))).toBe(`b:2/r:env-${ENV_ID}-amd64`);
  });

  it('runs prepare once before push credentials, again after it failed, and throws noCredentials when there are none', async () => {
    let calls = 0;
    const registry = createOciRegistry({
      name: 'x',
      host: 'registry.example',
      repository: 'r',
      dockerConfig: false,
      prepare: async () => {
        calls += 1;
        if (calls === 1) throw new Error('first prepare fails');
      },
      noCredentials: () => new AuthError('no login', { registry: 'registry.example', source: 'none' }),
    });
    await expect(registry.pushCredentials()).rejects.toThrow('first prepare fails');
    await expect(registry.pushCredentials()).rejects.toThrow(AuthError);
    await expect(registry.pushCredentials()).rejects.toThrow(AuthError);
    expect(calls).toBe(2);
  });

  it("uses the spec's listImages and deleteImage (a registry's own API) as the registry's", async () => {
    const calls: string[] = [];
    const stored = [{ digest: `sha256:${'a'.repeat(64)}`, tags: ['t'], size: 1 }];
    const registry = createOciRegistry({
      name: 'x',
      host: 'registry.example',
      repository: 'r',
      dockerConfig: false,
      listImages: async () => (calls.push('list'), stored),
      deleteImage: async (digest) => void calls.push(`delete ${digest}`),
    });
    expect(await registry.listImages!()).toBe(stored);
    await registry.deleteImage!(stored[0]!.digest);
    expect(calls).toEqual(['list', `delete ${stored[0]!.digest}`]);
  });
});

describeOrFailInCi('createOciRegistry against the local test registries', missing, () => {
  const basic = services.registries?.basic ?? { host: '', username: '', password: '' };
  const base = services.baseImage?.ref ?? '';

  it('explicit credentials: push credentials are them, a missing image is absent, a base image resolves to its digest', async () => {
    const credentials: RegistryCredentials = { registry: basic.host, username: basic.username, password: new Secret(basic.password), source: 'test' };
    const registry = createOciRegistry({ name: 'x', host: basic.host, repository: repo(), credentials, dockerConfig: false, client: FAST });
    expect(await registry.pushCredentials()).toBe(credentials);
    expect(await registry.imageExists(registry.imageTag({ envId: ENV_ID, platform: 'linux-64' }))).toEqual({ exists: false });
    const identity = await registry.baseImageIdentity(base, 'linux/amd64');
    expect(identity.digest).toBe(services.baseImage?.digest);
  });

  it('a token source: the client is renewed with each new token, and a base image on another host never asks for one', async () => {
    const tokens: RegistryCredentials[] = [];
    let calls = 0;
    const registry = createOciRegistry({
      name: 'x',
      host: basic.host,
      repository: repo(),
      dockerConfig: false,
      client: FAST,
      credentials: {
        token: async () => {
          calls += 1;
          const next = { registry: basic.host, username: basic.username, password: new Secret(basic.password), source: `token ${calls}` };
          tokens.push(next);
          return next;
        },
      },
    });
    expect(await registry.baseImageIdentity(base, 'linux/amd64')).toMatchObject({ digest: services.baseImage?.digest });
    expect(calls).toBe(0);
    expect(await registry.imageExists(`${basic.host}/${repo()}:env-${ENV_ID}-amd64`)).toEqual({ exists: false });
    expect((await registry.pushCredentials())?.source).toBe('token 2');
    expect(calls).toBe(2);
  });

  it("with annotations, the manifest's annotations (the layout record a build checks) and its layers' media types besides the digest; without, the digest only", async () => {
    const repository = repo();
    const tag = `env-${ENV_ID}-amd64`;
    await pushImage({ host: basic.host, username: basic.username, password: basic.password }, repository, 'plain');
    const credentials: RegistryCredentials = { registry: basic.host, username: basic.username, password: new Secret(basic.password), source: 'test' };
    const client = new RegistryClient({ credentials: [credentials], dockerConfig: false, ...FAST });
    const plain = await client.getManifest(`${basic.host}/${repository}:plain`);
    const annotated = Buffer.from(JSON.stringify({ ...plain.manifest, annotations: { 'dev.prebuilt.prefetch': 'profile sha256:abc' } }));
    const digest = await client.putManifest(`${basic.host}/${repository}:${tag}`, annotated, plain.mediaType);
    const registry = createOciRegistry({ name: 'x', host: basic.host, repository, credentials, dockerConfig: false, client: FAST });
    const pushTag = registry.imageTag({ envId: ENV_ID, platform: 'linux-64' });
    const layerMediaTypes = (plain.manifest as { layers: { mediaType: string }[] }).layers.map((layer) => layer.mediaType);
    expect(layerMediaTypes.length).toBeGreaterThan(0);
    expect(await registry.imageExists(pushTag, { annotations: true })).toEqual({ exists: true, digest, annotations: { 'dev.prebuilt.prefetch': 'profile sha256:abc' }, layerMediaTypes });
    expect(await registry.imageExists(pushTag)).toEqual({ exists: true, digest });
    expect(await registry.imageExists(`${basic.host}/${repository}:plain`, { annotations: true })).toEqual({ exists: true, digest: plain.digest, annotations: {}, layerMediaTypes });
    expect(await registry.imageExists(`${basic.host}/${repository}:absent`, { annotations: true })).toEqual({ exists: false });
  });

  /** A fresh manifest cache directory, removed after the test. */
  const cacheDir = async (): Promise<AsyncDisposable & { dir: string }> => {
    const dir = await mkdtemp(join(tmpdir(), 'oci-registry-manifests-'));
    return { dir, [Symbol.asyncDispose]: () => rm(dir, { recursive: true, force: true }) };
  };

  /** An image pushed to the plain registry, and a counting proxy in front of it (closed after the test). */
  const pushedBehindProxy = async (proxyOptions: FlakyProxyOptions = {}, faults: Fault[] = []) => {
    const plain = services.registries!.plain.host;
    const repository = repo();
    const tag = `env-${ENV_ID}-amd64`;
    const pushed = await pushImage({ host: plain }, repository, tag);
    const proxy = await startFlakyProxy(plain, faults, 0, proxyOptions);
    const manifestPath = `/v2/${repository}/manifests/${tag}`;
    return { pushed, proxy, repository, manifestPath, [Symbol.asyncDispose]: () => proxy.close() };
  };

  it('a no-op redeploy only HEADs: the first check GETs the manifest and keeps it; the next ones, by a new registry object as a new build makes, HEAD and read it from the cache', async () => {
    await using cache = await cacheDir();
    await using world = await pushedBehindProxy();
    const { proxy, pushed, repository, manifestPath } = world;
    const make = () => createOciRegistry({ name: 'x', host: proxy.host, repository, dockerConfig: false, client: FAST, manifestCache: cache.dir });
    const first = make();
    const pushTag = first.imageTag({ envId: ENV_ID, platform: 'linux-64' });
    const found = { exists: true, digest: pushed.digest, annotations: {}, layerMediaTypes: [expect.any(String)] };
    expect(await first.imageExists(pushTag, { annotations: true })).toEqual(found);
    expect(proxy.requests).toEqual([`HEAD ${manifestPath}`, `GET ${manifestPath}`]);
    expect(await readFile(join(cache.dir, pushed.digest.slice('sha256:'.length)))).toEqual(Buffer.from(pushed.manifest));

    const redeploy = make();
    expect(await redeploy.imageExists(pushTag, { annotations: true })).toEqual(found);
    expect(await redeploy.imageExists(pushTag)).toEqual({ exists: true, digest: pushed.digest });
    expect(await redeploy.imageExists(`${proxy.host}/${repository}:absent`, { annotations: true })).toEqual({ exists: false });
    expect(proxy.requests.slice(2)).toEqual([`HEAD ${manifestPath}`, `HEAD ${manifestPath}`, `HEAD /v2/${repository}/manifests/absent`]);
  });

  it('a client with a manifest cache: a manifest it put, or read by digest before, is a HEAD only; one the registry deleted since is a 404 all the same', async () => {
    await using cache = await cacheDir();
    await using world = await pushedBehindProxy();
    const { proxy, pushed, repository } = world;
    const client = new RegistryClient({ dockerConfig: false, ...FAST, manifestCache: new ManifestCache(cache.dir) });
    const byDigest = `${proxy.host}/${repository}@${pushed.digest}`;
    const path = `/v2/${repository}/manifests/${pushed.digest}`;
    expect((await client.getManifest(byDigest)).bytes).toEqual(pushed.manifest);
    expect((await client.getManifest(byDigest)).bytes).toEqual(pushed.manifest);
    expect(proxy.requests).toEqual([`GET ${path}`, `HEAD ${path}`]);
    const annotated = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(pushed.manifest).toString('utf8')), annotations: { put: 'here' } }));
    const digest = await client.putManifest(`${proxy.host}/${repository}:annotated`, annotated, pushed.mediaType);
    proxy.requests.length = 0;
    expect(await client.checkManifest(`${proxy.host}/${repository}:annotated`)).toMatchObject({ exists: true, cached: true, result: { digest } });
    expect(proxy.requests).toEqual([`HEAD /v2/${repository}/manifests/annotated`]);
    await client.deleteManifest(`${proxy.host}/${repository}`, pushed.digest);
    await expect(client.getManifest(byDigest)).rejects.toMatchObject({ status: 404 });
  });

  it('without a manifest cache (manifestCache: false), one GET per check, as before', async () => {
    await using world = await pushedBehindProxy();
    const { proxy, pushed, repository, manifestPath } = world;
    const registry = createOciRegistry({ name: 'x', host: proxy.host, repository, dockerConfig: false, client: FAST, manifestCache: false });
    const pushTag = registry.imageTag({ envId: ENV_ID, platform: 'linux-64' });
    expect(await registry.imageExists(pushTag, { annotations: true })).toMatchObject({ exists: true, digest: pushed.digest, annotations: {} });
    expect(await registry.imageExists(pushTag)).toEqual({ exists: true, digest: pushed.digest });
    expect(proxy.requests).toEqual([`GET ${manifestPath}`, `GET ${manifestPath}`]);
  });

  it('a tampered cache entry (other bytes under the digest, a symlink to the real bytes) is ignored: the manifest is read again by GET, and the entry replaced', async () => {
    await using cache = await cacheDir();
    await using world = await pushedBehindProxy();
    const { proxy, pushed, repository, manifestPath } = world;
    const make = () => createOciRegistry({ name: 'x', host: proxy.host, repository, dockerConfig: false, client: FAST, manifestCache: cache.dir });
    const pushTag = make().imageTag({ envId: ENV_ID, platform: 'linux-64' });
    await make().imageExists(pushTag, { annotations: true });
    const entry = join(cache.dir, pushed.digest.slice('sha256:'.length));
    // A planted manifest claiming the layout a build looks for: taken, it would make the build skip.
    const planted = JSON.parse(Buffer.from(pushed.manifest).toString('utf8')) as Record<string, unknown>;
    await writeFile(entry, JSON.stringify({ ...planted, annotations: { 'dev.prebuilt.prefetch': 'profile sha256:planted' } }));
    proxy.requests.length = 0;
    expect(await make().imageExists(pushTag, { annotations: true })).toMatchObject({ exists: true, digest: pushed.digest, annotations: {} });
    expect(proxy.requests).toEqual([`HEAD ${manifestPath}`, `GET ${manifestPath}`]);
    expect(await readFile(entry)).toEqual(Buffer.from(pushed.manifest));
    // The right bytes, but through a symlink (which could as well point at a FIFO or /dev/zero): not followed.
    const elsewhere = join(cache.dir, 'elsewhere');
    await rename(entry, elsewhere);
    await symlink(elsewhere, entry);
    proxy.requests.length = 0;
    expect(await make().imageExists(pushTag)).toEqual({ exists: true, digest: pushed.digest });
    expect(proxy.requests).toEqual([`HEAD ${manifestPath}`, `GET ${manifestPath}`]);
    expect((await lstat(entry)).isFile()).toBe(true);
  });

  it('a registry whose manifest HEAD gives no Docker-Content-Digest: the manifest is read by GET (verified), and that registry is not asked HEAD again', async () => {
    await using cache = await cacheDir();
    const dropDigest = (method: string, _path: string, headers: IncomingHttpHeaders): IncomingHttpHeaders => {
      if (method === 'HEAD') delete headers['docker-content-digest'];
      return headers;
    };
    await using world = await pushedBehindProxy({ answerHeaders: dropDigest });
    const { proxy, pushed, repository, manifestPath } = world;
    const registry = createOciRegistry({ name: 'x', host: proxy.host, repository, dockerConfig: false, client: FAST, manifestCache: cache.dir });
    const pushTag = registry.imageTag({ envId: ENV_ID, platform: 'linux-64' });
    expect(await registry.imageExists(pushTag, { annotations: true })).toMatchObject({ exists: true, digest: pushed.digest, annotations: {} });
    expect(await registry.imageExists(pushTag)).toEqual({ exists: true, digest: pushed.digest });
    expect(await registry.imageExists(`${proxy.host}/${repository}:absent`)).toEqual({ exists: false });
    expect(proxy.requests).toEqual([`HEAD ${manifestPath}`, `GET ${manifestPath}`, `GET ${manifestPath}`, `GET /v2/${repository}/manifests/absent`]);
  });

  it('a registry that refuses manifest HEADs (405): the manifest is read by GET, and that registry is not asked HEAD again', async () => {
    await using cache = await cacheDir();
    await using world = await pushedBehindProxy({ faultOn: (method) => method === 'HEAD' }, [{ status: 405 }, { status: 405 }]);
    const { proxy, pushed, repository, manifestPath } = world;
    const registry = createOciRegistry({ name: 'x', host: proxy.host, repository, dockerConfig: false, client: FAST, manifestCache: cache.dir });
    const pushTag = registry.imageTag({ envId: ENV_ID, platform: 'linux-64' });
    expect(await registry.imageExists(pushTag)).toEqual({ exists: true, digest: pushed.digest });
    expect(await registry.imageExists(pushTag, { annotations: true })).toMatchObject({ exists: true, digest: pushed.digest, annotations: {} });
    expect(proxy.requests).toEqual([`HEAD ${manifestPath}`, `GET ${manifestPath}`, `GET ${manifestPath}`]);
  });

  for (const flavour of ['basic', 'token'] as const) {
    it(`lists the env repository and deletes an image by digest over the distribution API (${flavour} registry)`, async () => {
      const endpoint = services.registries![flavour];
      const repository = repo();
      const token = flavour === 'token' ? { token: { realm: services.registries!.token.realm, service: services.registries!.token.service } } : {};
      const pushed = await pushImage({ host: endpoint.host, username: endpoint.username, password: endpoint.password, ...token }, repository, `env-${ENV_ID}-amd64`);
      const credentials: RegistryCredentials = { registry: endpoint.host, username: endpoint.username, password: new Secret(endpoint.password), source: 'test' };
      const registry = createOciRegistry({ name: 'x', host: endpoint.host, repository, credentials, dockerConfig: false, client: FAST });
      expect(await registry.listImages!()).toMatchObject([{ digest: pushed.digest, tags: [`env-${ENV_ID}-amd64`], mediaType: pushed.mediaType }]);
      await registry.deleteImage!(pushed.digest);
      expect(await registry.imageExists(registry.imageTag({ envId: ENV_ID, platform: 'linux-64' }))).toEqual({ exists: false });
      expect(await registry.listImages!()).toEqual([]);
      // Already gone: nothing to do.
      await registry.deleteImage!(pushed.digest);
    });
  }

  it('a wrong token is an AuthError naming its source, never the password', async () => {
    const password = `wrong-${randomBytes(8).toString('hex')}`;
    const registry = createOciRegistry({
      name: 'x',
      host: basic.host,
      repository: repo(),
      client: FAST,
      credentials: { token: async () => ({ registry: basic.host, username: basic.username, password: new Secret(password), source: 'the test token' }) },
    });
    const error = await registry.imageExists(`${basic.host}/${repo()}:env-${ENV_ID}-amd64`).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AuthError);
    expect(`${(error as Error).message} ${(error as AuthError).hint}`).toContain('the test token');
    expect(`${(error as Error).message} ${(error as AuthError).hint}`).not.toContain(password);
  });
});

describe('explicitCredentials and flagSetting', () => {
  const envVars = { username: 'X_USER', password: 'X_PASSWORD' };
  it('a pair from options or env is a Secret with its source; none is undefined; half a pair names the missing half', () => {
    expect(explicitCredentials({ registry: 'r', label: 'X registry', username: undefined, password: undefined, envVars, env: {} })).toBeUndefined();
    const fromEnv = explicitCredentials({ registry: 'r', label: 'X registry', username: undefined, password: undefined, envVars, env: { X_USER: 'u', X_PASSWORD: 'p' } });
    expect(fromEnv).toMatchObject({ registry: 'r', username: 'u', source: 'env X_USER/X_PASSWORD' });
    expect(fromEnv!.password).toBeInstanceOf(Secret);
    const fromOptions = explicitCredentials({ registry: 'r', label: 'X registry', username: 'u', password: new Secret('p'), envVars, env: {} });
    expect(fromOptions).toMatchObject({ source: "the options 'username'/'password'" });
    expect(fromOptions!.password!.reveal()).toBe('p');
    expect(() => explicitCredentials({ registry: 'r', label: 'X registry', username: 'u', password: undefined, envVars, env: {} })).toThrow("The X registry username is set but its password, X_PASSWORD (or the option 'password'), is not.");
  });

  it('flagSetting (loadBooleanSetting\'s older name) reads yes/no values, falls back when unset, and refuses anything else naming the env var and the option', () => {
    expect(flagSetting({ value: undefined, envVar: 'F', option: 'f', fallback: true, env: {} })).toBe(true);
    expect(flagSetting({ value: false, envVar: 'F', option: 'f', fallback: true, env: { F: '1' } })).toBe(false);
    expect(flagSetting({ value: undefined, envVar: 'F', option: 'f', fallback: false, env: { F: 'Yes' } })).toBe(true);
    expect(flagSetting({ value: undefined, envVar: 'F', option: 'f', fallback: true, env: { F: 'off' } })).toBe(false);
    const error = (() => {
      try {
        flagSetting({ value: undefined, envVar: 'F', option: 'f', fallback: true, env: { F: 'maybe' } });
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(ConfigError);
    expect(`${(error as ConfigError).message} ${(error as ConfigError).hint}`).toMatch(/F='maybe'.*'f'/);
  });
});
