// The ECR API without mocks: the real AWS SDK client, pointed by the endpoint setting at a FAKE of
// ECR's JSON protocol on 127.0.0.1 (__fixtures__/fake-ecr-api.ts), and the token it hands out
// accepted by a local htpasswd registry — endpoint override, request signing, repository
// creation, token and push all real.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { AuthError } from '@prebuilt/core/backend';
import { createEcrRegistry } from './index.js';
import { describeOrFailInCi } from './__fixtures__/services.js';
import { FAKE_ECR_ACCOUNT, FAKE_ECR_CREDENTIALS, startFakeEcrApi, type FakeEcrApi } from './__fixtures__/fake-ecr-api.js';
import { htpasswdRegistryMissing, skopeoMissing, skopeoPush, startHtpasswdRegistry, type HtpasswdRegistry } from '@prebuilt/fixtures';

const ACCOUNT = FAKE_ECR_ACCOUNT;
const TOKEN = `ecr-endpoint-token-${randomBytes(12).toString('hex')}`;
const CREDENTIALS = FAKE_ECR_CREDENTIALS;

const missing = (await htpasswdRegistryMissing()) ?? (await skopeoMissing());

describeOrFailInCi('ecr with the endpoint setting: real AWS SDK against a fake ECR API, real push', missing, () => {
  let ecr: FakeEcrApi;
  let registryServer: HtpasswdRegistry;
  beforeAll(async () => {
    ecr = await startFakeEcrApi(TOKEN);
    registryServer = await startHtpasswdRegistry('AWS', TOKEN);
  });
  afterAll(async () => {
    await ecr?.close();
    await registryServer?.stop();
  });

  it('creates the missing repository (immutable tags, scan on push), gets the token with signed requests, and the push is accepted', async () => {
    const repository = `endpoint-${randomBytes(3).toString('hex')}`;
    const registry = await createEcrRegistry({
      credentials: CREDENTIALS,
      registryHost: registryServer.host,
      env: {
        METAFLOW_PREBUILT_ECR_ACCOUNT: ACCOUNT,
        METAFLOW_PREBUILT_ECR_REGION: 'eu-west-1',
        METAFLOW_PREBUILT_ECR_ENDPOINT: ecr.endpoint,
        METAFLOW_PREBUILT_ECR_SCAN_ON_PUSH: 'true',
        METAFLOW_PREBUILT_IMAGE_NAMESPACE: repository,
      },
      client: { retry: { attempts: 1 }, timeoutMs: 10_000 },
    });
    const tag = registry.imageTag({ envId: '0123456789abcdef', platform: 'linux-64' });
    const credentials = await registry.pushCredentials();
    expect(ecr.calls.map((c) => c.target)).toEqual(['DescribeRepositories', 'CreateRepository', 'GetAuthorizationToken']);
    expect(ecr.calls.every((c) => c.signed)).toBe(true);
    expect(ecr.calls[1]!.body).toMatchObject({ registryId: ACCOUNT, repositoryName: repository, imageTagMutability: 'IMMUTABLE', imageScanningConfiguration: { scanOnPush: true } });
    expect(credentials?.password?.reveal()).toBe(TOKEN);

    expect(await registry.imageExists(tag)).toEqual({ exists: false });
    const { digest } = await skopeoPush(tag, credentials);
    expect(await registry.imageExists(tag)).toEqual({ exists: true, digest });
    expect(ecr.calls.filter((c) => c.target === 'GetAuthorizationToken')).toHaveLength(1);
    await registry.close?.();
  });

  it('expired AWS credentials answered by the API are an AuthError naming the credential source, never the secret key', async () => {
    ecr.failWith = 'ExpiredTokenException';
    try {
      const registry = await createEcrRegistry({
        credentials: CREDENTIALS,
        registryHost: registryServer.host,
        env: { METAFLOW_PREBUILT_ECR_ACCOUNT: ACCOUNT, METAFLOW_PREBUILT_ECR_REGION: 'eu-west-1', METAFLOW_PREBUILT_ECR_ENDPOINT: ecr.endpoint },
      });
      const error = await registry.pushCredentials().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(AuthError);
      expect((error as AuthError).message).toContain('expired');
      expect((error as AuthError).source).toBe("the option 'credentials'");
      expect(`${(error as Error).message} ${(error as AuthError).hint}`).not.toContain(CREDENTIALS.secretAccessKey);
    } finally {
      delete ecr.failWith;
    }
  });
});
