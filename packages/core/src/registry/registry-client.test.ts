import { execFile } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { RegistryCredentials } from '../contracts.js';
import { AuthError, CancelledError, InputError, LoginRequiredError, RegistryError, UnreachableError } from '../errors.js';
import { Secret } from '../secret.js';
import { debugLinesOf } from './__fixtures__/debug-lines.js';
import { startFlakyProxy, type FlakyProxy } from './__fixtures__/flaky-proxy.js';
import { pushImage, pushIndex, sha256, uniqueRepo, type PushedImage } from './__fixtures__/push-image.js';
import { describeOrFailInCi, itWith, registriesMissing, testServices, type TestServices } from './__fixtures__/test-services.js';
import { MediaType } from './media-types.js';
import { RegistryClient, type RegistryClientOptions } from './registry-client.js';
import { resolveBaseImage } from '../backend-kit/base-image.js';

const run = promisify(execFile);
const services: TestServices = testServices();
const missing = registriesMissing(services);
const registries = services.registries;

/** Fast retries for tests; no Docker config unless a test asks for it. */
const FAST: RegistryClientOptions = { dockerConfig: false, retry: { attempts: 3, baseDelayMs: 20, maxDelayMs: 2000 }, timeoutMs: 5000 };

function creds(registry: string, username: string, password: string, source = 'test credentials'): RegistryCredentials {
  return { registry, username, password: new Secret(password), source };
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected a rejection');
}

