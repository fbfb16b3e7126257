export {
  createResolver,
  effectivePins,
  RESOLVER_VERSION,
  DEFAULT_GLIBC,
  DEFAULT_LINUX,
  type Resolver,
  type ResolverOptions,
} from './resolve/resolver.js';
export { solveConda, requestSpecs, type CondaSolveInput, type CondaSolveContext, type CondaSolveResult } from './resolve/conda-solver.js';
export { resolvePypi, pipRequirement, manylinuxTags, type PipOptions, type PipResolveInput } from './resolve/pip-resolver.js';
export { condaSpec, pythonSpec, type CondaSpec } from './resolve/match-spec.js';
export { ChannelServer, virtualRepodata, VIRTUAL_PREFIX, type VirtualPackages } from './resolve/channel-server.js';
export { RepodataCache, type RepodataCacheOptions } from './resolve/repodata-cache.js';
export { prebuiltCacheDir } from './resolve/cache-dir.js';
export { loadRattler } from './resolve/rattler.js';
export {
  PackageCache,
  defaultCacheDir,
  sha256File,
  CACHE_DIR_ENV,
  type PackageCacheOptions,
  type DownloadProgress,
  type EnsureOptions,
  type EnsureResult,
} from './cache/package-cache.js';
export { PackageDownloadError, PackageIntegrityError } from './cache/errors.js';
export { materializeEnv, isEnvWideEntry, type MaterializeOptions, type MaterializeProgress, type MaterializeResult, type PackageFiles } from './materialize/materialize.js';
export {
  writeDeterministicTar,
  normaliseTree,
  sourceDateEpoch,
  type DeterministicTarOptions,
  type DeterministicTarResult,
} from './materialize/deterministic-tar.js';
export { installCondaPackage, readCondaPackage, sitePackagesDir, type CondaMetaRecord, type CondaInstallOptions, type CondaInstallResult } from './materialize/conda-install.js';
export { installWheel, type WheelInstallOptions, type WheelInstallResult } from './materialize/wheel-install.js';
export { Pruning, type PruneSummary } from './materialize/pruning.js';
export { PrefixWriter } from './materialize/prefix-writer.js';
export { validateBytecode, findBytecodeCompiler, pycPathOf, cacheTagOf, type BytecodeCompiler, type ValidateBytecodeOptions, type ValidateBytecodeResult } from './materialize/bytecode.js';
export { ArchiveError, InstallError } from './materialize/errors.js';
export { createEnvMaterializer, type EnvMaterializerOptions } from './materialize/env-materializer.js';
export { createMaterializedRecipeRunner, type MaterializedRecipeRunnerOptions } from './materialize/recipe-runner.js';
export { lockedLicenses, condaPackageLicense, wheelLicense, metadataHeader } from './sbom/package-license.js';
