/** Waiting for the prepull DaemonSet's rollout: every matching node ran the pulls of the current pod template. */
import type { CoreV1Api, V1DaemonSet } from '@kubernetes/client-node';
import { CancelledError, RegistryError, sleep } from '@prebuilt/core';
import { kubernetesError } from './kubernetes.js';
import { daemonSetsPermission, type DaemonSetTarget } from './prepull-apply.js';
import { describeProblems, podProblems, type PodProblem } from './prepull-pods.js';

/** Nodes of the rollout: `desired` match the node selector, `updated` run the current template, `ready` have pulled everything. */
export interface PrepullNodes {
  desired: number;
  updated: number;
  ready: number;
}

export interface RolloutState {
  nodes: PrepullNodes;
  /** The controller has seen the current spec (status.observedGeneration ≥ metadata.generation). */
  observed: boolean;
  done: boolean;
}

function rolloutState(daemonSet: V1DaemonSet): RolloutState {
  const status = daemonSet.status;
  const nodes = { desired: status?.desiredNumberScheduled ?? 0, updated: status?.updatedNumberScheduled ?? 0, ready: status?.numberReady ?? 0 };
  const observed = typeof status?.observedGeneration === 'number' && status.observedGeneration >= (daemonSet.metadata?.generation ?? 1);
  const done = observed && nodes.updated === nodes.desired && nodes.ready === nodes.desired && (status?.numberUnavailable ?? 0) === 0;
  return { nodes, observed, done };
}

export type WaitProgress = { type: 'nodes'; nodes: PrepullNodes } | { type: 'problem'; problem: PodProblem };

export interface WaitOptions {
  target: DaemonSetTarget;
  core: CoreV1Api;
  name: string;
  labelSelector: string;
  timeoutMs: number;
  signal: AbortSignal;
  onProgress?: (event: WaitProgress) => void;
  /** What the user runs to remove the DaemonSet (named when interrupted). */
  removeCommand: string;
  /** The pull secrets the pods name (for the hint after failed pulls). */
  pullSecrets: readonly string[];
  /** Poll delays: from `min`, doubling to `max` while nothing changes. */
  poll?: { min: number; max: number };
}

/** How often (ms) the pods are looked at for problems while the rollout does not finish. */
const PROBLEM_CHECK_MS = 10_000;

/**
 * Polls the DaemonSet until its rollout is done, reporting the node counts when they change and
 * each new pod problem (looked up every 10 s). Throws a RegistryError (exit 1) at `timeoutMs`
 * naming the pods' problems, a CancelledError when `signal` aborts (the DaemonSet stays).
 */
export async function waitForDaemonSet(options: WaitOptions): Promise<PrepullNodes> {
  const { target, name, signal } = options;
  const poll = options.poll ?? { min: 250, max: 2000 };
  const deadline = Date.now() + options.timeoutMs;
  const seen = new Set<string>();
  let last = '';
  let delay = poll.min;
  let lastCheck = Date.now();
  const interrupted = (): CancelledError =>
    new CancelledError(`Interrupted while waiting for the DaemonSet ${target.namespace}/${name}; it stays in the cluster and its pods keep pulling. Remove it with: ${options.removeCommand}`);
  for (;;) {
    if (signal.aborted) throw interrupted();
    let daemonSet: V1DaemonSet;
    try {
      daemonSet = await target.apps.readNamespacedDaemonSet({ name, namespace: target.namespace });
    } catch (error) {
      throw kubernetesError(error, `Reading the DaemonSet ${target.namespace}/${name}`, target.server, daemonSetsPermission(target.namespace));
    }
    const state = rolloutState(daemonSet);
    const key = JSON.stringify(state.nodes);
    if (state.observed && key !== last) {
      options.onProgress?.({ type: 'nodes', nodes: state.nodes });
      last = key;
      delay = poll.min;
    }
    if (state.done) return state.nodes;
    if (Date.now() >= deadline) throw await timedOut(options, state);
    if (Date.now() - lastCheck >= PROBLEM_CHECK_MS) {
      lastCheck = Date.now();
      for (const problem of (await podProblems(options.core, target.namespace, options.labelSelector)) ?? []) {
        const id = `${problem.pod}/${problem.container ?? ''}/${problem.reason}`;
        if (!seen.has(id)) options.onProgress?.({ type: 'problem', problem });
        seen.add(id);
      }
    }
    try {
      await sleep(Math.min(delay, Math.max(0, deadline - Date.now())), signal);
    } catch {
      throw interrupted();
    }
    delay = Math.min(delay * 2, poll.max);
  }
}

/** What to do about the pods' problems at the timeout. */
function timeoutHint(problems: readonly PodProblem[], options: WaitOptions): string {
  const ns = options.target.namespace;
  const pulls = problems.filter((p) => p.pull);
  if (pulls.length === 0) {
    return problems.length > 0
      ? 'An image that does not start on a node (another CPU architecture?) needs a --node-selector (e.g. kubernetes.io/arch=amd64); unschedulable pods need room or a --toleration.'
      : `Large images take a while on slow links: raise --timeout, or look at the pods (kubectl -n ${ns} get pods -l ${options.labelSelector}).`;
  }
  const images = [...new Set(pulls.map((p) => p.image))].join(', ');
  // containerd: "…: not found"; Docker: "manifest unknown".
  if (pulls.every((p) => /manifest unknown|not found/i.test(p.message ?? ''))) {
    return `The registry no longer has ${images} (deleted, by prebuilt gc say, since the build): run prebuilt build again, then prebuilt prepull.`;
  }
  const secrets = options.pullSecrets;
  const credentials = secrets.length > 0
    ? `that the pull secret${secrets.length === 1 ? '' : 's'} ${secrets.join(', ')} in ${ns} hold${secrets.length === 1 ? 's' : ''} valid credentials (prebuilt pull-secret --namespace ${ns} --name ${secrets[0]} renews it)`
    : `that the registry lets them pull without credentials: the pods name no pull secret (create one with prebuilt pull-secret --namespace ${ns} --name prebuilt-pull and pass --pull-secret prebuilt-pull, or build with METAFLOW_PREBUILT_PULL_SECRET set)`;
  const pause = pulls.some((p) => p.container === 'pause') ? ' For the pause image, mirror it where the nodes can pull and pass --pause-image (or METAFLOW_PREBUILT_PAUSE_IMAGE).' : '';
  return `The nodes could not pull ${images}: check that they reach the registry and ${credentials}.${pause}`;
}

async function timedOut(options: WaitOptions, state: RolloutState): Promise<RegistryError> {
  const { target, name } = options;
  const problems = (await podProblems(options.core, target.namespace, options.labelSelector)) ?? [];
  const counts = state.observed ? `${state.nodes.ready}/${state.nodes.desired} nodes ready, ${state.nodes.updated} updated` : 'the DaemonSet controller has not picked up the current spec';
  const lines = describeProblems(problems);
  return new RegistryError(
    `The DaemonSet ${target.namespace}/${name} was not ready after ${Math.round(options.timeoutMs / 1000)}s: ${counts}.${lines.length > 0 ? `\n  ${lines.join('\n  ')}` : ''}`,
    { registry: target.server },
    { hint: timeoutHint(problems, options) },
  );
}
