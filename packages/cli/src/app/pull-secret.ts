/**
 * A registry's credentials as a Kubernetes pull secret (`prebuilt pull-secret`): the secret's
 * `.dockerconfigjson`, the host pods pull from, and the secret created or updated in the cluster.
 */
import type { CoreV1Api, KubeConfig, V1Secret } from '@kubernetes/client-node';
import { ConfigError, DOCKER_HUB, DOCKER_HUB_CONFIG_KEY, normalizeDockerConfigKey, parseImageRef, type ImageRegistry, type RegistryCredentials } from '@prebuilt/core';
import { createOrReplace, loadKubernetesClient, type K8s } from './kubernetes.js';
import { checkNamespace, isObjectName } from './kubernetes-names.js';

export const PULL_SECRET_TYPE = 'kubernetes.io/dockerconfigjson';

/**
 * The `.dockerconfigjson` of a pull secret: one `auths` entry, for `host` (the host pods pull from;
 * default the credentials' own registry). Holds the secret: never log it.
 */
export function dockerConfigJson(credentials: RegistryCredentials, host: string = credentials.registry): string {
  if (credentials.password === undefined) {
    throw new ConfigError(`The credentials for ${credentials.registry} (${credentials.source}) have no password, so they cannot go into a pull secret.`, {
      hint: 'Kubernetes needs a user name and password (or token) for the registry; log in with a password or access token instead of an identity token.',
    });
  }
  const username = credentials.username ?? '';
  const password = credentials.password.reveal();
  const key = normalizeDockerConfigKey(host) === DOCKER_HUB ? DOCKER_HUB_CONFIG_KEY : host;
  return JSON.stringify({ auths: { [key]: { username, password, auth: Buffer.from(`${username}:${password}`).toString('base64') } } });
}

export interface ApplyPullSecretOptions {
  kubeConfig: KubeConfig;
  namespace: string;
  name: string;
  credentials: RegistryCredentials;
  /**
   * The host pods pull the images from, the secret's `auths` key (see `podPullHost`): the kubelet
   * offers a secret's credentials only to the host it is keyed by. Default: the credentials' registry.
   */
  pullHost?: string;
  /** The loaded @kubernetes/client-node module (default: imported on demand). */
  k8s?: K8s;
}

export interface AppliedPullSecret {
  namespace: string;
  name: string;
  /** `unchanged` when the secret already held these credentials. */
  action: 'created' | 'updated' | 'unchanged';
  /** The host the secret holds credentials for: the one pods pull from. */
  registry: string;
  /** The host the credentials were found for (the push host), when pods pull from another. */
  pushRegistry?: string;
  /** Where the credentials came from (never the secret). */
  source: string;
}


function secretsPermission(namespace: string): string {
  return `The Kubernetes user needs get, create and update on secrets in the namespace ${namespace} (kubectl auth can-i update secrets -n ${namespace}).`;
}

/** A namespace and secret name Kubernetes accepts; else a ConfigError (exit 2) saying what to pass. */
export function checkSecretTarget(namespace: string, name: string): void {
  checkNamespace(namespace);
  if (!isObjectName(name)) throw new ConfigError(`'${name}' is not a Kubernetes secret name.`, { hint: 'Pass --name with lowercase letters, digits, - and ., e.g. prebuilt-pull.' });
}

/** Creates the `kubernetes.io/dockerconfigjson` secret, or updates it when it exists and holds other credentials. */
export async function applyPullSecret(options: ApplyPullSecretOptions): Promise<AppliedPullSecret> {
  const { namespace, name, credentials } = options;
  const registry = options.pullHost ?? credentials.registry;
  checkSecretTarget(namespace, name);
  const k8s = options.k8s ?? (await loadKubernetesClient('pull-secret'));
  const api: CoreV1Api = options.kubeConfig.makeApiClient(k8s.CoreV1Api);
  const server = options.kubeConfig.getCurrentCluster()?.server ?? '(no server)';
  const data = { '.dockerconfigjson': Buffer.from(dockerConfigJson(credentials, registry)).toString('base64') };
  const body = (resourceVersion?: string): V1Secret => ({
    apiVersion: 'v1',
    kind: 'Secret',
    type: PULL_SECRET_TYPE,
    metadata: {
      name,
      namespace,
      ...(resourceVersion ? { resourceVersion } : {}),
      labels: { 'app.kubernetes.io/managed-by': 'prebuilt' },
      annotations: { 'prebuilt.dev/registry': registry, 'prebuilt.dev/credentials-source': credentials.source },
    },
    data,
  });

  const action = await createOrReplace<V1Secret>({
    what: `the secret ${namespace}/${name}`,
    namespace,
    server,
    permissionHint: secretsPermission(namespace),
    read: () => api.readNamespacedSecret({ name, namespace }),
    create: () => api.createNamespacedSecret({ namespace, body: body() }),
    replace: (resourceVersion) => api.replaceNamespacedSecret({ name, namespace, body: body(resourceVersion) }),
    compare: (existing) => {
      if (existing.type !== PULL_SECRET_TYPE) {
        throw new ConfigError(`The secret ${namespace}/${name} exists with type ${existing.type ?? '(none)'}, not ${PULL_SECRET_TYPE}; prebuilt will not overwrite it.`, {
          hint: 'Choose another --name, or delete that secret first.',
        });
      }
      const same = existing.data?.['.dockerconfigjson'] === data['.dockerconfigjson'] && existing.metadata?.annotations?.['prebuilt.dev/credentials-source'] === credentials.source;
      return same ? 'unchanged' : 'replace';
    },
  });
  const pushed = registry === credentials.registry ? {} : { pushRegistry: credentials.registry };
  return { namespace, name, action, registry, ...pushed, source: credentials.source };
}

/** An env id for `podPullHost`'s probe tag: any valid one gives the registry's hosts. */
const PROBE_ENV_ID = '0000000000000000';

/**
 * The host pods pull the selected registry's images from, when it is not the one it pushes to:
 * the host of `pullTag` (e.g. the `local` registry's METAFLOW_PREBUILT_LOCAL_REGISTRY_PULL_HOST),
 * which is what the image map names. Undefined when pods pull from the push host.
 */
export function podPullHost(registry: ImageRegistry): string | undefined {
  if (!registry.pullTag) return undefined;
  const pushTag = registry.imageTag({ envId: PROBE_ENV_ID, platform: 'linux-64' });
  const pushHost = parseImageRef(pushTag).registry;
  const pullHost = parseImageRef(registry.pullTag(pushTag)).registry;
  return pullHost === pushHost ? undefined : pullHost;
}
