// End to end: `prebuilt prepull` through the real CLI on a flow built by `prebuilt build` (oci
// build service, the real plain test registry), with KUBECONFIG pointing at the FAKE Kubernetes API
// served by this process. A FAKE DaemonSet controller and kubelet roll the DaemonSet out over three
// nodes; its "pull" of each init container's image is a real manifest GET by digest on the test
// registry, so the references prepull wrote are the ones the build pushed.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, expect } from 'vitest';
import { FakeKubernetesApi, type KubeObject } from '../../packages/cli/src/__fixtures__/fake-kubernetes-api.js';
import { startFakeDaemonSetController, type FakeDaemonSetController } from '../../packages/cli/src/__fixtures__/fake-daemonset-controller.js';
import { describeWith, getServices, itWith } from '../services.js';
import { cliEnv, ONE_ENV_FLOW, parseJson, runCli, startFixtures, stopFixtures, uniqueNamespace, writeFlow, type BuildJson, type Fixtures } from './harness.js';

const services = getServices();
const NEEDS = ['registries', 'baseImage'] as const;
const MANIFEST_TYPES = 'application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json';

/** The FAKE kubelet's pull: the pinned reference's manifest, read by digest from the registry it names; else containerd's message. */
async function kubeletPull(ref: string): Promise<true | string> {
  const match = /^([^/]+)\/(.+):[^:@/]+@(sha256:[0-9a-f]{64})$/.exec(ref);
  if (!match) return `failed to pull and unpack image "${ref}": not a pinned reference`;
  const response = await fetch(`http://${match[1]}/v2/${match[2]}/manifests/${match[3]}`, { headers: { accept: MANIFEST_TYPES } });
  await response.arrayBuffer();
  if (response.status === 200) return true;
  return response.status === 404 ? `failed to resolve reference "${ref}": ${ref}: not found` : `unexpected status from GET request: ${response.status}`;
}

type DaemonSetJson = KubeObject & { spec: { template: { spec: { initContainers: { name: string; image: string; command: string[] }[]; imagePullSecrets?: { name: string }[] } } } };

