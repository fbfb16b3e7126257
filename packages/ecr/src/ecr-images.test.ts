// listImages / deleteImage for prebuilt gc without mocks: the real AWS SDK client, pointed by the
// endpoint setting at a FAKE of ECR's JSON protocol on 127.0.0.1 (__fixtures__/fake-ecr-api.ts).
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { AuthError, CancelledError, RegistryError, type ImageRegistry } from '@prebuilt/core/backend';
import { createEcrRegistry } from './index.js';
import { FAKE_ECR_ACCOUNT, FAKE_ECR_CREDENTIALS, startFakeEcrApi, type FakeEcrApi, type FakeEcrImage } from './__fixtures__/fake-ecr-api.js';

const INDEX = 'application/vnd.oci.image.index.v1+json';
const MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const digest = (): string => `sha256:${randomBytes(32).toString('hex')}`;
const image = (tags: string[], pushedAt: number, size: number, mediaType = MANIFEST): FakeEcrImage => ({ digest: digest(), tags, pushedAt, size, mediaType });

describe('ecr listImages/deleteImage: real AWS SDK against a FAKE ECR API on 127.0.0.1', () => {
  let fake: FakeEcrApi;
  let repository: string;
  let registry: ImageRegistry;
  beforeAll(async () => {
    fake = await startFakeEcrApi('unused-token');
  });
  afterAll(async () => {
    await fake?.close();
  });
  beforeEach(async () => {
    fake.calls.length = 0;
    fake.denied.clear();
    fake.refuse.clear();
    fake.pageSize = 1000;
    fake.delayMs = 0;
    repository = `gc-${randomBytes(3).toString('hex')}`;
    registry = await createEcrRegistry({
      credentials: FAKE_ECR_CREDENTIALS,
      registryHost: '127.0.0.1:9',
      repository,
      env: { METAFLOW_PREBUILT_ECR_ACCOUNT: FAKE_ECR_ACCOUNT, METAFLOW_PREBUILT_ECR_REGION: 'eu-west-1', METAFLOW_PREBUILT_ECR_ENDPOINT: fake.endpoint },
    });
  });

  it('lists every image page by page (DescribeImages, nextToken), with tags, push time, size and media type', async () => {
    const images = [image(['env-a-amd64'], 1_700_000_000.5, 1234, INDEX), image([], 1_700_000_100, 99), image(['x', 'y'], 1_700_000_200, 5), image(['z'], 1_700_000_300, 7), image([], 1_700_000_400, 0)];
    fake.images.set(repository, structuredClone(images));
    fake.pageSize = 2;
    const listed = await registry.listImages!();
    expect(listed).toEqual(
      images.map((one) => ({ digest: one.digest, tags: one.tags, mediaType: one.mediaType, pushedAt: new Date(one.pushedAt * 1000), size: one.size })),
    );
    const calls = fake.calls.filter((c) => c.target === 'DescribeImages');
    expect(calls).toHaveLength(3);
    expect(calls.map((c) => c.body['nextToken'])).toEqual([undefined, '2', '4']);
    expect(calls[0]!.body).toMatchObject({ registryId: FAKE_ECR_ACCOUNT, repositoryName: repository });
    expect(fake.calls.every((c) => c.signed)).toBe(true);
  });

  it('a listing whose next page is one it already read, or that never ends, stops with a RegistryError (gc never loops or holds pages without end)', async () => {
    fake.images.set(repository, [image(['a'], 1_700_000_000, 1), image(['b'], 1_700_000_100, 2)]);
    fake.pageSize = 1;
    fake.pages = 'loop';
    const loop = await registry.listImages!().catch((e: unknown) => e);
    fake.pages = undefined;
    expect(loop).toBeInstanceOf(RegistryError);
    expect((loop as Error).message).toBe(`ECR DescribeImages listed the images of 127.0.0.1:9/${repository} in a loop (page 3 is one it gave before); stopped`);
    expect(fake.calls.filter((c) => c.target === 'DescribeImages').map((c) => c.body['nextToken'])).toEqual([undefined, 'again']);
    fake.calls.length = 0;
    fake.pages = 'endless';
    const endless = await registry.listImages!().catch((e: unknown) => e);
    fake.pages = undefined;
    expect(endless).toBeInstanceOf(RegistryError);
    expect((endless as Error).message).toBe(`ECR DescribeImages listed the images of 127.0.0.1:9/${repository} in more than 1000 pages; stopped`);
    expect(fake.calls.filter((c) => c.target === 'DescribeImages')).toHaveLength(1000);
  }, 60_000);

  it('a repository that does not exist (yet) holds no images', async () => {
    expect(await registry.listImages!()).toEqual([]);
  });

  it('deletes an image by digest with BatchDeleteImage (its tags go with it); an image already gone is no error', async () => {
    const [kept, gone] = [image(['keep'], 1_700_000_000, 1), image(['old-1', 'old-2'], 1_600_000_000, 2)];
    fake.images.set(repository, [kept, gone]);
    await registry.deleteImage!(gone.digest);
    expect(fake.calls.at(-1)).toMatchObject({ target: 'BatchDeleteImage', body: { registryId: FAKE_ECR_ACCOUNT, repositoryName: repository, imageIds: [{ imageDigest: gone.digest }] } });
    expect((await registry.listImages!()).map((one) => one.digest)).toEqual([kept.digest]);
    await expect(registry.deleteImage!(gone.digest)).resolves.toBeUndefined();
    fake.images.delete(repository);
    await expect(registry.deleteImage!(kept.digest)).resolves.toBeUndefined();
  });

  it('an image ECR refuses to delete is a RegistryError with the AWS code and reason, and what to do', async () => {
    const child = image([], 1_700_000_000, 1);
    fake.images.set(repository, [child]);
    fake.refuse.set(child.digest, 'ImageReferencedByManifestList');
    const error = await registry.deleteImage!(child.digest).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RegistryError);
    expect((error as RegistryError).message).toContain('ImageReferencedByManifestList');
    expect((error as RegistryError).message).toContain(`fake ECR refuses ${child.digest}`);
    expect((error as RegistryError).hint).toMatch(/delete the index first/);
    expect((error as RegistryError).exitCode).toBe(1);
  });

  it('AccessDenied is an AuthError naming the IAM permission (ecr:DescribeImages, ecr:BatchDeleteImage), never the secret key', async () => {
    fake.denied.add('DescribeImages').add('BatchDeleteImage');
    const listing = await registry.listImages!().catch((e: unknown) => e);
    expect(listing).toBeInstanceOf(AuthError);
    expect((listing as AuthError).message).toContain('ecr:DescribeImages');
    expect((listing as AuthError).hint).toContain('Grant ecr:DescribeImages');
    const deleting = await registry.deleteImage!(digest()).catch((e: unknown) => e);
    expect(deleting).toBeInstanceOf(AuthError);
    expect((deleting as AuthError).message).toContain('ecr:BatchDeleteImage');
    for (const error of [listing, deleting]) {
      expect(`${(error as Error).message} ${(error as AuthError).hint}`).not.toContain(FAKE_ECR_CREDENTIALS.secretAccessKey);
    }
  });

  it('an aborted signal is a CancelledError: before any call, and for a call in flight', async () => {
    fake.images.set(repository, [image(['a'], 1_700_000_000, 1)]);
    await expect(registry.listImages!({ signal: AbortSignal.abort() })).rejects.toBeInstanceOf(CancelledError);
    await expect(registry.deleteImage!(digest(), { signal: AbortSignal.abort() })).rejects.toBeInstanceOf(CancelledError);
    expect(fake.calls).toHaveLength(0);
    fake.delayMs = 2000;
    const started = Date.now();
    await expect(registry.listImages!({ signal: AbortSignal.timeout(100) })).rejects.toBeInstanceOf(CancelledError);
    await expect(registry.deleteImage!(digest(), { signal: AbortSignal.timeout(100) })).rejects.toBeInstanceOf(CancelledError);
    expect(Date.now() - started).toBeLessThan(1500);
  });
});
