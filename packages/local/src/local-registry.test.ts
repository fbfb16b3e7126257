import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createServer, type AddressInfo } from 'node:net';
import { AuthError, ConfigError, LoginRequiredError, PrebuiltError, Secret, UnreachableError } from '@prebuilt/core/backend';
import { runImageRegistryConformance } from '@prebuilt/core/conformance';
import localDefinition, { createLocalRegistry } from './index.js';
import { devRegistryStartHint } from './dev-server.js';
import { describeOrFailInCi, itWith, missingFor, registerOrFailInCi, testServices } from './__fixtures__/services.js';
import { pushTinyImage } from './__fixtures__/oci-push.js';

const ENV_ID = '0123456789abcdef';

describe('local registry settings and tags', () => {
  it('nothing listening at a loopback address: the error says to start the development registry there (exit 2), with --port unless it is 5000', async () => {
    const server = createServer();
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
    const port = (server.address() as AddressInfo).port;
    await new Promise((done) => server.close(done));
    const stateDir = await mkdtemp(join(tmpdir(), 'prebuilt-local-unreachable-'));
    try {
      const registry = createLocalRegistry({ env: { METAFLOW_PREBUILT_LOCAL_REGISTRY: `127.0.0.1:${port}`, XDG_STATE_HOME: stateDir }, dockerConfig: false });
      const error = (await registry.imageExists(`127.0.0.1:${port}/metaflow-prebuilt:env-${ENV_ID}-amd64`).catch((e: unknown) => e)) as PrebuiltError;
      expect(error).toBeInstanceOf(UnreachableError);
      expect(error.exitCode).toBe(2);
      expect(error.message).toContain('connection refused');
      expect(error.hint).toBe(`Nothing listens at 127.0.0.1:${port}: start the development registry there (\`prebuilt local-registry start --port ${port}\`), or set METAFLOW_PREBUILT_LOCAL_REGISTRY to the address of a running registry.`);
    } finally {
      await rm(stateDir, { recursive: true, force: true });
    }
    expect(devRegistryStartHint('127.0.0.1:5000', 'METAFLOW_PREBUILT_LOCAL_REGISTRY')).toContain('(`prebuilt local-registry start`)');
    expect(devRegistryStartHint('registry.example.com:5000', 'METAFLOW_PREBUILT_LOCAL_REGISTRY')).toBeUndefined();
  });

  it('is an image-registry definition named local', async () => {
    expect(localDefinition).toMatchObject({ kind: 'image-registry', name: 'local', apiVersion: 1 });
    const registry = await localDefinition.create({}, { env: { METAFLOW_PREBUILT_LOCAL_REGISTRY: '127.0.0.1:5000' }, cwd: process.cwd() });
    expect(registry.name).toBe('local');
  });

  it('without a registry address, throws a ConfigError naming the option and the env var', () => {
    let error: unknown;
    try {
      createLocalRegistry({ env: {} });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const text = `${(error as ConfigError).message} ${(error as ConfigError).hint}`;
    expect(text).toContain('METAFLOW_PREBUILT_LOCAL_REGISTRY');
    expect(text).toContain("'registry'");
    expect((error as ConfigError).exitCode).toBe(2);
  });

  it('rejects a URL, a bad host and a bad namespace', () => {
    expect(() => createLocalRegistry({ env: { METAFLOW_PREBUILT_LOCAL_REGISTRY: 'http://127.0.0.1:5000' } })).toThrow(/not a URL/);
    expect(() => createLocalRegistry({ registry: 'bad host:5000' })).toThrow(ConfigError);
    expect(() => createLocalRegistry({ registry: '127.0.0.1:5000', namespace: 'Has Spaces' })).toThrow(/namespace/);
  });

  it('a port out of range, capitals in the path after the host or in the namespace: a ConfigError saying which part and why', () => {
    const failure = (options: Parameters<typeof createLocalRegistry>[0]): ConfigError => {
      try {
        createLocalRegistry(options);
      } catch (error) {
        expect(error).toBeInstanceOf(ConfigError);
        return error as ConfigError;
      }
      throw new Error('createLocalRegistry accepted the settings');
    };
    // Before, port 99999 passed the check and every request failed later as "Invalid URL" (exit 1, "try again later").
    const port = failure({ env: { METAFLOW_PREBUILT_LOCAL_REGISTRY: '127.0.0.1:99999' } });
    expect(port.message).toBe("METAFLOW_PREBUILT_LOCAL_REGISTRY='127.0.0.1:99999' is not a registry host: the port 99999 of '127.0.0.1:99999' is not between 1 and 65535.");
    expect(port.exitCode).toBe(2);
    expect(failure({ env: { METAFLOW_PREBUILT_LOCAL_REGISTRY: '127.0.0.1:5000', METAFLOW_PREBUILT_LOCAL_REGISTRY_PULL_HOST: 'registry.internal:0' } }).message).toContain('the port 0');
    // A path with capitals is not a host problem: the message names the path part, not host[:port].
    const path = failure({ env: { METAFLOW_PREBUILT_LOCAL_REGISTRY: '127.0.0.1:5000/Team' } });
    expect(path.message).toBe("METAFLOW_PREBUILT_LOCAL_REGISTRY='127.0.0.1:5000/Team': its path after the host is not a valid repository name: 'Team' has capital letters, and repository names are lowercase.");
    expect(path.hint).toContain('After the host');
    const namespace = failure({ registry: '127.0.0.1:5000', env: { METAFLOW_PREBUILT_IMAGE_NAMESPACE: 'DF3/basic' } });
    expect(namespace.message).toBe("The image namespace 'DF3/basic' is not a valid repository name: 'DF3' has capital letters, and repository names are lowercase.");
    expect(namespace.setting).toBe('METAFLOW_PREBUILT_IMAGE_NAMESPACE');
    expect(failure({ registry: '127.0.0.1:5000', namespace: 'team//app' }).message).toContain("empty part (a doubled '/'");
  });

  it('a registry or pull host written with credentials: a ConfigError with them hidden, never echoed', () => {
    for (const [envVar, value] of [
      ['METAFLOW_PREBUILT_LOCAL_REGISTRY', 'robot:s3cr3t@127.0.0.1:5000'],
      ['METAFLOW_PREBUILT_LOCAL_REGISTRY_PULL_HOST', 'http://robot:s3cr3t@registry.internal:5000/team'],
    ] as const) {
      let error: unknown;
      try {
        createLocalRegistry({ env: { METAFLOW_PREBUILT_LOCAL_REGISTRY: '127.0.0.1:5000', [envVar]: value } });
      } catch (caught) {
        error = caught;
      }
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).message).toMatch(new RegExp(`^${envVar}='(http://)?\\*\\*\\*@`));
      expect((error as ConfigError).setting).toBe(envVar);
      const shown = JSON.stringify({ message: (error as ConfigError).message, hint: (error as ConfigError).hint });
      expect(shown).not.toContain('s3cr3t');
      expect(shown).not.toContain('robot');
    }
  });

  it('tags images <host>/<namespace>:env-<envId>-<arch>, the option winning over the env var', () => {
    const env = { METAFLOW_PREBUILT_LOCAL_REGISTRY: '127.0.0.1:5999' };
    const registry = createLocalRegistry({ registry: '127.0.0.1:5000', env });
    expect(registry.imageTag({ envId: ENV_ID, platform: 'linux-64' })).toBe(`127.0.0.1:5000/metaflow-prebuilt:env-${ENV_ID}-amd64`);
    expect(registry.imageTag({ envId: ENV_ID, platform: 'linux-aarch64' })).toBe(`127.0.0.1:5000/metaflow-prebuilt:env-${ENV_ID}-arm64`);
    const fromEnv = createLocalRegistry({ env: { ...env, METAFLOW_PREBUILT_IMAGE_NAMESPACE: 'team/envs' } });
    expect(fromEnv.imageTag({ envId: ENV_ID, platform: 'linux-64' })).toBe(`127.0.0.1:5999/team/envs:env-${ENV_ID}-amd64`);
    const withPath = createLocalRegistry({ registry: 'localhost:5000/proj', env: {} });
    expect(withPath.imageTag({ envId: ENV_ID, platform: 'linux-64' })).toBe(`localhost:5000/proj/metaflow-prebuilt:env-${ENV_ID}-amd64`);
    expect(() => registry.imageTag({ envId: 'not a tag!', platform: 'linux-64' })).toThrow(ConfigError);
  });

  it('pullTag rewrites the host to the pull host, and is the push tag without one', () => {
    const registry = createLocalRegistry({ env: { METAFLOW_PREBUILT_LOCAL_REGISTRY: '127.0.0.1:5000', METAFLOW_PREBUILT_LOCAL_REGISTRY_PULL_HOST: 'registry.cluster.local:5000' } });
    const tag = registry.imageTag({ envId: ENV_ID, platform: 'linux-64' });
    expect(registry.pullTag!(tag)).toBe(`registry.cluster.local:5000/metaflow-prebuilt:env-${ENV_ID}-amd64`);
    expect(registry.pullTag!('elsewhere:5000/x:y')).toBe('elsewhere:5000/x:y');
    const same = createLocalRegistry({ registry: '127.0.0.1:5000', env: {} });
    expect(same.pullTag!(tag)).toBe(tag);
  });

  it('pullConfig is empty without pull settings', async () => {
    expect(await createLocalRegistry({ registry: '127.0.0.1:5000', env: {} }).pullConfig('127.0.0.1:5000/x:y')).toEqual({});
  });

  it('pullConfig names METAFLOW_PREBUILT_PULL_SECRET and the Batch credentials, for a registry that wants a login to pull (they were ignored)', async () => {
    const arn = 'arn:aws:secretsmanager:us-east-1:123456789012:secret:registry-AbCdEf';
    const env = { METAFLOW_PREBUILT_PULL_SECRET: 'prebuilt-pull', METAFLOW_PREBUILT_BATCH_REPOSITORY_CREDENTIALS: arn };
    expect(await createLocalRegistry({ registry: 'registry.internal:5000', env }).pullConfig('registry.internal:5000/x:y')).toEqual({
      kubernetes: { imagePullSecrets: ['prebuilt-pull'] },
      batch: { repositoryCredentials: { credentialsParameter: arn } },
    });
    expect(await createLocalRegistry({ registry: 'registry.internal:5000', pullSecret: 'other', env }).pullConfig('registry.internal:5000/x:y')).toMatchObject({ kubernetes: { imagePullSecrets: ['other'] } });
    expect(() => createLocalRegistry({ registry: 'registry.internal:5000', env: { METAFLOW_PREBUILT_PULL_SECRET: 'Not_A_Name' } })).toThrow(ConfigError);
  });

  it('credentials from env vars: a Secret, the source names the env vars; half a pair is a ConfigError', async () => {
    const registry = createLocalRegistry({
      env: {
        METAFLOW_PREBUILT_LOCAL_REGISTRY: '127.0.0.1:5000',
        METAFLOW_PREBUILT_LOCAL_REGISTRY_USERNAME: 'alice',
        METAFLOW_PREBUILT_LOCAL_REGISTRY_PASSWORD: 'pa55-word-x',
      },
      dockerConfig: false,
    });
    const credentials = await registry.pushCredentials();
    expect(credentials).toMatchObject({ registry: '127.0.0.1:5000', username: 'alice' });
    expect(credentials!.password).toBeInstanceOf(Secret);
    expect(credentials!.password!.reveal()).toBe('pa55-word-x');
    expect(credentials!.source).toContain('METAFLOW_PREBUILT_LOCAL_REGISTRY_USERNAME');
    expect(JSON.stringify(credentials) + inspect(credentials)).not.toContain('pa55-word-x');
    expect(() => createLocalRegistry({ registry: '127.0.0.1:5000', username: 'alice', env: {} })).toThrow(/password/);
  });

  it("credentials from the user's Docker config, with its path as the source", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'prebuilt-local-dockercfg-'));
    try {
      const auth = Buffer.from('bob:hunter2-secret').toString('base64');
      await writeFile(join(dir, 'config.json'), JSON.stringify({ auths: { '127.0.0.1:5000': { auth } } }));
      const registry = createLocalRegistry({ registry: '127.0.0.1:5000', env: { DOCKER_CONFIG: dir } });
      const credentials = await registry.pushCredentials();
      expect(credentials).toMatchObject({ registry: '127.0.0.1:5000', username: 'bob' });
      expect(credentials!.password!.reveal()).toBe('hunter2-secret');
      expect(credentials!.source).toContain(join(dir, 'config.json'));
      const none = createLocalRegistry({ registry: '127.0.0.1:5001', env: { DOCKER_CONFIG: dir } });
      expect(await none.pushCredentials()).toBeUndefined();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

const services = testServices();
const registries = services.registries;
const base = services.baseImage;
const registriesMissing = missingFor(['registries'], services);
const fastClient = { retry: { attempts: 1 }, timeoutMs: 10_000 };

describeOrFailInCi('local registry against real registries', registriesMissing, () => {
  const run = randomBytes(4).toString('hex');

  it('imageExists is false for a tag never pushed, true with the digest after a push', async () => {
    const registry = createLocalRegistry({ registry: registries!.plain.host, namespace: `prebuilt-test/local-${run}`, env: {}, client: fastClient });
    const tag = registry.imageTag({ envId: ENV_ID, platform: 'linux-64' });
    expect(await registry.imageExists(tag)).toEqual({ exists: false });
    const { digest } = await pushTinyImage(tag);
    expect(await registry.imageExists(tag)).toEqual({ exists: true, digest });
  });

  itWith(['baseImage'], 'baseImageIdentity resolves the test base image to its digest', async () => {
    const registry = createLocalRegistry({ registry: registries!.plain.host, env: {}, client: fastClient });
    const identity = await registry.baseImageIdentity(base!.ref, 'linux/amd64');
    expect(identity.ref).toBe(base!.ref);
    expect(identity.digest).toBe(base!.digest);
    expect(identity.pinned).toMatch(new RegExp(`@${base!.digest}$`));
    expect(identity.pinned).not.toContain(':' + base!.ref.split(':').at(-1) + '@');
  });

  it('baseImageIdentity of a missing image is a RegistryError naming it', async () => {
    const registry = createLocalRegistry({ registry: registries!.plain.host, env: {}, client: fastClient });
    const ref = `${registries!.plain.host}/prebuilt-test/no-such-base:${run}`;
    const error = await registry.baseImageIdentity(ref, 'linux/amd64').catch((e: unknown) => e);
    expect(PrebuiltError.isInstance(error)).toBe(true);
    expect((error as Error).message).toContain(ref);
  });

  it('uses the configured credentials on the Basic-auth registry, and names their source when they are wrong', async () => {
    const { host, username, password } = registries!.basic;
    const good = createLocalRegistry({ registry: host, username, password, namespace: `prebuilt-test/local-${run}`, env: {}, dockerConfig: false, client: fastClient });
    const tag = good.imageTag({ envId: ENV_ID, platform: 'linux-64' });
    expect(await good.imageExists(tag)).toEqual({ exists: false });
    const { digest } = await pushTinyImage(tag, { username, password });
    expect(await good.imageExists(tag)).toEqual({ exists: true, digest });

    const badPassword = `wrong-${run}-pw`;
    const bad = createLocalRegistry({
      registry: host,
      namespace: `prebuilt-test/local-${run}`,
      env: { METAFLOW_PREBUILT_LOCAL_REGISTRY_USERNAME: username, METAFLOW_PREBUILT_LOCAL_REGISTRY_PASSWORD: badPassword },
      dockerConfig: false,
      client: fastClient,
    });
    const error = await bad.imageExists(tag).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AuthError);
    expect((error as AuthError).source).toContain('METAFLOW_PREBUILT_LOCAL_REGISTRY_USERNAME');
    // The settings win over the Docker config: the hint says to fix or unset them, not to log in again.
    expect((error as AuthError).hint).toBe(
      `Set METAFLOW_PREBUILT_LOCAL_REGISTRY_USERNAME and METAFLOW_PREBUILT_LOCAL_REGISTRY_PASSWORD to a user name and password ${host} accepts, or unset both to use your Docker config ('docker login ${host}'), which they override.`,
    );
    expect(`${(error as Error).message} ${(error as AuthError).hint}`).not.toContain(badPassword);
  });

  it('without credentials for the Basic-auth registry, the hint names its own settings besides docker login', async () => {
    const { host } = registries!.basic;
    const registry = createLocalRegistry({ registry: host, namespace: `prebuilt-test/local-${run}`, env: {}, dockerConfig: false, client: fastClient });
    const error = await registry.imageExists(registry.imageTag({ envId: ENV_ID, platform: 'linux-64' })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LoginRequiredError);
    expect((error as LoginRequiredError).exitCode).toBe(2);
    expect((error as LoginRequiredError).hint).toBe(`Log in with 'docker login ${host}', or set METAFLOW_PREBUILT_LOCAL_REGISTRY_USERNAME and METAFLOW_PREBUILT_LOCAL_REGISTRY_PASSWORD.`);
  });
});

