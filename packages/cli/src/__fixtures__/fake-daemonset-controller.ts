// A FAKE DaemonSet controller and kubelet for tests, on the FAKE Kubernetes API: when a DaemonSet is
// created or replaced it bumps its generation and rolls it out over the given nodes, one node per
// tick — writing `status` (observedGeneration, desired/updated/ready counts) and one pod per node
// with the init containers' states. A node's pod gets ready when `pull` says every image of the
// pod's init containers can be pulled; otherwise that container waits in ImagePullBackOff.
import type { FakeKubernetesApi, KubeObject } from './fake-kubernetes-api.js';

export interface FakeDaemonSetControllerOptions {
  nodes: readonly string[];
  /** Milliseconds between two nodes' updates (default 40). */
  tickMs?: number;
  /**
   * Whether a node can pull `image` (default: every image): true, or false (the kubelet's message is
   * then an authentication failure), or the kubelet's message for the failed pull.
   */
  pull?: (image: string, node: string) => boolean | string | Promise<boolean | string>;
  /**
   * The nodes' labels (besides kubernetes.io/os=linux, which every node has): a DaemonSet runs on
   * the nodes with every label of its pods' nodeSelector. Default: every node matches every DaemonSet.
   */
  nodeLabels?: Record<string, Record<string, string>>;
}

type Container = { name: string; image: string };
type DaemonSet = KubeObject & { spec?: { template?: { metadata?: { labels?: Record<string, string> }; spec?: { initContainers?: Container[]; nodeSelector?: Record<string, string> } } } };

export interface FakeDaemonSetController {
  /** Every generation the controller rolled out, per DaemonSet name. */
  readonly rollouts: Map<string, number>;
  stop(): void;
}

export function startFakeDaemonSetController(fake: FakeKubernetesApi, options: FakeDaemonSetControllerOptions): FakeDaemonSetController {
  const timers = new Set<NodeJS.Timeout>();
  let stopped = false;
  const rollouts = new Map<string, number>();
  const tickMs = options.tickMs ?? 40;
  const nodesOf = (daemonSet: DaemonSet): readonly string[] => {
    const labels = options.nodeLabels;
    if (!labels) return options.nodes;
    const selector = Object.entries(daemonSet.spec?.template?.spec?.nodeSelector ?? {});
    return options.nodes.filter((node) => selector.every(([key, value]) => ({ 'kubernetes.io/os': 'linux', ...labels[node] })[key] === value));
  };

  async function podFor(daemonSet: DaemonSet, node: string, generation: number): Promise<{ pod: KubeObject; ready: boolean }> {
    const name = String(daemonSet.metadata?.['name']);
    const statuses = [];
    let ready = true;
    for (const container of daemonSet.spec?.template?.spec?.initContainers ?? []) {
      const answer: boolean | string = ready ? await (options.pull?.(container.image, node) ?? true) : false;
      const pulled: boolean = answer === true;
      const failure = typeof answer === 'string' ? answer : 'unauthorized: authentication required';
      statuses.push(pulled
        ? { name: container.name, image: container.image, ready: true, state: { terminated: { exitCode: 0, reason: 'Completed' } } }
        : { name: container.name, image: container.image, ready: false, state: { waiting: { reason: ready ? 'ImagePullBackOff' : 'PodInitializing', message: ready ? `Back-off pulling image "${container.image}": ${failure}` : undefined } } });
      ready &&= pulled;
    }
    const pod = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: `${name}-${node}`, labels: { ...daemonSet.spec?.template?.metadata?.labels, 'pod-template-generation': String(generation) } },
      spec: { nodeName: node, ...daemonSet.spec?.template?.spec },
      status: { phase: ready ? 'Running' : 'Pending', conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }], initContainerStatuses: statuses },
    };
    return { pod, ready };
  }

  function rollOut(collection: string, daemonSet: DaemonSet): void {
    const name = String(daemonSet.metadata?.['name']);
    const generation = (rollouts.get(name) ?? 0) + 1;
    rollouts.set(name, generation);
    const nodes = nodesOf(daemonSet);
    const pods = collection.replace(/\/apis\/apps\/v1\//, '/api/v1/').replace(/daemonsets$/, 'pods');
    const write = (updated: number, ready: number): void => {
      const current = fake.get(collection, name) as DaemonSet | undefined;
      if (!current || rollouts.get(name) !== generation) return;
      fake.put(collection, {
        ...current,
        metadata: { ...current.metadata, generation },
        status: { observedGeneration: generation, desiredNumberScheduled: nodes.length, currentNumberScheduled: nodes.length, updatedNumberScheduled: updated, numberReady: ready, numberUnavailable: nodes.length - ready },
      });
    };
    write(0, 0);
    void (async () => {
      let ready = 0;
      for (const [i, node] of nodes.entries()) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(() => (timers.delete(timer), resolve()), tickMs);
          timers.add(timer);
        });
        if (stopped || rollouts.get(name) !== generation) return;
        const { pod, ready: isReady } = await podFor(daemonSet, node, generation);
        fake.put(pods, pod);
        if (isReady) ready++;
        write(i + 1, ready);
      }
    })();
  }

  fake.onChange = (change) => {
    if (!change.collection.endsWith('/daemonsets')) return;
    if (change.type === 'deleted') {
      rollouts.delete(String(change.object.metadata?.['name']));
      return;
    }
    rollOut(change.collection, change.object as DaemonSet);
  };
  return {
    rollouts,
    stop() {
      stopped = true;
      fake.onChange = undefined;
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
    },
  };
}
