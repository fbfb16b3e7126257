import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';
import type { KubeConfig } from '@kubernetes/client-node';
import { cliPackageDir } from '../cli-context.js';
import { AuthError, ConfigError, EnvironmentError, PrebuiltError, RegistryError, UnreachableError, errorMessage, installCommand } from '@prebuilt/core';

/** The @kubernetes/client-node module. */
export type K8s = typeof import('@kubernetes/client-node');

/**
 * @kubernetes/client-node, imported only by the commands that talk to a cluster (`pull-secret`,
 * `gc --kube-namespace`, `prepull`): it is large, so the CLI declares it as an optional peer
 * dependency that their users install beside it (`cwd`, where the command runs, picks the
 * hint's install command: `npm i -g` beside a global prebuilt, `npm i -D` in its project; both
 * without it). `specifier` is for tests.
 * @throws EnvironmentError (exit 2) naming the install command when it is not installed.
 */
export async function loadKubernetesClient(command: string, cwd?: string, specifier = '@kubernetes/client-node'): Promise<K8s> {
  try {
    return (await import(specifier)) as K8s;
  } catch (error) {
    const missing = (error as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND';
    throw new EnvironmentError(
      missing
        ? `prebuilt ${command} needs ${specifier}, which is not installed (it is an optional dependency of metaflow-prebuilt).`
        : `prebuilt ${command} needs ${specifier}, which could not be loaded: ${errorMessage(error)}`,
      {
        cause: error,
        // The CLI imports it from its own directory: beside a global prebuilt, or in the project that has it.
        hint:
          cwd === undefined
            ? `Install it beside prebuilt: npm i -g ${specifier}@~1.4 (for a global prebuilt), or npm i -D ${specifier}@~1.4 in the project that has metaflow-prebuilt.`
            : `Install it beside prebuilt: ${installCommand(`${specifier}@~1.4`, cliPackageDir(), cwd)}`,
      },
    );
  }
}

/**
 * The Kubernetes client configuration: the files in KUBECONFIG (merged, like kubectl), else the
 * in-cluster service account (KUBERNETES_SERVICE_HOST), else ~/.kube/config.
 */
export function loadKubeConfig(k8s: K8s, env: Record<string, string | undefined>): { kubeConfig: KubeConfig; source: string } {
  const kubeConfig = new k8s.KubeConfig();
  const files = (env['KUBECONFIG'] ?? '').split(delimiter).filter(Boolean);
  const fail = (what: string, error: unknown): never => {
    throw new ConfigError(`Reading the Kubernetes configuration ${what} failed: ${errorMessage(error)}`, {
      setting: 'KUBECONFIG',
      hint: 'Point KUBECONFIG at a valid kubeconfig file (kubectl config view checks it), or run inside the cluster.',
    });
  };
  if (files.length > 0) {
    files.forEach((file, i) => {
      try {
        if (i === 0) kubeConfig.loadFromFile(file);
        else {
          const more = new k8s.KubeConfig();
          more.loadFromFile(file);
          kubeConfig.mergeConfig(more);
        }
      } catch (error) {
        fail(`from ${file} (KUBECONFIG)`, error);
      }
    });
    return { kubeConfig, source: `KUBECONFIG=${files.join(delimiter)}` };
  }
  if (env['KUBERNETES_SERVICE_HOST']) {
    try {
      kubeConfig.loadFromCluster();
    } catch (error) {
      fail('of this pod (in-cluster service account)', error);
    }
    return { kubeConfig, source: 'the in-cluster service account' };
  }
  const file = join(env['HOME'] || homedir(), '.kube', 'config');
  if (!existsSync(file)) {
    throw new ConfigError(`No Kubernetes configuration found: KUBECONFIG is not set, this is not a pod, and ${file} does not exist.`, {
      setting: 'KUBECONFIG',
      hint: 'Set KUBECONFIG to your cluster\'s kubeconfig (or run `aws eks update-kubeconfig` / `gcloud container clusters get-credentials`).',
    });
  }
  try {
    kubeConfig.loadFromFile(file);
  } catch (error) {
    fail(`from ${file}`, error);
  }
  return { kubeConfig, source: file };
}

/** The HTTP status of a failed Kubernetes API call (undefined: no answer). */
export function kubernetesStatus(error: unknown): number | undefined {
  const code = (error as { code?: unknown })?.code;
  return typeof code === 'number' ? code : undefined;
}

/** The API server's own reason (`Status.message`), if the answer carried one. */
function apiReason(error: unknown): string {
  const body = (error as { body?: unknown })?.body;
  try {
    const status = (typeof body === 'string' ? JSON.parse(body) : body) as { message?: unknown } | undefined;
    if (status && typeof status.message === 'string') return status.message;
  } catch {
    // not JSON
  }
  return errorMessage(error).split('\n')[0]!.slice(0, 200);
}

/**
 * The typed error for a failed Kubernetes API call: refused (401/403) is an AuthError whose hint is
 * `permissionHint` (what the user needs, e.g. `kubectl auth can-i …`), no answer is unreachable,
 * anything else a RegistryError carrying the API server's own reason.
 */
export function kubernetesError(error: unknown, what: string, server: string, permissionHint: string): PrebuiltError {
  const status = kubernetesStatus(error);
  const reason = apiReason(error);
  if (status === 401 || status === 403) {
    return new AuthError(`${what} was refused by the Kubernetes API at ${server} (${status}: ${reason}).`, { registry: server, source: 'the Kubernetes configuration' }, {
      hint: permissionHint,
    });
  }
  if (status === undefined) {
    return new UnreachableError(`${what} failed: the Kubernetes API at ${server} could not be reached (${reason}).`, { service: `Kubernetes API ${server}` }, {
      cause: error,
      hint: 'Check that the cluster is up and that the kubeconfig names the right server.',
    });
  }
  return new RegistryError(`${what} failed: the Kubernetes API at ${server} answered ${status}: ${reason}`, { registry: server, status });
}

/** What `createOrReplace` needs of one namespaced object: the raw API calls and how to compare. */
export interface ObjectToApply<T extends { metadata?: { resourceVersion?: string } }> {
  /** The object in messages, e.g. `the secret metaflow/prebuilt-pull`. */
  what: string;
  namespace: string;
  /** The API server's address, for messages. */
  server: string;
  /** What the user needs to be allowed, for a refusal's hint. */
  permissionHint: string;
  read(): Promise<T>;
  create(): Promise<unknown>;
  replace(resourceVersion: string | undefined): Promise<unknown>;
  /** Whether the object in the cluster is already as wanted; throws a PrebuiltError to refuse touching it. */
  compare(existing: T): 'unchanged' | 'replace';
}

/**
 * Creates the object, or replaces it (with the resourceVersion read) when `compare` says so. A
 * concurrent change (409) reads it again, twice at most; a namespace the cluster lacks is a
 * ConfigError; other failures are typed by `kubernetesError`.
 */
export async function createOrReplace<T extends { metadata?: { resourceVersion?: string } }>(object: ObjectToApply<T>): Promise<'created' | 'updated' | 'unchanged'> {
  const { what, namespace, server, permissionHint } = object;
  for (let attempt = 1; ; attempt++) {
    let existing: T | undefined;
    try {
      existing = await object.read();
    } catch (error) {
      if (kubernetesStatus(error) !== 404) throw kubernetesError(error, `Reading ${what}`, server, permissionHint);
    }
    try {
      if (!existing) {
        await object.create();
        return 'created';
      }
      if (object.compare(existing) === 'unchanged') return 'unchanged';
      await object.replace(existing.metadata?.resourceVersion);
      return 'updated';
    } catch (error) {
      if (PrebuiltError.isInstance(error)) throw error;
      // Someone else created or changed it in between: read again.
      if (kubernetesStatus(error) === 409 && attempt < 3) continue;
      if (kubernetesStatus(error) === 404 && !existing) {
        throw new ConfigError(`The namespace ${namespace} does not exist in the cluster at ${server}.`, { hint: `Create it (kubectl create namespace ${namespace}) or pass the namespace your runs use.` });
      }
      throw kubernetesError(error, `${existing ? 'Updating' : 'Creating'} ${what}`, server, permissionHint);
    }
  }
}
