import { spawnSync } from 'node:child_process';
import { runBuildServiceConformance } from '@prebuilt/core/conformance';
import { headDigest, pinnedImage, testRegistryCredentials } from '@prebuilt/fixtures';
import buildxDefinition from './index.js';
import { getServices } from '../../../test/services.js';

// The real thing: docker buildx against the test services' daemon and registries. It runs where
// the buildx plugin is installed, and skips saying so where it is not (Debian bookworm, this
// project's dev machine, has no docker-buildx package).
const services = getServices();
const env = { ...process.env, ...(services.dockerHost ? { DOCKER_HOST: services.dockerHost } : {}) };
const buildxInstalled = spawnSync('docker', ['buildx', 'version'], { env, encoding: 'utf8' }).status === 0;
const missing = [
  ...(buildxInstalled ? [] : ['the docker buildx plugin (install docker-buildx or docker-buildx-plugin)']),
  ...(services.dockerHost ? [] : ['Docker daemon']),
  ...(services.registries ? [] : ['test registries']),
  ...(services.baseImage ? [] : ['test base image']),
];
const skip = missing.length > 0 ? `missing ${missing.join(', ')}; test services: scripts/test-services.sh up` : false;
const baseImage = services.baseImage ? pinnedImage(services.baseImage) : 'unused';

runBuildServiceConformance({
  name: 'buildx (real docker buildx, Basic-auth test registry)',
  definition: buildxDefinition,
  skip,
  create: () => buildxDefinition.create({}, { env, cwd: process.cwd() }),
  baseImage,
  imageTag: (label) => `${services.registries!.basic.host}/prebuilt-conformance/buildx:${label}`,
  pushCredentials: () => testRegistryCredentials(services.registries!.basic),
  pushedDigest: (tag) => headDigest(tag, services.registries!.basic),
});
