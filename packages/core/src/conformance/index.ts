export { runBuildServiceConformance, type BuildServiceConformanceOptions } from './build-service-conformance.js';
export { runImageRegistryConformance, type ImageRegistryConformanceOptions } from './image-registry-conformance.js';
export { DIGEST_PATTERN, TAGGED_REFERENCE_PATTERN, isCancelledError } from './conformance-checks.js';
