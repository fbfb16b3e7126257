import {
  AuthError,
  ConfigError,
  DEFAULT_REPOSITORY,
  DOCKER_HUB,
  PULL_ENV,
  RegistryClient,
  Secret,
  checkRepository,
  checkSignal,
  createLogger,
  dockerConfigCredentials,
  dockerConfigPath,
  envTag,
  loadOptionalSetting,
  normalizeDockerConfigKey,
  parseHost,
  pullConfigFromSettings,
  resolveBaseImage,
  type ImageExistence,
  type ImageRegistry,
  type PullConfig,
  type PullSettings,
  type RegistryClientOptions,
  type RegistryCredentials,
} from '@prebuilt/core/backend';

const debug = createLogger('dockerhub');

export const DOCKERHUB_ENV = {
  namespace: 'METAFLOW_PREBUILT_DOCKERHUB_NAMESPACE',
  repository: 'METAFLOW_PREBUILT_IMAGE_NAMESPACE',
  username: 'METAFLOW_PREBUILT_DOCKERHUB_USERNAME',
  password: 'METAFLOW_PREBUILT_DOCKERHUB_PASSWORD',
  registry: 'METAFLOW_PREBUILT_DOCKERHUB_REGISTRY',
  ...PULL_ENV,
} as const;

export interface DockerHubRegistryOptions extends PullSettings {
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
  /** Retries and timeouts of registry requests (tests shorten them). */
  client?: Pick<RegistryClientOptions, 'retry' | 'timeoutMs'>;
  /** Environment to read settings from. Default `process.env`. */
  env?: Record<string, string | undefined>;
}

/**
 * The `dockerhub` image registry: env images go to `docker.io/<namespace>/<repository>`, tagged
 * `env-<envId>-<arch>`. The namespace is the setting, else the user your credentials belong to.
 * Credentials: explicit settings, else your Docker config and its credential helpers. Existence
 * and base image digests use manifest HEADs (no pull-rate cost) through Docker Hub's Bearer token flow.
 */
export async function createDockerHubRegistry(options: DockerHubRegistryOptions = {}): Promise<ImageRegistry> {
  const env = options.env ?? process.env;
  const setting = (value: string | undefined, envVar: string, option: string): string | undefined =>
    loadOptionalSetting({ value, envVar, option, description: option, env });

  const registrySetting = setting(options.registry, DOCKERHUB_ENV.registry, 'registry');
  const registry = registrySetting === undefined ? DOCKER_HUB : normalizeDockerConfigKey(parseHost(registrySetting, DOCKERHUB_ENV.registry, 'registry'));
  const repository = checkRepository(setting(options.repository, DOCKERHUB_ENV.repository, 'repository') ?? DEFAULT_REPOSITORY, DOCKERHUB_ENV.repository, 'repository', 1);

  const username = setting(options.username, DOCKERHUB_ENV.username, 'username');
  const password = setting(options.password instanceof Secret ? options.password.reveal() : options.password, DOCKERHUB_ENV.password, 'password');
  if ((username === undefined) !== (password === undefined)) {
    const absent = username === undefined ? 'username' : 'password';
    throw new ConfigError(`The Docker Hub ${absent === 'username' ? 'password' : 'username'} is set but its ${absent} is not (option '${absent}' or ${absent === 'username' ? DOCKERHUB_ENV.username : DOCKERHUB_ENV.password}).`, {
      setting: absent === 'username' ? DOCKERHUB_ENV.username : DOCKERHUB_ENV.password,
      hint: `Set both ${DOCKERHUB_ENV.username} and ${DOCKERHUB_ENV.password} (or the options 'username' and 'password'), or neither to use your Docker config (docker login).`,
    });
  }
  const explicitSource = options.username ? "the options 'username'/'password'" : `env ${DOCKERHUB_ENV.username}/${DOCKERHUB_ENV.password}`;
  const explicit: RegistryCredentials | undefined =
    username !== undefined && password !== undefined ? { registry, username, password: new Secret(password), source: explicitSource } : undefined;
  const useDockerConfig = options.dockerConfig !== false;

  // Our own registry: the explicit credentials, else the Docker config; any other registry (a base
  // image elsewhere): the Docker config.
  const credentialsFor = async (host: string, signal?: AbortSignal): Promise<RegistryCredentials | undefined> => {
    if (explicit && normalizeDockerConfigKey(host) === registry) return explicit;
    if (!useDockerConfig) return undefined;
    return dockerConfigCredentials(host, { env, ...(signal ? { signal } : {}) });
  };
  const ownCredentials = await credentialsFor(registry);
  debug('credentials for %s: %s', registry, ownCredentials?.source ?? 'none');

  let namespace = setting(options.namespace, DOCKERHUB_ENV.namespace, 'namespace');
  if (namespace === undefined) {
    const user = ownCredentials?.username;
    if (user === undefined || user === '' || user === '<token>') {
      const looked = explicit ? explicit.source : useDockerConfig ? `${dockerConfigPath(env)} has ${ownCredentials ? 'no user name' : `no login for ${registry}`}` : 'the Docker config is off';
      throw new ConfigError(`The Docker Hub namespace is not set: neither the option 'namespace' nor ${DOCKERHUB_ENV.namespace} is set, and no logged-in user was found (${looked}).`, {
        setting: DOCKERHUB_ENV.namespace,
        hint: `Set ${DOCKERHUB_ENV.namespace} to your Docker Hub user or organisation (or pass the option 'namespace'), or run 'docker login'.`,
      });
    }
    namespace = user.toLowerCase();
    debug('namespace from the logged-in user (%s): %s', ownCredentials!.source, namespace);
  }
  checkRepository(namespace, DOCKERHUB_ENV.namespace, 'namespace', 1);
  const base = `${registry}/${namespace}/${repository}`;
  const pullConfig: PullConfig = pullConfigFromSettings(options, env);

  const client = new RegistryClient({
    credentials: (host, { signal }) => credentialsFor(host, signal),
    dockerConfig: false,
    ...options.client,
  });
  debug('docker hub registry: %s', base);

  return {
    name: 'dockerhub',

    imageTag(input) {
      return envTag(base, input);
    },

    async pushCredentials(requestOptions = {}) {
      checkSignal(requestOptions.signal);
      const credentials = await client.credentialsFor(registry, requestOptions.signal ? { signal: requestOptions.signal } : {});
      if (!credentials) {
        throw new AuthError(`No credentials for ${registry}: pushing to ${base} needs a login.`, {
          registry,
          source: useDockerConfig ? `no credentials (looked in ${dockerConfigPath(env)})` : 'no credentials (the Docker config is off)',
        }, { hint: `Run 'docker login${registry === DOCKER_HUB ? '' : ` ${registry}`}', or set ${DOCKERHUB_ENV.username} and ${DOCKERHUB_ENV.password} (a personal access token works as the password).` });
      }
      return credentials;
    },

    async pullConfig() {
      return structuredClone(pullConfig);
    },

    async imageExists(pushTag, requestOptions = {}): Promise<ImageExistence> {
      checkSignal(requestOptions.signal);
      const head = await client.headManifest(pushTag, requestOptions.signal ? { signal: requestOptions.signal } : {});
      return head.exists ? { exists: true, digest: head.digest } : { exists: false };
    },

    baseImageIdentity(ref, platform, requestOptions = {}) {
      return resolveBaseImage(client, ref, platform, requestOptions.signal);
    },
  };
}
