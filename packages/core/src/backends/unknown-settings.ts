import { closestName } from './closest-name.js';
import { backendSettingsPrefix } from './ignored-settings.js';

/**
 * Every `METAFLOW_PREBUILT_*` setting prebuilt, its first-party backends and its Metaflow extension
 * read (`unknown-settings.test.ts` checks this list against the sources, both ways). A set variable
 * of that prefix that is not one of them does nothing: most likely a misspelt one.
 */
export const KNOWN_SETTINGS: readonly string[] = [
  'METAFLOW_PREBUILT_BASE_IMAGE',
  'METAFLOW_PREBUILT_BATCH_REPOSITORY_CREDENTIALS',
  'METAFLOW_PREBUILT_BUILDX_BUILDER',
  'METAFLOW_PREBUILT_BUILDX_DOCKER',
  'METAFLOW_PREBUILT_BUILDX_KEEP_IMAGES',
  'METAFLOW_PREBUILT_BUILDX_NETWORK',
  'METAFLOW_PREBUILT_BUILDX_TIMEOUT',
  'METAFLOW_PREBUILT_BUILD_SERVICE',
  'METAFLOW_PREBUILT_BUILD_WORKERS',
  'METAFLOW_PREBUILT_CACHE_DIR',
  'METAFLOW_PREBUILT_CODEBUILD_BUCKET',
  'METAFLOW_PREBUILT_CODEBUILD_PROJECT',
  'METAFLOW_PREBUILT_CODEBUILD_REGION',
  'METAFLOW_PREBUILT_CODEBUILD_REGISTRY_PARAMETER',
  'METAFLOW_PREBUILT_CODEBUILD_REGISTRY_SECRET',
  'METAFLOW_PREBUILT_CODEBUILD_REGISTRY_USERNAME',
  'METAFLOW_PREBUILT_CODEBUILD_TIMEOUT',
  'METAFLOW_PREBUILT_CONDA_CHANNELS',
  'METAFLOW_PREBUILT_DEFAULT_PYTHON',
  'METAFLOW_PREBUILT_DOCKERHUB_API',
  'METAFLOW_PREBUILT_DOCKERHUB_NAMESPACE',
  'METAFLOW_PREBUILT_DOCKERHUB_PASSWORD',
  'METAFLOW_PREBUILT_DOCKERHUB_REGISTRY',
  'METAFLOW_PREBUILT_DOCKERHUB_USERNAME',
  'METAFLOW_PREBUILT_DOCKER_API_VERSION',
  'METAFLOW_PREBUILT_DOCKER_BUILDER',
  'METAFLOW_PREBUILT_DOCKER_KEEP_IMAGES',
  'METAFLOW_PREBUILT_DOCKER_NETWORK',
  'METAFLOW_PREBUILT_ECR_ACCOUNT',
  'METAFLOW_PREBUILT_ECR_CREATE_REPOSITORY',
  'METAFLOW_PREBUILT_ECR_ENDPOINT',
  'METAFLOW_PREBUILT_ECR_REGION',
  'METAFLOW_PREBUILT_ECR_REGISTRY_HOST',
  'METAFLOW_PREBUILT_ECR_SCAN_ON_PUSH',
  'METAFLOW_PREBUILT_ECR_TAG_IMMUTABILITY',
  'METAFLOW_PREBUILT_GCR_HOST',
  'METAFLOW_PREBUILT_GCR_PROJECT',
  'METAFLOW_PREBUILT_GCR_REPOSITORY',
  'METAFLOW_PREBUILT_GLIBC_VERSION',
  'METAFLOW_PREBUILT_GPU_BASE_IMAGE',
  'METAFLOW_PREBUILT_IMAGE_MAP',
  'METAFLOW_PREBUILT_IMAGE_NAMESPACE',
  'METAFLOW_PREBUILT_IMAGE_REGISTRY',
  'METAFLOW_PREBUILT_KANIKO_CONTEXT_BUCKET',
  'METAFLOW_PREBUILT_KANIKO_CPU',
  'METAFLOW_PREBUILT_KANIKO_EXTRA_ARGS',
  'METAFLOW_PREBUILT_KANIKO_IMAGE',
  'METAFLOW_PREBUILT_KANIKO_MEMORY',
  'METAFLOW_PREBUILT_KANIKO_NAMESPACE',
  'METAFLOW_PREBUILT_KANIKO_SERVICE_ACCOUNT',
  'METAFLOW_PREBUILT_KANIKO_TIMEOUT',
  'METAFLOW_PREBUILT_LOCAL_REGISTRY',
  'METAFLOW_PREBUILT_LOCAL_REGISTRY_INSECURE',
  'METAFLOW_PREBUILT_LOCAL_REGISTRY_PASSWORD',
  'METAFLOW_PREBUILT_LOCAL_REGISTRY_PULL_HOST',
  'METAFLOW_PREBUILT_LOCAL_REGISTRY_USERNAME',
  'METAFLOW_PREBUILT_MICROMAMBA_IMAGE',
  'METAFLOW_PREBUILT_NETWORK_DEADLINE',
  'METAFLOW_PREBUILT_NETWORK_IDLE_TIMEOUT',
  'METAFLOW_PREBUILT_OCI_CHUNK_SIZE',
  'METAFLOW_PREBUILT_OCI_ESTARGZ_BASE',
  'METAFLOW_PREBUILT_OCI_INSECURE_REGISTRIES',
  'METAFLOW_PREBUILT_OCI_LAYERS',
  'METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION',
  'METAFLOW_PREBUILT_OCI_MOUNT_FROM',
  'METAFLOW_PREBUILT_OCI_PREFETCH',
  'METAFLOW_PREBUILT_OCI_RUNNERS',
  'METAFLOW_PREBUILT_PAUSE_IMAGE',
  'METAFLOW_PREBUILT_PIP_ISOLATED',
  'METAFLOW_PREBUILT_PLATFORM',
  'METAFLOW_PREBUILT_PRUNE',
  'METAFLOW_PREBUILT_PULL_SECRET',
  'METAFLOW_PREBUILT_PYPI_INDEX_URL',
  'METAFLOW_PREBUILT_PYTHON',
  'METAFLOW_PREBUILT_RECIPE',
  'METAFLOW_PREBUILT_REGISTRY_CACHE',
  'METAFLOW_PREBUILT_REPODATA_MAX_SIZE',
  'METAFLOW_PREBUILT_SBOM',
  'METAFLOW_PREBUILT_STATE_FILE',
];

