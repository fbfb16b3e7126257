import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ConfigError, MediaType, RegistryClient, parseImageRef, type ImageRegistry } from '@prebuilt/core/backend';
import { runImageRegistryConformance } from '@prebuilt/core/conformance';
import exampleDefinition, { createExampleRegistry } from './index.js';
import { getServices, missingFor, registerOrFailInCi } from './__fixtures__/services.js';

const services = getServices();
const missing = missingFor(['registries'], services);
const plain = services.registries?.plain.host ?? '127.0.0.1:1';
const basic = services.registries?.basic ?? { host: '127.0.0.1:1', username: 'u', password: 'p' };
const client = { retry: { attempts: 1 }, timeoutMs: 10_000 };

/** Pushes a tiny image (a config blob, no layers) to `tag` with the registry's push credentials, over core's client. */
async function pushTinyImage(tag: string, registry: ImageRegistry): Promise<{ digest: string }> {
  const credentials = await registry.pushCredentials();
  const pusher = new RegistryClient({ dockerConfig: false, ...(credentials ? { credentials } : {}), ...client });
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Labels: { test: randomBytes(8).toString('hex') } }, rootfs: { type: 'layers', diff_ids: [] } }));
  const configDigest = `sha256:${createHash('sha256').update(config).digest('hex')}`;
  const ref = parseImageRef(tag);
  await pusher.uploadBlob(ref, configDigest, config);
  const manifest = { schemaVersion: 2, mediaType: MediaType.dockerManifest, config: { mediaType: 'application/vnd.docker.container.image.v1+json', size: config.length, digest: configDigest }, layers: [] };
  return { digest: await pusher.putManifest(ref, Buffer.from(JSON.stringify(manifest)), MediaType.dockerManifest) };
}

describe('the example registry', () => {
  it('is an image-registry definition named example, created from the context env', async () => {
    expect(exampleDefinition).toMatchObject({ apiVersion: 1, kind: 'image-registry', name: 'example' });
    const registry = await exampleDefinition.create({}, { env: { METAFLOW_PREBUILT_EXAMPLE_REGISTRY: 'registry.example:5000' }, cwd: process.cwd() });
    expect(registry.imageTag({ envId: 'abc123', platform: 'linux-64' })).toBe('registry.example:5000/metaflow-prebuilt:env-abc123-amd64');
  });

  it('without a host, or with half a credential pair, is a ConfigError naming the setting', () => {
    expect(() => createExampleRegistry({ env: {} })).toThrow(ConfigError);
    expect(() => createExampleRegistry({ env: {} })).toThrow(/METAFLOW_PREBUILT_EXAMPLE_REGISTRY/);
    expect(() => createExampleRegistry({ registry: 'r.example', username: 'u', env: {} })).toThrow(/METAFLOW_PREBUILT_EXAMPLE_PASSWORD/);
    expect(() => createExampleRegistry({ registry: 'https://r.example', env: {} })).toThrow(/not a URL/);
  });
});

registerOrFailInCi('image registry conformance: example (no-auth registry on 127.0.0.1)', missing, () => runImageRegistryConformance({
  name: 'example (no-auth registry on 127.0.0.1)',
  definition: exampleDefinition,
  skip: missing ?? false,
  create: () => createExampleRegistry({ registry: plain, repository: `prebuilt-conformance/example-${randomBytes(3).toString('hex')}`, env: {} }),
  push: pushTinyImage,
}));

registerOrFailInCi('image registry conformance: example (Basic-auth registry on 127.0.0.1, credentials from env)', missing, () => runImageRegistryConformance({
  name: 'example (Basic-auth registry on 127.0.0.1, credentials from env)',
  definition: exampleDefinition,
  skip: missing ?? false,
  secrets: [basic.password],
  create: () =>
    createExampleRegistry({
      repository: 'prebuilt-conformance/example-basic',
      env: { METAFLOW_PREBUILT_EXAMPLE_REGISTRY: basic.host, METAFLOW_PREBUILT_EXAMPLE_USERNAME: basic.username, METAFLOW_PREBUILT_EXAMPLE_PASSWORD: basic.password },
    }),
  push: pushTinyImage,
}));
