/**
 * `prebuilt prepull`: warm the nodes of a cluster for a flow — a DaemonSet per placement of its
 * steps (node selector, tolerations, GPUs, as Metaflow's @kubernetes places them) whose pods pull
 * those steps' images on each matching node — and remove them again. Prints nothing: progress goes to `onProgress`.
 */
import type { AppsV1Api, CoreV1Api, V1DaemonSet, V1Toleration } from '@kubernetes/client-node';
import type { FlowFile } from '@prebuilt/metaflow';
import type { ImageMap } from '@prebuilt/core';
import { loadKubeConfig, loadKubernetesClient, type K8s } from './kubernetes.js';
import { checkNamespace } from './kubernetes-names.js';
import { applyDaemonSet, deleteDaemonSet, flowDaemonSets, type DaemonSetTarget, type PrepullAction } from './prepull-apply.js';
import { labelSelector, prepullDaemonSet, prepullLabels, prepullName } from './prepull-daemonset.js';
import { prepullImages, prepullPullSecrets, type PrepullImage } from './prepull-images.js';
import { attachedDecorators, batchSteps, isDefaultPlacement, placementDefaults, stepPlacements, type BatchStep, type GpuVendor, type StepPlacement } from './prepull-placement.js';
import { missingPullSecrets } from './prepull-secrets.js';
import { waitForDaemonSet, type PrepullNodes, type WaitProgress } from './prepull-wait.js';

export type PrepullProgress =
  /** A DaemonSet warms GPU steps' images on more nodes than they run on (`text` says why and how to narrow it). */
  | { type: 'note'; name: string; text: string }
  | { type: 'applied'; action: PrepullAction; namespace: string; name: string; steps: string[]; images: number }
  /** A DaemonSet of the flow whose placement no step has any more: deleted. */
  | { type: 'removed'; namespace: string; name: string }
  /** A pull secret the pods name is not in the namespace: the nodes pull without it. */
  | { type: 'missing-secret'; namespace: string; secret: string }
  | (WaitProgress & { name: string });

interface ClusterOptions {
  namespace: string;
  env: Record<string, string | undefined>;
  /**
   * Where the command runs (default: this process's): Metaflow's project configuration (`.metaflow/config.json`)
   * is found from there, and the install hint when the Kubernetes client is missing names the right npm command.
   */
  cwd?: string;
  /** The loaded @kubernetes/client-node (default: imported on demand). */
  k8s?: K8s;
}

export interface PrepullFlowOptions extends ClusterOptions {
  /** The flow file as the user named it (for hints and error locations). */
  flowFile: string;
  /** The flow file's steps, in order, with their decorators: each must have an image in the map. */
  flowSteps: FlowFile['steps'];
  imageMap: ImageMap;
  /** The command's --node-selector: added to every DaemonSet's (over a step's label of the same key). */
  nodeSelector: Record<string, string>;
  /** The command's --toleration: added to every DaemonSet's. */
  tolerations: readonly V1Toleration[];
  /** The deploy's `--with` decorator specs (`kubernetes:node_selector=…`), applied to the steps as Metaflow applies them. */
  decospecs?: readonly string[];
  /** Pull secrets to name besides those of the image map's pull config. */
  pullSecrets: readonly string[];
  pauseImage: string;
  /** Wait for the rollouts (default true). */
  wait?: boolean;
  timeoutMs: number;
  signal: AbortSignal;
  onProgress?: (event: PrepullProgress) => void;
  /** Poll delays of the wait (tests). */
  poll?: { min: number; max: number };
}

/** What the DaemonSets are planned from (the cluster aside). */
export type PrepullPlanOptions = Pick<PrepullFlowOptions, 'flowFile' | 'flowSteps' | 'imageMap' | 'namespace' | 'env' | 'cwd' | 'nodeSelector' | 'tolerations' | 'decospecs' | 'pullSecrets' | 'pauseImage'>;

/** One DaemonSet of the flow: the steps placed alike, and what their pods pull where. */
export interface PrepullDaemonSet {
  name: string;
  action: PrepullAction;
  steps: string[];
  images: PrepullImage[];
  pullSecrets: string[];
  /** The pods' node selector: `kubernetes.io/os=linux`, the steps' labels, the command's. */
  nodeSelector: Record<string, string>;
  tolerations: V1Toleration[];
  /** The steps ask for GPUs (the pods do not: a pull needs none; they tolerate the GPU nodes' taint). */
  gpu: boolean;
  /** Whose GPUs the steps ask for (only with `gpu`). */
  gpuVendor?: GpuVendor;
  /** Why these pods go to more nodes than the steps run on, and how to narrow them. */
  note?: string;
  /** The rollout when it was waited for (null with `wait: false`). */
  nodes: PrepullNodes | null;
}

