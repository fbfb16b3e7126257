import {
  ConfigError,
  DOCKER_HUB,
  PULL_ENV,
  checkRepository,
  createLogger,
  dockerConfigCredentials,
  dockerConfigPath,
  loadOptionalSetting,
  normalizeDockerConfigKey,
  orOption,
  parseHost,
  type PullSettings,
  type ImageRegistryOptions,
  type RegistryCredentials,
  type Secret,
} from '@prebuilt/core/backend';

const debug = createLogger('dockerhub');

export const DOCKERHUB_ENV = {
  namespace: 'METAFLOW_PREBUILT_DOCKERHUB_NAMESPACE',
  repository: 'METAFLOW_PREBUILT_IMAGE_NAMESPACE',
  username: 'METAFLOW_PREBUILT_DOCKERHUB_USERNAME',
  password: 'METAFLOW_PREBUILT_DOCKERHUB_PASSWORD',
  registry: 'METAFLOW_PREBUILT_DOCKERHUB_REGISTRY',
  hubApi: 'METAFLOW_PREBUILT_DOCKERHUB_API',
  ...PULL_ENV,
} as const;

export interface DockerHubRegistryOptions extends PullSettings, ImageRegistryOptions {
  /** User or organisation the images go under. Env `METAFLOW_PREBUILT_DOCKERHUB_NAMESPACE`; default: the logged-in user. */
  namespace?: string;
  /** Repository name under the namespace. Env `METAFLOW_PREBUILT_IMAGE_NAMESPACE`; default `metaflow-prebuilt`. */
  repository?: string;
  /** Docker Hub user. Env `METAFLOW_PREBUILT_DOCKERHUB_USERNAME`; default: the Docker config. */
  username?: string;
  /** Password or personal access token. Env `METAFLOW_PREBUILT_DOCKERHUB_PASSWORD`. */
  password?: string | Secret;
  /** Registry host. Env `METAFLOW_PREBUILT_DOCKERHUB_REGISTRY`; default `docker.io` (tests point it at a local token-auth registry). */
  registry?: string;
  /** Read credentials from the user's Docker config (`auths`, `credsStore`, `credHelpers`). Default true. */
  dockerConfig?: boolean;
  /**
   * Base URL of Docker Hub's API (tag listing and deletion for `prebuilt gc`). Env
   * `METAFLOW_PREBUILT_DOCKERHUB_API`; default `https://hub.docker.com` (tests point it at a local fake).
   */
  hubApi?: string;
}

/** Docker Hub's API, where tags are listed and deleted (the registry API cannot delete on Docker Hub). */
export const DEFAULT_HUB_API = 'https://hub.docker.com';

type Env = Record<string, string | undefined>;

function setting(value: string | undefined, envVar: string, option: string, env: Env): string | undefined {
  return loadOptionalSetting({ value, envVar, option, description: option, env });
}

/** The registry host: the setting, else `docker.io`. */
export function dockerHubHost(options: DockerHubRegistryOptions, env: Env): string {
  const value = setting(options.registry, DOCKERHUB_ENV.registry, 'registry', env);
  return value === undefined ? DOCKER_HUB : normalizeDockerConfigKey(parseHost(value, DOCKERHUB_ENV.registry, 'registry'));
}

/** The Hub API base URL: the setting (an http(s) URL without credentials, query or fragment), else `https://hub.docker.com`. */
export function dockerHubApi(options: DockerHubRegistryOptions, env: Env): string {
  const value = setting(options.hubApi, DOCKERHUB_ENV.hubApi, 'hubApi', env);
  if (value === undefined) return DEFAULT_HUB_API;
  let url: URL | undefined;
  try {
    url = new URL(value);
  } catch {
    url = undefined;
  }
  if (!url || !/^https?:$/.test(url.protocol) || url.username || url.password || url.search || url.hash) {
    throw new ConfigError(`${DOCKERHUB_ENV.hubApi}${orOption('hubApi')} = '${url?.username || url?.password ? '<a URL with credentials>' : value}' is not an http(s) base URL.`, {
      setting: DOCKERHUB_ENV.hubApi,
      hint: `Give the base URL of Docker Hub's API without credentials, e.g. ${DEFAULT_HUB_API} (or unset it).`,
    });
  }
  return url.href.replace(/\/+$/, '');
}

/** The repository name under the namespace: the setting, else `metaflow-prebuilt`. */
export function dockerHubRepository(options: DockerHubRegistryOptions, env: Env, fallback: string): string {
  return checkRepository(setting(options.repository, DOCKERHUB_ENV.repository, 'repository', env) ?? fallback, DOCKERHUB_ENV.repository, 'repository', 1);
}

/**
 * The namespace: the setting, else the user the registry's credentials (explicit ones, else the
 * Docker config's) belong to; neither is a ConfigError saying where it looked.
 */
export async function dockerHubNamespace(input: { options: DockerHubRegistryOptions; env: Env; registry: string; explicit: RegistryCredentials | undefined }): Promise<string> {
  const { options, env, registry, explicit } = input;
  const given = setting(options.namespace, DOCKERHUB_ENV.namespace, 'namespace', env);
  if (given !== undefined) return checkRepository(given, DOCKERHUB_ENV.namespace, 'namespace', 1);
  const useDockerConfig = options.dockerConfig !== false;
  const own = explicit ?? (useDockerConfig ? await dockerConfigCredentials(registry, { env }) : undefined);
  debug('credentials for %s: %s', registry, own?.source ?? 'none');
  const user = own?.username;
  if (user === undefined || user === '' || user === '<token>') {
    const looked = explicit ? explicit.source : useDockerConfig ? `${dockerConfigPath(env)} has ${own ? 'no user name' : `no login for ${registry}`}` : 'the Docker config is off';
    throw new ConfigError(`The Docker Hub namespace is not set: ${DOCKERHUB_ENV.namespace}${orOption('namespace')} is unset and no logged-in user was found (${looked}).`, {
      setting: DOCKERHUB_ENV.namespace,
      hint: `Set ${DOCKERHUB_ENV.namespace}${orOption('namespace')} to your Docker Hub user or organisation, or run 'docker login'.`,
    });
  }
  debug('namespace from the logged-in user (%s): %s', own!.source, user.toLowerCase());
  return checkRepository(user.toLowerCase(), DOCKERHUB_ENV.namespace, 'namespace', 1);
}
