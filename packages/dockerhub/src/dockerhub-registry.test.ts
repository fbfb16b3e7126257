import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuthError, ConfigError, LoginRequiredError, PrebuiltError, RegistryError, Secret } from '@prebuilt/core/backend';
import { checkBuiltinBackendPackage, rejection } from '@prebuilt/fixtures';
import { pinnedImage } from '@prebuilt/fixtures';
import { runImageRegistryConformance } from '@prebuilt/core/conformance';
import dockerhubDefinition, { createDockerHubRegistry } from './index.js';
import { describeOrFailInCi, itWith, missingFor, registerOrFailInCi, testServices } from './__fixtures__/services.js';
import { skopeoMissing, skopeoPush } from '@prebuilt/fixtures';

const ENV_ID = '0123456789abcdef';
const fastClient = { retry: { attempts: 1 }, timeoutMs: 10_000 };

/** A Docker config dir with `auths` for the given registries. */
async function dockerConfigDir(auths: Record<string, { username: string; password: string }>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'prebuilt-dockerhub-cfg-'));
  const entries = Object.fromEntries(Object.entries(auths).map(([host, c]) => [host, { auth: Buffer.from(`${c.username}:${c.password}`).toString('base64') }]));
  await writeFile(join(dir, 'config.json'), JSON.stringify({ auths: entries }));
  return dir;
}

describe('dockerhub as a backend package', () => {
  it(`the prebuilt resolver loads it by the built-in name 'dockerhub' (package.json "prebuilt" field and default export), as the project itself and installed beside the CLI`, async () => {
    await checkBuiltinBackendPackage(fileURLToPath(new URL('..', import.meta.url)), 'image-registry', 'dockerhub');
  });
});