export interface PrepullResult {
  flow: string;
  namespace: string;
  /** One per placement, in the order of their first step. */
  daemonSets: PrepullDaemonSet[];
  /** The flow's DaemonSets of placements no step has any more: deleted. */
  removed: string[];
  /** The steps that run on AWS Batch (their own @batch, `--with batch`, METAFLOW_DEFAULT_DECOSPECS): not warmed, in no DaemonSet. */
  batchSteps: BatchStep[];
  /** Where the cluster configuration came from. */
  kubeconfig: string;
  // The fields of one DaemonSet per flow (before placements), kept for --json readers: over all DaemonSets.
  /** The first DaemonSet's name (the flow's one DaemonSet when all its steps are placed alike; its name for steps placed anywhere when no step runs on the cluster). */
  name: string;
  /** `created` when one was created, else `updated` when one was updated or removed, else `unchanged`. */
  action: PrepullAction;
  /** Each DaemonSet's images in turn. */
  images: PrepullImage[];
  /** Every DaemonSet's pull secrets, once each. */
  pullSecrets: string[];
  /** What every DaemonSet's node selector has: `kubernetes.io/os=linux` and the command's labels. */
  nodeSelector: Record<string, string>;
  /** The rollouts' node counts added up (null with `wait: false`). */
  nodes: PrepullNodes | null;
}

async function connect(command: string, options: ClusterOptions): Promise<{ target: DaemonSetTarget; core: CoreV1Api; kubeconfig: string }> {
  checkNamespace(options.namespace);
  const k8s = options.k8s ?? (await loadKubernetesClient(command, options.cwd));
  const { kubeConfig, source } = loadKubeConfig(k8s, options.env);
  const apps: AppsV1Api = kubeConfig.makeApiClient(k8s.AppsV1Api);
  const server = kubeConfig.getCurrentCluster()?.server ?? '(no server)';
  return { target: { apps, server, namespace: options.namespace }, core: kubeConfig.makeApiClient(k8s.CoreV1Api), kubeconfig: source };
}

/** A label of the vendor's GPU nodes, for the note's example (set by NVIDIA's GPU feature discovery; by node feature discovery's AMD GPU rule). */
const GPU_NODE_LABEL: Record<GpuVendor, string> = { nvidia: '{"nvidia.com/gpu.present": "true"}', amd: '{"feature.node.kubernetes.io/amd-gpu": "true"}' };

/**
 * The toleration a GPU step's pods get and prepull's pods must carry themselves: Kubernetes'
 * ExtendedResourceToleration admission (on in GKE and AKS, for example) gives a pod that asks for
 * the extended resource `<vendor>.com/gpu` — as Metaflow's GPU pods do — the toleration of
 * that key with Exists and NoSchedule, which is how GPU nodes are tainted. The pods of prepull ask
 * for no GPU, so without it they would not go to the very nodes the step runs on.
 */
function gpuToleration(vendor: GpuVendor): V1Toleration {
  return { key: `${vendor}.com/gpu`, operator: 'Exists', effect: 'NoSchedule' };
}

function gpuNote(placement: StepPlacement, options: PrepullPlanOptions): string | undefined {
  if (!placement.gpu || Object.keys(placement.nodeSelector).length > 0 || Object.keys(options.nodeSelector).length > 0) return undefined;
  const vendor = placement.gpuVendor ?? 'nvidia';
  const one = placement.steps.length === 1;
  return (
    `step${one ? '' : 's'} ${placement.steps.join(', ')} ask${one ? 's' : ''} for GPUs and name${one ? 's' : ''} no node_selector: ` +
    `Kubernetes runs ${one ? 'it' : 'them'} on the nodes with the ${vendor}.com/gpu resource, which no node selector can name, so ${one ? 'its image is' : 'their images are'} warmed on every node. ` +
    `To narrow it, give the step @kubernetes(node_selector={…}) (or compute_pool=…) with a label of the GPU nodes (e.g. ${GPU_NODE_LABEL[vendor]}), or set METAFLOW_KUBERNETES_NODE_SELECTOR.`
  );
}