describeOrFailInCi('RegistryClient against the plain registry', missing, () => {
  const host = registries?.plain.host ?? '';
  let image: PushedImage;

  beforeAll(async () => {
    image = await pushImage({ host }, uniqueRepo('plain'), 'v1');
  });

  it('HEADs a present manifest by tag and by digest, with the digest the registry stored', async () => {
    const client = new RegistryClient(FAST);
    const byTag = await client.headManifest(`${host}/${image.repository}:v1`);
    expect(byTag).toEqual({ exists: true, digest: image.digest, mediaType: MediaType.ociManifest, size: image.manifest.length });
    expect(image.digest).toBe(sha256(image.manifest));
    const byDigest = await client.headManifest(`${host}/${image.repository}@${image.digest}`);
    expect(byDigest.exists && byDigest.digest).toBe(image.digest);
  });

  it('reports a missing tag and a missing repository as absent', async () => {
    const client = new RegistryClient(FAST);
    expect(await client.headManifest(`${host}/${image.repository}:nope`)).toEqual({ exists: false });
    expect(await client.headManifest(`${host}/${uniqueRepo('never-pushed')}:v1`)).toEqual({ exists: false });
    expect(await client.headManifest(`${host}/${image.repository}@sha256:${'0'.repeat(64)}`)).toEqual({ exists: false });
  });

  it('GETs a manifest, verifies its digest and parses it', async () => {
    const client = new RegistryClient(FAST);
    const result = await client.getManifest(`${host}/${image.repository}:v1`);
    expect(result.digest).toBe(image.digest);
    expect(Buffer.from(result.bytes).equals(Buffer.from(image.manifest))).toBe(true);
    expect(result.mediaType).toBe(MediaType.ociManifest);
    expect('layers' in result.manifest && result.manifest.layers[0]?.digest).toBe(image.layerDigest);
    expect(result.indexDigest).toBeUndefined();
    const error = await rejection(client.getManifest(`${host}/${image.repository}:nope`));
    expect(error).toBeInstanceOf(RegistryError);
    expect((error as RegistryError).status).toBe(404);
    expect((error as RegistryError).message).toContain(`${host}/${image.repository}:nope was not found`);
  });

  it('resolves an OCI index to the platform manifest and keeps the index digest', async () => {
    const repo = uniqueRepo('index');
    const pushed = await pushIndex({ host }, repo, 'multi');
    const client = new RegistryClient(FAST);
    const head = await client.headManifest(`${host}/${repo}:multi`);
    expect(head.exists && head.digest).toBe(pushed.digest);
    expect(head.exists && head.mediaType).toBe(MediaType.ociIndex);

    const arm = await client.getManifest(`${host}/${repo}:multi`, { platform: 'linux/arm64' });
    expect(arm.digest).toBe(pushed.arm64.digest);
    expect(arm.indexDigest).toBe(pushed.digest);
    const amd = await client.getManifest(`${host}/${repo}:multi`, { platform: 'linux/amd64' });
    expect(amd.digest).toBe(pushed.amd64.digest);
    const whole = await client.getManifest(`${host}/${repo}:multi`);
    expect(whole.digest).toBe(pushed.digest);
    expect('manifests' in whole.manifest && whole.manifest.manifests).toHaveLength(2);

    const error = await rejection(client.getManifest(`${host}/${repo}:multi`, { platform: 'linux/ppc64le' }));
    expect(error).toBeInstanceOf(InputError);
    expect((error as InputError).message).toContain('offers linux/amd64, linux/arm64/v8');
  });

  it('checks a single-platform image against the platform, and gives base image identities', async () => {
    const repo = uniqueRepo('single');
    const arm = await pushImage({ host }, repo, 'arm-only', 'arm64');
    const client = new RegistryClient(FAST);
    expect((await client.getManifest(`${host}/${repo}:arm-only`, { platform: 'linux/arm64' })).digest).toBe(arm.digest);
    const error = await rejection(client.getManifest(`${host}/${repo}:arm-only`, { platform: 'linux/amd64' }));
    expect(error).toBeInstanceOf(InputError);
    expect((error as InputError).message).toBe(`image ${host}/${repo}:arm-only is built for linux/arm64, not for platform linux/amd64`);

    expect(await client.baseImageIdentity(`${host}/${repo}:arm-only`, 'linux/arm64')).toEqual({
      ref: `${host}/${repo}:arm-only`,
      digest: arm.digest,
      pinned: `${host}/${repo}@${arm.digest}`,
    });
    const multi = await pushIndex({ host }, repo, 'multi');
    expect(await client.baseImageIdentity(`${host}/${repo}:multi`, 'linux/amd64')).toMatchObject({ digest: multi.amd64.digest, pinned: `${host}/${repo}@${multi.amd64.digest}` });
    // The registries' resolveBaseImage: a multi-platform base keeps the index digest as its identity
    // (one per base, whatever the platform) and is pinned by the platform's own manifest for FROM.
    for (const [platform, own] of [['linux/amd64', multi.amd64.digest], ['linux/arm64', multi.arm64.digest]] as const) {
      expect(await resolveBaseImage(client, `${host}/${repo}:multi`, platform, undefined)).toEqual({
        ref: `${host}/${repo}:multi`,
        digest: multi.digest,
        pinned: `${host}/${repo}@${own}`,
      });
    }
    expect((await resolveBaseImage(client, `${host}/${repo}:arm-only`, 'linux/arm64', undefined)).pinned).toBe(`${host}/${repo}@${arm.digest}`);
  });

  it('HEADs blobs', async () => {
    const client = new RegistryClient(FAST);
    expect(await client.headBlob(`${host}/${image.repository}`, image.layerDigest)).toEqual({ exists: true, size: image.layerSize });
    expect(await client.headBlob(`${host}/${image.repository}`, `sha256:${'1'.repeat(64)}`)).toEqual({ exists: false });
  });

  it('returns the digest skopeo reports for an image it pushed', async ({ skip }) => {
    const skopeo = await run('skopeo', ['--version']).catch(() => undefined);
    if (!skopeo) skip('skopeo is not installed (apt-get install -y skopeo)');
    const dir = await mkdtemp(join(tmpdir(), 'prebuilt-oci-'));
    try {
      // A one-layer OCI layout on disk; skopeo copies it to the registry and writes the digest it pushed.
      const layer = Buffer.from('not really a tar, but a blob is a blob\n');
      const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [sha256(layer)] } }));
      const manifest = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: MediaType.ociManifest,
          config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
          layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256(layer), size: layer.length }],
        }),
      );
      await mkdir(join(dir, 'layout', 'blobs', 'sha256'), { recursive: true });
      for (const blob of [layer, config, manifest]) await writeFile(join(dir, 'layout', 'blobs', 'sha256', sha256(blob).slice(7)), blob);
      await writeFile(join(dir, 'layout', 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
      await writeFile(
        join(dir, 'layout', 'index.json'),
        JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: MediaType.ociManifest, digest: sha256(manifest), size: manifest.length, annotations: { 'org.opencontainers.image.ref.name': 'v1' } }] }),
      );
      const repo = uniqueRepo('skopeo');
      await run('skopeo', ['copy', '--quiet', '--dest-tls-verify=false', '--digestfile', join(dir, 'digest'), `oci:${join(dir, 'layout')}:v1`, `docker://${host}/${repo}:v1`]);
      const reported = (await readFile(join(dir, 'digest'), 'utf8')).trim();
      const head = await new RegistryClient(FAST).headManifest(`${host}/${repo}:v1`);
      expect(reported).toMatch(/^sha256:[0-9a-f]{64}$/);
      expect(head.exists && head.digest).toBe(reported);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  itWith(['baseImage'], 'returns the digest docker push reported for the base image', async () => {
    const base = services.baseImage!;
    const head = await new RegistryClient(FAST).headManifest(base.ref);
    expect(head.exists && head.digest).toBe(base.digest);
  });
});

