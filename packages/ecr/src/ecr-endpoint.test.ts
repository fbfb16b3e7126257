// The ECR API without mocks: the real AWS SDK client, pointed by the endpoint setting at a fake of
// ECR's JSON protocol on 127.0.0.1, and the token it hands out accepted by a local htpasswd
// registry — endpoint override, request signing, repository creation, token and push all real.
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuthError } from '@prebuilt/core/backend';
import { createEcrRegistry } from './index.js';
import { htpasswdRegistryMissing, skopeoMissing, skopeoPush, startHtpasswdRegistry, type HtpasswdRegistry } from '@prebuilt/fixtures';

const ACCOUNT = '123456789012';
const TOKEN = `ecr-endpoint-token-${randomBytes(12).toString('hex')}`;
const CREDENTIALS = { accessKeyId: 'AKIAFAKEENDPOINTTEST', secretAccessKey: 'fake-secret-access-key-value' };

interface FakeEcr {
  endpoint: string;
  calls: { target: string; body: Record<string, unknown>; signed: boolean }[];
  repositories: Set<string>;
  /** When set, every call fails with this AWS error type. */
  failWith?: string;
  close(): Promise<void>;
}

/** A fake of the ECR API (awsJson1_1: POST / with X-Amz-Target) on 127.0.0.1. */
async function startFakeEcr(): Promise<FakeEcr> {
  const fake: Omit<FakeEcr, 'endpoint' | 'close'> = { calls: [], repositories: new Set() };
  const server: Server = createServer((req, res) => {
    let text = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (text += chunk));
    req.on('end', () => {
      const target = String(req.headers['x-amz-target'] ?? '').replace('AmazonEC2ContainerRegistry_V20150921.', '');
      const body = (text ? JSON.parse(text) : {}) as Record<string, unknown>;
      const signed = /^AWS4-HMAC-SHA256 Credential=AKIAFAKEENDPOINTTEST\//.test(String(req.headers.authorization ?? ''));
      fake.calls.push({ target, body, signed });
      const reply = (status: number, data: unknown, type?: string): void => {
        res.writeHead(status, { 'content-type': 'application/x-amz-json-1.1', ...(type ? { 'x-amzn-errortype': type } : {}) });
        res.end(JSON.stringify(type ? { __type: type, message: String(data) } : data));
      };
      if (fake.failWith) return reply(400, 'The security token included in the request is expired', fake.failWith);
      const name = (body['repositoryNames'] as string[] | undefined)?.[0] ?? (body['repositoryName'] as string | undefined) ?? '';
      switch (target) {
        case 'DescribeRepositories':
          return fake.repositories.has(name)
            ? reply(200, { repositories: [{ repositoryName: name, registryId: ACCOUNT }] })
            : reply(400, `The repository with name '${name}' does not exist in the registry with id '${ACCOUNT}'`, 'RepositoryNotFoundException');
        case 'CreateRepository':
          fake.repositories.add(name);
          return reply(200, { repository: { repositoryName: name, registryId: ACCOUNT, imageTagMutability: body['imageTagMutability'] } });
        case 'GetAuthorizationToken':
          return reply(200, {
            authorizationData: [{ authorizationToken: Buffer.from(`AWS:${TOKEN}`).toString('base64'), expiresAt: Date.now() / 1000 + 12 * 3600, proxyEndpoint: 'https://example' }],
          });
        default:
          return reply(400, `unknown operation ${target}`, 'InvalidParameterException');
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return Object.assign(fake, { endpoint: `http://127.0.0.1:${port}`, close: () => new Promise<void>((resolve) => server.close(() => resolve())) });
}

const missing = (await htpasswdRegistryMissing()) ?? (await skopeoMissing());

describe.skipIf(Boolean(missing))(`ecr with the endpoint setting: real AWS SDK against a fake ECR API, real push${missing ? ` (skipped: ${missing})` : ''}`, () => {
  let ecr: FakeEcr;
  let registryServer: HtpasswdRegistry;
  beforeAll(async () => {
    ecr = await startFakeEcr();
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
