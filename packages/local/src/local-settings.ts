import { ConfigError, createLogger, loadOptionalSetting, orOption, refuseHostCredentials, registryHostProblem, repositoryComponentProblem, type ImageRegistryOptions, type PullSettings, type Secret } from '@prebuilt/core/backend';

export const LOCAL_ENV = {
  registry: 'METAFLOW_PREBUILT_LOCAL_REGISTRY',
  pullHost: 'METAFLOW_PREBUILT_LOCAL_REGISTRY_PULL_HOST',
  namespace: 'METAFLOW_PREBUILT_IMAGE_NAMESPACE',
  username: 'METAFLOW_PREBUILT_LOCAL_REGISTRY_USERNAME',
  password: 'METAFLOW_PREBUILT_LOCAL_REGISTRY_PASSWORD',
  insecure: 'METAFLOW_PREBUILT_LOCAL_REGISTRY_INSECURE',
} as const;

export const DEFAULT_NAMESPACE = 'metaflow-prebuilt';

/**
 * The pull settings (`pullSecret` / METAFLOW_PREBUILT_PULL_SECRET, `batchRepositoryCredentials` /
 * METAFLOW_PREBUILT_BATCH_REPOSITORY_CREDENTIALS) are for a registry that wants a login to pull:
 * the image map's pull config names them, as for the hosted registries.
 */
export interface LocalRegistryOptions extends PullSettings, ImageRegistryOptions {
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
}

/** A registry address: its host and the repository prefix its path gives. */
export interface RegistryAddress {
  host: string;
  prefix: string;
}

const debug = createLogger('local');

/** Splits `host[:port][/path]`; a path becomes a prefix of the repository. */
function parseRegistrySetting(value: string, envVar: string, option: string): RegistryAddress {
  const hint = `Set ${envVar}${orOption(option)} to a host and port such as 127.0.0.1:5000, without http://.`;
  refuseHostCredentials(value, envVar, hint);
  if (/^[a-z]+:\/\//i.test(value)) {
    throw new ConfigError(`${envVar}='${value}' must be a registry host, not a URL.`, { setting: envVar, hint });
  }
  const [host = '', ...path] = value.replace(/\/+$/, '').split('/');
  const hostProblem = registryHostProblem(host);
  if (hostProblem !== undefined) throw new ConfigError(`${envVar}='${value}' is not a registry host: ${hostProblem}.`, { setting: envVar, hint });
  const pathProblem = path.map(repositoryComponentProblem).find((problem) => problem !== undefined);
  if (pathProblem !== undefined) {
    throw new ConfigError(`${envVar}='${value}': its path after the host is not a valid repository name: ${pathProblem}.`, {
      setting: envVar,
      hint: `After the host, use lowercase letters, digits, '.', '_', '-' and '/' in ${envVar}${orOption(option)}, e.g. 127.0.0.1:5000/team.`,
    });
  }
  return { host, prefix: path.join('/') };
}

/** Where the local registry pushes (required), where the runner pulls from, and the repository. */
export function localAddresses(options: LocalRegistryOptions, env: Record<string, string | undefined>): { push: RegistryAddress; pull: RegistryAddress | undefined; repository: string } {
  const setting = (value: string | undefined, envVar: string, option: string, description: string) => loadOptionalSetting({ value, envVar, option, description, env });
  const registrySetting = setting(options.registry, LOCAL_ENV.registry, 'registry', 'The local registry');
  if (registrySetting === undefined) {
    throw new ConfigError(`The local image registry has no address: ${LOCAL_ENV.registry}${orOption('registry')} is not set.`, {
      setting: LOCAL_ENV.registry,
      hint:
        `Set ${LOCAL_ENV.registry}=127.0.0.1:5000${orOption('registry')}; ` +
        '`prebuilt local-registry start` starts a registry there for development.',
    });
  }
  const push = parseRegistrySetting(registrySetting, LOCAL_ENV.registry, 'registry');
  const pullSetting = setting(options.pullHost, LOCAL_ENV.pullHost, 'pullHost', 'The pull host');
  const pull = pullSetting === undefined ? undefined : parseRegistrySetting(pullSetting, LOCAL_ENV.pullHost, 'pullHost');
  const namespace = setting(options.namespace, LOCAL_ENV.namespace, 'namespace', 'The image namespace') ?? DEFAULT_NAMESPACE;
  const namespaceProblem = namespace.split('/').map(repositoryComponentProblem).find((problem) => problem !== undefined);
  if (namespaceProblem !== undefined) {
    throw new ConfigError(`The image namespace '${namespace}' is not a valid repository name: ${namespaceProblem}.`, {
      setting: LOCAL_ENV.namespace,
      hint: `Use lowercase letters, digits, '.', '_', '-' and '/' in ${LOCAL_ENV.namespace}${orOption('namespace')}, e.g. metaflow-prebuilt.`,
    });
  }
  debug('local registry: push %s, pull host %s', push.host, pull?.host ?? '(same)');
  return { push, pull, repository: [push.prefix, namespace].filter(Boolean).join('/') };
}

/** The pull tag of a push tag: the push host (and its path prefix) replaced by the pull host's. */
export function pullTagOf(push: RegistryAddress, pull: RegistryAddress | undefined, pushTag: string): string {
  if (!pull) return pushTag;
  const prefix = `${push.host}/${push.prefix ? `${push.prefix}/` : ''}`;
  if (!pushTag.startsWith(prefix)) return pushTag;
  return `${pull.host}/${pull.prefix ? `${pull.prefix}/` : ''}${pushTag.slice(prefix.length)}`;
}