describeOrFailInCi('RegistryClient with Basic auth (htpasswd registry)', missing, () => {
  const reg = registries?.basic ?? { host: '', username: '', password: '' };
  let image: PushedImage;
  let configDir: string;

  beforeAll(async () => {
    image = await pushImage(reg, uniqueRepo('basic'), 'v1');
    configDir = await mkdtemp(join(tmpdir(), 'prebuilt-docker-config-'));
  });
  afterAll(async () => {
    await rm(configDir, { recursive: true, force: true });
  });

  it('finds present and missing manifests with good credentials', async () => {
    const client = new RegistryClient({ ...FAST, credentials: creds(reg.host, reg.username, reg.password) });
    expect(await client.headManifest(`${reg.host}/${image.repository}:v1`)).toMatchObject({ exists: true, digest: image.digest });
    expect(await client.headManifest(`${reg.host}/${image.repository}:nope`)).toEqual({ exists: false });
    expect(await client.headBlob(`${reg.host}/${image.repository}`, image.layerDigest)).toMatchObject({ exists: true });
  });

  it('rejects bad credentials with an AuthError naming the registry and source, never the password', async () => {
    const client = new RegistryClient({ ...FAST, credentials: creds(reg.host, reg.username, 'wrong-password-123', 'env TEST_REGISTRY_PASSWORD') });
    const error = await rejection(client.headManifest(`${reg.host}/${image.repository}:v1`));
    expect(error).toBeInstanceOf(AuthError);
    const auth = error as AuthError;
    expect(auth.registry).toBe(reg.host);
    expect(auth.source).toBe('env TEST_REGISTRY_PASSWORD');
    expect(auth.message).toContain(`registry ${reg.host} rejected the credentials of user '${reg.username}'`);
    expect(`${auth.message} ${auth.hint} ${JSON.stringify(auth)}`).not.toContain('wrong-password-123');
  });

  it('asks for credentials when there are none: a LoginRequiredError (exit 2)', async () => {
    const client = new RegistryClient({ ...FAST, dockerConfig: { env: { DOCKER_CONFIG: join(configDir, 'empty') } } });
    const error = await rejection(client.headManifest(`${reg.host}/${image.repository}:v1`));
    expect(error).toBeInstanceOf(LoginRequiredError);
    expect((error as LoginRequiredError).exitCode).toBe(2);
    expect((error as LoginRequiredError).message).toContain('requires a user name and password');
    expect((error as LoginRequiredError).source).toContain(join(configDir, 'empty', 'config.json'));
    expect((error as LoginRequiredError).hint).toContain(`docker login ${reg.host}`);
  });

  it("ends the hint with the caller's other way to give credentials, for the registries it names only", async () => {
    const dockerConfig = { env: { DOCKER_CONFIG: join(configDir, 'empty') } };
    const hinted = new RegistryClient({ ...FAST, dockerConfig, credentialsHint: (registry) => (registry === reg.host ? 'set ACME_USER and ACME_PASSWORD' : undefined) });
    const error = await rejection(hinted.headManifest(`${reg.host}/${image.repository}:v1`));
    expect((error as AuthError).hint).toBe(`Log in with 'docker login ${reg.host}', or set ACME_USER and ACME_PASSWORD.`);
    const other = new RegistryClient({ ...FAST, dockerConfig, credentialsHint: () => undefined });
    expect((await rejection(other.headManifest(`${reg.host}/${image.repository}:v1`)) as AuthError).hint).toBe(`Log in with 'docker login ${reg.host}' or pass credentials for it.`);
  });

  it('reads credentials from the Docker config auths', async () => {
    const dir = join(configDir, 'auths');
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'config.json'), JSON.stringify({ auths: { [`http://${reg.host}/v2/`]: { auth: Buffer.from(`${reg.username}:${reg.password}`).toString('base64') } } }));
    const client = new RegistryClient({ ...FAST, dockerConfig: { env: { DOCKER_CONFIG: dir } } });
    expect(await client.headManifest(`${reg.host}/${image.repository}:v1`)).toMatchObject({ exists: true, digest: image.digest });
    expect((await client.credentialsFor(reg.host))?.source).toContain('auths');
  });

  it('reads credentials through a credential helper (credHelpers) found on PATH', async () => {
    const dir = join(configDir, 'helper');
    await mkdir(dir, { recursive: true });
    const helper = join(dir, 'docker-credential-prebuilttest');
    await writeFile(
      helper,
      `#!/bin/sh\nread -r server || true\n[ "$server" = "${reg.host}" ] || { echo "credentials not found in native keychain"; exit 1; }\nprintf '{"ServerURL":"%s","Username":"%s","Secret":"%s"}' "$server" "${reg.username}" "${reg.password}"\n`,
    );
    await chmod(helper, 0o755);
    await writeFile(join(dir, 'config.json'), JSON.stringify({ credHelpers: { [reg.host]: 'prebuilttest' }, credsStore: 'absent-store' }));
    const client = new RegistryClient({ ...FAST, dockerConfig: { env: { DOCKER_CONFIG: dir, PATH: `${dir}:${process.env['PATH'] ?? ''}` } } });
    expect(await client.headManifest(`${reg.host}/${image.repository}:v1`)).toMatchObject({ exists: true, digest: image.digest });
    expect((await client.credentialsFor(reg.host))?.source).toContain('docker-credential-prebuilttest');
  });
});

