import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import * as k8s from '@kubernetes/client-node';
import type { FlowStep, RemoteDecorator } from '@prebuilt/metaflow';
import { AuthError, CancelledError, ConfigError, ExitCode, InputError, RegistryError, type ImageMap } from '@prebuilt/core';
import { FakeKubernetesApi, type KubeObject } from '../__fixtures__/fake-kubernetes-api.js';
import { startFakeDaemonSetController, type FakeDaemonSetController } from '../__fixtures__/fake-daemonset-controller.js';
import { prepullFlow, removePrepull, type PrepullFlowOptions, type PrepullProgress } from './prepull.js';
import { IMAGES_ANNOTATION, prepullName } from './prepull-daemonset.js';

const DS = '/apis/apps/v1/namespaces/metaflow/daemonsets';
const digest = (c: string): string => `sha256:${c.repeat(64)}`;
const ref = (tag: string, c: string): string => `127.0.0.1:5000/team/envs:${tag}@${digest(c)}`;

function imageMapOf(flow: string, train = ref('env-b', 'b')): ImageMap {
  const step = (pinned: string) => ({ envId: pinned.slice(-6), image: pinned.split('@')[0]!, pinnedImage: pinned, python: '/opt/prebuilt/env/bin/python' });
  return {
    flow,
    images: {
      a: { image: ref('env-a', 'a').split('@')[0]!, digest: digest('a'), pinnedImage: ref('env-a', 'a'), python: '/opt/prebuilt/env/bin/python', status: 'built', steps: ['start', 'end'], pullConfig: { kubernetes: { imagePullSecrets: ['prebuilt-pull'] } } },
    },
    steps: { start: step(ref('env-a', 'a')), train: step(train), end: step(ref('env-a', 'a')) },
  };
}

/** Steps as the flow file reader gives them, without decorators. */
const plainSteps = (names: string[]): FlowStep[] => names.map((name, i) => ({ name, line: 10 + i, imports: [] }));

type StoredDaemonSet = KubeObject & { spec: { template: { spec: { initContainers: { name: string; image: string; command: string[]; imagePullPolicy: string; resources: unknown }[]; containers: { image: string }[]; imagePullSecrets?: { name: string }[]; nodeSelector?: Record<string, string>; tolerations?: unknown[] } } } };

