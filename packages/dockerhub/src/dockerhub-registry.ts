import {
  LoginRequiredError,
  DEFAULT_REPOSITORY,
  DOCKER_HUB,
  createOciRegistry,
  dockerConfigCredentials,
  dockerConfigPath,
  explicitCredentials,
  pullConfigFromSettings,
  type ImageRegistry,
} from '@prebuilt/core/backend';
import { DOCKERHUB_ENV, dockerHubApi, dockerHubHost, dockerHubNamespace, dockerHubRepository, type DockerHubRegistryOptions } from './dockerhub-settings.js';
import { HubApi } from './hub-api.js';

export { DEFAULT_HUB_API, DOCKERHUB_ENV, type DockerHubRegistryOptions } from './dockerhub-settings.js';

/**
 * The `dockerhub` image registry: env images go to `docker.io/<namespace>/<repository>`, tagged
 * `env-<envId>-<arch>`. The namespace is the setting, else the user your credentials belong to.
 * Credentials: explicit settings, else your Docker config and its credential helpers. Existence
 * and base image digests use manifest HEADs (no pull-rate cost) through Docker Hub's Bearer token flow.
 * For `prebuilt gc`, images are listed and deleted (tag by tag) through Docker Hub's API
 * (`METAFLOW_PREBUILT_DOCKERHUB_API`, default https://hub.docker.com), with the same credentials.
 */
export async function createDockerHubRegistry(options: DockerHubRegistryOptions = {}): Promise<ImageRegistry> {
  const env = options.env ?? process.env;
  const registry = dockerHubHost(options, env);
  const repository = dockerHubRepository(options, env, DEFAULT_REPOSITORY);
  const credentials = explicitCredentials({
    registry,
    label: 'Docker Hub',
    username: options.username,
    password: options.password,
    envVars: { username: DOCKERHUB_ENV.username, password: DOCKERHUB_ENV.password },
    env,
  });
  const namespace = await dockerHubNamespace({ options, env, registry, explicit: credentials });
  const useDockerConfig = options.dockerConfig !== false;
  const base = `${registry}/${namespace}/${repository}`;
  const hub = new HubApi({
    api: dockerHubApi(options, env),
    registry,
    namespace,
    repository,
    credentials: async (signal) => credentials ?? (useDockerConfig ? dockerConfigCredentials(registry, { env, ...(signal ? { signal } : {}) }) : undefined),
  });
  return createOciRegistry({
    name: 'dockerhub',
    host: registry,
    repository: `${namespace}/${repository}`,
    credentials,
    env,
    dockerConfig: useDockerConfig,
    ...(options.client ? { client: options.client } : {}),
    pullConfig: pullConfigFromSettings(options, env),
    credentialsHint: `set ${DOCKERHUB_ENV.username} and ${DOCKERHUB_ENV.password}`,
    listImages: (listOptions = {}) => hub.listImages(listOptions.signal),
    deleteImage: (digest, deleteOptions = {}) => hub.deleteImage(digest, deleteOptions.signal, deleteOptions.tags),
    noCredentials: () =>
      new LoginRequiredError(`No credentials for ${registry}: pushing to ${base} needs a login.`, {
        registry,
        source: useDockerConfig ? `no credentials (looked in ${dockerConfigPath(env)})` : 'no credentials (the Docker config is off)',
      }, { hint: `Run 'docker login${registry === DOCKER_HUB ? '' : ` ${registry}`}', or set ${DOCKERHUB_ENV.username} and ${DOCKERHUB_ENV.password} (a personal access token works as the password).` }),
  });
}
