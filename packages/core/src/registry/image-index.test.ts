import { expect, it } from 'vitest';
import { Secret } from '../secret.js';
import { InputError, RegistryError } from '../errors.js';
import { pushImage, uniqueRepo } from './__fixtures__/push-image.js';
import { describeOrFailInCi, registriesMissing, testServices } from './__fixtures__/test-services.js';
import { pushImageIndex, readImageIndex } from './image-index.js';
import { MediaType } from './media-types.js';
import { RegistryClient } from './registry-client.js';

const services = testServices();
const missing = registriesMissing(services);

describeOrFailInCi('pushImageIndex against the real registries', missing, () => {
  it('publishes an OCI index over per-platform images, sorted by platform, resolvable per platform', async () => {
    const host = services.registries!.plain.host;
    const repository = uniqueRepo('index');
    const amd64 = await pushImage({ host }, repository, 'env-amd64', 'amd64');
    const arm64 = await pushImage({ host }, repository, 'env-arm64', 'arm64');
    const client = new RegistryClient({ dockerConfig: false });
    const images = [
      { digest: arm64.digest, platform: 'linux/arm64' },
      { digest: amd64.digest, platform: 'linux/amd64' },
    ];
    const pushed = await pushImageIndex({ imageTag: `${host}/${repository}:env`, images, client });
    expect(pushed.mediaType).toBe(MediaType.ociIndex);
    const again = await pushImageIndex({ imageTag: `${host}/${repository}:env-again`, images: [...images].reverse(), client });
    expect(again.digest).toBe(pushed.digest);
    const index = await client.getManifest(`${host}/${repository}:env`);
    expect(index.digest).toBe(pushed.digest);
    const manifests = (index.manifest as { manifests: { digest: string; size: number; platform: { architecture: string } }[] }).manifests;
    expect(manifests.map((m) => m.platform.architecture)).toEqual(['amd64', 'arm64']);
    expect(manifests[0]!.size).toBe(amd64.manifest.length);
    const arm = await client.getManifest(`${host}/${repository}:env`, { platform: 'linux/arm64' });
    expect(arm.digest).toBe(arm64.digest);
    expect(arm.indexDigest).toBe(pushed.digest);
  });

  it('pushes with the token registry credentials', async () => {
    const token = services.registries!.token;
    const repository = uniqueRepo('index-token');
    const target = { host: token.host, username: token.username, password: token.password, token: { realm: token.realm, service: token.service } };
    const amd64 = await pushImage(target, repository, 'a', 'amd64');
    const pushCredentials = { registry: token.host, username: token.username, password: new Secret(token.password), source: 'test' };
    const pushed = await pushImageIndex({ imageTag: `${token.host}/${repository}:env`, images: [{ digest: amd64.digest, platform: 'linux/amd64' }], pushCredentials });
    const head = await new RegistryClient({ dockerConfig: false, credentials: pushCredentials }).headManifest(`${token.host}/${repository}:env`);
    expect(head.exists && head.digest).toBe(pushed.digest);
  });

  it('refuses an image missing from the repository, no images, and a platform named twice', async () => {
    const host = services.registries!.plain.host;
    const repository = uniqueRepo('index-bad');
    const client = new RegistryClient({ dockerConfig: false });
    await expect(pushImageIndex({ imageTag: `${host}/${repository}:x`, images: [{ digest: `sha256:${'0'.repeat(64)}`, platform: 'linux/amd64' }], client })).rejects.toThrow(RegistryError);
    await expect(pushImageIndex({ imageTag: `${host}/${repository}:x`, images: [], client })).rejects.toThrow(InputError);
    const d = `sha256:${'1'.repeat(64)}`;
    await expect(pushImageIndex({ imageTag: `${host}/${repository}:x`, images: [{ digest: d, platform: 'linux/arm64' }, { digest: d, platform: 'linux/arm64/v8' }], client })).rejects.toThrow(/twice/);
  });

  it('readImageIndex: the platform images an index names, [] for a single image, undefined for no tag', async () => {
    const host = services.registries!.plain.host;
    const repository = uniqueRepo('index-read');
    const amd64 = await pushImage({ host }, repository, 'env-amd64', 'amd64');
    const arm64 = await pushImage({ host }, repository, 'env-arm64', 'arm64');
    const client = new RegistryClient({ dockerConfig: false });
    const pushed = await pushImageIndex({
      imageTag: `${host}/${repository}:env`,
      images: [{ digest: amd64.digest, platform: 'linux/amd64' }, { digest: arm64.digest, platform: 'linux/arm64' }],
      client,
    });
    expect(await readImageIndex({ imageTag: `${host}/${repository}:env`, client })).toEqual({
      digest: pushed.digest,
      images: [
        { digest: amd64.digest, platform: 'linux/amd64' },
        { digest: arm64.digest, platform: 'linux/arm64' },
      ],
    });
    expect(await readImageIndex({ imageTag: `${host}/${repository}:env-amd64`, client })).toEqual({ digest: amd64.digest, images: [] });
    expect(await readImageIndex({ imageTag: `${host}/${repository}:no-such-tag`, client })).toBeUndefined();
  });

  it('refuses to name an image that is itself an index (e.g. buildx with provenance attestations)', async () => {
    const host = services.registries!.plain.host;
    const repository = uniqueRepo('index-nested');
    const amd64 = await pushImage({ host }, repository, 'env-amd64', 'amd64');
    const client = new RegistryClient({ dockerConfig: false });
    const inner = await pushImageIndex({ imageTag: `${host}/${repository}:inner`, images: [{ digest: amd64.digest, platform: 'linux/amd64' }], client });
    const error = await pushImageIndex({ imageTag: `${host}/${repository}:outer`, images: [{ digest: inner.digest, platform: 'linux/amd64' }], client }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InputError);
    expect((error as InputError).message).toMatch(/is itself an image index/);
    expect((error as InputError).hint).toMatch(/--provenance=false/);
  });
});
