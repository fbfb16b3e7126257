import { describe, expect, it } from 'vitest';
import { ConfigError } from '@prebuilt/core/backend';
import { runBuildServiceConformance } from '@prebuilt/core/conformance';
import dockerDefinition from './index.js';
import { headDigest, pinnedImage, testRegistryCredentials } from '@prebuilt/fixtures';
import { testServices } from './__fixtures__/services.js';
import { beforeContextFix } from './image-store.js';

const services = testServices();
const missing = [
  ...(services.dockerHost ? [] : ['Docker daemon']),
  ...(services.registries ? [] : ['test registries']),
  ...(services.baseImage ? [] : ['test base image']),
];
const skip = missing.length > 0 ? `missing ${missing.join(', ')} (run scripts/test-services.sh up)` : false;
const baseImage = services.baseImage ? pinnedImage(services.baseImage) : 'unused';

for (const builder of ['legacy', 'buildkit'] as const) {
  runBuildServiceConformance({
    name: `docker (${builder} builder, no-auth registry)`,
    definition: dockerDefinition,
    skip,
    createOptions: { dockerHost: services.dockerHost ?? undefined, builder },
    baseImage,
    imageTag: (label) => `${services.registries!.plain.host}/prebuilt-conformance/docker-${builder}:${label}`,
    pushedDigest: (tag) => headDigest(tag),
  });
}

runBuildServiceConformance({
  name: 'docker (Basic-auth registry)',
  definition: dockerDefinition,
  skip,
  create: () => dockerDefinition.create({ dockerHost: services.dockerHost ?? undefined }, { env: process.env, cwd: process.cwd() }),
  baseImage,
  imageTag: (label) => `${services.registries!.basic.host}/prebuilt-conformance/docker:${label}`,
  pushCredentials: () => testRegistryCredentials(services.registries!.basic),
  pushedDigest: (tag) => headDigest(tag, services.registries!.basic),
});

// The same suite against the test services' modern daemon (Debian trixie's Docker Engine 26.1, API
// 1.45: BuildKit is its default builder), as on AWS Batch's current AMIs; and against the same Engine
// with the containerd image store (the default of Docker Engine 29 and Docker Desktop).
const modernDaemons = [
  { daemon: services.modernDocker, what: 'modern Docker daemon (Docker Engine 26)', name: '', repo: 'docker-modern', containerdStore: false },
  { daemon: services.containerdStoreDocker, what: 'Docker daemon with the containerd image store', name: ', containerd image store', repo: 'docker-c8d-store', containerdStore: true },
];
for (const { daemon, what, name, repo, containerdStore } of modernDaemons) {
  const modernMissing = [...missing, ...(daemon ? [] : [what])];
  const modernSkip = modernMissing.length > 0 ? `missing ${modernMissing.join(', ')} (run scripts/test-services.sh up)` : false;
  for (const builder of ['legacy', 'buildkit'] as const) {
    // BuildKit of an Engine before 27.5 with the containerd image store cannot read the uploaded context (moby/moby#47717): refused instead.
    if (builder === 'buildkit' && containerdStore && beforeContextFix(daemon?.version ?? '26')) continue;
    runBuildServiceConformance({
      name: `docker ${daemon?.version ?? '26'}${name} (${builder} builder, no-auth registry)`,
      definition: dockerDefinition,
      skip: modernSkip,
      createOptions: { dockerHost: daemon?.host, builder },
      baseImage,
      imageTag: (label) => `${services.registries!.plain.host}/prebuilt-conformance/${repo}-${builder}:${label}`,
      pushedDigest: (tag) => headDigest(tag),
    });
  }
}

// Declared while the store's Engine is before 27.5 (or the daemons are missing, to say so); from 27.5 on, BuildKit's conformance runs above.
const store = services.containerdStoreDocker;
if (beforeContextFix(store?.version ?? '26')) describe.skipIf(!store || !services.modernDocker)(
  `docker ${store?.version ?? '26'} with the containerd image store refuses the BuildKit builder${store && services.modernDocker ? '' : ' (skipped: missing the modern daemons; run scripts/test-services.sh up)'}`,
  () => {
    const create = (dockerHost: string, builder: 'legacy' | 'buildkit') => dockerDefinition.create({ dockerHost, builder }, { env: {}, cwd: process.cwd() });
    const request = { dockerfile: `FROM ${baseImage}\n`, contextDir: process.cwd(), imageTag: `${services.registries?.plain.host}/prebuilt-conformance/docker-c8d-store-refused:1`, platform: 'linux/amd64' };

    it('check() and buildAndPush() reject with a ConfigError saying what (containerd image store, Engine < 27.5), why (moby/moby#47717) and the fixes; nothing is built', async () => {
      const service = await create(store!.host, 'buildkit');
      for (const attempt of [() => service.check!(), () => service.buildAndPush(request)]) {
        const error = await attempt().then(() => undefined, (e: unknown) => e);
        expect(error).toBeInstanceOf(ConfigError);
        expect((error as ConfigError).message).toMatch(/containerd image store.*BuildKit cannot read a build context.*moby\/moby#47717, fixed in Docker Engine 27\.5/);
        expect((error as ConfigError).hint).toMatch(/legacy builder.*27\.5 or later.*buildx build service/);
        expect((error as ConfigError).setting).toBe('METAFLOW_PREBUILT_DOCKER_BUILDER');
      }
      await service.close?.();
      expect(await headDigest(request.imageTag)).toBeUndefined();
    });

    it('the legacy builder on it, and BuildKit on the graphdriver daemon of the same Engine, pass the check', async () => {
      for (const service of [await create(store!.host, 'legacy'), await create(services.modernDocker!.host, 'buildkit')]) {
        await expect(service.check!()).resolves.toBeUndefined();
        await service.close?.();
      }
    });
  },
);
