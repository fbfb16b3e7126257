import { expect, it } from 'vitest';
import { ConfigError } from '@prebuilt/core/backend';
import { runBuildServiceConformance } from '@prebuilt/core/conformance';
import dockerDefinition from './index.js';
import { headDigest, pinnedImage, testRegistryCredentials } from '@prebuilt/fixtures';
import { describeOrFailInCi, missingFor, registerOrFailInCi, testServices } from './__fixtures__/services.js';
import { beforeContextFix } from './image-store.js';

const services = testServices();
const missing = missingFor(['docker', 'registries', 'baseImage'], services);
const baseImage = services.baseImage ? pinnedImage(services.baseImage) : 'unused';

// The conformance suite skips saying why when given `skip`; registerOrFailInCi fails instead in CI.
for (const builder of ['legacy', 'buildkit'] as const) {
  const name = `docker (${builder} builder, no-auth registry)`;
  registerOrFailInCi(`build service conformance: ${name}`, missing, () => runBuildServiceConformance({
    name,
    definition: dockerDefinition,
    skip: missing ?? false,
    createOptions: { dockerHost: services.dockerHost ?? undefined, builder },
    baseImage,
    imageTag: (label) => `${services.registries!.plain.host}/prebuilt-conformance/docker-${builder}:${label}`,
    pushedDigest: (tag) => headDigest(tag),
  }));
}

registerOrFailInCi('build service conformance: docker (Basic-auth registry)', missing, () => runBuildServiceConformance({
  name: 'docker (Basic-auth registry)',
  definition: dockerDefinition,
  skip: missing ?? false,
  create: () => dockerDefinition.create({ dockerHost: services.dockerHost ?? undefined }, { env: process.env, cwd: process.cwd() }),
  baseImage,
  imageTag: (label) => `${services.registries!.basic.host}/prebuilt-conformance/docker:${label}`,
  pushCredentials: () => testRegistryCredentials(services.registries!.basic),
  pushedDigest: (tag) => headDigest(tag, services.registries!.basic),
}));

// The same suite against the test services' modern daemon (Debian trixie's Docker Engine 26.1, API
// 1.45: BuildKit is its default builder), as on AWS Batch's current AMIs; and against the same Engine
// with the containerd image store (the default of Docker Engine 29 and Docker Desktop).
const modernDaemons = [
  { daemon: services.modernDocker, need: 'modernDocker' as const, name: '', repo: 'docker-modern', containerdStore: false },
  { daemon: services.containerdStoreDocker, need: 'containerdStoreDocker' as const, name: ', containerd image store', repo: 'docker-c8d-store', containerdStore: true },
];
for (const { daemon, need, name, repo, containerdStore } of modernDaemons) {
  const modernMissing = missingFor(['docker', 'registries', 'baseImage', need], services);
  for (const builder of ['legacy', 'buildkit'] as const) {
    // BuildKit of an Engine before 27.5 with the containerd image store cannot read the uploaded context (moby/moby#47717): refused instead.
    if (builder === 'buildkit' && containerdStore && beforeContextFix(daemon?.version ?? '26')) continue;
    const suiteName = `docker ${daemon?.version ?? '26'}${name} (${builder} builder, no-auth registry)`;
    registerOrFailInCi(`build service conformance: ${suiteName}`, modernMissing, () => runBuildServiceConformance({
      name: suiteName,
      definition: dockerDefinition,
      skip: modernMissing ?? false,
      createOptions: { dockerHost: daemon?.host, builder },
      baseImage,
      imageTag: (label) => `${services.registries!.plain.host}/prebuilt-conformance/${repo}-${builder}:${label}`,
      pushedDigest: (tag) => headDigest(tag),
    }));
  }
}

// Declared while the store's Engine is before 27.5 (or the daemons are missing, to say so); from 27.5 on, BuildKit's conformance runs above.
const store = services.containerdStoreDocker;
if (beforeContextFix(store?.version ?? '26')) describeOrFailInCi(
  `docker ${store?.version ?? '26'} with the containerd image store refuses the BuildKit builder`,
  missingFor(['modernDocker', 'containerdStoreDocker'], services),
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