registerOrFailInCi('image registry conformance: local (no-auth registry)', registriesMissing, () => runImageRegistryConformance({
  name: 'local (no-auth registry)',
  definition: localDefinition,
  skip: registriesMissing ?? false,
  create: () => createLocalRegistry({ registry: registries?.plain.host ?? '127.0.0.1:1', namespace: 'prebuilt-conformance/local', env: {}, client: fastClient }),
  push: (tag) => pushTinyImage(tag),
}));

registerOrFailInCi('image registry conformance: local (Basic-auth registry, credentials from env)', registriesMissing, () => runImageRegistryConformance({
  name: 'local (Basic-auth registry, credentials from env)',
  definition: localDefinition,
  skip: registriesMissing ?? false,
  create: () =>
    createLocalRegistry({
      registry: registries?.basic.host ?? '127.0.0.1:1',
      namespace: 'prebuilt-conformance/local',
      env: {
        METAFLOW_PREBUILT_LOCAL_REGISTRY_USERNAME: registries?.basic.username,
        METAFLOW_PREBUILT_LOCAL_REGISTRY_PASSWORD: registries?.basic.password,
      },
      dockerConfig: false,
      client: fastClient,
    }),
  push: (tag) => pushTinyImage(tag, registries!.basic),
  secrets: registries ? [registries.basic.password] : [],
}));
