export {
  PrebuiltError,
  ConfigError,
  InputError,
  BackendNotFoundError,
  BackendInvalidError,
  ResolutionError,
  RegistryError,
  AuthError,
  BuildFailedError,
  EnvironmentError,
  CancelledError,
  DiskFullError,
  NetworkError,
  ExitCode,
  errorMessage,
  type PrebuiltErrorOptions,
} from './errors.js';
export { createLogger, type Logger } from './logger.js';
export { Secret } from './secret.js';
export { loadSetting, loadOptionalSetting, type LoadSettingOptions } from './load-setting.js';
export {
  BACKEND_API_VERSION,
  defineBuildService,
  defineImageRegistry,
  type BackendKind,
  type BackendContext,
  type BackendDefinition,
  type BackendDefinitionInput,
  type BuildServiceDefinition,
  type ImageRegistryDefinition,
  type BuildService,
  type BuildRequest,
  type BuildResult,
  type ImageRegistry,
  type ImageTagInput,
  type ImageExistence,
  type BaseImageIdentity,
  type PullConfig,
  type RegistryCredentials,
} from './contracts.js';
export {
  dockerPlatform,
  type CondaPlatform,
  type EnvRequest,
  type LockedEnv,
  type LockedPackage,
} from './env-model.js';
export {
  canonicalJson,
  stableJson,
  canonicalRequest,
  normalizeCondaName,
  normalizePypiName,
  sha256Hex,
  specHash,
  SPEC_HASH_VERSION,
} from './identity.js';
export {
  requestDefaults,
  targetPlatforms,
  channelUrl,
  CONDA_PLATFORMS,
  ANACONDA_CHANNEL_BASE,
  DEFAULT_CONDA_CHANNELS,
  type RequestDefaults,
  type RequestDefaultsOptions,
} from './request-defaults.js';
export {
  BUILTIN_BACKENDS,
  BUILD_SERVICE_ENV_VAR,
  IMAGE_REGISTRY_ENV_VAR,
  DEFAULT_BUILD_SERVICE,
  DEFAULT_IMAGE_REGISTRY,
  builtinKind,
  kindLabel,
  type BuiltinBackendName,
  type BuiltinBuildServiceName,
  type BuiltinImageRegistryName,
} from './backends/builtin-backends.js';
export { registerBackend, registeredBackends } from './backends/backend-registry.js';
export {
  backendDefinitionProblems,
  isBackendDefinition,
  validateBackendDefinition,
} from './backends/validate-definition.js';
export {
  resolveBackend,
  backendCandidates,
  isPathSelection,
  type ResolveBackendOptions,
  type ResolvedBackend,
  type BackendSource,
  type BackendCandidate,
  type DefinitionOfKind,
} from './backends/resolve-backend.js';
export { listBackends, type BackendListing, type ListBackendsOptions } from './backends/list-backends.js';
export {
  selectedBackendNames,
  resolveSelectedBackends,
  createBackends,
  createResolvedBackend,
  type BackendSelection,
  type SelectedBackendNames,
  type SelectBackendsOptions,
  type ResolvedSelection,
  type CreateBackendsOptions,
  type CreatedBackends,
} from './backends/select-backends.js';
export {
  parseImageRef,
  formatImageRef,
  registryApiHost,
  isLoopbackHost,
  DOCKER_HUB,
  DOCKER_HUB_API_HOST,
  type ImageRef,
} from './registry/image-ref.js';
export { MediaType, MANIFEST_ACCEPT, isIndexMediaType } from './registry/media-types.js';
export {
  parsePlatform,
  selectPlatformManifest,
  platformMatches,
  type OciDescriptor,
  type OciPlatform,
  type ImageManifest,
  type ImageIndex,
} from './registry/platform.js';
export { parseWwwAuthenticate, type AuthChallenge } from './registry/www-authenticate.js';
export { parseRetryAfter, backoffDelay, DEFAULT_RETRY_POLICY, type RetryPolicy } from './registry/retry.js';
export {
  dockerConfigCredentials,
  dockerConfigPath,
  dockerConfigKey,
  normalizeDockerConfigKey,
  readDockerConfig,
  parseDockerConfig,
  DOCKER_HUB_CONFIG_KEY,
  type DockerConfig,
  type DockerConfigAuth,
  type DockerConfigOptions,
} from './registry/docker-config.js';
export { runCredentialHelper, type CredentialHelperOptions, type HelperCredentials } from './registry/credential-helper.js';
export {
  RegistryClient,
  type RegistryClientOptions,
  type CredentialsProvider,
  type RequestOptions,
  type ManifestHead,
  type BlobHead,
  type ManifestResult,
  type BlobUploadStatus,
  type UploadBlobOptions,
  type UploadBlobResult,
  type TransferStats,
} from './registry/registry-client.js';
export {
  pushImageIndex,
  readImageIndex,
  type ImageIndexEntry,
  type PushImageIndexOptions,
  type PushedIndex,
  type ReadImageIndexOptions,
  type PublishedIndex,
} from './registry/image-index.js';
export { envId, computeEnvId, indexId, canonicalEnvIdInput, ENV_ID_VERSION, ENV_ID_LENGTH, type EnvIdInput, type IndexMemberId } from './env-id.js';
export {
  LOCK_FILE_VERSION,
  lockFileVersion,
  lockPlatforms,
  lockFilePath,
  lockForFlow,
  lockKey,
  readLockFile,
  writeLockFile,
  serializeLockFile,
  validateLockFile,
  comparePackages,
  type LockFile,
  type LockEntry,
  type ResolvedWith,
  type EnvPins,
  type StepToLock,
  type StepLocks,
  type LockFileVersion,
  type EnvToResolve,
  type EnvResolver,
  type LockForFlowOptions,
  type LockForFlowResult,
} from './lock-file.js';
export {
  RECIPE_NAMES,
  RECIPE_ENV,
  LABEL_PREFIX,
  selectRecipeName,
  lockHash,
  prebuiltVersion,
  type RecipeName,
  type RecipeInput,
  type Recipe,
  type ContextFile,
} from './recipes/recipe.js';
export { materializedRecipe, MATERIALIZED_RECIPE_VERSION, PREFIX_CONTEXT_DIR } from './recipes/materialized.js';
export {
  PREFIX_LAYERS_FILE,
  PREFIX_LAYERS_VERSION,
  serializePrefixLayers,
  parsePrefixLayers,
  type PrefixLayers,
  type PrefixLayersPackage,
} from './recipes/prefix-layers.js';
export {
  micromambaRecipe,
  explicitLockFile,
  pipRequirementsFile,
  MICROMAMBA_RECIPE_VERSION,
  MICROMAMBA_IMAGE_ENV,
  DEFAULT_MICROMAMBA_IMAGE,
  type MicromambaRecipeOptions,
} from './recipes/micromamba.js';
export {
  renderRecipe,
  recipeVersion,
  writeContextFiles,
  createMicromambaRecipeRunner,
} from './recipes/select.js';
export { writeFileAtomic } from './atomic-write.js';
export { compareBytes, normalisedMode, listTree, sourceDateEpoch, type TreeEntry, type TreeEntryKind } from './file-tree.js';
export { addTarTreeEntry, type TarTreeEntry } from './tar-tree-entry.js';
export { sha256Tap, type Sha256Tap } from './sha256-tap.js';
export { diskFullError, isDiskFull } from './disk-full.js';
export { createRunTempDir, sweepStaleRunTempDirs } from './run-temp-dir.js';
export { acquireFileLock, describeLockOwner, LEASE_BEATS, LOCK_HEARTBEAT_MS, type AcquireOptions, type FileLock, type LockOwner } from './file-lock.js';
export {
  checkBuildService,
  deploy,
  type DeployOptions,
  type DeployResult,
  type BuildLockHandle,
  type DeployImage,
  type DeployIndexMember,
  type DeployStep,
  type DeployEvent,
  type ImagePhase,
  type PreparedBuild,
  type RecipeRunner,
} from './deploy/orchestrator.js';
export { ENV_PREFIX, envPrefix, envPython, pinnedImageRef, type ImageMap, type ImageMapImage, type ImageMapStep } from './deploy/image-map.js';
export { mapPool } from './deploy/pool.js';
export {
  PULL_ENV,
  DEFAULT_REPOSITORY,
  COMPONENT,
  envTag,
  parseHost,
  checkRepository,
  pullConfigFromSettings,
  secondsSetting,
  positiveSetting,
  type PullSettings,
} from './backend-kit/settings.js';
export { checkSignal, resolveBaseImage, type ResolveBaseImageOptions } from './backend-kit/base-image.js';
export { BuildLog, scrubber, cancelledError, withPushPhase } from './backend-kit/build-log.js';
export {
  createContextArchive,
  packBuildContext,
  type ContextArchive,
  type ContextArchiveOptions,
  type PackedBuildContext,
} from './backend-kit/context-archive.js';
export { checkPushCredentials } from './backend-kit/push-credentials.js';
export { DOCKER_PLATFORM, pushTarget } from './backend-kit/build-request.js';
export { netFetch, formatBytes, type NetRequest, type NetResponse } from './net/net-fetch.js';
export {
  NETWORK_ENV,
  BODY_LIMITS,
  DEFAULT_IDLE_TIMEOUT_SECONDS,
  DEFAULT_DEADLINE_SECONDS,
  networkTimeouts,
  type NetworkTimeouts,
  type NetworkTimeoutOptions,
} from './net/network-settings.js';
export { withNetworkWaits, currentNetworkWaitListener, describeNetworkWait, type NetworkWait, type NetworkWaitListener } from './net/network-wait.js';
export {
  redactUrl,
  redactUrls,
  hasUrlCredentials,
  stripUrlCredentials,
  UrlCredentials,
  URL_CREDENTIAL_SETTINGS,
  urlCredentialsFromEnv,
} from './net/url-credentials.js';
