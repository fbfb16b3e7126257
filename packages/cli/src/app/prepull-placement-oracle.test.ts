/**
 * Step placements checked against real Metaflow: the fixture flow is run through Metaflow's own CLI
 * with the same `--with` specs and settings (__fixtures__/placement/placement_oracle.py records each
 * @kubernetes after its init and step_init, and stops before any task), and compared with
 * stepPlacements(). Needs a Metaflow source checkout: PREBUILT_TEST_METAFLOW_SOURCE=<dir holding metaflow/>.
 */
import { execFile } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, expect, it } from 'vitest';
import { PrebuiltError } from '@prebuilt/core';
import { readFlow } from '@prebuilt/metaflow';
import { describeOrFailInCi, metaflowSource } from '../../../../test/services.js';
import { attachedDecorators, placementDefaults, stepPlacements } from './prepull-placement.js';

const run = promisify(execFile);
const { source, missing } = metaflowSource();
const FIXTURES = fileURLToPath(new URL('./__fixtures__/placement/', import.meta.url));

interface Placed {
  node_selector: Record<string, string> | null;
  tolerations: Record<string, unknown>[] | null;
  gpu: number | string | null;
  gpu_vendor: string;
}

const GPU_TAINT = '{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}';

/** Command lines (`--with` specs) and Metaflow settings, each as a deploy would give them. */
const placed: [name: string, specs: string[], settings: Record<string, string>][] = [
  [
    'the first --with kubernetes goes to the steps without their own (the second attaches nothing), --with resources gives GPUs to those without @resources',
    [`kubernetes:node_selector={"pool": "gpu"},tolerations=[${GPU_TAINT}],gpu_vendor=amd`, 'kubernetes:compute_pool=ignored', 'resources:gpu=1'],
    {},
  ],
  ['a node selector string whose keys have dots stays one attribute; compute_pool adds its label', ['kubernetes:node_selector=kubernetes.io/arch=amd64,node.kubernetes.io/instance-type=g5,compute_pool=p1'], {}],
  [
    "METAFLOW_DEFAULT_DECOSPECS attaches like --with; Metaflow's default selector and GPU vendor fill in",
    [],
    { METAFLOW_DEFAULT_DECOSPECS: 'kubernetes:compute_pool=dflt', METAFLOW_KUBERNETES_NODE_SELECTOR: 'zone=a', METAFLOW_KUBERNETES_GPU_VENDOR: 'amd' },
  ],
];