/** The first-party backends, whose settings all start with their prefix ({@link backendSettingsPrefix}) and are all in {@link KNOWN_SETTINGS}. */
export const FIRST_PARTY_BACKENDS: readonly string[] = ['docker', 'buildx', 'kaniko', 'codebuild', 'oci', 'local', 'dockerhub', 'ecr', 'gcr'];

const PREFIX = 'METAFLOW_PREBUILT_';

/** A set `METAFLOW_PREBUILT_*` variable that no part of prebuilt reads, and the known setting it most likely misspells. */
export interface UnknownSetting {
  setting: string;
  /** The known setting at most two edits away (a letter missed, doubled, swapped…), when there is one. */
  suggestion?: string;
}

/**
 * The `METAFLOW_PREBUILT_*` variables set (non-empty) in `env` that no part of prebuilt reads:
 * a misspelt `METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION` (one letter left out) had the oci service build gzip images without a word. One a known
 * setting is two edits or fewer from comes with it as `suggestion`. A backend of another package
 * (`selected`: the selected build service and registry names, when not first-party) may read
 * settings of its own, which this cannot know: then only a likely misspelling of a known setting,
 * or a name under a first-party backend's prefix, is listed.
 */
export function unknownSettings(env: Record<string, string | undefined>, selected: readonly string[]): UnknownSetting[] {
  const known = new Set(KNOWN_SETTINGS);
  const thirdParty = selected.some((name) => !FIRST_PARTY_BACKENDS.includes(name));
  const firstPartyPrefixes = FIRST_PARTY_BACKENDS.map(backendSettingsPrefix);
  return Object.keys(env)
    .filter((key) => key.startsWith(PREFIX) && env[key]?.trim() && !known.has(key))
    .sort()
    .flatMap((setting) => {
      const suggestion = closestName(setting, KNOWN_SETTINGS);
      if (suggestion !== undefined) return [{ setting, suggestion }];
      if (!thirdParty || firstPartyPrefixes.some((prefix) => setting.startsWith(prefix))) return [{ setting }];
      return [];
    });
}
