/**
 * The application face of @prebuilt/core: deploy, lock files, identity, recipes, backend selection and
 * the network layer, for the CLI, the conda and Metaflow packages. Backend authors import from
 * `@prebuilt/core/backend` instead.
 */
export {
  PrebuiltError,
  ConfigError,
  InputError,
  BackendNotFoundError,
  BackendInvalidError,
  ResolutionError,
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
  EXIT_CODE_MEANINGS,
  errorMessage,
  type PrebuiltErrorOptions,
} from './errors.js';
export { createLogger, type Logger } from './logger.js';
export { INVISIBLE_FORMAT_CHARS, lastLines, oneLineText, terminalText } from './terminal-text.js';
export { Secret } from './secret.js';
export { mapLimit } from './deploy/pool.js';
export { PYTHON_SETTING, pythonSetting } from './python-setting.js';
export { fileArgument, shellWord } from './shell-word.js';
export { shownPath } from './shown-path.js';
export { programPath, programNotFound, type ProgramPathOptions } from './program-path.js';
export {
  BoundedOutput,
  DEFAULT_OUTPUT_BOUND,
  ProgramRunError,
  runProgram,
  type CapturedOutput,
  type OutputBound,
  type ProgramResult,
  type ProgramRunFailure,
  type RunProgramOptions,
} from './run-program.js';
export { loadOptionalSetting, loadBooleanSetting, orOption, withoutOptionNames, type LoadSettingOptions, type LoadBooleanSettingOptions } from './load-setting.js';
export {
  defineImageRegistry,
  type BackendKind,
  type BackendContext,
  type BackendDefinition,
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
export {
  type CondaPlatform,
  type EnvRequest,
  type LockedEnv,
  type LockedPackage,
  type EnvPins,
  type ResolvedWith,
  type EnvToResolve,
} from './env-model.js';
export { dockerPlatform } from './env-model.js';
export { canonicalJson, stableJson, normalizeCondaName, normalizePypiName, pypiProjectName, sha256Hex, specHash } from './identity.js';
export { requestDefaults, targetPlatforms, platformsSetting, channelUrl, type RequestDefaultsOptions } from './request-defaults.js';
export { DEFAULT_GLIBC, targetGlibc } from './target-glibc.js';
export {
  DEFAULT_PIP_TIMEOUT_SECONDS,
  DEFAULT_REPODATA_MAX_MIB,
  PIP_TIMEOUT_ENV,
  REPODATA_MAX_SIZE_ENV,
  checkResolverSettings,
  pipIsolated,
  pipTimeoutMs,
  repodataMaxBytes,
} from './resolver-settings.js';
export { CACHE_DIR_SETTING, prebuiltCacheDir, prepareCacheDir } from './cache-dir.js';
export { kindLabel } from './backends/builtin-backends.js';
export { closestName } from './backends/closest-name.js';
export { registerBackend } from './backends/backend-registry.js';
export { resolveBackend } from './backends/resolve-backend.js';
export { cliInstallKind, installCommand } from './backends/cli-install.js';
export { isDirectory } from './backends/package-lookup.js';
export { listBackends, type BackendListing } from './backends/list-backends.js';
export { knownBackends, type BackendCatalogue, type KnownBackend } from './backends/backend-catalogue.js';
export { selectedBackendNames, createResolvedBackend, type BackendSelection } from './backends/select-backends.js';
export { backendSettingsPrefix, ignoredServiceSettings, ignoredBuildServiceSettings, type IgnoredSettings } from './backends/ignored-settings.js';
export { unknownSettings, unknownRunSettings, type UnknownSetting } from './backends/unknown-settings.js';
export { DOCKER_HUB, parseImageRef } from './registry/image-ref.js';
export { normalizeDockerConfigKey, DOCKER_HUB_CONFIG_KEY } from './registry/docker-config.js';
export { computeEnvId } from './env-id.js';
export { PRUNE_ENV, PRUNE_PRESETS, isPruned, normalisePrunePresets, pruneSetting, selectPrunePresets, type PrunePreset } from './prune.js';
export { lockPlatforms, type LockFile, type LockEntry } from './lock-file.js';
export { fileUrlInsideSources, LocalSourceRoots, localSourceUrls, type LocalSources } from './local-source.js';
export { checkLockFlags, lockForFlow, type StepToLock, type LockForFlowResult } from './lock-for-flow.js';
export { selectRecipeName, type RecipeName } from './recipes/recipe.js';
export { materializedRecipe, MATERIALIZED_RECIPE_VERSION } from './recipes/materialized.js';
export { PREFIX_LAYERS_FILE, parsePrefixLayers, type PrefixLayersPackage } from './recipes/prefix-layers.js';
export { createRecipeRunner, createMicromambaRecipeRunner } from './recipes/select.js';
export { createMaterializedRecipeRunner } from './recipes/materialized-runner.js';
export { syncDirectory, writeFileAtomic } from './atomic-write.js';
export { currentBootId } from './boot-id.js';
export { markCacheFileUsed, readCacheEntry, readCacheFile, readCacheFileSync, type ReadCacheFileOptions } from './cache-file.js';
export { makeDirectory, unwritableDirectoryError } from './make-directory.js';
export { foreignSymlinks, octalMode, repairedDirectoryNote, securePrivatePath, securePrivatePathSync, unsafeDirectoryWords, type RepairedDirectory, type UnsafeDirectory } from './private-path.js';
export { compareBytes, normalisedMode, listTree, sourceDateEpoch, type TreeEntryKind } from './file-tree.js';
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
export { TarEndBlocks, afterZeroBlock, tarStreamEntries, type TarStreamEntry } from './tar/tar-stream-reader.js';
export { sha256Tap } from './sha256-tap.js';
export { diskFullError } from './disk-full.js';
export { createRunTempDir, createRunTempDirIn, sweepStaleRunTempDirs } from './run-temp-dir.js';
export { acquireFileLock } from './file-lock.js';
export { deploy } from './deploy/orchestrator.js';
export { checkBuildService } from './deploy/build-service.js';
export { EROFS_LAYOUT_ANNOTATION, buildServiceLayout, tarLayersLayout } from './image-layout.js';
export {
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
  type EnvResolver,
  type EnvMaterializer,
  type EnvProgress,
} from './contracts.js';
export { ENV_PREFIX, envPrefix, pinnedImageRef, type ImageMap, type ImageMapImage, type ImageMapStep, type StepPackages } from './deploy/image-map.js';
export { credentialsHidden, positiveSetting, schemeAndRest } from './backend-kit/settings.js';
export { isNothingThere, sleep } from './registry/retry.js';
export { netFetch, type NetResponse } from './net/net-fetch.js';
export { BODY_LIMITS, networkTimeouts, type NetworkTimeouts } from './net/network-settings.js';
export { withNetworkWaits, describeNetworkWait } from './net/network-wait.js';
export {
  redactUrl,
  redactUrls,
  hasUrlCredentials,
  stripUrlCredentials,
  hasChannelToken,
  stripChannelToken,
  UrlCredentials,
  urlCredentialsFromEnv,
} from './net/url-credentials.js';
export { createSbom, packageUrl, licenseKey, SPDX_JSON_MEDIA_TYPE, type Sbom, type SbomInput } from './sbom/spdx-document.js';
export { spdxLicense, canonicalSpdxExpression, type SpdxLicense } from './sbom/spdx-license.js';
export { pushImageSbom, readImageSbom, findImageSboms, type ImageSbomRef } from './sbom/sbom-artifact.js';
export { pushReferrer, listReferrers, referrersTag, EMPTY_CONFIG, type PushReferrerInput, type PushReferrerResult, type ReferrerDescriptor } from './registry/referrers.js';
export { pushDeploySboms, imageEnvs, type DeploySbomsInput } from './sbom/deploy-sboms.js';
export { parseBandwidth, transferSeconds, type Bandwidth } from './report/bandwidth.js';
export { layerFormat, gzipTrailerSize, annotatedUncompressedSize, type LayerFormat } from './report/layer-format.js';
export { coldStartReport, type ColdStartReport, type StepReport, type PlatformReport, type LayerReport } from './report/cold-start.js';
export { registryClientFor } from './registry/registry-for.js';
export { completeStoredImages } from './registry/repository-images.js';
export { ageText, planGc, gcKind, shortDigest, type GcPlan, type GcItem, type GcKind, type GcKeepRef, type GcPlanInput } from './gc/gc-plan.js';
export { collectImageRefs, imageRefTarget, refNamesImage, IMAGE_KEYS, type ImageRefTarget } from './gc/image-refs.js';
export { type RegistryClient } from './registry/registry-client.js';
export { formatBytes } from './net/net-fetch.js';
export { type ImageMapSbom } from './deploy/image-map.js';