describeOrFailInCi('RegistryClient with Bearer token auth (token server)', missing, () => {
  const reg = registries?.token ?? { host: '', username: '', password: '', realm: '', service: '' };
  let image: PushedImage;
  let other: PushedImage;

  beforeAll(async () => {
    const target = { ...reg, token: { realm: reg.realm, service: reg.service } };
    image = await pushImage(target, uniqueRepo('token'), 'v1');
    other = await pushImage(target, uniqueRepo('token-other'), 'v1');
  });
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it('answers the Bearer challenge with the user\'s credentials and caches the token per scope', async () => {
    const spy = vi.spyOn(globalThis, 'fetch');
    const tokenRequests = (): number => spy.mock.calls.filter(([url]) => String(url).startsWith(reg.realm)).length;
    const client = new RegistryClient({ ...FAST, credentials: creds(reg.host, reg.username, reg.password) });
    expect(await client.headManifest(`${reg.host}/${image.repository}:v1`)).toMatchObject({ exists: true, digest: image.digest });
    expect(tokenRequests()).toBe(1);
    expect(await client.headManifest(`${reg.host}/${image.repository}:nope`)).toEqual({ exists: false });
    expect(await client.getManifest(`${reg.host}/${image.repository}:v1`)).toMatchObject({ digest: image.digest });
    expect(await client.headBlob(`${reg.host}/${image.repository}`, image.layerDigest)).toMatchObject({ exists: true });
    expect(tokenRequests()).toBe(1); // same scope: cached
    expect(await client.headManifest(`${reg.host}/${other.repository}:v1`)).toMatchObject({ exists: true, digest: other.digest });
    expect(tokenRequests()).toBe(2); // another repository: another scope, fetched up front
    const withAuth = spy.mock.calls.filter(([url, init]) => String(url).includes(other.repository) && JSON.stringify(init?.headers ?? {}).includes('Bearer'));
    expect(withAuth.length).toBe(1); // the known Bearer registry got its token before any challenge
  });

  it('shares one token fetch between concurrent requests for one scope', async () => {
    const client = new RegistryClient({ ...FAST, credentials: creds(reg.host, reg.username, reg.password) });
    await client.headManifest(`${reg.host}/${image.repository}:v1`); // learns that the registry wants Bearer tokens
    const spy = vi.spyOn(globalThis, 'fetch');
    const heads = await Promise.all(['v1', 'v1', 'nope'].map((tag) => client.headManifest(`${reg.host}/${other.repository}:${tag}`)));
    expect(heads.map((h) => h.exists)).toEqual([true, true, false]);
    expect(spy.mock.calls.filter(([url]) => String(url).startsWith(reg.realm))).toHaveLength(1);
  });

  it('reports bad credentials as an AuthError naming the registry and source', async () => {
    const client = new RegistryClient({ ...FAST, credentials: creds(reg.host, reg.username, 'not-the-password', '/home/u/.docker/config.json (auths)') });
    const error = await rejection(client.headManifest(`${reg.host}/${image.repository}:v1`));
    expect(error).toBeInstanceOf(AuthError);
    const auth = error as AuthError;
    expect(auth.registry).toBe(reg.host);
    expect(auth.source).toBe('/home/u/.docker/config.json (auths)');
    expect(auth.message).toContain(`for registry ${reg.host} refused user '${reg.username}'`);
    expect(`${auth.message} ${auth.hint}`).not.toContain('not-the-password');
  });

  it('reports anonymous access to a private repository as a LoginRequiredError (exit 2: no credentials were found, none refused)', async () => {
    const client = new RegistryClient(FAST);
    const error = await rejection(client.headManifest(`${reg.host}/${image.repository}:v1`));
    expect(error).toBeInstanceOf(LoginRequiredError);
    expect((error as LoginRequiredError).exitCode).toBe(2);
    expect((error as LoginRequiredError).code).toBe('login-required');
    expect((error as LoginRequiredError).message).toContain(`registry ${reg.host} denied anonymous access to repository:${image.repository}:pull`);
    expect((error as LoginRequiredError).source).toBe('no credentials');
    expect((error as LoginRequiredError).hint).toContain(`If ${reg.host}/${image.repository} is public, check its name`);
  });
});