/** What one placement's DaemonSet asks for (not yet applied). */
function planDaemonSet(placement: StepPlacement, options: PrepullPlanOptions): { daemonSet: V1DaemonSet; entry: PrepullDaemonSet } {
  const flow = options.imageMap.flow;
  const images = prepullImages(options.imageMap, placement.steps, options.flowFile);
  const pullSecrets = prepullPullSecrets(options.imageMap, images, options.pullSecrets, options.flowFile);
  // The images are Linux images: never on a Windows node of a mixed cluster (unless the user says otherwise).
  const nodeSelector = { 'kubernetes.io/os': 'linux', ...placement.nodeSelector, ...options.nodeSelector };
  const seen = new Set<string>();
  const gpuTolerations = placement.gpu ? [gpuToleration(placement.gpuVendor ?? 'nvidia')] : [];
  const tolerations = [...placement.tolerations, ...options.tolerations, ...gpuTolerations].filter((t) => !seen.has(JSON.stringify(t)) && Boolean(seen.add(JSON.stringify(t))));
  const name = prepullName(flow, isDefaultPlacement(placement) ? undefined : placement.key);
  const { daemonSet } = prepullDaemonSet({ flow, name, namespace: options.namespace, images, pullSecrets, nodeSelector, tolerations, pauseImage: options.pauseImage });
  const note = gpuNote(placement, options);
  return { daemonSet, entry: { name, action: 'unchanged', steps: placement.steps, images, pullSecrets, nodeSelector, tolerations, gpu: placement.gpu, ...(placement.gpuVendor ? { gpuVendor: placement.gpuVendor } : {}), ...(note ? { note } : {}), nodes: null } };
}

/**
 * Creates or updates one DaemonSet per placement of the flow's steps, deletes the flow's DaemonSets
 * of placements no step has any more, then (unless `wait: false`) waits until every matching node
 * of each pulled its images.
 */
export async function prepullFlow(options: PrepullFlowOptions): Promise<PrepullResult> {
  const { planned, onBatch } = planDaemonSets(options);
  const { target, core, kubeconfig } = await connect('prepull', options);
  const secrets = [...new Set(planned.flatMap((p) => p.entry.pullSecrets))];
  for (const secret of await missingPullSecrets(core, options.namespace, secrets)) options.onProgress?.({ type: 'missing-secret', namespace: options.namespace, secret });
  for (const { daemonSet, entry } of planned) {
    if (entry.note) options.onProgress?.({ type: 'note', name: entry.name, text: entry.note });
    entry.action = await applyDaemonSet(target, daemonSet);
    options.onProgress?.({ type: 'applied', action: entry.action, namespace: options.namespace, name: entry.name, steps: entry.steps, images: entry.images.length });
  }
  const wanted = new Set(planned.map((p) => p.entry.name));
  const removed: string[] = [];
  for (const name of await flowDaemonSets(target, options.imageMap.flow)) {
    if (wanted.has(name) || (await deleteDaemonSet(target, name)) === 'absent') continue;
    removed.push(name);
    options.onProgress?.({ type: 'removed', namespace: options.namespace, name });
  }
  const daemonSets = planned.map((p) => p.entry);
  if (options.wait !== false) await waitForAll(daemonSets, { target, core }, options);
  return { flow: options.imageMap.flow, namespace: options.namespace, daemonSets, removed, batchSteps: onBatch, kubeconfig, ...overAll(daemonSets, removed, options) };
}

/**
 * The DaemonSet of each placement of the flow's steps, as prepullFlow would apply them, and the steps
 * left out as they run on AWS Batch; checks that every step has an image first.
 */
function planDaemonSets(options: PrepullPlanOptions): { planned: { daemonSet: V1DaemonSet; entry: PrepullDaemonSet }[]; onBatch: BatchStep[] } {
  const names = options.flowSteps.map((step) => step.name);
  prepullImages(options.imageMap, names, options.flowFile); // Every step has an image, before anything else.
  const attached = attachedDecorators(options.decospecs ?? [], options.env, options.cwd);
  const onBatch = batchSteps({ steps: options.flowSteps }, names, options.flowFile, attached);
  const planned = stepPlacements({ steps: options.flowSteps }, names, options.flowFile, placementDefaults(options.env, options.cwd), attached).map((placement) => planDaemonSet(placement, options));
  return { planned, onBatch };
}

/** One DaemonSet of a dry run: what prepull would apply (`manifest`, as sent to the cluster). */
export type PlannedDaemonSet = Omit<PrepullDaemonSet, 'action' | 'nodes'> & { manifest: V1DaemonSet };

