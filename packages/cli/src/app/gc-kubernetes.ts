/**
 * `prebuilt gc --kube-namespace NS`: every image the live Argo WorkflowTemplates, CronWorkflows and
 * Workflows of a namespace reference, read through the Kubernetes API (CustomObjectsApi) with the
 * user's kubeconfig. Images are strings at `image` keys anywhere in an object (container and
 * script templates, init and sidecar containers, pod spec patches…), not one assumed path.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import { collectImageRefs, ConfigError, type GcKeepRef } from '@prebuilt/core';
import type { AppScope } from './app-scope.js';
import { checkNamespace } from './kubernetes-names.js';
import { kubernetesError, kubernetesStatus, loadKubeConfig, loadKubernetesClient, type K8s } from './kubernetes.js';

/** The Argo resources whose images gc keeps, with the kind their objects carry. */
export const ARGO_RESOURCES = [
  { plural: 'workflowtemplates', kind: 'WorkflowTemplate' },
  { plural: 'cronworkflows', kind: 'CronWorkflow' },
  { plural: 'workflows', kind: 'Workflow' },
] as const;

const IMAGE_KEY: ReadonlySet<string> = new Set(['image']);

type KubeObject = { metadata?: { name?: string; continue?: string } };

export interface KubernetesKeepOptions {
  /** The client module and configuration (tests); default: imported, and loaded from KUBECONFIG / in-cluster / ~/.kube/config. */
  k8s?: K8s;
  kubeConfig?: KubeConfig;
  /** Objects asked for per list request (default 500; the API server answers the rest with `continue`). */
  pageSize?: number;
}

function listPermission(namespace: string): string {
  const checks = ARGO_RESOURCES.map((r) => `kubectl auth can-i list ${r.plural}.argoproj.io -n ${namespace}`).join('; ');
  return `gc needs to list Argo WorkflowTemplates, CronWorkflows and Workflows in ${namespace}: check with ${checks}.`;
}

/** Every object of one Argo resource in `namespace`, page by page. */
async function listAll(k8s: K8s, kubeConfig: KubeConfig, namespace: string, plural: string, server: string, pageSize: number): Promise<KubeObject[]> {
  const api = kubeConfig.makeApiClient(k8s.CustomObjectsApi);
  const items: KubeObject[] = [];
  let next: string | undefined;
  do {
    let page: { items?: KubeObject[]; metadata?: { continue?: string } };
    try {
      page = (await api.listNamespacedCustomObject({ group: 'argoproj.io', version: 'v1alpha1', namespace, plural, limit: pageSize, ...(next ? { _continue: next } : {}) })) as typeof page;
    } catch (error) {
      if (kubernetesStatus(error) === 404) {
        throw new ConfigError(`Listing ${plural}.argoproj.io in ${namespace} at ${server} found nothing there: the namespace does not exist or Argo Workflows is not installed.`, {
          hint: 'Pass the namespace your Argo workflows run in (gc keeps nothing from a namespace it cannot read, so it refuses rather than deleting what they use).',
        });
      }
      throw kubernetesError(error, `Listing ${plural}.argoproj.io in ${namespace}`, server, listPermission(namespace));
    }
    items.push(...(page.items ?? []));
    next = page.metadata?.continue || undefined;
  } while (next);
  return items;
}

/** The images the live Argo objects of `namespace` reference, each with the object that keeps it. */
export async function keepFromKubernetes(namespace: string, scope: Pick<AppScope, 'env'> & Partial<Pick<AppScope, 'cwd'>>, options: KubernetesKeepOptions = {}): Promise<GcKeepRef[]> {
  checkNamespace(namespace, '--kube-namespace');
  const k8s = options.k8s ?? (await loadKubernetesClient('gc', scope.cwd));
  const kubeConfig = options.kubeConfig ?? loadKubeConfig(k8s, scope.env).kubeConfig;
  const server = kubeConfig.getCurrentCluster()?.server ?? '(no server)';
  const keep: GcKeepRef[] = [];
  for (const resource of ARGO_RESOURCES) {
    for (const object of await listAll(k8s, kubeConfig, namespace, resource.plural, server, options.pageSize ?? 500)) {
      const reason = `${resource.kind} ${namespace}/${object.metadata?.name ?? '(unnamed)'}`;
      keep.push(...collectImageRefs(object, IMAGE_KEY).map((ref) => ({ ref, reason })));
    }
  }
  return keep;
}
