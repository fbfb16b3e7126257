import { defineBuildService } from '@prebuilt/core/backend';
import { createOciBuildService, type OciBuildServiceOptions } from './oci-build-service.js';

export {
  createOciBuildService,
  ociSettings,
  OCI_ENV,
  DEFAULT_CHUNK_SIZE,
  type OciBuildServiceOptions,
  type OciSettings,
  type PushSummary,
} from './oci-build-service.js';
export { pushImageIndex, type ImageIndexEntry, type PushImageIndexOptions, type PushedIndex } from './image-index.js';
export { parseDockerfile, SUPPORTED_INSTRUCTIONS, type Instruction, type ParseResult } from './dockerfile.js';
export { buildLayer, tarLayer, layerDiffId, writeLayer, deterministicGzip, type BuiltLayer, type LayerEntry, type TarOptions, type WrittenLayer } from './layer.js';
export { LAYER_COMPRESSIONS, LAYER_FORMAT_ID, OCI_LAYER_MEDIA_TYPE, layerCompressor, type LayerCompression, type TarCompression } from './layer-codec.js';
export { TOC_DIGEST_ANNOTATION, UNCOMPRESSED_SIZE_ANNOTATION } from './estargz.js';
export { convertLayerToEstargz, isEstargzLayer, type ConvertedLayer, type ConvertLayerOptions } from './estargz-base.js';
export {
  NO_PREFETCH_LANDMARK,
  PREFETCH_ENV,
  PREFETCH_LANDMARK,
  PREFETCH_RECORDER_PY,
  envPrefetch,
  isStaticPrefetch,
  parsePrefetchProfile,
  profileSections,
  prefetchOrder,
  recordedProfilePaths,
  type EstargzPrefetch,
  type ProfileSections,
  type RecordedProfile,
} from './estargz-prefetch.js';
export { PREFETCH_CHANGE, PREFETCH_LAYOUT_ANNOTATION, prefetchLayout, prefetchLayoutValue } from './prefetch-layout.js';
export { LAYERING_POLICIES, type LayeringPolicy } from './layering.js';
export { RUNNERS_ENV, ZSTD_SINCE, EROFS_SINCE, EROFS_MEDIA_TYPES, compressionForRunners, erofsMediaType, parseRunners, pullsZstd, type Runner, type RunnerRuntime } from './runners.js';
export { MKFS_EROFS_OPTIONS, MKFS_EROFS_SINCE, findMkfsErofs, type MkfsErofs } from './erofs.js';
export { LayerCache, defaultLayerCacheDir, type CompressedLayer } from './layer-cache.js';

/** The `oci` build service: assembles images without a daemon and pushes them over the registry API. */
const oci = defineBuildService({
  name: 'oci',
  description: 'Assembles the image itself (package layers, big packages alone and small ones grouped) and pushes it over the registry API; no Docker daemon needed.',
  create(options, context) {
    return createOciBuildService({ env: context.env, ...(options as OciBuildServiceOptions) });
  },
});

export default oci;