describeOrFailInCi('RegistryClient retries and timeouts (a flaky proxy on 127.0.0.1 in front of the plain registry)', missing, () => {
  const host = registries?.plain.host ?? '';
  let image: PushedImage;
  const proxies: FlakyProxy[] = [];
  const proxy = async (...args: Parameters<typeof startFlakyProxy>): Promise<FlakyProxy> => {
    const started = await startFlakyProxy(...args);
    proxies.push(started);
    return started;
  };

  beforeAll(async () => {
    image = await pushImage({ host }, uniqueRepo('retry'), 'v1');
  });
  afterEach(async () => {
    await Promise.all(proxies.splice(0).map((p) => p.close()));
  });

  it('retries 503s and succeeds', async () => {
    const flaky = await proxy(host, [{ status: 503 }, { status: 502 }]);
    const head = await new RegistryClient(FAST).headManifest(`${flaky.host}/${image.repository}:v1`);
    expect(head).toMatchObject({ exists: true, digest: image.digest });
    expect(flaky.requests).toHaveLength(3);
  });

  it('honours Retry-After on 429 (seconds and HTTP date)', async () => {
    const flaky = await proxy(host, [{ status: 429, retryAfter: '1' }, { status: 429, retryAfter: () => new Date(Date.now() + 1500).toUTCString() }]);
    const started = Date.now();
    const result = await new RegistryClient(FAST).getManifest(`${flaky.host}/${image.repository}:v1`);
    const elapsed = Date.now() - started;
    expect(result.digest).toBe(image.digest);
    expect(flaky.requests).toHaveLength(3);
    // 1 s, then until the date (whole seconds, so 0.5–1.5 s); backoff alone would take ~60 ms.
    expect(elapsed).toBeGreaterThanOrEqual(1400);
  });

  it('retries connection resets', async () => {
    const flaky = await proxy(host, ['reset', 'reset']);
    const head = await new RegistryClient(FAST).headBlob(`${flaky.host}/${image.repository}`, image.layerDigest);
    expect(head).toEqual({ exists: true, size: image.layerSize });
    expect(flaky.requests).toHaveLength(3);
  });

  it('gives up after the configured attempts with a RegistryError naming the registry and the last error', async () => {
    const flaky = await proxy(host, [{ status: 503 }, { status: 503 }, { status: 503 }, { status: 503 }]);
    const error = await rejection(new RegistryClient(FAST).headManifest(`${flaky.host}/${image.repository}:v1`));
    expect(error).toBeInstanceOf(RegistryError);
    expect((error as RegistryError).registry).toBe(flaky.host);
    expect((error as RegistryError).status).toBe(503);
    expect((error as RegistryError).message).toMatch(new RegExp(`^registry ${flaky.host}: GET http://${flaky.host}/v2/.* failed after 3 attempts: 503 Service Unavailable`));
    expect(flaky.requests).toHaveLength(3);
  });

  it('times out a request that gets no answer, and retries it', async () => {
    const flaky = await proxy(host, ['hang', 'hang']);
    const client = new RegistryClient({ ...FAST, timeoutMs: 300, retry: { attempts: 2, baseDelayMs: 10 } });
    const started = Date.now();
    const error = await rejection(client.headManifest(`${flaky.host}/${image.repository}:v1`));
    expect(error).toBeInstanceOf(RegistryError);
    expect((error as RegistryError).message).toContain(`failed after 2 attempts: manifest from ${flaky.host}: no data for 0.3 s (METAFLOW_PREBUILT_NETWORK_IDLE_TIMEOUT)`);
    expect(flaky.requests).toHaveLength(2);
    expect(Date.now() - started).toBeLessThan(3000);
    // With a third attempt allowed, the same proxy answers.
    const again = await new RegistryClient({ ...FAST, timeoutMs: 300 }).headManifest(`${flaky.host}/${image.repository}:v1`);
    expect(again).toMatchObject({ exists: true, digest: image.digest });
  });

  it("stops at once with CancelledError when the caller aborts, without retrying", async () => {
    const flaky = await proxy(host, ['hang', 'hang', 'hang']);
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 100);
    const started = Date.now();
    const error = await rejection(new RegistryClient(FAST).headManifest(`${flaky.host}/${image.repository}:v1`, { signal: controller.signal }));
    expect(error).toBeInstanceOf(CancelledError);
    expect(Date.now() - started).toBeLessThan(2000);
    expect(flaky.requests).toHaveLength(1);
  });

  it('fails fast on a refused connection to a registry that never answered', async () => {
    const closed = await proxy(host, []);
    await closed.close();
    const client = new RegistryClient({ ...FAST, retry: { attempts: 3, baseDelayMs: 2000 } });
    const started = Date.now();
    const error = await rejection(client.headManifest(`${closed.host}/${image.repository}:v1`));
    // Nothing there: the same kind of fault as an unreachable Docker daemon (code unreachable, exit 2).
    expect(error).toBeInstanceOf(UnreachableError);
    expect((error as UnreachableError).code).toBe('unreachable');
    expect((error as UnreachableError).exitCode).toBe(2);
    expect((error as UnreachableError).message).toBe(`registry ${closed.host}: GET http://${closed.host}/v2/${image.repository}/manifests/v1 failed: connection refused`);
    expect((error as UnreachableError).hint).toContain('is running');
    expect(Date.now() - started).toBeLessThan(1500);
  });

  it('a host name that does not resolve says so and to check its spelling (exit 2), not getaddrinfo ENOTFOUND', async () => {
    // The transport fails as undici does for a name DNS lacks (no DNS query leaves the machine).
    vi.stubGlobal('fetch', async () => {
      throw new TypeError('fetch failed', { cause: Object.assign(new Error('getaddrinfo ENOTFOUND registry.exmaple.com'), { code: 'ENOTFOUND', hostname: 'registry.exmaple.com' }) });
    });
    try {
      const error = await rejection(new RegistryClient({ ...FAST, dockerConfig: false }).headManifest('registry.exmaple.com:5000/team/app:v1'));
      expect(error).toBeInstanceOf(UnreachableError);
      expect((error as UnreachableError).exitCode).toBe(2);
      expect((error as UnreachableError).message).toBe("registry registry.exmaple.com:5000: GET https://registry.exmaple.com:5000/v2/team/app/manifests/v1 failed: the host name 'registry.exmaple.com' does not resolve");
      expect((error as UnreachableError).hint).toBe(
        "Check the spelling of the registry host registry.exmaple.com:5000 (in the registry setting or image reference it comes from), and that this machine's DNS knows it.",
      );
    } finally {
      vi.unstubAllGlobals();
    }
  });

  it('retries a refused connection once the registry has answered (a restarting registry)', async () => {
    const first = await proxy(host, []);
    const port = Number(first.host.split(':')[1]);
    const client = new RegistryClient({ ...FAST, retry: { attempts: 6, baseDelayMs: 100, maxDelayMs: 400 } });
    expect(await client.headManifest(`${first.host}/${image.repository}:v1`)).toMatchObject({ exists: true });
    await first.close();
    const restart = new Promise<FlakyProxy>((resolve) => setTimeout(() => resolve(proxy(host, [], port)), 250));
    const head = await client.headManifest(`${first.host}/${image.repository}:v1`);
    expect(head).toMatchObject({ exists: true, digest: image.digest });
    expect((await restart).requests.length).toBeGreaterThanOrEqual(1);
  });
});

