import { spawnSync } from 'node:child_process';
import { runBuildServiceConformance } from '@prebuilt/core/conformance';
import { headDigest, pinnedImage, testRegistryCredentials } from '@prebuilt/fixtures';
import buildxDefinition from './index.js';
import { getServices } from '../../../test/services.js';

// The real thing: docker buildx against the test services' daemons (Docker 20.10, the modern
// Docker 26, and Docker 26 with the containerd image store) and registries. scripts/test-services.sh installs the buildx plugin (Debian trixie's
// docker-buildx; bookworm has none); where it is missing, this skips saying so.
const services = getServices();
const buildxInstalled = spawnSync('docker', ['buildx', 'version'], { encoding: 'utf8' }).status === 0;
const baseImage = services.baseImage ? pinnedImage(services.baseImage) : 'unused';
const daemons = [
  { label: 'Docker daemon', name: '', host: services.dockerHost, repo: '' },
  { label: 'modern Docker daemon (Docker Engine 26)', name: `, Docker ${services.modernDocker?.version ?? '26'}`, host: services.modernDocker?.host ?? null, repo: '-modern' },
  {
    label: 'Docker daemon with the containerd image store',
    name: `, Docker ${services.containerdStoreDocker?.version ?? '26'} with the containerd image store`,
    host: services.containerdStoreDocker?.host ?? null,
    repo: '-c8d-store',
  },
];

for (const daemon of daemons) {
  const env = { ...process.env, ...(daemon.host ? { DOCKER_HOST: daemon.host } : {}) };
  const missing = [
    ...(buildxInstalled ? [] : ['the docker buildx plugin (install docker-buildx or docker-buildx-plugin)']),
    ...(daemon.host ? [] : [daemon.label]),
    ...(services.registries ? [] : ['test registries']),
    ...(services.baseImage ? [] : ['test base image']),
  ];
  runBuildServiceConformance({
    name: `buildx (real docker buildx${daemon.name}, Basic-auth test registry)`,
    definition: buildxDefinition,
    skip: missing.length > 0 ? `missing ${missing.join(', ')}; test services: scripts/test-services.sh up` : false,
    create: () => buildxDefinition.create({}, { env, cwd: process.cwd() }),
    baseImage,
    imageTag: (label) => `${services.registries!.basic.host}/prebuilt-conformance/buildx${daemon.repo}:${label}`,
    pushCredentials: () => testRegistryCredentials(services.registries!.basic),
    pushedDigest: (tag) => headDigest(tag, services.registries!.basic),
  });
}