describe('dockerhub registry settings and tags', () => {
  let emptyConfig: string;
  beforeAll(async () => {
    emptyConfig = await dockerConfigDir({});
  });
  afterAll(async () => {
    await rm(emptyConfig, { recursive: true, force: true });
  });

  it('is an image-registry definition named dockerhub', async () => {
    expect(dockerhubDefinition).toMatchObject({ kind: 'image-registry', name: 'dockerhub', apiVersion: 1 });
    const registry = await dockerhubDefinition.create({}, { env: { METAFLOW_PREBUILT_DOCKERHUB_NAMESPACE: 'acme', DOCKER_CONFIG: emptyConfig }, cwd: process.cwd() });
    expect(registry.name).toBe('dockerhub');
  });

  it('tags docker.io/<namespace>/metaflow-prebuilt:env-<envId>-<arch>; the option wins over the env var', async () => {
    const env = { METAFLOW_PREBUILT_DOCKERHUB_NAMESPACE: 'from-env', DOCKER_CONFIG: emptyConfig };
    const registry = await createDockerHubRegistry({ namespace: 'acme', env });
    expect(registry.imageTag({ envId: ENV_ID, platform: 'linux-64' })).toBe(`docker.io/acme/metaflow-prebuilt:env-${ENV_ID}-amd64`);
    expect(registry.imageTag({ envId: ENV_ID, platform: 'linux-aarch64' })).toBe(`docker.io/acme/metaflow-prebuilt:env-${ENV_ID}-arm64`);
    const fromEnv = await createDockerHubRegistry({ env: { ...env, METAFLOW_PREBUILT_IMAGE_NAMESPACE: 'envs' } });
    expect(fromEnv.imageTag({ envId: ENV_ID, platform: 'linux-64' })).toBe(`docker.io/from-env/envs:env-${ENV_ID}-amd64`);
  });

  it('without a namespace or a login, throws a ConfigError naming the option, the env var and docker login', async () => {
    const error = await rejection(createDockerHubRegistry({ env: { DOCKER_CONFIG: emptyConfig } }));
    expect(error).toBeInstanceOf(ConfigError);
    const text = `${(error as ConfigError).message} ${(error as ConfigError).hint}`;
    expect(text).toContain('METAFLOW_PREBUILT_DOCKERHUB_NAMESPACE');
    expect(text).toContain("'namespace'");
    expect(text).toContain('docker login');
    expect(text).toContain(join(emptyConfig, 'config.json'));
    expect((error as ConfigError).exitCode).toBe(2);
  });

  it("takes the namespace from the logged-in user of the Docker config (Docker Hub's config key)", async () => {
    const dir = await dockerConfigDir({ 'https://index.docker.io/v1/': { username: 'Alice', password: 'hub-secret-1' } });
    try {
      const registry = await createDockerHubRegistry({ env: { DOCKER_CONFIG: dir } });
      expect(registry.imageTag({ envId: ENV_ID, platform: 'linux-64' })).toBe(`docker.io/alice/metaflow-prebuilt:env-${ENV_ID}-amd64`);
      const credentials = await registry.pushCredentials();
      expect(credentials).toMatchObject({ registry: 'docker.io', username: 'Alice' });
      expect(credentials!.source).toContain(join(dir, 'config.json'));
      expect(credentials!.password!.reveal()).toBe('hub-secret-1');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('rejects a namespace or repository with a slash, a URL as registry, and half a credential pair', async () => {
    const env = { DOCKER_CONFIG: emptyConfig };
    await expect(createDockerHubRegistry({ namespace: 'a/b', env })).rejects.toThrow(ConfigError);
    await expect(createDockerHubRegistry({ namespace: 'acme', repository: 'x/y', env })).rejects.toThrow(/METAFLOW_PREBUILT_IMAGE_NAMESPACE/);
    await expect(createDockerHubRegistry({ namespace: 'acme', registry: 'https://docker.io', env })).rejects.toThrow(/not a URL/);
    await expect(createDockerHubRegistry({ namespace: 'acme', env: { ...env, METAFLOW_PREBUILT_DOCKERHUB_USERNAME: 'bob' } })).rejects.toThrow(
      /METAFLOW_PREBUILT_DOCKERHUB_PASSWORD/,
    );
  });

  it('explicit credentials are a Secret that never shows in JSON or inspect; none at all is a LoginRequiredError (exit 2) at push time', async () => {
    const registry = await createDockerHubRegistry({
      env: { METAFLOW_PREBUILT_DOCKERHUB_USERNAME: 'bob', METAFLOW_PREBUILT_DOCKERHUB_PASSWORD: 'dckr_pat_very-secret', DOCKER_CONFIG: emptyConfig },
    });
    expect(registry.imageTag({ envId: ENV_ID, platform: 'linux-64' })).toBe(`docker.io/bob/metaflow-prebuilt:env-${ENV_ID}-amd64`);
    const credentials = await registry.pushCredentials();
    expect(credentials!.password).toBeInstanceOf(Secret);
    expect(credentials!.source).toContain('METAFLOW_PREBUILT_DOCKERHUB_USERNAME');
    expect(JSON.stringify(credentials) + inspect(credentials)).not.toContain('dckr_pat_very-secret');

    const anonymous = await createDockerHubRegistry({ namespace: 'acme', env: { DOCKER_CONFIG: emptyConfig } });
    const error = await rejection(anonymous.pushCredentials());
    expect(error).toBeInstanceOf(LoginRequiredError);
    expect((error as LoginRequiredError).exitCode).toBe(2);
    expect((error as LoginRequiredError).hint).toContain('docker login');
    expect((error as LoginRequiredError).source).toContain(join(emptyConfig, 'config.json'));
  });

  it('pullConfig names the pull secret and the Batch repositoryCredentials when set, and is empty otherwise', async () => {
    const env = { DOCKER_CONFIG: emptyConfig };
    expect(await (await createDockerHubRegistry({ namespace: 'acme', env })).pullConfig('docker.io/acme/x:y')).toEqual({});
    const arn = 'arn:aws:secretsmanager:us-east-1:123456789012:secret:dockerhub-AbCdEf';
    const registry = await createDockerHubRegistry({
      namespace: 'acme',
      env: { ...env, METAFLOW_PREBUILT_PULL_SECRET: 'prebuilt-pull', METAFLOW_PREBUILT_BATCH_REPOSITORY_CREDENTIALS: arn },
    });
    expect(await registry.pullConfig('docker.io/acme/x:y')).toEqual({
      kubernetes: { imagePullSecrets: ['prebuilt-pull'] },
      batch: { repositoryCredentials: { credentialsParameter: arn } },
    });
    await expect(createDockerHubRegistry({ namespace: 'acme', batchRepositoryCredentials: 'my-secret', env })).rejects.toThrow(/Secrets Manager secret ARN/);
    await expect(createDockerHubRegistry({ namespace: 'acme', pullSecret: 'Not_Valid', env })).rejects.toThrow(/Kubernetes object name/);
  });
});

const services = testServices();
const registries = services.registries;
const missing = missingFor(['registries'], services) ?? (await skopeoMissing());

describeOrFailInCi('dockerhub against the local Bearer-token registry (a stand-in for Docker Hub)', missing, () => {
  const run = randomBytes(4).toString('hex');
  let configDir: string;
  beforeAll(async () => {
    const { host, username, password } = registries!.token;
    configDir = await dockerConfigDir({ [host]: { username, password } });
  });
  afterAll(async () => {
    await rm(configDir, { recursive: true, force: true });
  });

  it('logged-in user as namespace, credentials from the Docker config: missing before a push, the pushed digest after', async () => {
    const { host, username } = registries!.token;
    const registry = await createDockerHubRegistry({ registry: host, repository: `dockerhub-${run}`, env: { DOCKER_CONFIG: configDir }, client: fastClient });
    const tag = registry.imageTag({ envId: ENV_ID, platform: 'linux-64' });
    expect(tag).toBe(`${host}/${username}/dockerhub-${run}:env-${ENV_ID}-amd64`);
    expect(await registry.imageExists(tag)).toEqual({ exists: false });
    const { digest } = await skopeoPush(tag, await registry.pushCredentials());
    expect(await registry.imageExists(tag)).toEqual({ exists: true, digest });
    const identity = await registry.baseImageIdentity(tag, 'linux/amd64');
    expect(identity).toEqual({ ref: tag, digest, pinned: `${host}/${username}/dockerhub-${run}@${digest}` });
  });

  it('a base tag that moves resolves to the new digest (so the env id changes and FROM is pinned anew)', async () => {
    const { host, username } = registries!.token;
    const registry = await createDockerHubRegistry({ registry: host, repository: `dockerhub-${run}`, env: { DOCKER_CONFIG: configDir }, client: fastClient });
    const baseTag = `${host}/${username}/dockerhub-${run}:moving-base`;
    const first = await skopeoPush(baseTag, await registry.pushCredentials());
    expect((await registry.baseImageIdentity(baseTag, 'linux/amd64')).digest).toBe(first.digest);
    const second = await skopeoPush(baseTag, await registry.pushCredentials());
    expect(second.digest).not.toBe(first.digest);
    const moved = await registry.baseImageIdentity(baseTag, 'linux/amd64');
    expect(moved).toEqual({ ref: baseTag, digest: second.digest, pinned: `${host}/${username}/dockerhub-${run}@${second.digest}` });
  });

  it('a wrong password is an AuthError naming the env vars it came from, never the password', async () => {
    const { host, username } = registries!.token;
    const badPassword = `wrong-${run}-password`;
    const registry = await createDockerHubRegistry({
      registry: host,
      env: { METAFLOW_PREBUILT_DOCKERHUB_USERNAME: username, METAFLOW_PREBUILT_DOCKERHUB_PASSWORD: badPassword, DOCKER_CONFIG: configDir },
      client: fastClient,
    });
    const error = await rejection(registry.imageExists(registry.imageTag({ envId: ENV_ID, platform: 'linux-64' })));
    expect(error).toBeInstanceOf(AuthError);
    expect((error as AuthError).source).toContain('METAFLOW_PREBUILT_DOCKERHUB_USERNAME');
    expect(`${(error as Error).message} ${(error as AuthError).hint} ${inspect(error)}`).not.toContain(badPassword);
  });

  itWith(['baseImage'], 'baseImageIdentity resolves the test base image (another registry) to its digest', async () => {
    const registry = await createDockerHubRegistry({ registry: registries!.token.host, env: { DOCKER_CONFIG: configDir }, client: fastClient });
    const identity = await registry.baseImageIdentity(services.baseImage!.ref, 'linux/amd64');
    expect(identity.digest).toBe(services.baseImage!.digest);
    expect(identity.pinned).toBe(pinnedImage(services.baseImage!));
  });

  it('baseImageIdentity of a base image that does not exist is a RegistryError naming it', async () => {
    const registry = await createDockerHubRegistry({ registry: registries!.token.host, env: { DOCKER_CONFIG: configDir }, client: fastClient });
    const ref = `${registries!.token.host}/prebuilt-test/no-such-base:${run}`;
    const error = await rejection(registry.baseImageIdentity(ref, 'linux/amd64'));
    expect(error).toBeInstanceOf(RegistryError);
    expect(PrebuiltError.isInstance(error)).toBe(true);
    expect((error as Error).message).toContain(ref);
  });
});

registerOrFailInCi('image registry conformance: dockerhub (local Bearer-token registry, credentials from env)', missing, () => runImageRegistryConformance({
  name: 'dockerhub (local Bearer-token registry, credentials from env)',
  definition: dockerhubDefinition,
  skip: missing ?? false,
  create: () =>
    createDockerHubRegistry({
      registry: registries!.token.host,
      repository: 'prebuilt-conformance-dockerhub',
      env: {
        METAFLOW_PREBUILT_DOCKERHUB_USERNAME: registries!.token.username,
        METAFLOW_PREBUILT_DOCKERHUB_PASSWORD: registries!.token.password,
        METAFLOW_PREBUILT_PULL_SECRET: 'prebuilt-pull',
      },
      dockerConfig: false,
      client: fastClient,
    }),
  push: async (tag, registry) => skopeoPush(tag, await registry.pushCredentials()),
  secrets: registries ? [registries.token.password] : [],
}));
