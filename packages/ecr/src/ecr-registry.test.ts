import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { inspect } from 'node:util';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { mockClient } from 'aws-sdk-client-mock';
import {
  CreateRepositoryCommand,
  DescribeRepositoriesCommand,
  ECRClient,
  GetAuthorizationTokenCommand,
  RepositoryNotFoundException,
} from '@aws-sdk/client-ecr';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { AuthError, ConfigError, RegistryError, Secret } from '@prebuilt/core/backend';
import { checkBuiltinBackendPackage, rejection } from '@prebuilt/fixtures';
import { runImageRegistryConformance } from '@prebuilt/core/conformance';
import ecrDefinition, { createEcrRegistry } from './index.js';
import { htpasswdRegistryMissing, skopeoMissing, skopeoPush, startHtpasswdRegistry, type HtpasswdRegistry } from '@prebuilt/fixtures';
import { describeOrFailInCi, itWith, registerOrFailInCi, testServices } from './__fixtures__/services.js';

const ENV_ID = '0123456789abcdef';
const ACCOUNT = '123456789012';
const fastClient = { retry: { attempts: 1 }, timeoutMs: 10_000 };
/** Settings that need no AWS lookups at all. */
const ENV = { METAFLOW_PREBUILT_ECR_ACCOUNT: ACCOUNT, METAFLOW_PREBUILT_ECR_REGION: 'eu-west-1' };

const ecrMock = mockClient(ECRClient);
const stsMock = mockClient(STSClient);

const awsFailure = (name: string, message: string): Error => Object.assign(new Error(message), { name, $metadata: {} });
const authorization = (password: string, expiresInMs = 12 * 3600_000) => ({
  authorizationData: [
    {
      authorizationToken: Buffer.from(`AWS:${password}`).toString('base64'),
      expiresAt: new Date(Date.now() + expiresInMs),
      proxyEndpoint: `https://${ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com`,
    },
  ],
});

describe('ecr as a backend package', () => {
  it(`the prebuilt resolver loads it by the built-in name 'ecr' (package.json "prebuilt" field and default export), as the project itself and installed beside the CLI`, async () => {
    await checkBuiltinBackendPackage(fileURLToPath(new URL('..', import.meta.url)), 'image-registry', 'ecr');
  });
});