export interface PrepullPlan {
  flow: string;
  namespace: string;
  daemonSets: PlannedDaemonSet[];
  /** The steps left out as they run on AWS Batch, each with why. */
  batchSteps: BatchStep[];
}

/**
 * `prepull --dry-run`: the DaemonSets prepullFlow would apply, with their manifests, without the
 * cluster (no Kubernetes client, no kubeconfig); which ones the cluster already has is not known.
 */
export function planPrepull(options: PrepullPlanOptions): PrepullPlan {
  checkNamespace(options.namespace);
  const { planned, onBatch } = planDaemonSets(options);
  const daemonSets = planned.map(({ daemonSet, entry }) => {
    const { action: _action, nodes: _nodes, ...rest } = entry;
    return { ...rest, manifest: daemonSet };
  });
  return { flow: options.imageMap.flow, namespace: options.namespace, daemonSets, batchSteps: onBatch };
}

/** The single-DaemonSet fields of the result, over all the flow's DaemonSets. */
function overAll(entries: PrepullDaemonSet[], removed: string[], options: PrepullFlowOptions): Pick<PrepullResult, 'name' | 'action' | 'images' | 'pullSecrets' | 'nodeSelector' | 'nodes'> {
  const actions = entries.map((entry) => entry.action);
  const action: PrepullAction = actions.includes('created') ? 'created' : actions.includes('updated') || removed.length > 0 ? 'updated' : 'unchanged';
  const waited = options.wait !== false && entries.every((entry) => entry.nodes !== null);
  const sum = (key: keyof PrepullNodes): number => entries.reduce((total, entry) => total + (entry.nodes?.[key] ?? 0), 0);
  return {
    name: entries[0]?.name ?? prepullName(options.imageMap.flow),
    action,
    images: entries.flatMap((entry) => entry.images),
    pullSecrets: [...new Set(entries.flatMap((entry) => entry.pullSecrets))],
    nodeSelector: { 'kubernetes.io/os': 'linux', ...options.nodeSelector },
    nodes: waited ? { desired: sum('desired'), updated: sum('updated'), ready: sum('ready') } : null,
  };
}

/** Waits for every DaemonSet's rollout at once (one deadline); the first failure stops the others' waits. */
async function waitForAll(entries: PrepullDaemonSet[], cluster: { target: DaemonSetTarget; core: CoreV1Api }, options: PrepullFlowOptions): Promise<void> {
  const stop = new AbortController();
  const forward = (): void => stop.abort();
  options.signal.addEventListener('abort', forward, { once: true });
  if (options.signal.aborted) stop.abort();
  try {
    await Promise.all(
      entries.map(async (entry) => {
        entry.nodes = await waitForDaemonSet({
          ...cluster,
          name: entry.name,
          labelSelector: labelSelector(prepullLabels(entry.name).selector),
          timeoutMs: options.timeoutMs,
          signal: stop.signal,
          onProgress: options.onProgress && ((event) => options.onProgress!({ ...event, name: entry.name })),
          removeCommand: `prebuilt prepull ${options.flowFile} --namespace ${options.namespace} --remove`,
          pullSecrets: entry.pullSecrets,
          ...(options.poll ? { poll: options.poll } : {}),
        });
      }),
    );
  } finally {
    stop.abort();
    options.signal.removeEventListener('abort', forward);
  }
}

export interface RemovePrepullResult {
  flow: string;
  namespace: string;
  /** The flow's DaemonSets that were deleted (none: there were none). */
  removed: string[];
  /** The first of `removed` (none: the name of the flow's DaemonSet of steps placed anywhere), for readers of one DaemonSet per flow. */
  name: string;
  action: 'removed' | 'absent';
  kubeconfig: string;
}

/** Deletes every DaemonSet of the flow (and so their pods): `absent` when there is none. The images stay cached on the nodes. */
export async function removePrepull(options: ClusterOptions & { flow: string }): Promise<RemovePrepullResult> {
  const { target, kubeconfig } = await connect('prepull', options);
  const removed: string[] = [];
  for (const name of await flowDaemonSets(target, options.flow)) if ((await deleteDaemonSet(target, name)) === 'removed') removed.push(name);
  return { flow: options.flow, namespace: options.namespace, removed, name: removed[0] ?? prepullName(options.flow), action: removed.length > 0 ? 'removed' : 'absent', kubeconfig };
}
