import {
  COMPONENT,
  ConfigError,
  RegistryClient,
  Secret,
  checkSignal,
  createLogger,
  envTag,
  loadOptionalSetting,
  resolveBaseImage,
  type BaseImageIdentity,
  type ImageExistence,
  type ImageRegistry,
  type ImageTagInput,
  type PullConfig,
  type RegistryClientOptions,
  type RegistryCredentials,
} from '@prebuilt/core/backend';

const debug = createLogger('local');

export const LOCAL_ENV = {
  registry: 'METAFLOW_PREBUILT_LOCAL_REGISTRY',
  pullHost: 'METAFLOW_PREBUILT_LOCAL_REGISTRY_PULL_HOST',
  namespace: 'METAFLOW_PREBUILT_IMAGE_NAMESPACE',
  username: 'METAFLOW_PREBUILT_LOCAL_REGISTRY_USERNAME',
  password: 'METAFLOW_PREBUILT_LOCAL_REGISTRY_PASSWORD',
  insecure: 'METAFLOW_PREBUILT_LOCAL_REGISTRY_INSECURE',
} as const;

export const DEFAULT_NAMESPACE = 'metaflow-prebuilt';

export interface LocalRegistryOptions {
  /** Registry host the build service pushes to, e.g. `127.0.0.1:5000`. Env `METAFLOW_PREBUILT_LOCAL_REGISTRY`; required. */
  registry?: string;
  /** Host the runner pulls from, when it sees the registry under another name. Env `METAFLOW_PREBUILT_LOCAL_REGISTRY_PULL_HOST`. */
  pullHost?: string;
  /** Repository the env images go to. Env `METAFLOW_PREBUILT_IMAGE_NAMESPACE`; default `metaflow-prebuilt`. */
  namespace?: string;
  /** User for the registry. Env `METAFLOW_PREBUILT_LOCAL_REGISTRY_USERNAME`; default: the user's Docker config. */
  username?: string;
  /** Password for the registry. Env `METAFLOW_PREBUILT_LOCAL_REGISTRY_PASSWORD`. */
  password?: string | Secret;
  /** Speak plain HTTP to a registry that is not on loopback (loopback always is). Env `METAFLOW_PREBUILT_LOCAL_REGISTRY_INSECURE=1`. */
  insecure?: boolean;
  /** Read credentials from the user's Docker config (`~/.docker/config.json`). Default true. */
  dockerConfig?: boolean;
  /** Retries and timeouts of registry requests (tests shorten them). */
  client?: Pick<RegistryClientOptions, 'retry' | 'timeoutMs'>;
  /** Environment to read settings from. Default `process.env`. */
  env?: Record<string, string | undefined>;
}

const HOST = /^(?:\[[0-9a-fA-F:.]+\]|[a-zA-Z0-9](?:[a-zA-Z0-9.-]*[a-zA-Z0-9])?)(?::\d{1,5})?$/;

/** Splits `host[:port][/path]`; a path becomes a prefix of the repository. */
function parseRegistrySetting(value: string, envVar: string, option: string): { host: string; prefix: string } {
  const hint = `Set ${envVar} (or the option '${option}') to a host and port such as 127.0.0.1:5000, without http://.`;
  if (/^[a-z]+:\/\//i.test(value)) {
    throw new ConfigError(`${envVar}='${value}' must be a registry host, not a URL.`, { setting: envVar, hint });
  }
  const [host = '', ...path] = value.replace(/\/+$/, '').split('/');
  if (!HOST.test(host) || !path.every((part) => COMPONENT.test(part))) {
    throw new ConfigError(`${envVar}='${value}' is not a registry host of the form host[:port].`, { setting: envVar, hint });
  }
  return { host, prefix: path.join('/') };
}

function parseFlag(raw: string | boolean | undefined, envVar: string): boolean {
  if (typeof raw === 'boolean') return raw;
  if (raw === undefined || raw === '') return false;
  if (/^(1|true|yes|on)$/i.test(raw)) return true;
  if (/^(0|false|no|off)$/i.test(raw)) return false;
  throw new ConfigError(`${envVar}='${raw}' is not a yes/no value.`, { setting: envVar, hint: `Set ${envVar} to 1 or 0.` });
}

/**
 * The `local` image registry: a registry on this machine or network, e.g. `127.0.0.1:5000`.
 * Images are tagged `<host>/<namespace>:env-<envId>-<arch>`; the runner may pull them under a
 * different host (`pullHost`), e.g. the name a cluster knows the registry by.
 */