describe('ecr registry settings, repository and token (ECR API through aws-sdk-client-mock)', () => {
  beforeEach(() => {
    ecrMock.reset();
    stsMock.reset();
  });
  afterEach(() => {
    vi.unstubAllEnvs();
  });

  it('is an image-registry definition named ecr', async () => {
    expect(ecrDefinition).toMatchObject({ kind: 'image-registry', name: 'ecr', apiVersion: 1 });
    const registry = await ecrDefinition.create({}, { env: ENV, cwd: process.cwd() });
    expect(registry.name).toBe('ecr');
  });

  it('tags <account>.dkr.ecr.<region>.amazonaws.com/<repository>:env-<envId>-<arch> from settings, without calling STS', async () => {
    const registry = await createEcrRegistry({ env: { ...ENV, METAFLOW_PREBUILT_IMAGE_NAMESPACE: 'team/envs' } });
    expect(registry.imageTag({ envId: ENV_ID, platform: 'linux-64' })).toBe(`${ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com/team/envs:env-${ENV_ID}-amd64`);
    const explicit = await createEcrRegistry({ account: '210987654321', region: 'cn-north-1', env: ENV });
    expect(explicit.imageTag({ envId: ENV_ID, platform: 'linux-aarch64' })).toBe(`210987654321.dkr.ecr.cn-north-1.amazonaws.com.cn/metaflow-prebuilt:env-${ENV_ID}-arm64`);
    expect(stsMock.calls()).toHaveLength(0);
  });

  it('looks the account up with STS GetCallerIdentity when it is not set, and takes the region from AWS_REGION', async () => {
    stsMock.on(GetCallerIdentityCommand).resolves({ Account: '555566667777', Arn: 'arn:aws:iam::555566667777:user/ci' });
    const registry = await createEcrRegistry({ env: { AWS_REGION: 'us-east-2' } });
    expect(registry.imageTag({ envId: ENV_ID, platform: 'linux-64' })).toBe(`555566667777.dkr.ecr.us-east-2.amazonaws.com/metaflow-prebuilt:env-${ENV_ID}-amd64`);
    expect(stsMock.commandCalls(GetCallerIdentityCommand)).toHaveLength(1);
  });

  it('without a region anywhere, throws a ConfigError naming the option, the env var and AWS_REGION', async () => {
    vi.stubEnv('AWS_REGION', '');
    vi.stubEnv('AWS_DEFAULT_REGION', '');
    vi.stubEnv('AWS_PROFILE', '');
    vi.stubEnv('AWS_CONFIG_FILE', '/nonexistent/prebuilt-test/aws-config');
    vi.stubEnv('AWS_SHARED_CREDENTIALS_FILE', '/nonexistent/prebuilt-test/aws-credentials');
    const error = await rejection(createEcrRegistry({ env: { METAFLOW_PREBUILT_ECR_ACCOUNT: ACCOUNT } }));
    expect(error).toBeInstanceOf(ConfigError);
    const text = `${(error as ConfigError).message} ${(error as ConfigError).hint}`;
    expect(text).toContain('METAFLOW_PREBUILT_ECR_REGION');
    expect(text).toContain("'region'");
    expect(text).toContain('AWS_REGION');
    expect((error as ConfigError).exitCode).toBe(2);
  });

  it('without an account and without AWS credentials, the ConfigError names the account settings and the credential source', async () => {
    stsMock.on(GetCallerIdentityCommand).rejects(awsFailure('CredentialsProviderError', 'Could not load credentials from any providers'));
    const error = await rejection(createEcrRegistry({ env: { METAFLOW_PREBUILT_ECR_REGION: 'eu-west-1', AWS_PROFILE: 'ci' } }));
    expect(error).toBeInstanceOf(ConfigError);
    const text = `${(error as ConfigError).message} ${(error as ConfigError).hint}`;
    expect(text).toContain('METAFLOW_PREBUILT_ECR_ACCOUNT');
    expect(text).toContain("AWS profile 'ci'");
  });

  it('rejects a bad account, region, endpoint or yes/no value, and Batch repositoryCredentials (ECR pulls use the execution role)', async () => {
    await expect(createEcrRegistry({ env: { ...ENV, METAFLOW_PREBUILT_ECR_ACCOUNT: '12345' } })).rejects.toThrow(/12 digits/);
    await expect(createEcrRegistry({ env: { ...ENV, METAFLOW_PREBUILT_ECR_REGION: 'Europe' } })).rejects.toThrow(/not an AWS region/);
    await expect(createEcrRegistry({ env: { ...ENV, METAFLOW_PREBUILT_ECR_ENDPOINT: 'api.ecr' } })).rejects.toThrow(/http\(s\) URL/);
    await expect(createEcrRegistry({ env: { ...ENV, METAFLOW_PREBUILT_ECR_SCAN_ON_PUSH: 'maybe' } })).rejects.toThrow(/METAFLOW_PREBUILT_ECR_SCAN_ON_PUSH='maybe' is neither on nor off/);
    await expect(
      createEcrRegistry({ env: { ...ENV, METAFLOW_PREBUILT_BATCH_REPOSITORY_CREDENTIALS: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:x' } }),
    ).rejects.toThrow(/execution role/);
  });

  it('pullConfig is empty for IAM-role pulls, and names the pull secret when one is configured', async () => {
    expect(await (await createEcrRegistry({ env: ENV })).pullConfig('x')).toEqual({});
    expect(await (await createEcrRegistry({ env: { ...ENV, METAFLOW_PREBUILT_PULL_SECRET: 'ecr-pull' } })).pullConfig('x')).toEqual({
      kubernetes: { imagePullSecrets: ['ecr-pull'] },
    });
  });

  it('creates a missing repository once, with immutable tags and scan-on-push as configured', async () => {
    ecrMock.on(DescribeRepositoriesCommand).rejects(new RepositoryNotFoundException({ message: 'repository does not exist', $metadata: {} }));
    ecrMock.on(CreateRepositoryCommand).resolves({});
    ecrMock.on(GetAuthorizationTokenCommand).resolves(authorization('token-one'));
    const registry = await createEcrRegistry({ env: { ...ENV, METAFLOW_PREBUILT_ECR_SCAN_ON_PUSH: '1' } });
    await registry.pushCredentials();
    await registry.pushCredentials();
    const creates = ecrMock.commandCalls(CreateRepositoryCommand);
    expect(creates).toHaveLength(1);
    expect(creates[0]!.args[0].input).toMatchObject({
      registryId: ACCOUNT,
      repositoryName: 'metaflow-prebuilt',
      imageTagMutability: 'IMMUTABLE',
      imageScanningConfiguration: { scanOnPush: true },
    });

    ecrMock.resetHistory();
    const mutable = await createEcrRegistry({ tagImmutability: false, env: ENV });
    await mutable.pushCredentials();
    expect(ecrMock.commandCalls(CreateRepositoryCommand)[0]!.args[0].input).toMatchObject({ imageTagMutability: 'MUTABLE', imageScanningConfiguration: { scanOnPush: false } });
  });

  it('an existing repository is left alone', async () => {
    ecrMock.on(DescribeRepositoriesCommand).resolves({ repositories: [{ repositoryName: 'metaflow-prebuilt' }] });
    ecrMock.on(GetAuthorizationTokenCommand).resolves(authorization('token-one'));
    await (await createEcrRegistry({ env: ENV })).pushCredentials();
    expect(ecrMock.commandCalls(CreateRepositoryCommand)).toHaveLength(0);
  });

  it('a missing repository that cannot be created is an AuthError naming ecr:CreateRepository; with creation off, a RegistryError saying how to create it', async () => {
    ecrMock.on(DescribeRepositoriesCommand).rejects(new RepositoryNotFoundException({ message: 'repository does not exist', $metadata: {} }));
    ecrMock
      .on(CreateRepositoryCommand)
      .rejects(awsFailure('AccessDeniedException', `User: arn:aws:iam::${ACCOUNT}:user/ci is not authorized to perform: ecr:CreateRepository`));
    const error = await rejection((await createEcrRegistry({ env: { ...ENV, AWS_ACCESS_KEY_ID: 'AKIAEXAMPLE' } })).pushCredentials());
    expect(error).toBeInstanceOf(AuthError);
    expect((error as AuthError).message).toContain('ecr:CreateRepository');
    expect((error as AuthError).hint).toContain('aws ecr create-repository');
    expect((error as AuthError).source).toContain('AWS_ACCESS_KEY_ID');
    expect((error as AuthError).exitCode).toBe(1);

    const off = await rejection((await createEcrRegistry({ createRepository: false, env: ENV })).pushCredentials());
    expect(off).toBeInstanceOf(RegistryError);
    expect((off as RegistryError).hint).toContain('aws ecr create-repository --repository-name metaflow-prebuilt --region eu-west-1');
  });

  it('push credentials are AWS + the GetAuthorizationToken password as a Secret, cached until shortly before expiry', async () => {
    ecrMock.on(DescribeRepositoriesCommand).resolves({ repositories: [{}] });
    ecrMock.on(GetAuthorizationTokenCommand).resolves(authorization('first-token-secret'));
    const registry = await createEcrRegistry({ env: ENV });
    const first = await registry.pushCredentials();
    expect(first).toMatchObject({ registry: `${ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com`, username: 'AWS' });
    expect(first!.password).toBeInstanceOf(Secret);
    expect(first!.password!.reveal()).toBe('first-token-secret');
    expect(first!.source).toContain('ECR GetAuthorizationToken');
    expect(JSON.stringify(first) + inspect(first) + first!.source).not.toContain('first-token-secret');
    expect(await registry.pushCredentials()).toBe(first);
    expect(ecrMock.commandCalls(GetAuthorizationTokenCommand)).toHaveLength(1);

    // A token within the refresh margin (15 minutes by default) is fetched again on every use.
    ecrMock.reset();
    ecrMock.on(DescribeRepositoriesCommand).resolves({ repositories: [{}] });
    ecrMock.on(GetAuthorizationTokenCommand).resolves(authorization('second-token-secret', 5 * 60_000));
    const short = await createEcrRegistry({ env: ENV, tokenRefreshMarginMs: 60 * 60_000 });
    await short.pushCredentials();
    await short.pushCredentials();
    expect(ecrMock.commandCalls(GetAuthorizationTokenCommand)).toHaveLength(2);
  });

  it('expired AWS credentials are an AuthError naming their source, never a secret', async () => {
    ecrMock.on(DescribeRepositoriesCommand).resolves({ repositories: [{}] });
    ecrMock.on(GetAuthorizationTokenCommand).rejects(awsFailure('ExpiredTokenException', 'The security token included in the request is expired'));
    const error = await rejection((await createEcrRegistry({ env: { ...ENV, AWS_ACCESS_KEY_ID: 'AKIAEXAMPLE', AWS_SECRET_ACCESS_KEY: 'aws-secret-key-value' } })).pushCredentials());
    expect(error).toBeInstanceOf(AuthError);
    expect((error as AuthError).message).toMatch(/expired/);
    expect((error as AuthError).source).toContain('AWS_ACCESS_KEY_ID');
    expect(`${(error as Error).message} ${(error as AuthError).hint}`).not.toContain('aws-secret-key-value');
  });
});

// ---------------------------------------------------------------------------------------------
// Real pushes: the mocked GetAuthorizationToken hands out a token that a local htpasswd registry
// (user AWS, that token as the password) accepts, so the push and the existence check are real.

const services = testServices();
const missing = (await htpasswdRegistryMissing()) ?? (await skopeoMissing());
const TOKEN = `ecr-token-${randomBytes(12).toString('hex')}`;

describeOrFailInCi('ecr against a local htpasswd registry accepting the mocked ECR token', missing, () => {
  let server: HtpasswdRegistry;
  const run = randomBytes(4).toString('hex');
  beforeAll(async () => {
    server = await startHtpasswdRegistry('AWS', TOKEN);
  });
  afterAll(async () => {
    await server?.stop();
  });
  beforeEach(() => {
    ecrMock.reset();
    ecrMock.on(DescribeRepositoriesCommand).resolves({ repositories: [{}] });
    ecrMock.on(GetAuthorizationTokenCommand).resolves(authorization(TOKEN));
  });

  it('imageExists is false before a push with the ECR token, true with the digest after', async () => {
    const registry = await createEcrRegistry({ registryHost: server.host, repository: `ecr-${run}`, env: ENV, client: fastClient });
    const tag = registry.imageTag({ envId: ENV_ID, platform: 'linux-64' });
    expect(tag).toBe(`${server.host}/ecr-${run}:env-${ENV_ID}-amd64`);
    expect(await registry.imageExists(tag)).toEqual({ exists: false });
    const { digest } = await skopeoPush(tag, await registry.pushCredentials());
    expect(await registry.imageExists(tag)).toEqual({ exists: true, digest });
    expect(await registry.baseImageIdentity(tag, 'linux/amd64')).toEqual({ ref: tag, digest, pinned: `${server.host}/ecr-${run}@${digest}` });
  });

  it('a token the registry rejects is an AuthError naming ECR GetAuthorizationToken as the source, never the token', async () => {
    ecrMock.on(GetAuthorizationTokenCommand).resolves(authorization('stale-token-value'));
    const registry = await createEcrRegistry({ registryHost: server.host, env: ENV, client: fastClient });
    const error = await rejection(registry.imageExists(registry.imageTag({ envId: ENV_ID, platform: 'linux-64' })));
    expect(error).toBeInstanceOf(AuthError);
    expect((error as AuthError).source).toContain('ECR GetAuthorizationToken');
    expect(`${(error as Error).message} ${(error as AuthError).hint} ${(error as AuthError).source}`).not.toContain('stale-token-value');
  });

  itWith(['baseImage'], 'baseImageIdentity of a base image in another registry resolves its digest', async () => {
    const registry = await createEcrRegistry({ registryHost: server.host, env: ENV, client: fastClient });
    const identity = await registry.baseImageIdentity(services.baseImage!.ref, 'linux/amd64');
    expect(identity.digest).toBe(services.baseImage!.digest);
  });

  it('baseImageIdentity of a base image that does not exist is a RegistryError naming it', async () => {
    const registry = await createEcrRegistry({ registryHost: server.host, env: ENV, client: fastClient });
    const ref = `${server.host}/no-such-base:${run}`;
    const error = await rejection(registry.baseImageIdentity(ref, 'linux/amd64'));
    expect(error).toBeInstanceOf(RegistryError);
    expect((error as Error).message).toContain(ref);
  });
});

let conformanceServer: HtpasswdRegistry | undefined;
afterAll(async () => {
  await conformanceServer?.stop();
});

registerOrFailInCi('image registry conformance: ecr (mocked ECR API, local htpasswd registry accepting its token)', missing, () => runImageRegistryConformance({
  name: 'ecr (mocked ECR API, local htpasswd registry accepting its token)',
  definition: ecrDefinition,
  skip: missing ?? false,
  create: async () => {
    conformanceServer ??= await startHtpasswdRegistry('AWS', TOKEN);
    ecrMock.reset();
    ecrMock.on(DescribeRepositoriesCommand).resolves({ repositories: [{}] });
    ecrMock.on(GetAuthorizationTokenCommand).resolves(authorization(TOKEN));
    return createEcrRegistry({ registryHost: conformanceServer!.host, repository: 'prebuilt-conformance/ecr', env: ENV, client: fastClient });
  },
  push: async (tag, registry) => skopeoPush(tag, await registry.pushCredentials()),
  secrets: [TOKEN],
}));
