import { runBuildServiceConformance } from '@prebuilt/core/conformance';
import dockerDefinition from './index.js';
import { headDigest, pinnedImage, testRegistryCredentials } from '@prebuilt/fixtures';
import { testServices } from './__fixtures__/services.js';

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
// 1.45: BuildKit is its default builder), as on AWS Batch's current AMIs.
const modern = services.modernDocker;
const modernMissing = [...missing, ...(modern ? [] : ['modern Docker daemon (Docker Engine 26)'])];
const modernSkip = modernMissing.length > 0 ? `missing ${modernMissing.join(', ')} (run scripts/test-services.sh up)` : false;
for (const builder of ['legacy', 'buildkit'] as const) {
  runBuildServiceConformance({
    name: `docker ${modern?.version ?? '26'} (${builder} builder, no-auth registry)`,
    definition: dockerDefinition,
    skip: modernSkip,
    createOptions: { dockerHost: modern?.host, builder },
    baseImage,
    imageTag: (label) => `${services.registries!.plain.host}/prebuilt-conformance/docker-modern-${builder}:${label}`,
    pushedDigest: (tag) => headDigest(tag),
  });
}