/** Refused by Metaflow, and so by prepull (the message names the --with). */
const refused: [name: string, spec: string, metaflow: RegExp, ours: RegExp][] = [
  ['a k=v node selector with a plain key is split at ",zone=" into an attribute @kubernetes lacks', 'kubernetes:node_selector=pool=gpu,zone=a', /Decorator 'kubernetes' does not support the attribute 'zone'/, /^--with kubernetes:node_selector=pool=gpu,zone=a: Metaflow's @kubernetes does not support the attribute 'zone'/],
  ['a GPU vendor other than nvidia or amd', 'kubernetes:gpu_vendor=intel', /GPU vendor intel for step \w+ is not currently supported/, /^--with kubernetes:gpu_vendor=intel is not valid for Metaflow: the GPU vendor "intel" is not one Metaflow supports/],
];

describeOrFailInCi(
  'step placements agree with real Metaflow',
  missing,
  () => {
    // Metaflow creates .metaflow/ where it runs, and reads its configuration from METAFLOW_HOME: work on a copy.
    const dir = mkdtempSync(join(tmpdir(), 'prebuilt-placement-oracle-'));
    cpSync(join(FIXTURES, 'placement.py'), join(dir, 'placement.py'));
    afterAll(() => rmSync(dir, { recursive: true, force: true }));
    const python = process.env.METAFLOW_PREBUILT_PYTHON ?? 'python3';
    const base: Record<string, string | undefined> = {
      ...process.env,
      PYTHONPATH: source,
      METAFLOW_HOME: dir,
      METAFLOW_PROFILE: undefined,
      METAFLOW_DEFAULT_DECOSPECS: undefined,
      METAFLOW_KUBERNETES_NODE_SELECTOR: undefined,
      METAFLOW_KUBERNETES_TOLERATIONS: undefined,
      METAFLOW_KUBERNETES_GPU_VENDOR: undefined,
      USERNAME: 'prebuilt-test',
      METAFLOW_DEFAULT_METADATA: 'local',
      // @kubernetes needs a cloud datastore to pass its checks; nothing is contacted.
      METAFLOW_DEFAULT_DATASTORE: 's3',
      METAFLOW_DATASTORE_SYSROOT_S3: 's3://prebuilt-test/metaflow',
      METAFLOW_KUBERNETES_NAMESPACE: 'default',
      AWS_ACCESS_KEY_ID: 'test',
      AWS_SECRET_ACCESS_KEY: 'test',
      AWS_DEFAULT_REGION: 'us-east-1',
    };

    /** Metaflow's answer: the `PLACED=`/`REFUSED=` line, and all it printed (its refusal's message). */
    async function oracle(specs: string[], env: Record<string, string | undefined>): Promise<{ line: string; output: string }> {
      const args = [join(FIXTURES, 'placement_oracle.py'), 'placement.py', 'PlacementFlow', ...specs.flatMap((spec) => ['--with', spec])];
      const { stdout, stderr } = await run(python, args, { cwd: dir, env });
      const line = stdout.split('\n').find((l) => l.startsWith('PLACED=') || l.startsWith('REFUSED='));
      if (!line) throw new Error(`Metaflow printed no placement:\n${stdout}${stderr}`);
      return { line, output: `${stdout}${stderr}` };
    }

    it.each(placed)('%s', async (_name, specs, settings) => {
      const env = { ...base, ...settings };
      const [{ line }, flow] = await Promise.all([oracle(specs, env), readFlow(join(dir, 'placement.py'), { env, cwd: dir })]);
      expect(line).toMatch(/^PLACED=/);
      const metaflow = JSON.parse(line.slice('PLACED='.length)) as Record<string, Placed>;
      const names = flow.steps.map((step) => step.name);
      const groups = stepPlacements(flow, names, 'placement.py', placementDefaults(env), attachedDecorators(specs, env));
      expect(Object.keys(metaflow).sort()).toEqual([...names].sort());
      for (const step of names) {
        const mf = metaflow[step]!;
        const ours = groups.find((group) => group.steps.includes(step))!;
        const gpu = mf.gpu !== null && Number(mf.gpu) > 0;
        // Metaflow's toleration arguments are V1Toleration's Python names; the fixture's are the same in both.
        expect({ step, nodeSelector: ours.nodeSelector, tolerations: ours.tolerations, gpu: ours.gpu, gpuVendor: ours.gpuVendor }).toEqual({
          step,
          nodeSelector: mf.node_selector ?? {},
          tolerations: mf.tolerations ?? [],
          gpu,
          gpuVendor: gpu ? mf.gpu_vendor.toLowerCase() : undefined,
        });
      }
    });

    it.each(refused)('refused: %s', async (_name, spec, metaflow, ours) => {
      const [{ line, output }, flow] = await Promise.all([oracle([spec], base), readFlow(join(dir, 'placement.py'), { env: base, cwd: dir })]);
      expect(line).toMatch(/^REFUSED=/);
      expect(output).toMatch(metaflow);
      const error = (() => {
        try {
          stepPlacements(flow, flow.steps.map((step) => step.name), 'placement.py', placementDefaults(base), attachedDecorators([spec], base));
        } catch (e) {
          return e;
        }
        return undefined;
      })();
      expect(PrebuiltError.isInstance(error)).toBe(true);
      expect((error as PrebuiltError).message).toMatch(ours);
      expect((error as PrebuiltError).exitCode).toBe(2);
    });
  },
);