describe('prepullFlow / removePrepull against the FAKE Kubernetes API (FAKE DaemonSet controller)', () => {
  let fake: FakeKubernetesApi;
  let dir: string;
  let env: Record<string, string>;
  let controller: FakeDaemonSetController | undefined;
  beforeAll(async () => {
    fake = await FakeKubernetesApi.start({ namespaces: ['metaflow'] });
    dir = await mkdtemp(join(tmpdir(), 'prebuilt-prepull-'));
    env = { KUBECONFIG: await fake.writeKubeConfig(join(dir, 'kubeconfig')) };
  });
  afterEach(() => controller?.stop());
  afterAll(async () => {
    await fake.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const options = (flow: string, more: Partial<PrepullFlowOptions> = {}): PrepullFlowOptions & { events: PrepullProgress[] } => {
    const events: PrepullProgress[] = [];
    return {
      flowFile: 'flow.py', flowSteps: plainSteps(['start', 'train', 'end']), imageMap: imageMapOf(flow), namespace: 'metaflow', env, nodeSelector: {}, tolerations: [],
      pullSecrets: [], pauseImage: 'registry.k8s.io/pause:3.9', timeoutMs: 10_000, signal: new AbortController().signal, k8s,
      poll: { min: 10, max: 40 }, onProgress: (event) => events.push(event), events, ...more,
    };
  };

  it('creates the DaemonSet (an init container per distinct image, pull secrets, node selector, pause container) and waits through the rollout', async () => {
    // A node every 150 ms, polled every 10–40 ms: the wait sees the counts in between.
    controller = startFakeDaemonSetController(fake, { nodes: ['node-a', 'node-b', 'node-c'], tickMs: 150 });
    const run = options('TrainFlow', { nodeSelector: { 'kubernetes.io/arch': 'amd64' }, tolerations: [{ key: 'gpu', operator: 'Exists', effect: 'NoSchedule' }], pullSecrets: ['extra-pull'] });
    const result = await prepullFlow(run);
    expect(result).toMatchObject({ namespace: 'metaflow', removed: [], daemonSets: [{ action: 'created', name: prepullName('TrainFlow'), steps: ['start', 'train', 'end'], nodes: { desired: 3, ready: 3, updated: 3 }, pullSecrets: ['prebuilt-pull', 'extra-pull'] }] });
    const [only] = result.daemonSets;
    expect(only!.images.map((i) => [i.image, i.steps])).toEqual([[ref('env-a', 'a'), ['start', 'end']], [ref('env-b', 'b'), ['train']]]);
    const stored = fake.get(DS, only!.name) as StoredDaemonSet;
    const pod = stored.spec.template.spec;
    expect(pod.initContainers.map((c) => [c.name, c.image, c.imagePullPolicy])).toEqual([
      ['pull-1-start', ref('env-a', 'a'), 'IfNotPresent'],
      ['pull-2-train', ref('env-b', 'b'), 'IfNotPresent'],
    ]);
    expect(pod.initContainers[0]!.command).toEqual(['/opt/prebuilt/env/bin/python', '-I', '-S', '-c', '']);
    expect(pod.initContainers[0]!.resources).toMatchObject({ limits: { memory: '128Mi' } });
    expect(pod.containers.map((c) => c.image)).toEqual(['registry.k8s.io/pause:3.9']);
    expect(pod.imagePullSecrets).toEqual([{ name: 'prebuilt-pull' }, { name: 'extra-pull' }]);
    expect(pod.nodeSelector).toEqual({ 'kubernetes.io/os': 'linux', 'kubernetes.io/arch': 'amd64' });
    expect(pod.tolerations).toEqual([{ key: 'gpu', operator: 'Exists', effect: 'NoSchedule' }]);
    expect(JSON.parse(String((stored.metadata!['annotations'] as Record<string, string>)[IMAGES_ANNOTATION]))).toEqual([ref('env-a', 'a'), ref('env-b', 'b')]);
    // Progress: the DaemonSet, then the node counts as the fake controller rolled out node by node.
    // Neither secret is in the namespace: each is a warning, before the DaemonSet.
    expect(run.events.slice(0, 3)).toEqual([
      { type: 'missing-secret', namespace: 'metaflow', secret: 'prebuilt-pull' },
      { type: 'missing-secret', namespace: 'metaflow', secret: 'extra-pull' },
      expect.objectContaining({ type: 'applied', action: 'created', images: 2 }),
    ]);
    const ready = run.events.flatMap((e) => (e.type === 'nodes' ? [e.nodes.ready] : []));
    // At least one count before all three nodes are ready (0 unless this machine stalled for a tick), rising.
    expect(ready[0]).toBeLessThan(3);
    expect(ready.at(-1)).toBe(3);
    expect(ready.length).toBeGreaterThanOrEqual(2);
    expect([...ready].sort()).toEqual(ready);
  });

  it('a pull secret that exists is no warning', async () => {
    controller = startFakeDaemonSetController(fake, { nodes: ['node-a'] });
    fake.put('/api/v1/namespaces/metaflow/secrets', { metadata: { name: 'prebuilt-pull' }, type: 'kubernetes.io/dockerconfigjson' });
    const run = options('SecretFlow');
    await prepullFlow(run);
    expect(run.events.filter((e) => e.type === 'missing-secret')).toEqual([]);
  });

  it('is unchanged on a second run with the same images, and rolls out a new template when an image changes', async () => {
    controller = startFakeDaemonSetController(fake, { nodes: ['node-a', 'node-b'] });
    const first = (await prepullFlow(options('SameFlow'))).daemonSets[0]!;
    expect(first.action).toBe('created');
    const again = await prepullFlow(options('SameFlow'));
    expect(again.daemonSets).toMatchObject([{ action: 'unchanged', nodes: { desired: 2, ready: 2 } }]);
    expect(controller.rollouts.get(first.name)).toBe(1);
    const changed = await prepullFlow(options('SameFlow', { imageMap: imageMapOf('SameFlow', ref('env-c', 'c')) }));
    expect(changed.daemonSets).toMatchObject([{ action: 'updated', nodes: { desired: 2, ready: 2, updated: 2 } }]);
    expect(controller.rollouts.get(first.name)).toBe(2);
    const stored = fake.get(DS, first.name) as StoredDaemonSet;
    expect(stored.spec.template.spec.initContainers.map((c) => c.image)).toEqual([ref('env-a', 'a'), ref('env-c', 'c')]);
  });

  it('--remove deletes the DaemonSet; absent is fine', async () => {
    controller = startFakeDaemonSetController(fake, { nodes: ['node-a'] });
    await prepullFlow(options('GoneFlow', { wait: false }));
    expect(await removePrepull({ flow: 'GoneFlow', namespace: 'metaflow', env, k8s })).toMatchObject({ action: 'removed', name: prepullName('GoneFlow'), removed: [prepullName('GoneFlow')] });
    expect(fake.get(DS, prepullName('GoneFlow'))).toBeUndefined();
    expect(await removePrepull({ flow: 'GoneFlow', namespace: 'metaflow', env, k8s })).toMatchObject({ action: 'absent', removed: [] });
  });

  describe('steps placed apart (@kubernetes node_selector / tolerations / gpu): one DaemonSet per placement', () => {
    const GPU_TAINT = { key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' };
    const kubernetes = (more: Partial<RemoteDecorator>): RemoteDecorator => ({ name: 'kubernetes', line: 20, gpu: null, image: { kind: 'absent' }, ...more });
    const placed = (train: Partial<FlowStep>): FlowStep[] => [plainSteps(['start'])[0]!, { ...plainSteps(['train'])[0]!, ...train }, plainSteps(['end'])[0]!];
    const onGpuPool: Partial<FlowStep> = {
      remote: kubernetes({ gpu: 1, nodeSelector: { kind: 'static', value: { pool: 'gpu' }, line: 20 }, tolerations: { kind: 'static', value: [GPU_TAINT], line: 20 } }),
    };
    const stored = (name: string): StoredDaemonSet['spec']['template']['spec'] => (fake.get(DS, name) as StoredDaemonSet).spec.template.spec;

    it('two placements → two DaemonSets, each with its steps\' images and selector; a re-run is unchanged; a placement that disappeared is deleted; --remove removes both', async () => {
      controller = startFakeDaemonSetController(fake, { nodes: ['cpu-1', 'cpu-2', 'gpu-1'], nodeLabels: { 'cpu-1': { pool: 'cpu' }, 'cpu-2': { pool: 'cpu' }, 'gpu-1': { pool: 'gpu' } } });
      const run = options('PlacedFlow', { flowSteps: placed(onGpuPool) });
      const first = await prepullFlow(run);
      const [cpu, gpu] = first.daemonSets;
      expect(first.daemonSets).toHaveLength(2);
      expect(first.removed).toEqual([]);
      // Steps placed anywhere keep the flow's one name (a DaemonSet of an older prebuilt is updated in place).
      expect(cpu).toMatchObject({ name: prepullName('PlacedFlow'), action: 'created', steps: ['start', 'end'], gpu: false, nodeSelector: { 'kubernetes.io/os': 'linux' }, tolerations: [], pullSecrets: ['prebuilt-pull'], nodes: { desired: 3, ready: 3 } });
      expect(gpu).toMatchObject({ action: 'created', steps: ['train'], gpu: true, nodeSelector: { 'kubernetes.io/os': 'linux', pool: 'gpu' }, tolerations: [GPU_TAINT], pullSecrets: [], nodes: { desired: 1, ready: 1 } });
      expect(gpu!.name).toMatch(/^prebuilt-prepull-placed-flow-[0-9a-f]{6}$/);
      expect(gpu!.name).not.toBe(cpu!.name);
      expect(gpu!.note).toBeUndefined();
      // The fields of one DaemonSet per flow stay, over both.
      expect(first).toMatchObject({ name: cpu!.name, action: 'created', pullSecrets: ['prebuilt-pull'], nodeSelector: { 'kubernetes.io/os': 'linux' }, nodes: { desired: 4, ready: 4, updated: 4 } });
      expect(first.images.map((i) => i.steps)).toEqual([['start', 'end'], ['train']]);
      expect(stored(cpu!.name).initContainers.map((c) => c.image)).toEqual([ref('env-a', 'a')]);
      expect(stored(cpu!.name).nodeSelector).toEqual({ 'kubernetes.io/os': 'linux' });
      expect(stored(cpu!.name).tolerations).toBeUndefined();
      const gpuPod = stored(gpu!.name);
      expect(gpuPod.initContainers.map((c) => [c.name, c.image])).toEqual([['pull-1-train', ref('env-b', 'b')]]);
      expect(gpuPod.nodeSelector).toEqual({ 'kubernetes.io/os': 'linux', pool: 'gpu' });
      expect(gpuPod.tolerations).toEqual([GPU_TAINT]);
      // A pull needs no GPU: the pods ask for none.
      const resources = [...gpuPod.initContainers, ...(gpuPod as unknown as { containers: { resources: Record<string, object> }[] }).containers].map((c) => c.resources as Record<string, object>);
      expect(resources.flatMap((r) => [...Object.keys(r['requests'] ?? {}), ...Object.keys(r['limits'] ?? {})]).every((k) => k === 'cpu' || k === 'memory')).toBe(true);
      // Progress names each DaemonSet.
      expect(run.events.filter((e) => e.type === 'applied').map((e) => e.type === 'applied' && [e.name, e.steps])).toEqual([[cpu!.name, ['start', 'end']], [gpu!.name, ['train']]]);
      expect(run.events.some((e) => e.type === 'nodes' && e.name === gpu!.name && e.nodes.ready === 1)).toBe(true);

      const again = await prepullFlow(options('PlacedFlow', { flowSteps: placed(onGpuPool) }));
      expect(again.daemonSets.map((d) => [d.name, d.action])).toEqual([[cpu!.name, 'unchanged'], [gpu!.name, 'unchanged']]);
      expect(again.action).toBe('unchanged');
      expect([controller.rollouts.get(cpu!.name), controller.rollouts.get(gpu!.name)]).toEqual([1, 1]);

      // The command's --node-selector / --toleration narrow every DaemonSet (in place: the names stay).
      const narrowed = await prepullFlow(options('PlacedFlow', { flowSteps: placed(onGpuPool), nodeSelector: { zone: 'a' }, tolerations: [{ key: 'spot', operator: 'Exists' }] }));
      expect(narrowed.daemonSets.map((d) => [d.name, d.action, d.nodeSelector, d.tolerations])).toEqual([
        [cpu!.name, 'updated', { 'kubernetes.io/os': 'linux', zone: 'a' }, [{ key: 'spot', operator: 'Exists' }]],
        [gpu!.name, 'updated', { 'kubernetes.io/os': 'linux', pool: 'gpu', zone: 'a' }, [GPU_TAINT, { key: 'spot', operator: 'Exists' }]],
      ]);

      // The train step lost its placement: its DaemonSet goes, its image joins the others'.
      const events: PrepullProgress[] = [];
      const moved = await prepullFlow(options('PlacedFlow', { flowSteps: placed({}), onProgress: (e) => events.push(e) }));
      expect(moved.daemonSets.map((d) => [d.name, d.steps])).toEqual([[cpu!.name, ['start', 'train', 'end']]]);
      expect(moved.removed).toEqual([gpu!.name]);
      expect(moved.action).toBe('updated');
      expect(events).toContainEqual({ type: 'removed', namespace: 'metaflow', name: gpu!.name });
      expect(fake.get(DS, gpu!.name)).toBeUndefined();
      expect(stored(cpu!.name).initContainers.map((c) => c.image)).toEqual([ref('env-a', 'a'), ref('env-b', 'b')]);

      await prepullFlow(options('PlacedFlow', { flowSteps: placed(onGpuPool), wait: false }));
      // Another flow's DaemonSet in the namespace is not this flow's.
      await prepullFlow(options('OtherFlow', { wait: false }));
      const removed = await removePrepull({ flow: 'PlacedFlow', namespace: 'metaflow', env, k8s });
      expect(removed).toMatchObject({ action: 'removed' });
      expect([...removed.removed].sort()).toEqual([cpu!.name, gpu!.name].sort());
      const left = fake.list(DS).map((d) => d.metadata?.['name']);
      expect(left).toContain(prepullName('OtherFlow'));
      expect(left).not.toContain(cpu!.name);
      expect(left).not.toContain(gpu!.name);
      await removePrepull({ flow: 'OtherFlow', namespace: 'metaflow', env, k8s });
    });

    it('a GPU step with no node selector: its own DaemonSet, on every node, with a note saying why and how to narrow it', async () => {
      controller = startFakeDaemonSetController(fake, { nodes: ['node-a', 'node-b'] });
      const run = options('GpuFlow', { flowSteps: placed({ resources: { line: 19, gpu: 1 } }), env: { ...env, METAFLOW_KUBERNETES_GPU_VENDOR: 'AMD' } });
      const result = await prepullFlow(run);
      expect(result.daemonSets.map((d) => [d.steps, d.gpu, d.nodeSelector])).toEqual([
        [['start', 'end'], false, { 'kubernetes.io/os': 'linux' }],
        [['train'], true, { 'kubernetes.io/os': 'linux' }],
      ]);
      const note = result.daemonSets[1]!.note!;
      expect(note).toMatch(/^step train asks for GPUs and names no node_selector: Kubernetes runs it on the nodes with the amd\.com\/gpu resource, which no node selector can name, so its image is warmed on every node\. To narrow it, give the step @kubernetes\(node_selector=/);
      expect(run.events).toContainEqual({ type: 'note', name: result.daemonSets[1]!.name, text: note });
      expect(result.daemonSets[0]!.note).toBeUndefined();
      await removePrepull({ flow: 'GpuFlow', namespace: 'metaflow', env, k8s });
    });

    it("--with kubernetes:… as deployed: steps without their own @kubernetes go to its compute pool, a step's own wins; a GPU DaemonSet tolerates its vendor's taint (asking for no GPU)", async () => {
      const pool = { 'outerbounds.co/compute-pool': 'mi300' };
      controller = startFakeDaemonSetController(fake, { nodes: ['gpu-1', 'gpu-2', 'cpu-1'], nodeLabels: { 'gpu-1': pool, 'gpu-2': pool, 'cpu-1': { pool: 'cpu' } } });
      const run = options('WithFlow', { flowSteps: placed({ remote: kubernetes({ nodeSelector: { kind: 'static', value: { pool: 'cpu' }, line: 20 } }) }), decospecs: ['kubernetes:compute_pool=mi300,gpu=1,gpu_vendor=amd'] });
      const result = await prepullFlow(run);
      const AMD_TAINT = { key: 'amd.com/gpu', operator: 'Exists', effect: 'NoSchedule' };
      expect(result.daemonSets.map((d) => [d.steps, d.gpu, d.gpuVendor, d.nodeSelector, d.tolerations, d.nodes?.desired])).toEqual([
        [['start', 'end'], true, 'amd', { 'kubernetes.io/os': 'linux', ...pool }, [AMD_TAINT], 2],
        [['train'], false, undefined, { 'kubernetes.io/os': 'linux', pool: 'cpu' }, [], 1],
      ]);
      expect(result.daemonSets[0]!.note).toBeUndefined();
      const pod = stored(result.daemonSets[0]!.name);
      expect(pod.tolerations).toEqual([AMD_TAINT]);
      const limits = [...pod.initContainers, ...(pod as unknown as { containers: { resources: Record<string, object> }[] }).containers].map((c) => (c.resources as { limits: Record<string, string> }).limits);
      expect(limits.every((limit) => !('amd.com/gpu' in limit))).toBe(true);
      // A --with Metaflow would refuse is refused before the cluster is asked.
      const refused = await prepullFlow(options('WithFlow', { namespace: 'nowhere', decospecs: ['kubernetes:node_selector=pool=gpu,zone=a'] })).catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(ConfigError);
      expect((refused as ConfigError).message).toMatch(/^--with kubernetes:node_selector=pool=gpu,zone=a: Metaflow's @kubernetes does not support the attribute 'zone'/);
      await removePrepull({ flow: 'WithFlow', namespace: 'metaflow', env, k8s });
    });

    it("steps on AWS Batch (a step's own @batch, --with batch) are in no DaemonSet and named in the result; with every step there, the flow's DaemonSets go", async () => {
      controller = startFakeDaemonSetController(fake, { nodes: ['node-a'] });
      const onBatch = placed({ remote: { name: 'batch', line: 20, gpu: 1, image: { kind: 'absent' } } });
      const own = await prepullFlow(options('BatchFlow', { flowSteps: onBatch }));
      expect(own.daemonSets.map((d) => [d.name, d.steps, d.gpu])).toEqual([[prepullName('BatchFlow'), ['start', 'end'], false]]);
      expect(own.batchSteps).toEqual([{ step: 'train', source: '@batch' }]);
      expect(own.images.map((i) => i.steps)).toEqual([['start', 'end']]);
      const all = await prepullFlow(options('BatchFlow', { flowSteps: onBatch, decospecs: ['batch'] }));
      expect(all.batchSteps).toEqual([{ step: 'start', source: '--with batch' }, { step: 'train', source: '@batch' }, { step: 'end', source: '--with batch' }]);
      expect(all).toMatchObject({ daemonSets: [], removed: [prepullName('BatchFlow')], name: prepullName('BatchFlow'), action: 'updated', images: [], nodes: { desired: 0, ready: 0, updated: 0 } });
      expect(fake.get(DS, prepullName('BatchFlow'))).toBeUndefined();
      // A step with its own @kubernetes that --with batch reaches: refused before the cluster is asked.
      const refused = await prepullFlow(options('BatchFlow', { namespace: 'nowhere', flowSteps: placed({ remote: kubernetes({}) }), decospecs: ['batch'] })).catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(InputError);
      expect((refused as InputError).message).toMatch(/^flow\.py:20: step 'train' has @kubernetes, and --with batch gives it @batch too, which Metaflow refuses/);
    });

    it('a computed node_selector is exit 2 at file:line naming the step, before the cluster is asked', async () => {
      const error = await prepullFlow(options('DynFlow', { namespace: 'nowhere', flowSteps: placed({ remote: kubernetes({ nodeSelector: { kind: 'dynamic', line: 21, why: "'pick()' is not a literal, a constant or a simple expression" } }) }) })).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(InputError);
      expect((error as InputError).message).toBe("flow.py:21: step 'train': the 'node_selector' argument of @kubernetes cannot be read without running the flow: 'pick()' is not a literal, a constant or a simple expression");
    });
  });

  it('a timeout names the image that failed to pull, the nodes, and hints at the pull secret', async () => {
    controller = startFakeDaemonSetController(fake, { nodes: ['node-a', 'node-b'], pull: (image, node) => !(image.includes('env-b') && node === 'node-b') });
    const error = await prepullFlow(options('FailFlow', { timeoutMs: 1500 })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RegistryError);
    expect((error as RegistryError).exitCode).toBe(ExitCode.failure);
    expect((error as RegistryError).message).toContain('was not ready after 2s: 1/2 nodes ready, 2 updated');
    expect((error as RegistryError).message).toContain(`image ${ref('env-b', 'b')} (container pull-2-train) on node-b: ImagePullBackOff`);
    expect((error as RegistryError).hint).toContain(`could not pull ${ref('env-b', 'b')}`);
    expect((error as RegistryError).hint).toContain('the pull secret prebuilt-pull in metaflow holds valid credentials (prebuilt pull-secret --namespace metaflow --name prebuilt-pull renews it)');
  });

  it('an image the registry no longer has (removed by gc): the hint says to build again', async () => {
    controller = startFakeDaemonSetController(fake, { nodes: ['node-a'], pull: (image) => !image.includes('env-b') || `failed to resolve reference "${image}": not found` });
    const error = await prepullFlow(options('GoneImageFlow', { timeoutMs: 1000 })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RegistryError);
    expect((error as RegistryError).hint).toBe(`The registry no longer has ${ref('env-b', 'b')} (deleted, by prebuilt gc say, since the build): run prebuilt build again, then prebuilt prepull.`);
  });

  it('an interrupt leaves the DaemonSet and says how to remove it', async () => {
    const abort = new AbortController();
    const run = prepullFlow(options('StopFlow', { signal: abort.signal, onProgress: (e) => e.type === 'applied' && abort.abort() }));
    const error = await run.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CancelledError);
    expect((error as CancelledError).message).toContain('prebuilt prepull flow.py --namespace metaflow --remove');
    expect(fake.get(DS, prepullName('StopFlow'))).toBeDefined();
  });

  it('403 is an AuthError naming the permission; a missing namespace or a foreign DaemonSet a ConfigError', async () => {
    const forbidden = { KUBECONFIG: await fake.writeKubeConfig(join(dir, 'forbidden'), { token: 'forbidden-token' }) };
    const refused = await prepullFlow(options('AnyFlow', { env: forbidden })).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(AuthError);
    expect((refused as AuthError).hint).toContain('kubectl auth can-i create daemonsets.apps -n metaflow');
    await expect(prepullFlow(options('AnyFlow', { namespace: 'nowhere' }))).rejects.toThrow(/namespace nowhere does not exist/);
    fake.put(DS, { metadata: { name: prepullName('TheirFlow') }, spec: {} });
    await expect(prepullFlow(options('TheirFlow'))).rejects.toThrow(ConfigError);
    // --remove deletes only the flow's DaemonSets that prebuilt manages: the foreign one stays.
    expect(await removePrepull({ flow: 'TheirFlow', namespace: 'metaflow', env, k8s })).toMatchObject({ action: 'absent', removed: [] });
    expect(fake.get(DS, prepullName('TheirFlow'))).toBeDefined();
  });
});