export function createLocalRegistry(options: LocalRegistryOptions = {}): ImageRegistry {
  const env = options.env ?? process.env;
  const registrySetting = loadOptionalSetting({
    value: options.registry,
    envVar: LOCAL_ENV.registry,
    option: 'registry',
    description: 'The local registry',
    env,
  });
  if (registrySetting === undefined) {
    throw new ConfigError('The local image registry has no address: neither the option \'registry\' nor METAFLOW_PREBUILT_LOCAL_REGISTRY is set.', {
      setting: LOCAL_ENV.registry,
      hint:
        `Set ${LOCAL_ENV.registry}=127.0.0.1:5000 (or pass the option 'registry'); ` +
        '`prebuilt local-registry start` starts a registry there for development.',
    });
  }
  const push = parseRegistrySetting(registrySetting, LOCAL_ENV.registry, 'registry');
  const pullSetting = loadOptionalSetting({ value: options.pullHost, envVar: LOCAL_ENV.pullHost, option: 'pullHost', description: 'The pull host', env });
  const pull = pullSetting === undefined ? undefined : parseRegistrySetting(pullSetting, LOCAL_ENV.pullHost, 'pullHost');

  const namespace =
    loadOptionalSetting({ value: options.namespace, envVar: LOCAL_ENV.namespace, option: 'namespace', description: 'The image namespace', env }) ??
    DEFAULT_NAMESPACE;
  if (!namespace.split('/').every((part) => COMPONENT.test(part))) {
    throw new ConfigError(`The image namespace '${namespace}' is not a valid repository name.`, {
      setting: LOCAL_ENV.namespace,
      hint: `Use lowercase letters, digits, '.', '_', '-' and '/' in ${LOCAL_ENV.namespace} (or the option 'namespace'), e.g. metaflow-prebuilt.`,
    });
  }
  const repository = [push.prefix, namespace].filter(Boolean).join('/');

  const username = loadOptionalSetting({ value: options.username, envVar: LOCAL_ENV.username, option: 'username', description: 'The registry user', env });
  const passwordOption = options.password instanceof Secret ? options.password.reveal() : options.password;
  const password = loadOptionalSetting({ value: passwordOption, envVar: LOCAL_ENV.password, option: 'password', description: 'The registry password', env });
  if ((username === undefined) !== (password === undefined)) {
    const [given, absent] = username === undefined ? ['password', 'username'] : ['username', 'password'];
    throw new ConfigError(`The local registry ${given} is set but its ${absent} is not.`, {
      setting: absent === 'username' ? LOCAL_ENV.username : LOCAL_ENV.password,
      hint: `Set both ${LOCAL_ENV.username} and ${LOCAL_ENV.password} (or the options 'username' and 'password'), or neither to use your Docker config.`,
    });
  }
  const explicitSource =
    options.username !== undefined && options.username !== '' ? "the options 'username'/'password'" : `env ${LOCAL_ENV.username}/${LOCAL_ENV.password}`;
  const explicit: RegistryCredentials | undefined =
    username !== undefined && password !== undefined
      ? { registry: push.host, username, password: new Secret(password), source: explicitSource }
      : undefined;

  const insecure = parseFlag(options.insecure ?? env[LOCAL_ENV.insecure], LOCAL_ENV.insecure);
  const clientOptions: RegistryClientOptions = {
    dockerConfig: options.dockerConfig === false ? false : { env },
    ...options.client,
  };
  if (explicit) clientOptions.credentials = explicit;
  if (insecure) clientOptions.insecureRegistries = [push.host];
  const client = new RegistryClient(clientOptions);
  debug('local registry: push %s/%s, pull host %s', push.host, repository, pull?.host ?? '(same)');

  return {
    name: 'local',

    imageTag(input: ImageTagInput): string {
      return envTag(`${push.host}/${repository}`, input);
    },

    pullTag(pushTag: string): string {
      if (!pull) return pushTag;
      const prefix = `${push.host}/${push.prefix ? `${push.prefix}/` : ''}`;
      if (!pushTag.startsWith(prefix)) return pushTag;
      return `${pull.host}/${pull.prefix ? `${pull.prefix}/` : ''}${pushTag.slice(prefix.length)}`;
    },

    async pushCredentials(requestOptions = {}): Promise<RegistryCredentials | undefined> {
      checkSignal(requestOptions.signal);
      return client.credentialsFor(push.host, requestOptions.signal ? { signal: requestOptions.signal } : {});
    },

    async pullConfig(): Promise<PullConfig> {
      return {};
    },

    async imageExists(pushTag: string, requestOptions = {}): Promise<ImageExistence> {
      checkSignal(requestOptions.signal);
      const head = await client.headManifest(pushTag, requestOptions.signal ? { signal: requestOptions.signal } : {});
      return head.exists ? { exists: true, digest: head.digest } : { exists: false };
    },

    async baseImageIdentity(ref: string, platform: string, requestOptions = {}): Promise<BaseImageIdentity> {
      return resolveBaseImage(client, ref, platform, requestOptions.signal, {
        missingHint: 'Push the base image there, or set the base image to one that exists.',
      });
    },
  };
}
