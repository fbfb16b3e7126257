import type { KubeConfig } from '@kubernetes/client-node';
import { ConfigError, EnvironmentError, errorMessage, importLazily } from '@prebuilt/core/backend';

export type K8s = typeof import('@kubernetes/client-node');

/** The Kubernetes client module, the cluster's configuration and the namespace of the Jobs. */
export interface KubeCluster {
  k8s: K8s;
  kc: KubeConfig;
  namespace: string;
}

/**
 * Loads the Kubernetes client (lazily) and the cluster configuration: `kubeConfig` when given,
 * else the usual way (KUBECONFIG, ~/.kube/config, in-cluster). The namespace is `namespace`, else
 * the kubeconfig context's, else `default`. No cluster is an EnvironmentError.
 */
export async function connectCluster(kubeConfig: KubeConfig | undefined, namespace: string | undefined): Promise<KubeCluster> {
  const k8s = await importLazily(() => import('@kubernetes/client-node'), {
    message: 'The kaniko build service cannot load @kubernetes/client-node',
    hint: 'Reinstall it beside prebuilt: npm i @prebuilt/kaniko @kubernetes/client-node@~1.4.0',
  });
  let kc = kubeConfig;
  if (!kc) {
    kc = new k8s.KubeConfig();
    try {
      kc.loadFromDefault();
    } catch (error) {
      throw new EnvironmentError(`No Kubernetes cluster is configured for kaniko builds: ${errorMessage(error)}.`, {
        cause: error,
        hint: 'Point KUBECONFIG at a kubeconfig (or run inside the cluster), and check it with `kubectl get jobs`.',
      });
    }
  }
  if (!kc.getCurrentCluster()) {
    throw new EnvironmentError('No Kubernetes cluster is configured for kaniko builds: the kubeconfig has no current cluster.', {
      hint: 'Point KUBECONFIG at a kubeconfig with a current context (`kubectl config use-context …`), or run inside the cluster.',
    });
  }
  const contextNamespace = kc.getContextObject(kc.getCurrentContext())?.namespace;
  return { k8s, kc, namespace: namespace ?? contextNamespace ?? 'default' };
}

/** The HTTP status of a Kubernetes client error, if it has one. */
export function statusOf(error: unknown): number | undefined {
  const code = (error as { code?: unknown; statusCode?: unknown }).code ?? (error as { statusCode?: unknown }).statusCode;
  return typeof code === 'number' ? code : undefined;
}

/** The API server's own message of a failed request. */
function apiMessage(error: unknown): string {
  const body = (error as { body?: unknown }).body;
  if (typeof body === 'string') {
    try {
      const parsed = JSON.parse(body) as { message?: unknown };
      if (typeof parsed.message === 'string') return parsed.message;
    } catch {
      if (body.trim() !== '') return body.trim().slice(0, 300);
    }
  }
  if (typeof body === 'object' && body !== null && typeof (body as { message?: unknown }).message === 'string') return (body as { message: string }).message;
  return errorMessage(error);
}

/** Runs one API call; a refusal (401/403) is a ConfigError, any other failure an EnvironmentError, both naming `what`. */
export async function kubernetesCall<T>(what: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    const status = statusOf(error);
    const detail = apiMessage(error);
    if (status === 401 || status === 403) {
      throw new ConfigError(`The Kubernetes API refused ${what} (HTTP ${status}): ${detail}`, {
        cause: error,
        hint: 'The kubeconfig user needs to create, get, watch and delete Jobs, to create and delete Secrets, and to list and watch pods and read their logs in that namespace.',
      });
    }
    throw new EnvironmentError(`The Kubernetes API failed ${what}${status ? ` (HTTP ${status})` : ''}: ${detail}`, {
      cause: error,
      hint: 'Check that the cluster is reachable (`kubectl get jobs`) and the namespace exists.',
    });
  }
}
