/**
 * `prebuilt prepull`: warm the nodes of a cluster for a flow — a DaemonSet whose pods pull every
 * step's image on each matching node — and remove it again. Prints nothing: progress goes to `onProgress`.
 */
import type { AppsV1Api, CoreV1Api, V1Toleration } from '@kubernetes/client-node';
import type { ImageMap } from '@prebuilt/core';
import { loadKubeConfig, loadKubernetesClient, type K8s } from './kubernetes.js';
import { checkNamespace } from './kubernetes-names.js';
import { applyDaemonSet, deleteDaemonSet, type DaemonSetTarget, type PrepullAction } from './prepull-apply.js';
import { prepullDaemonSet, prepullLabels, prepullName } from './prepull-daemonset.js';
import { prepullImages, prepullPullSecrets, type PrepullImage } from './prepull-images.js';
import { missingPullSecrets } from './prepull-secrets.js';
import { waitForDaemonSet, type PrepullNodes, type WaitProgress } from './prepull-wait.js';

export type PrepullProgress =
  | { type: 'applied'; action: PrepullAction; namespace: string; name: string; images: number }
  /** A pull secret the pods name is not in the namespace: the nodes pull without it. */
  | { type: 'missing-secret'; namespace: string; secret: string }
  | WaitProgress;

interface ClusterOptions {
  namespace: string;
  env: Record<string, string | undefined>;
  /** Where the command runs: the install hint when the Kubernetes client is missing names the right npm command. */
  cwd?: string;
  /** The loaded @kubernetes/client-node (default: imported on demand). */
  k8s?: K8s;
}

export interface PrepullFlowOptions extends ClusterOptions {
  /** The flow file as the user named it (for hints). */
  flowFile: string;
  /** The flow file's steps, in order: each must have an image in the map. */
  flowSteps: readonly string[];
  imageMap: ImageMap;
  nodeSelector: Record<string, string>;
  tolerations: readonly V1Toleration[];
  /** Pull secrets to name besides those of the image map's pull config. */
  pullSecrets: readonly string[];
  pauseImage: string;
  /** Wait for the rollout (default true). */
  wait?: boolean;
  timeoutMs: number;
  signal: AbortSignal;
  onProgress?: (event: PrepullProgress) => void;
  /** Poll delays of the wait (tests). */
  poll?: { min: number; max: number };
}

export interface PrepullResult {
  flow: string;
  namespace: string;
  name: string;
  action: PrepullAction;
  images: PrepullImage[];
  pullSecrets: string[];
  /** The pods' node selector: `kubernetes.io/os=linux` and the given labels. */
  nodeSelector: Record<string, string>;
  /** The rollout when it was waited for (null with `wait: false`). */
  nodes: PrepullNodes | null;
  /** Where the cluster configuration came from. */
  kubeconfig: string;
}

async function connect(command: string, options: ClusterOptions): Promise<{ target: DaemonSetTarget; core: CoreV1Api; kubeconfig: string }> {
  checkNamespace(options.namespace);
  const k8s = options.k8s ?? (await loadKubernetesClient(command, options.cwd));
  const { kubeConfig, source } = loadKubeConfig(k8s, options.env);
  const apps: AppsV1Api = kubeConfig.makeApiClient(k8s.AppsV1Api);
  const server = kubeConfig.getCurrentCluster()?.server ?? '(no server)';
  return { target: { apps, server, namespace: options.namespace }, core: kubeConfig.makeApiClient(k8s.CoreV1Api), kubeconfig: source };
}

/** Creates or updates the flow's DaemonSet, then (unless `wait: false`) waits until every matching node pulled every image. */
export async function prepullFlow(options: PrepullFlowOptions): Promise<PrepullResult> {
  const images = prepullImages(options.imageMap, options.flowSteps, options.flowFile);
  const pullSecrets = prepullPullSecrets(options.imageMap, images, options.pullSecrets, options.flowFile);
  const flow = options.imageMap.flow;
  // The images are Linux images: never on a Windows node of a mixed cluster (unless the user says otherwise).
  const nodeSelector = { 'kubernetes.io/os': 'linux', ...options.nodeSelector };
  const { daemonSet, name } = prepullDaemonSet({ flow, namespace: options.namespace, images, pullSecrets, nodeSelector, tolerations: options.tolerations, pauseImage: options.pauseImage });
  const { target, core, kubeconfig } = await connect('prepull', options);
  for (const secret of await missingPullSecrets(core, options.namespace, pullSecrets)) options.onProgress?.({ type: 'missing-secret', namespace: options.namespace, secret });
  const action = await applyDaemonSet(target, daemonSet);
  options.onProgress?.({ type: 'applied', action, namespace: options.namespace, name, images: images.length });
  const result: PrepullResult = { flow, namespace: options.namespace, name, action, images, pullSecrets, nodeSelector, nodes: null, kubeconfig };
  if (options.wait === false) return result;
  const labelSelector = Object.entries(prepullLabels(name).selector).map(([k, v]) => `${k}=${v}`).join(',');
  result.nodes = await waitForDaemonSet({
    target,
    core,
    name,
    labelSelector,
    timeoutMs: options.timeoutMs,
    signal: options.signal,
    onProgress: options.onProgress,
    removeCommand: `prebuilt prepull ${options.flowFile} --namespace ${options.namespace} --remove`,
    pullSecrets,
    ...(options.poll ? { poll: options.poll } : {}),
  });
  return result;
}

export interface RemovePrepullResult {
  flow: string;
  namespace: string;
  name: string;
  action: 'removed' | 'absent';
  kubeconfig: string;
}

/** Deletes the flow's DaemonSet (and so its pods): `absent` when there is none. The images stay cached on the nodes. */
export async function removePrepull(options: ClusterOptions & { flow: string }): Promise<RemovePrepullResult> {
  const name = prepullName(options.flow);
  const { target, kubeconfig } = await connect('prepull', options);
  const action = await deleteDaemonSet(target, name);
  return { flow: options.flow, namespace: options.namespace, name, action, kubeconfig };
}
