/**
 * The backend authors' face of @prebuilt/core (`@prebuilt/core/backend`): the contracts a build service
 * or image registry implements, the errors it throws, `Secret`, the backend kit (settings, build logs,
 * build contexts, base images, push credentials) and the registry client. A backend imports only from
 * here (and `@prebuilt/core/conformance` in its tests).
 */
export {
  PrebuiltError,
  ConfigError,
  InputError,
  RegistryError,
  AuthError,
  LoginRequiredError,
  BuildFailedError,
  EnvironmentError,
  UnreachableError,
  CancelledError,
  DiskFullError,
  TarFormatError,
  NetworkError,
  ExitCode,
  errorMessage,
  type PrebuiltErrorOptions,
} from './errors.js';
export { createLogger, type Logger } from './logger.js';
export { Secret } from './secret.js';
export { programPath, programNotFound, type ProgramPathOptions } from './program-path.js';
export { lastLines } from './terminal-text.js';
export { elapsedNow } from './elapsed-now.js';
export { ProgramRunError, outputDrained, runProgram, type CapturedOutput, type OutputBound, type ProgramResult, type ProgramRunFailure, type RunProgramOptions } from './run-program.js';
export { basicAuthorization, redactUrls } from './net/url-credentials.js';
export { loadSetting, loadOptionalSetting, loadBooleanSetting, orOption, withoutOptionNames, type LoadSettingOptions, type LoadBooleanSettingOptions } from './load-setting.js';
export {
  BACKEND_API_VERSION,
  defineBuildService,
  defineImageRegistry,
  type BackendContext,
  type BackendDefinition,
  type BackendDefinitionInput,
  type BuildServiceDefinition,
  type ImageRegistryDefinition,
  type BuildService,
  type BuildRequest,
  type BuildResult,
  type ImageLayout,
  type ImageRegistry,
  type ImageTagInput,
  type ImageExistence,
  type StoredImage,
  type BaseImageIdentity,
  type PullConfig,
  type RegistryCredentials,
} from './contracts.js';
export { EROFS_LAYOUT_ANNOTATION, tarLayersLayout } from './image-layout.js';
export { type CondaPlatform, type LockedPackage } from './env-model.js';
export { parseImageRef, isLoopbackHost, registryHostProblem, repositoryComponentProblem, DOCKER_HUB, type ImageRef } from './registry/image-ref.js';
export { MediaType } from './registry/media-types.js';
export { ESTARGZ_TOC_ANNOTATION, ESTARGZ_UNCOMPRESSED_ANNOTATION, ZSTD_CHUNKED_CHECKSUM_ANNOTATION } from './report/layer-format.js';
export { type OciDescriptor, type ImageManifest } from './registry/platform.js';
export { parseRetryAfter, type RetryPolicy } from './registry/retry.js';
export {
  dockerConfigCredentials,
  dockerConfigPath,
  dockerConfigKey,
  normalizeDockerConfigKey,
} from './registry/docker-config.js';
export { ListingBound, MAX_LISTING_BYTES, MAX_LISTING_PAGES, type ListingBoundOptions } from './registry/listing-bound.js';
export { RegistryClient, nextPagePath, type BlobFile, type BlobSource, type ManifestCheck, type RegistryClientOptions, type UploadBlobResult } from './registry/registry-client.js';
export { listRepositoryImages } from './registry/repository-images.js';
export { ManifestCache, manifestCacheDir, MAX_CACHED_MANIFEST_BYTES, MAX_CACHED_MANIFESTS, type ManifestCacheOptions } from './registry/manifest-cache.js';
export { PREFIX_LAYERS_FILE, parsePrefixLayers, type PrefixLayers } from './recipes/prefix-layers.js';
export { writeFileAtomic } from './atomic-write.js';
export { acquireFileLock, type FileLock } from './file-lock.js';
export { CACHE_DIR_SETTING, prebuiltCacheDir } from './cache-dir.js';
export { markCacheFileUsed, readCacheEntry, readCacheFile, readCacheFileSync, type ReadCacheFileOptions } from './cache-file.js';
export { diskFullError } from './disk-full.js';
export { makeDirectory, unwritableDirectoryError } from './make-directory.js';
export { foreignSymlinks, octalMode, repairedDirectoryNote, securePrivatePath, securePrivatePathSync, unsafeDirectoryWords, type RepairedDirectory, type UnsafeDirectory } from './private-path.js';
export { compareBytes, listTree, sourceDateEpoch } from './file-tree.js';
export { fileKind } from './file-kind.js';
export { readRegularFile, readRegularFileSync, type RegularFileRefusals } from './regular-file.js';
export { addTarTreeEntry } from './tar-tree-entry.js';
export { TAR_BLOCK, TAR_FIELDS, decodeTarHeader, sealTarHeader, tarNumber, tarPadding, tarText, type TarHeader } from './tar/tar-header.js';
export {
  MAX_EXTENDED_HEADER,
  TarExtendedHeaders,
  decodePaxRecords,
  isExtendedHeader,
  paxInteger,
  paxSeconds,
  type TarExtendedHeadersOptions,
} from './tar/tar-extended-headers.js';
export { TarEndBlocks, afterZeroBlock } from './tar/tar-stream-reader.js';
export { sha256Tap } from './sha256-tap.js';
export { createRunTempDir, createRunTempDirIn, sweepStaleRunTempDirs } from './run-temp-dir.js';
export { mapLimit, mapPool } from './deploy/pool.js';
export {
  PULL_ENV,
  DEFAULT_REPOSITORY,
  COMPONENT,
  envTag,
  parseHost,
  refuseHostCredentials,
  checkRepository,
  pullConfigFromSettings,
  secondsSetting,
  flagSetting,
  type PullSettings,
} from './backend-kit/settings.js';
export { createOciRegistry, type ImageRegistryOptions, type OciRegistrySpec } from './backend-kit/oci-registry.js';
export { registryAccess, type RegistryAccess, type RegistryAccessInput } from './backend-kit/registry-access.js';
export { explicitCredentials, type ExplicitCredentialsInput, type RegistryTokenSource } from './backend-kit/registry-credentials.js';
export { checkSignal, resolveBaseImage } from './backend-kit/base-image.js';
export { fromImageNamed } from './recipes/micromamba.js';
export { BuildLog, scrubber, cancelledError, withPushPhase } from './backend-kit/build-log.js';
export { createContextArchive, packBuildContext } from './backend-kit/context-archive.js';
export { checkPushCredentials } from './backend-kit/push-credentials.js';
export { DOCKER_PLATFORM, pushTarget, checkBuildRequest } from './backend-kit/build-request.js';
export {
  settingsReader,
  DEFAULT_LOG_TAIL_LINES,
  type BuildServiceOptions,
  type SettingsReader,
} from './backend-kit/build-service-settings.js';
export { isImageDigest, sha256Digest } from './registry/digest.js';
export { importLazily } from './backend-kit/lazy-import.js';
export { dockerConfigAuth } from './backend-kit/docker-config-auth.js';
/** Waits `ms`; rejects with the signal's reason when it aborts first (the registry client's retries use it too). */
export { sleep } from './registry/retry.js';
export { formatBytes, netFetch, type NetRequest, type NetResponse } from './net/net-fetch.js';
export { NETWORK_ENV, networkTimeouts, type NetworkTimeouts, type NetworkTimeoutOptions } from './net/network-settings.js';
export {
  pushImageIndex,
  type ImageIndexEntry,
  type PushImageIndexOptions,
  type PushedIndex,
} from './registry/image-index.js';