describe('RegistryClient scheme', () => {
  it('uses plain HTTP for loopback and listed insecure registries, HTTPS otherwise', () => {
    const client = new RegistryClient({ insecureRegistries: ['http://registry.internal:5000/'], secureRegistries: ['localhost:8443'] });
    expect(client.scheme('127.0.0.1:5000')).toBe('http');
    expect(client.scheme('localhost')).toBe('http');
    expect(client.scheme('[::1]:5000')).toBe('http');
    expect(client.scheme('registry.internal:5000')).toBe('http');
    expect(client.scheme('localhost:8443')).toBe('https');
    expect(client.scheme('docker.io')).toBe('https');
    expect(client.scheme('ghcr.io')).toBe('https');
  });
});

describe('RegistryClient against a fake registry (in-process, for wire details the real one does not exercise)', () => {
  const MANIFEST = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.dockerManifest, config: { mediaType: 'x', digest: `sha256:${'2'.repeat(64)}`, size: 2 }, layers: [] }));
  let server: import('node:http').Server;
  let host: string;
  const seen: { method: string; url: string; authorization: string | undefined; body: string }[] = [];

  beforeAll(async () => {
    const { createServer } = await import('node:http');
    server = createServer((req, res) => {
      let body = '';
      req.on('data', (chunk: Buffer) => (body += chunk.toString()));
      req.on('end', () => {
        seen.push({ method: req.method ?? '', url: req.url ?? '', authorization: req.headers.authorization, body });
        if (req.url === '/token' && req.method === 'POST') {
          const form = new URLSearchParams(body);
          const ok = form.get('grant_type') === 'refresh_token' && form.get('refresh_token') === 'identity-token-value' && form.get('service') === 'fake' && form.get('scope') === 'repository:app:pull';
          res.writeHead(ok ? 200 : 401, { 'content-type': 'application/json' });
          res.end(ok ? JSON.stringify({ access_token: 'exchanged-token', expires_in: 300 }) : '{"error":"invalid_grant"}');
          return;
        }
        const auth = req.headers.authorization;
        if (auth !== 'Bearer exchanged-token' && auth !== 'Bearer given-registry-token') {
          res.writeHead(401, { 'www-authenticate': `Bearer realm="http://${host}/token",service="fake",scope="repository:app:pull"` });
          res.end();
          return;
        }
        // No Docker-Content-Digest on HEAD, as some registries do: the client must GET and hash.
        res.writeHead(200, { 'content-type': MediaType.dockerManifest, 'content-length': MANIFEST.length });
        res.end(req.method === 'HEAD' ? undefined : MANIFEST);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    host = `127.0.0.1:${(server.address() as import('node:net').AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
  });
  afterEach(() => {
    seen.length = 0;
    vi.restoreAllMocks();
  });

  it('exchanges an identity token with the OAuth2 refresh-token grant, and hashes the manifest when HEAD gives no digest', async () => {
    const client = new RegistryClient({ ...FAST, credentials: { registry: host, identityToken: new Secret('identity-token-value'), source: 'test' } });
    const head = await client.headManifest(`${host}/app:v1`);
    expect(head).toEqual({ exists: true, digest: sha256(MANIFEST), mediaType: MediaType.dockerManifest, size: MANIFEST.length });
    expect(seen.filter((r) => r.url === '/token')).toHaveLength(1);
    expect(seen.filter((r) => r.url === '/token')[0]?.authorization).toBeUndefined();
  });

  it('sends a registry token as is', async () => {
    const client = new RegistryClient({ ...FAST, credentials: { registry: host, registryToken: new Secret('given-registry-token'), source: 'test' } });
    expect((await client.getManifest(`${host}/app:v1`)).digest).toBe(sha256(MANIFEST));
    expect(seen.some((r) => r.url === '/token')).toBe(false);
  });

  it('never logs secrets', async () => {
    const lines = await debugLinesOf(async () => {
      await new RegistryClient({ ...FAST, credentials: { registry: host, identityToken: new Secret('identity-token-value'), source: 'test' } }).getManifest(`${host}/app:v1`);
    });
    expect(lines.join('\n')).toContain('/token');
    expect(lines.join('\n')).not.toMatch(/identity-token-value|exchanged-token/);
  });

  it('talks to index.docker.io over HTTPS for Docker Hub references (fetch mocked: no internet here)', async () => {
    const spy = vi.spyOn(globalThis, 'fetch').mockResolvedValue(new Response(null, { status: 404 }));
    expect(await new RegistryClient(FAST).headManifest('python:3.11-slim', { verify: false })).toEqual({ exists: false });
    const [url, init] = spy.mock.calls[0]!;
    expect(String(url)).toBe('https://index.docker.io/v2/library/python/manifests/3.11-slim');
    expect(init?.method).toBe('HEAD');
    expect((init?.headers as Record<string, string>)['accept']).toBe(
      'application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json',
    );
  });
});
