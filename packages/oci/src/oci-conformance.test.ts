import { runBuildServiceConformance } from '@prebuilt/core/conformance';
import oci from './index.js';
import { credentialsFor, headDigest, missingFor, pinnedBase, services } from './__fixtures__/services.js';

const missing = missingFor(['registries', 'baseImage']);
const skip = missing ?? false;
const baseImage = pinnedBase() ?? 'unused';

// The oci service runs nothing, so the "cancel a running build" check needs a slow instruction it
// cannot execute: it is covered by oci-build-service.test.ts (aborting during the push).
runBuildServiceConformance({
  name: 'oci (no-auth registry)',
  definition: oci,
  skip,
  createOptions: { layerCacheDir: false },
  baseImage,
  imageTag: (label) => `${services.registries!.plain.host}/prebuilt-conformance/oci:${label}`,
  pushedDigest: (tag) => headDigest(tag),
  slowInstruction: false,
});

runBuildServiceConformance({
  name: 'oci (Bearer-token registry; base image copied from another registry)',
  definition: oci,
  skip,
  createOptions: { dockerConfig: false, layerCacheDir: false },
  baseImage,
  imageTag: (label) => `${services.registries!.token.host}/prebuilt-conformance/oci:${label}`,
  pushCredentials: () => credentialsFor('token'),
  pushedDigest: (tag) => headDigest(tag, credentialsFor('token')),
  slowInstruction: false,
});
