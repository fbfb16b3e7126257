import { spawnSync } from 'node:child_process';
import { runBuildServiceConformance } from '@prebuilt/core/conformance';
import { Secret } from '@prebuilt/core';
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
const baseImage = services.baseImage ? `${services.baseImage.ref.replace(/:[^:/]+$/, '')}@${services.baseImage.digest}` : 'unused';

const ACCEPT = [
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.oci.image.index.v1+json',
].join(', ');

async function headDigest(reference: string, auth?: { username: string; password: string }): Promise<string | undefined> {
  const slash = reference.indexOf('/');
  const colon = reference.lastIndexOf(':');
  const headers: Record<string, string> = { Accept: ACCEPT };
  if (auth) headers['Authorization'] = `Basic ${Buffer.from(`${auth.username}:${auth.password}`).toString('base64')}`;
  const url = `http://${reference.slice(0, slash)}/v2/${reference.slice(slash + 1, colon)}/manifests/${reference.slice(colon + 1)}`;
  const response = await fetch(url, { method: 'HEAD', headers });
  if (response.status === 404) return undefined;
  if (!response.ok) throw new Error(`HEAD ${reference}: ${response.status}`);
  return response.headers.get('docker-content-digest') ?? undefined;
}

runBuildServiceConformance({
  name: 'buildx (real docker buildx, Basic-auth test registry)',
  definition: buildxDefinition,
  skip,
  create: () => buildxDefinition.create({}, { env, cwd: process.cwd() }),
  baseImage,
  imageTag: (label) => `${services.registries!.basic.host}/prebuilt-conformance/buildx:${label}`,
  pushCredentials: () => ({
    registry: services.registries!.basic.host,
    username: services.registries!.basic.username,
    password: new Secret(services.registries!.basic.password),
    source: 'test services',
  }),
  pushedDigest: (tag) => headDigest(tag, services.registries!.basic),
});
