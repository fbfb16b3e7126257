import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { AuthError, ConfigError, LoginRequiredError, RegistryError, Secret } from '@prebuilt/core/backend';
import { checkBuiltinBackendPackage, rejection } from '@prebuilt/fixtures';
import { runImageRegistryConformance } from '@prebuilt/core/conformance';
import gcrDefinition, { createGcrRegistry, isGoogleRegistryHost } from './index.js';
import { startFakeOAuthServer, type FakeOAuthServer } from './__fixtures__/fake-oauth-server.js';
import { htpasswdRegistryMissing, skopeoMissing, skopeoPush, startHtpasswdRegistry, type HtpasswdRegistry } from '@prebuilt/fixtures';
import { describeOrFailInCi, itWith, registerOrFailInCi, testServices } from './__fixtures__/services.js';

const ENV_ID = '0123456789abcdef';
const fastClient = { retry: { attempts: 1 }, timeoutMs: 10_000 };
const CLIENT_ID = 'prebuilt-test.apps.googleusercontent.com';
const REFRESH_TOKEN = `refresh-${randomBytes(8).toString('hex')}`;
const ACCESS_TOKEN = `ya29.${randomBytes(16).toString('hex')}`;

describe('gcr as a backend package', () => {
  it(`the prebuilt resolver loads it by the built-in name 'gcr' (package.json "prebuilt" field and default export), as the project itself and installed beside the CLI`, async () => {
    await checkBuiltinBackendPackage(fileURLToPath(new URL('..', import.meta.url)), 'image-registry', 'gcr');
  });
});

describe('gcr registry settings and tags', () => {
  it('is an image-registry definition named gcr', async () => {
    expect(gcrDefinition).toMatchObject({ kind: 'image-registry', name: 'gcr', apiVersion: 1 });
    const registry = await gcrDefinition.create({}, { env: { METAFLOW_PREBUILT_GCR_PROJECT: 'my-project' }, cwd: process.cwd() });
    expect(registry.name).toBe('gcr');
  });

  it('tags gcr.io/<project>/<image> and <region>-docker.pkg.dev/<project>/<repository>/<image>', async () => {
    const gcr = await createGcrRegistry({ env: { METAFLOW_PREBUILT_GCR_PROJECT: 'my-project' } });
    expect(gcr.imageTag({ envId: ENV_ID, platform: 'linux-64' })).toBe(`gcr.io/my-project/metaflow-prebuilt:env-${ENV_ID}-amd64`);
    const ar = await createGcrRegistry({
      env: { METAFLOW_PREBUILT_GCR_HOST: 'europe-west4-docker.pkg.dev', METAFLOW_PREBUILT_GCR_PROJECT: 'my-project', METAFLOW_PREBUILT_GCR_REPOSITORY: 'envs' },
    });
    expect(ar.imageTag({ envId: ENV_ID, platform: 'linux-aarch64' })).toBe(`europe-west4-docker.pkg.dev/my-project/envs/metaflow-prebuilt:env-${ENV_ID}-arm64`);
    const scoped = await createGcrRegistry({ project: 'example.com:my-project', host: 'eu.gcr.io', env: { METAFLOW_PREBUILT_GCR_PROJECT: 'ignored-project' } });
    expect(scoped.imageTag({ envId: ENV_ID, platform: 'linux-64' })).toBe(`eu.gcr.io/example.com/my-project/metaflow-prebuilt:env-${ENV_ID}-amd64`);
    const fromGoogleEnv = await createGcrRegistry({ env: { GOOGLE_CLOUD_PROJECT: 'other-project' } });
    expect(fromGoogleEnv.imageTag({ envId: ENV_ID, platform: 'linux-64' })).toBe(`gcr.io/other-project/metaflow-prebuilt:env-${ENV_ID}-amd64`);
  });

  it('without a project, throws a ConfigError naming the option and the env var', async () => {
    const error = await rejection(createGcrRegistry({ env: {} }));
    expect(error).toBeInstanceOf(ConfigError);
    const text = `${(error as ConfigError).message} ${(error as ConfigError).hint}`;
    expect(text).toContain('METAFLOW_PREBUILT_GCR_PROJECT');
    expect(text).toContain("'project'");
    expect((error as ConfigError).exitCode).toBe(2);
  });

  it('an Artifact Registry host without a repository, a bad project id and a URL as host are ConfigErrors', async () => {
    await expect(createGcrRegistry({ host: 'us-central1-docker.pkg.dev', project: 'my-project', env: {} })).rejects.toThrow(/METAFLOW_PREBUILT_GCR_REPOSITORY/);
    await expect(createGcrRegistry({ project: 'My Project', env: {} })).rejects.toThrow(/not a Google Cloud project id/);
    await expect(createGcrRegistry({ project: 'my-project', host: 'https://gcr.io', env: {} })).rejects.toThrow(/not a URL/);
  });

  it('knows which hosts take a Google access token', () => {
    expect(['gcr.io', 'us.gcr.io', 'europe-west4-docker.pkg.dev'].map(isGoogleRegistryHost)).toEqual([true, true, true]);
    expect(['docker.io', '127.0.0.1:5000', 'evilgcr.io'].map(isGoogleRegistryHost)).toEqual([false, false, false]);
  });

  it('pullConfig is empty for workload identity, and carries the pull secret and Batch repositoryCredentials when set', async () => {
    expect(await (await createGcrRegistry({ project: 'my-project', env: {} })).pullConfig('x')).toEqual({});
    const arn = 'arn:aws:secretsmanager:us-east-1:123456789012:secret:gcr-json-key-AbCdEf';
    const registry = await createGcrRegistry({ project: 'my-project', env: { METAFLOW_PREBUILT_PULL_SECRET: 'gcr-pull', METAFLOW_PREBUILT_BATCH_REPOSITORY_CREDENTIALS: arn } });
    expect(await registry.pullConfig('x')).toEqual({ kubernetes: { imagePullSecrets: ['gcr-pull'] }, batch: { repositoryCredentials: { credentialsParameter: arn } } });
  });
});

