import { afterAll } from 'vitest';
import { runBuildServiceConformance } from '@prebuilt/core/conformance';
import oci from './index.js';
import { have } from './__fixtures__/containerd.js';
import { credentialsFor, headDigest, missingFor, pinnedBase, registerOrFailInCi, services } from './__fixtures__/services.js';
import { startStallingRegistry } from './__fixtures__/stalling-registry.js';

const missing = missingFor(['registries', 'baseImage']);
const erofsMissing = missing ?? ((await have('mkfs.erofs', ['--version'])) === undefined ? 'needs mkfs.erofs (erofs-utils ≥ 1.8) on PATH: scripts/setup.sh installs it' : undefined);
const baseImage = pinnedBase() ?? 'unused';

// The oci service runs no instruction, so the "cancel a running build" check cancels a build whose
// base image is on a registry that holds every request open (aborting during the push is
// oci-build-service.test.ts's).
const stalling = await startStallingRegistry();
afterAll(() => stalling.close());
const slowBaseImage = `${stalling.host}/stalled/base:latest`;
registerOrFailInCi('build service conformance: oci (no-auth registry)', missing, () => runBuildServiceConformance({
  name: 'oci (no-auth registry)',
  definition: oci,
  skip: missing ?? false,
  createOptions: { layerCacheDir: false },
  baseImage,
  imageTag: (label) => `${services.registries!.plain.host}/prebuilt-conformance/oci:${label}`,
  pushedDigest: (tag) => headDigest(tag),
  slowInstruction: false,
  slowBaseImage,
}));

registerOrFailInCi('build service conformance: oci (Bearer-token registry; base image copied from another registry)', missing, () => runBuildServiceConformance({
  name: 'oci (Bearer-token registry; base image copied from another registry)',
  definition: oci,
  skip: missing ?? false,
  createOptions: { dockerConfig: false, layerCacheDir: false },
  baseImage,
  imageTag: (label) => `${services.registries!.token.host}/prebuilt-conformance/oci:${label}`,
  pushCredentials: () => credentialsFor('token'),
  pushedDigest: (tag) => headDigest(tag, credentialsFor('token')),
  slowInstruction: false,
  slowBaseImage,
}));

// The same contract with erofs layers (each new layer an EROFS image made by mkfs.erofs).
registerOrFailInCi('build service conformance: oci, erofs layers (no-auth registry)', erofsMissing, () => runBuildServiceConformance({
  name: 'oci, erofs layers (no-auth registry)',
  definition: oci,
  skip: erofsMissing ?? false,
  createOptions: { layerCacheDir: false, env: { ...process.env, METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION: 'erofs', METAFLOW_PREBUILT_OCI_RUNNERS: 'containerd@2.1' } },
  baseImage,
  imageTag: (label) => `${services.registries!.plain.host}/prebuilt-conformance/oci-erofs:${label}`,
  pushedDigest: (tag) => headDigest(tag),
  slowInstruction: false,
  slowBaseImage,
}));
