/** Why the pods of the prepull DaemonSet are not ready: failed pulls, failed starts, no room on a node. */
import type { CoreV1Api, V1ContainerStatus, V1Pod } from '@kubernetes/client-node';
import { oneLineText } from '@prebuilt/core';

/** What a line quotes of the cluster's words at most: a message (the kubelet's, quoting the registry's answer), a name. */
export const POD_MESSAGE_MAX = 500;
const NAME_MAX = 253;
/** Nodes named in a line, and lines, at most (a DaemonSet runs a pod on each of thousands of nodes). */
const NODES_SHOWN = 10;
const LINES_SHOWN = 20;

export interface PodProblem {
  pod: string;
  /** The node it runs on, or `(not scheduled)`. */
  node: string;
  /** The container and its image, when the problem is one container's. */
  container?: string;
  image?: string;
  /** Kubernetes' reason: `ErrImagePull`, `ImagePullBackOff`, `CrashLoopBackOff`, `Unschedulable`, `exit code 1`… */
  reason: string;
  message?: string;
  /** The image could not be pulled (a registry, network or pull-secret problem). */
  pull: boolean;
}

const PULL_REASONS = new Set(['ErrImagePull', 'ImagePullBackOff', 'InvalidImageName', 'ErrImageNeverPull', 'ImageInspectError', 'RegistryUnavailable', 'SignatureValidationFailed']);
const START_REASONS = new Set(['CrashLoopBackOff', 'CreateContainerError', 'CreateContainerConfigError', 'RunContainerError', 'StartError']);

function containerProblem(status: V1ContainerStatus, init: boolean, image: string | undefined): Omit<PodProblem, 'pod' | 'node'> | undefined {
  const waiting = status.state?.waiting;
  // The image as the pod spec names it (the status may hold what the runtime resolved it to).
  const base = { container: status.name, image: image ?? status.image };
  if (waiting?.reason && PULL_REASONS.has(waiting.reason)) return { ...base, reason: waiting.reason, message: waiting.message, pull: true };
  const exited = status.state?.terminated ?? status.lastState?.terminated;
  if (waiting?.reason && START_REASONS.has(waiting.reason)) {
    const detail = exited ? `exit code ${exited.exitCode}${exited.reason ? ` (${exited.reason})` : ''}` : waiting.message;
    return { ...base, reason: waiting.reason, message: detail, pull: false };
  }
  if (init && status.state?.terminated && status.state.terminated.exitCode !== 0) {
    return { ...base, reason: `exit code ${status.state.terminated.exitCode}`, message: status.state.terminated.message ?? status.state.terminated.reason, pull: false };
  }
  return undefined;
}

/** The problems of the pods that are not ready (a pod that is only slow — still pulling — has none). */
export function problemsOf(pods: readonly V1Pod[]): PodProblem[] {
  const problems: PodProblem[] = [];
  for (const pod of pods) {
    const conditions = pod.status?.conditions ?? [];
    if (conditions.some((c) => c.type === 'Ready' && c.status === 'True')) continue;
    const where = { pod: pod.metadata?.name ?? '(unnamed)', node: pod.spec?.nodeName ?? '(not scheduled)' };
    const images = new Map([...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])].map((c) => [c.name, c.image]));
    const unscheduled = conditions.find((c) => c.type === 'PodScheduled' && c.status === 'False');
    if (unscheduled) problems.push({ ...where, reason: unscheduled.reason ?? 'Unschedulable', message: unscheduled.message, pull: false });
    for (const status of pod.status?.initContainerStatuses ?? []) {
      const problem = containerProblem(status, true, images.get(status.name));
      if (problem) problems.push({ ...where, ...problem });
    }
    for (const status of pod.status?.containerStatuses ?? []) {
      const problem = containerProblem(status, false, images.get(status.name));
      if (problem) problems.push({ ...where, ...problem });
    }
  }
  return problems;
}

/**
 * The problems of the DaemonSet's pods (by label), or undefined when the pods cannot be listed
 * (no permission, say): the wait goes on without naming them.
 */
export async function podProblems(core: CoreV1Api, namespace: string, labelSelector: string): Promise<PodProblem[] | undefined> {
  try {
    return problemsOf((await core.listNamespacedPod({ namespace, labelSelector })).items);
  } catch {
    return undefined;
  }
}

/**
 * One line per (image or pod, reason): `<image> on node-a, node-b: ImagePullBackOff (message)`; twenty
 * at most, and a line counting the rest. What the cluster says is kept on its line and cut: a pull's
 * message quotes the registry's answer, and a line break in it printed a line of the registry's own
 * below ours (a fake `hint:`).
 */
export function describeProblems(problems: readonly PodProblem[]): string[] {
  const groups = new Map<string, { what: string; reason: string; message?: string; nodes: string[] }>();
  for (const problem of problems) {
    const what = problem.image ? `image ${problem.image} (container ${problem.container})` : `pod ${problem.pod}`;
    const key = `${what}\n${problem.reason}`;
    const group = groups.get(key) ?? { what, reason: problem.reason, message: problem.message, nodes: [] };
    if (!group.nodes.includes(problem.node)) group.nodes.push(problem.node);
    groups.set(key, group);
  }
  const lines = [...groups.values()].map((g) => {
    const more = g.nodes.length - NODES_SHOWN;
    const nodes = g.nodes.slice(0, NODES_SHOWN).map((node) => oneLineText(node, NAME_MAX)).join(', ') + (more > 0 ? ` and ${more} more nodes` : '');
    return `${oneLineText(g.what, 2 * NAME_MAX)} on ${nodes}: ${oneLineText(g.reason, NAME_MAX)}${g.message ? ` (${oneLineText(g.message, POD_MESSAGE_MAX)})` : ''}`;
  });
  const moreLines = lines.length - LINES_SHOWN;
  return moreLines > 0 ? [...lines.slice(0, LINES_SHOWN), `and ${moreLines} more`] : lines;
}