describe('gcr credentials from google-auth-library (fake OAuth token endpoint on 127.0.0.1)', () => {
  let oauth: FakeOAuthServer;
  let dir: string;
  let adcFile: string;
  beforeAll(async () => {
    oauth = await startFakeOAuthServer({ clientId: CLIENT_ID, refreshToken: REFRESH_TOKEN, accessToken: ACCESS_TOKEN });
    dir = await mkdtemp(join(tmpdir(), 'prebuilt-gcr-adc-'));
    adcFile = join(dir, 'application_default_credentials.json');
    await writeFile(adcFile, JSON.stringify({ type: 'authorized_user', client_id: CLIENT_ID, client_secret: 'client-secret-value', refresh_token: REFRESH_TOKEN }));
  });
  afterAll(async () => {
    await oauth?.close();
    await rm(dir, { recursive: true, force: true });
  });
  afterEach(() => {
    vi.unstubAllEnvs();
  });

  it('push credentials are oauth2accesstoken + the access token as a Secret, from GOOGLE_APPLICATION_CREDENTIALS', async () => {
    const registry = await createGcrRegistry({
      project: 'my-project',
      env: { GOOGLE_APPLICATION_CREDENTIALS: adcFile },
      googleAuth: { clientOptions: { endpoints: { oauth2TokenUrl: oauth.tokenUrl } } },
    });
    const credentials = await registry.pushCredentials();
    expect(credentials).toMatchObject({ registry: 'gcr.io', username: 'oauth2accesstoken' });
    expect(credentials!.password).toBeInstanceOf(Secret);
    expect(credentials!.password!.reveal()).toBe(ACCESS_TOKEN);
    expect(credentials!.source).toContain(adcFile);
    expect(credentials!.source).toContain('GOOGLE_APPLICATION_CREDENTIALS');
    const shown = JSON.stringify(credentials) + inspect(credentials) + credentials!.source;
    for (const secret of [ACCESS_TOKEN, REFRESH_TOKEN, 'client-secret-value']) expect(shown).not.toContain(secret);
    // google-auth-library caches the token until it nears expiry.
    const before = oauth.requests;
    await registry.pushCredentials();
    expect(oauth.requests).toBe(before);
  });

  it('a revoked refresh token is an AuthError naming the credentials file, never a secret', async () => {
    const revoked = join(dir, 'revoked.json');
    await writeFile(revoked, JSON.stringify({ type: 'authorized_user', client_id: CLIENT_ID, client_secret: 'client-secret-value', refresh_token: 'revoked-refresh-token' }));
    const registry = await createGcrRegistry({ project: 'my-project', keyFile: revoked, env: {}, googleAuth: { clientOptions: { endpoints: { oauth2TokenUrl: oauth.tokenUrl } } } });
    const error = await rejection(registry.pushCredentials());
    expect(error).toBeInstanceOf(AuthError);
    expect((error as AuthError).message).toContain('invalid_grant');
    expect((error as AuthError).source).toContain(revoked);
    expect((error as AuthError).hint).toContain('gcloud auth application-default login');
    const shown = `${(error as Error).message} ${(error as AuthError).hint} ${inspect(error)}`;
    for (const secret of ['revoked-refresh-token', 'client-secret-value']) expect(shown).not.toContain(secret);
  });

  it('no application default credentials at all is a LoginRequiredError (exit 2) saying how to log in (metadata server detection off)', async () => {
    vi.stubEnv('METADATA_SERVER_DETECTION', 'none');
    vi.stubEnv('GOOGLE_APPLICATION_CREDENTIALS', '');
    vi.stubEnv('CLOUDSDK_CONFIG', join(dir, 'no-gcloud-config'));
    vi.stubEnv('HOME', join(dir, 'no-home'));
    const registry = await createGcrRegistry({ project: 'my-project', env: {} });
    const error = await rejection(registry.pushCredentials());
    expect(error).toBeInstanceOf(LoginRequiredError);
    expect((error as LoginRequiredError).exitCode).toBe(2);
    expect((error as LoginRequiredError).message).toMatch(/No Google credentials/);
    expect((error as LoginRequiredError).source).toMatch(/application default credentials/);
  });
});

