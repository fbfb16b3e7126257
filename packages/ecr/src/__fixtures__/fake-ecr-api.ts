import { createServer, type Server } from 'node:http';
import { listenOnLoopback } from '@prebuilt/fixtures';

export const FAKE_ECR_ACCOUNT = '123456789012';
export const FAKE_ECR_CREDENTIALS = { accessKeyId: 'AKIAFAKEENDPOINTTEST', secretAccessKey: 'fake-secret-access-key-value' };

/** An image the fake holds: `pushedAt` in epoch seconds, as ECR's JSON protocol carries timestamps. */
export interface FakeEcrImage {
  digest: string;
  tags: string[];
  pushedAt: number;
  size: number;
  mediaType: string;
}

export interface FakeEcrApi {
  endpoint: string;
  calls: { target: string; body: Record<string, unknown>; signed: boolean }[];
  repositories: Set<string>;
  /** Images per repository (DescribeImages, BatchDeleteImage). */
  images: Map<string, FakeEcrImage[]>;
  /** When set, every call fails with this AWS error type. */
  failWith?: string;
  /** Operations answered with AccessDeniedException (as IAM does for a missing permission). */
  denied: Set<string>;
  /** BatchDeleteImage answers these digests with a failure of this code (an image index still listing it, a KMS error…). */
  refuse: Map<string, string>;
  /** DescribeImages pages hold at most this many images (ECR's own maxResults bound is 1000). */
  pageSize: number;
  /** Every answer waits this long (to abort a call in flight). */
  delayMs: number;
  /** A hostile or broken API's DescribeImages pages: `loop` names the same next page every time, `endless` a new one every time. */
  pages?: 'loop' | 'endless';
  close(): Promise<void>;
}

type Reply = (status: number, data: unknown, type?: string) => void;
type State = Omit<FakeEcrApi, 'endpoint' | 'close'> & { token: string };

function describeImages(fake: State, body: Record<string, unknown>, name: string, reply: Reply): void {
  const images = fake.images.get(name);
  if (!images && !fake.repositories.has(name)) return reply(400, `The repository with name '${name}' does not exist`, 'RepositoryNotFoundException');
  const start = Number(body['nextToken'] ?? 0) || 0;
  const size = Math.min(Number(body['maxResults'] ?? 100), fake.pageSize);
  const page = (images ?? []).slice(start, start + size);
  const next = fake.pages === 'loop' ? { nextToken: 'again' } : fake.pages === 'endless' || start + size < (images ?? []).length ? { nextToken: String(start + size) } : {};
  const imageDetails = page.map((image) => ({
    registryId: FAKE_ECR_ACCOUNT,
    repositoryName: name,
    imageDigest: image.digest,
    ...(image.tags.length > 0 ? { imageTags: image.tags } : {}),
    imagePushedAt: image.pushedAt,
    imageSizeInBytes: image.size,
    imageManifestMediaType: image.mediaType,
  }));
  reply(200, { imageDetails, ...next });
}

function batchDeleteImage(fake: State, body: Record<string, unknown>, name: string, reply: Reply): void {
  const images = fake.images.get(name);
  if (!images && !fake.repositories.has(name)) return reply(400, `The repository with name '${name}' does not exist`, 'RepositoryNotFoundException');
  const imageIds: { imageDigest: string; imageTag?: string }[] = [];
  const failures: { imageId: { imageDigest: string }; failureCode: string; failureReason: string }[] = [];
  for (const { imageDigest } of body['imageIds'] as { imageDigest: string }[]) {
    const refused = fake.refuse.get(imageDigest);
    const index = (images ?? []).findIndex((image) => image.digest === imageDigest);
    if (refused) failures.push({ imageId: { imageDigest }, failureCode: refused, failureReason: `fake ECR refuses ${imageDigest}` });
    else if (index === -1) failures.push({ imageId: { imageDigest }, failureCode: 'ImageNotFound', failureReason: 'Requested image not found' });
    else {
      const [gone] = images!.splice(index, 1);
      imageIds.push({ imageDigest }, ...gone!.tags.map((imageTag) => ({ imageDigest, imageTag })));
    }
  }
  reply(200, { imageIds, failures });
}

/** Answers one call of ECR's JSON protocol the way ECR does. */
function answer(fake: State, target: string, body: Record<string, unknown>, reply: Reply): void {
  if (fake.failWith) return reply(400, 'The security token included in the request is expired', fake.failWith);
  if (fake.denied.has(target)) {
    return reply(400, `User: arn:aws:iam::${FAKE_ECR_ACCOUNT}:user/ci is not authorized to perform: ecr:${target} on resource: repository`, 'AccessDeniedException');
  }
  const name = (body['repositoryNames'] as string[] | undefined)?.[0] ?? (body['repositoryName'] as string | undefined) ?? '';
  switch (target) {
    case 'DescribeRepositories':
      return fake.repositories.has(name)
        ? reply(200, { repositories: [{ repositoryName: name, registryId: FAKE_ECR_ACCOUNT }] })
        : reply(400, `The repository with name '${name}' does not exist in the registry with id '${FAKE_ECR_ACCOUNT}'`, 'RepositoryNotFoundException');
    case 'CreateRepository':
      fake.repositories.add(name);
      return reply(200, { repository: { repositoryName: name, registryId: FAKE_ECR_ACCOUNT, imageTagMutability: body['imageTagMutability'] } });
    case 'GetAuthorizationToken':
      return reply(200, {
        authorizationData: [{ authorizationToken: Buffer.from(`AWS:${fake.token}`).toString('base64'), expiresAt: Date.now() / 1000 + 12 * 3600, proxyEndpoint: 'https://example' }],
      });
    case 'DescribeImages':
      return describeImages(fake, body, name, reply);
    case 'BatchDeleteImage':
      return batchDeleteImage(fake, body, name, reply);
    default:
      return reply(400, `unknown operation ${target}`, 'InvalidParameterException');
  }
}

/**
 * A FAKE of the ECR API (awsJson1_1: POST / with X-Amz-Target) on 127.0.0.1, for the real AWS SDK
 * client pointed at it by the endpoint setting: repositories, GetAuthorizationToken (handing out
 * `token`), DescribeImages (paginated by nextToken) and BatchDeleteImage (with per-image failures).
 */
export async function startFakeEcrApi(token: string): Promise<FakeEcrApi> {
  const fake: State = { calls: [], repositories: new Set(), images: new Map(), denied: new Set(), refuse: new Map(), pageSize: 1000, delayMs: 0, token };
  const server: Server = createServer((req, res) => {
    let text = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (text += chunk));
    req.on('end', () => {
      const target = String(req.headers['x-amz-target'] ?? '').replace('AmazonEC2ContainerRegistry_V20150921.', '');
      const body = (text ? JSON.parse(text) : {}) as Record<string, unknown>;
      const signed = /^AWS4-HMAC-SHA256 Credential=AKIAFAKEENDPOINTTEST\//.test(String(req.headers.authorization ?? ''));
      fake.calls.push({ target, body, signed });
      const reply: Reply = (status, data, type) => {
        res.writeHead(status, { 'content-type': 'application/x-amz-json-1.1', ...(type ? { 'x-amzn-errortype': type } : {}) });
        res.end(JSON.stringify(type ? { __type: type, message: String(data) } : data));
      };
      setTimeout(() => answer(fake, target, body, reply), fake.delayMs);
    });
  });
  const { url, close } = await listenOnLoopback(server);
  return Object.assign(fake, { endpoint: url, close });
}
