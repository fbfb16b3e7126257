import { runBuildServiceConformance } from '@prebuilt/core/conformance';
import { Secret } from '@prebuilt/core/backend';
import dockerDefinition from './index.js';
import { headDigest } from '@prebuilt/fixtures';
import { testServices } from './__fixtures__/services.js';

const services = testServices();
const missing = [
  ...(services.dockerHost ? [] : ['Docker daemon']),
  ...(services.registries ? [] : ['test registries']),
  ...(services.baseImage ? [] : ['test base image']),
];
const skip = missing.length > 0 ? `missing ${missing.join(', ')} (run scripts/test-services.sh up)` : false;
const baseImage = services.baseImage ? `${services.baseImage.ref.replace(/:[^:/]+$/, '')}@${services.baseImage.digest}` : 'unused';

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
  pushCredentials: () => ({
    registry: services.registries!.basic.host,
    username: services.registries!.basic.username,
    password: new Secret(services.registries!.basic.password),
    source: 'test services',
  }),
  pushedDigest: (tag) => headDigest(tag, services.registries!.basic),
});