// ---------------------------------------------------------------------------------------------
// Real pushes: the token google-auth-library gets from the fake OAuth endpoint is accepted by a
// local htpasswd registry (user oauth2accesstoken), so the push and the existence check are real.

const services = testServices();
const missing = (await htpasswdRegistryMissing()) ?? (await skopeoMissing());
let oauth: FakeOAuthServer | undefined;
let server: HtpasswdRegistry | undefined;
let adcDir: string | undefined;

async function gcrAgainstLocal(extra: { image?: string } = {}) {
  oauth ??= await startFakeOAuthServer({ clientId: CLIENT_ID, refreshToken: REFRESH_TOKEN, accessToken: ACCESS_TOKEN });
  server ??= await startHtpasswdRegistry('oauth2accesstoken', ACCESS_TOKEN);
  adcDir ??= await mkdtemp(join(tmpdir(), 'prebuilt-gcr-adc-'));
  const adcFile = join(adcDir, 'adc.json');
  await writeFile(adcFile, JSON.stringify({ type: 'authorized_user', client_id: CLIENT_ID, client_secret: 'client-secret-value', refresh_token: REFRESH_TOKEN }));
  return createGcrRegistry({
    host: server.host,
    project: 'prebuilt-test',
    keyFile: adcFile,
    googleAuth: { clientOptions: { endpoints: { oauth2TokenUrl: oauth.tokenUrl } } },
    env: {},
    client: fastClient,
    ...extra,
  });
}

afterAll(async () => {
  await server?.stop();
  await oauth?.close();
  if (adcDir) await rm(adcDir, { recursive: true, force: true });
});

describeOrFailInCi('gcr against a local htpasswd registry accepting the fake Google token', missing, () => {
  const run = randomBytes(4).toString('hex');

  it('imageExists is false before a push with the access token, true with the digest after', async () => {
    const registry = await gcrAgainstLocal({ image: `gcr-${run}` });
    const tag = registry.imageTag({ envId: ENV_ID, platform: 'linux-64' });
    expect(tag).toBe(`${server!.host}/prebuilt-test/gcr-${run}:env-${ENV_ID}-amd64`);
    expect(await registry.imageExists(tag)).toEqual({ exists: false });
    const { digest } = await skopeoPush(tag, await registry.pushCredentials());
    expect(await registry.imageExists(tag)).toEqual({ exists: true, digest });
    expect(await registry.baseImageIdentity(tag, 'linux/amd64')).toEqual({ ref: tag, digest, pinned: `${server!.host}/prebuilt-test/gcr-${run}@${digest}` });
  });

  itWith(['baseImage'], 'baseImageIdentity of a base image in another registry resolves its digest', async () => {
    const registry = await gcrAgainstLocal();
    expect((await registry.baseImageIdentity(services.baseImage!.ref, 'linux/amd64')).digest).toBe(services.baseImage!.digest);
  });

  it('baseImageIdentity of a base image that does not exist is a RegistryError naming it', async () => {
    const registry = await gcrAgainstLocal();
    const ref = `${server!.host}/prebuilt-test/no-such-base:${run}`;
    const error = await rejection(registry.baseImageIdentity(ref, 'linux/amd64'));
    expect(error).toBeInstanceOf(RegistryError);
    expect((error as Error).message).toContain(ref);
  });
});

registerOrFailInCi('image registry conformance: gcr (fake OAuth endpoint, local htpasswd registry accepting its token)', missing, () => runImageRegistryConformance({
  name: 'gcr (fake OAuth endpoint, local htpasswd registry accepting its token)',
  definition: gcrDefinition,
  skip: missing ?? false,
  create: () => gcrAgainstLocal({ image: 'prebuilt-conformance-gcr' }),
  push: async (tag, registry) => skopeoPush(tag, await registry.pushCredentials()),
  secrets: [ACCESS_TOKEN, REFRESH_TOKEN, 'client-secret-value'],
}));