describeWith(NEEDS, 'prebuilt prepull (real CLI, a flow built on the real plain registry, FAKE Kubernetes API and DaemonSet controller)', () => {
  let fixtures: Fixtures;
  let dir: string;
  let env: NodeJS.ProcessEnv;
  let fake: FakeKubernetesApi;
  let controller: FakeDaemonSetController;
  let built: BuildJson;
  const pulled: string[] = [];
  /** While set, the FAKE kubelet's pulls wait (a rollout that takes its time). */
  let hold = false;

  beforeAll(async () => {
    fixtures = await startFixtures();
    dir = join(fixtures.dir, 'prepull');
    await writeFlow(dir, 'one_env_flow.py', ONE_ENV_FLOW);
    fake = await FakeKubernetesApi.start({ namespaces: ['metaflow'] });
    const kubeconfig = await fake.writeKubeConfig(join(fixtures.dir, 'kubeconfig'));
    env = cliEnv(fixtures, services, uniqueNamespace('prepull'), { METAFLOW_PREBUILT_BUILD_SERVICE: 'oci', KUBECONFIG: kubeconfig });
    const build = await runCli(['build', 'one_env_flow.py', '--json'], { env, cwd: dir });
    if (build.code !== 0) throw new Error(`prebuilt build failed: ${build.stderr}`);
    built = parseJson<BuildJson>(build);
    controller = startFakeDaemonSetController(fake, {
      nodes: ['node-a', 'node-b', 'node-c'],
      pull: async (image, node) => {
        while (hold) await new Promise((resolve) => setTimeout(resolve, 50));
        pulled.push(`${node} ${image}`);
        return kubeletPull(image);
      },
    });
  }, 240_000);
  afterAll(async () => {
    controller?.stop();
    await fake?.stop();
    await stopFixtures(fixtures);
  });

  itWith(NEEDS, 'pulls the built image (shared by both steps: one init container) on every node, then is unchanged and removable', async () => {
    const run = await runCli(['prepull', 'one_env_flow.py', '--namespace', 'metaflow', '--pull-secret', 'prebuilt-pull', '--json'], { env, cwd: dir, timeoutMs: 60_000 });
    expect(run.code, run.stderr).toBe(0);
    const json = parseJson<{ ok: boolean; removed: string[]; daemonSets: { name: string; action: string; steps: string[]; images: { image: string; steps: string[] }[]; nodes: { ready: number; desired: number } }[] }>(run);
    expect(json).toMatchObject({ ok: true, removed: [] });
    expect(json.daemonSets).toHaveLength(1);
    const result = json.daemonSets[0]!;
    const pinned = built.steps['start']!.pinnedImage!;
    expect(pinned).toContain(`@${Object.values(built.images)[0]!.digest}`);
    expect(result).toMatchObject({ action: 'created', steps: ['start', 'end'], images: [{ image: pinned, steps: ['start', 'end'] }], nodes: { ready: 3, desired: 3 } });
    expect(run.stderr).toContain('ready 3/3 nodes (3 updated)');
    expect(pulled).toEqual(['node-a', 'node-b', 'node-c'].map((node) => `${node} ${pinned}`));
    const daemonSet = fake.get('/apis/apps/v1/namespaces/metaflow/daemonsets', result.name) as DaemonSetJson;
    expect(daemonSet.spec.template.spec.initContainers.map((c) => [c.image, c.command[0]])).toEqual([[pinned, built.steps['start']!.python]]);
    expect(daemonSet.spec.template.spec.imagePullSecrets).toEqual([{ name: 'prebuilt-pull' }]);

    const again = await runCli(['prepull', 'one_env_flow.py', '-n', 'metaflow', '--pull-secret', 'prebuilt-pull'], { env, cwd: dir, timeoutMs: 60_000 });
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toContain('is up to date');
    expect(controller.rollouts.get(result.name)).toBe(1);

    const removed = await runCli(['prepull', 'one_env_flow.py', '-n', 'metaflow', '--remove'], { env, cwd: dir, timeoutMs: 60_000 });
    expect(removed.code, removed.stderr).toBe(0);
    expect(removed.stdout).toContain(`removed DaemonSet metaflow/${result.name}`);
    expect(fake.get('/apis/apps/v1/namespaces/metaflow/daemonsets', result.name)).toBeUndefined();
  }, 120_000);

  itWith(NEEDS, 'SIGINT while waiting: exit 130, the DaemonSet stays and stderr says how to remove it', async () => {
    hold = true;
    let sent = false;
    try {
      const run = await runCli(['prepull', 'one_env_flow.py', '-n', 'metaflow'], {
        env,
        cwd: dir,
        timeoutMs: 60_000,
        // One SIGINT (a second one exits at once, by design).
        onStderr: (stderr, kill) => {
          if (!sent && stderr.includes('ready 0/3 nodes')) kill('SIGINT');
          sent ||= stderr.includes('ready 0/3 nodes');
        },
      });
      expect(run.code, run.stderr).toBe(130);
      expect(run.stderr).toContain('it stays in the cluster and its pods keep pulling. Remove it with: prebuilt prepull one_env_flow.py --namespace metaflow --remove');
      expect(run.stderr).toContain('interrupted (SIGINT)');
      expect(fake.list('/apis/apps/v1/namespaces/metaflow/daemonsets')).toHaveLength(1);
    } finally {
      hold = false;
      const removed = await runCli(['prepull', 'one_env_flow.py', '-n', 'metaflow', '--remove'], { env, cwd: dir, timeoutMs: 60_000 });
      expect(removed.code, removed.stderr).toBe(0);
    }
  }, 60_000);

  itWith(NEEDS, 'an image map naming an image the registry no longer has: exit 1 at the timeout, the hint says to build again', async () => {
    const gone = JSON.parse(JSON.stringify(built)) as BuildJson;
    const start = gone.steps['start']!;
    start.pinnedImage = start.pinnedImage!.replace(/@sha256:[0-9a-f]{64}$/, `@sha256:${'0'.repeat(64)}`);
    const stateFile = join(dir, 'gone-images.json');
    await writeFile(stateFile, JSON.stringify({ flow: gone.flow, images: gone.images, steps: gone.steps }));
    try {
      const run = await runCli(['prepull', 'one_env_flow.py', '-n', 'metaflow', '--timeout', '2s', '--json'], { env: { ...env, METAFLOW_PREBUILT_STATE_FILE: stateFile }, cwd: dir, timeoutMs: 60_000 });
      expect(run.code, run.stderr).toBe(1);
      const json = parseJson<{ ok: boolean; error: { code: string; message: string; hint: string } }>(run);
      expect(json.ok).toBe(false);
      expect(json.error.message).toContain(`image ${start.pinnedImage} (container pull-1-start) on node-a, node-b, node-c: ImagePullBackOff`);
      expect(json.error.hint).toContain(`The registry no longer has ${start.pinnedImage}`);
    } finally {
      await runCli(['prepull', 'one_env_flow.py', '-n', 'metaflow', '--remove'], { env, cwd: dir, timeoutMs: 60_000 });
    }
  }, 60_000);

  itWith(NEEDS, "METAFLOW_DEFAULT_DECOSPECS=batch in Metaflow's configuration file: every step is on AWS Batch, none warmed, the output says why (nothing is created)", async () => {
    const home = join(fixtures.dir, 'metaflow-home');
    await mkdir(home, { recursive: true });
    await writeFile(join(home, 'config.json'), JSON.stringify({ METAFLOW_DEFAULT_DECOSPECS: 'batch' }));
    const before = pulled.length;
    const run = await runCli(['prepull', 'one_env_flow.py', '-n', 'metaflow', '--json'], { env: { ...env, METAFLOW_HOME: home, METAFLOW_DEFAULT_DECOSPECS: undefined }, cwd: dir, timeoutMs: 60_000 });
    expect(run.code, run.stderr).toBe(0);
    const source = `METAFLOW_DEFAULT_DECOSPECS in ${join(home, 'config.json')} (batch)`;
    expect(parseJson<{ ok: boolean; daemonSets: unknown[]; batchSteps: unknown[] }>(run)).toMatchObject({ ok: true, daemonSets: [], batchSteps: [{ step: 'start', source }, { step: 'end', source }] });
    expect(fake.list('/apis/apps/v1/namespaces/metaflow/daemonsets')).toEqual([]);
    expect(pulled.length).toBe(before);
  }, 60_000);

  itWith(NEEDS, 'a step added to the flow since the build: exit 2, run prebuilt build first (nothing is created)', async () => {
    const changed = ONE_ENV_FLOW.replace('self.next(self.end)', 'self.next(self.extra)').replace('    @conda(packages={"tinynum": "1.4.0"})\n    @step\n    def end', '    @step\n    def extra(self):\n        self.next(self.end)\n\n    @conda(packages={"tinynum": "1.4.0"})\n    @step\n    def end');
    expect(changed).toContain('def extra');
    await writeFile(join(dir, 'changed_flow.py'), changed);
    const run = await runCli(['prepull', 'changed_flow.py', '-n', 'metaflow'], { env: { ...env, METAFLOW_PREBUILT_STATE_FILE: built.stateFile! }, cwd: dir, timeoutMs: 60_000 });
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('has no image for step extra: the flow changed since its last build');
    expect(run.stderr).toContain("hint: Run `prebuilt build changed_flow.py` first (it builds every step's image).");
    expect(fake.list('/apis/apps/v1/namespaces/metaflow/daemonsets')).toEqual([]);
  }, 60_000);
});
