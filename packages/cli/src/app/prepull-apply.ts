/** Creating, updating and removing the prepull DaemonSet through the Kubernetes API (apps/v1). */
import type { AppsV1Api, V1DaemonSet } from '@kubernetes/client-node';
import { ConfigError } from '@prebuilt/core';
import { createOrReplace, kubernetesError, kubernetesStatus } from './kubernetes.js';
import { FLOW_ANNOTATION, labelSelector, MANAGED_BY, SPEC_HASH_ANNOTATION } from './prepull-daemonset.js';

export type PrepullAction = 'created' | 'updated' | 'unchanged';

/** The API, the cluster's address (for messages) and the namespace to work in. */
export interface DaemonSetTarget {
  apps: AppsV1Api;
  server: string;
  namespace: string;
}

export function daemonSetsPermission(namespace: string): string {
  return `The Kubernetes user needs get, list, create, update and delete on daemonsets (apps) and list on pods in the namespace ${namespace} (kubectl auth can-i create daemonsets.apps -n ${namespace}).`;
}

function notOurs(existing: V1DaemonSet, namespace: string, name: string): ConfigError | undefined {
  if (existing.metadata?.labels?.['app.kubernetes.io/managed-by'] === MANAGED_BY['app.kubernetes.io/managed-by']) return undefined;
  return new ConfigError(`The DaemonSet ${namespace}/${name} exists and is not managed by prebuilt (no label app.kubernetes.io/managed-by=prebuilt); prebuilt will not change it.`, {
    hint: `Delete it (kubectl -n ${namespace} delete daemonset ${name}) if it is a leftover, or use another --namespace.`,
  });
}

async function readDaemonSet(target: DaemonSetTarget, name: string): Promise<V1DaemonSet | undefined> {
  try {
    return await target.apps.readNamespacedDaemonSet({ name, namespace: target.namespace });
  } catch (error) {
    if (kubernetesStatus(error) === 404) return undefined;
    throw kubernetesError(error, `Reading the DaemonSet ${target.namespace}/${name}`, target.server, daemonSetsPermission(target.namespace));
  }
}

/**
 * Creates the DaemonSet, or replaces it when the one in the cluster was made from other images or
 * options (its spec-hash annotation differs): `unchanged` otherwise. A concurrent change (409) reads
 * it again, twice at most.
 */
export function applyDaemonSet(target: DaemonSetTarget, desired: V1DaemonSet): Promise<PrepullAction> {
  const { apps, namespace } = target;
  const name = desired.metadata!.name!;
  return createOrReplace<V1DaemonSet>({
    what: `the DaemonSet ${namespace}/${name}`,
    namespace,
    server: target.server,
    permissionHint: daemonSetsPermission(namespace),
    read: () => apps.readNamespacedDaemonSet({ name, namespace }),
    create: () => apps.createNamespacedDaemonSet({ namespace, body: desired }),
    replace: (resourceVersion) => apps.replaceNamespacedDaemonSet({ name, namespace, body: { ...desired, metadata: { ...desired.metadata, resourceVersion } } }),
    compare: (existing) => {
      const refusal = notOurs(existing, namespace, name);
      if (refusal) throw refusal;
      return existing.metadata?.annotations?.[SPEC_HASH_ANNOTATION] === desired.metadata!.annotations![SPEC_HASH_ANNOTATION] ? 'unchanged' : 'replace';
    },
  });
}

/** Deletes the DaemonSet (its pods go with it): `absent` when there is none. */
export async function deleteDaemonSet(target: DaemonSetTarget, name: string): Promise<'removed' | 'absent'> {
  const existing = await readDaemonSet(target, name);
  if (!existing) return 'absent';
  const refusal = notOurs(existing, target.namespace, name);
  if (refusal) throw refusal;
  try {
    await target.apps.deleteNamespacedDaemonSet({ name, namespace: target.namespace, propagationPolicy: 'Background' });
    return 'removed';
  } catch (error) {
    if (kubernetesStatus(error) === 404) return 'absent';
    throw kubernetesError(error, `Deleting the DaemonSet ${target.namespace}/${name}`, target.server, daemonSetsPermission(target.namespace));
  }
}

/** The names of the flow's prepull DaemonSets in the namespace (managed by prebuilt, annotated with the flow), sorted. */
export async function flowDaemonSets(target: DaemonSetTarget, flow: string): Promise<string[]> {
  const names: string[] = [];
  let next: string | undefined;
  try {
    do {
      const page = await target.apps.listNamespacedDaemonSet({
        namespace: target.namespace,
        labelSelector: labelSelector({ 'app.kubernetes.io/name': 'prebuilt-prepull', ...MANAGED_BY }),
        limit: 200,
        ...(next ? { _continue: next } : {}),
      });
      for (const item of page.items) if (item.metadata?.annotations?.[FLOW_ANNOTATION] === flow && item.metadata.name) names.push(item.metadata.name);
      next = page.metadata?._continue || undefined;
    } while (next);
  } catch (error) {
    throw kubernetesError(error, `Listing the DaemonSets in ${target.namespace}`, target.server, daemonSetsPermission(target.namespace));
  }
  return names.sort();
}
