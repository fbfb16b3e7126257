/**
 * Step placements checked against real Metaflow: the fixture flow is run through Metaflow's own CLI
 * with the same `--with` specs and settings (__fixtures__/placement/placement_oracle.py records each
 * @kubernetes after its init and step_init, and stops before any task), and compared with
 * stepPlacements(). Needs a Metaflow source checkout: PREBUILT_TEST_METAFLOW_SOURCE=<dir holding metaflow/>.
 */
import { execFile } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, afterEach, expect, it } from 'vitest';
import { PrebuiltError } from '@prebuilt/core';
import { readFlow } from '@prebuilt/metaflow';
import { describeOrFailInCi, metaflowSource } from '../../../../test/services.js';
import { attachedDecorators, batchSteps, isDefaultPlacement, placementDefaults, stepPlacements } from './prepull-placement.js';

const run = promisify(execFile);
const { source, missing } = metaflowSource();
const FIXTURES = fileURLToPath(new URL('./__fixtures__/placement/', import.meta.url));

interface Placed {
  node_selector: Record<string, string> | null;
  tolerations: Record<string, unknown>[] | null;
  gpu: number | string | null;
  gpu_vendor: string;
  /** The step is on @batch (and has no @kubernetes). */
  batch?: true;
}

/** The fixture flows: placement.py (steps with and without @kubernetes / @resources), batch.py (a step with its own @batch). */
const PLACEMENT = { file: 'placement.py', flow: 'PlacementFlow' };
const BATCH = { file: 'batch.py', flow: 'BatchFlow' };
type Fixture = typeof PLACEMENT;
/** A case's Metaflow configuration files ($METAFLOW_HOME/config.json; the project's .metaflow/config.json) and flow, when not none and placement.py. */
interface Setup {
  config?: Record<string, string>;
  projectConfig?: Record<string, string>;
  fixture?: Fixture;
}

const GPU_TAINT = '{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}';

/** Command lines (`--with` specs) and Metaflow settings, each as a deploy would give them. */
const placed: [name: string, specs: string[], settings: Record<string, string>, setup?: Setup][] = [
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
  ["METAFLOW_DEFAULT_DECOSPECS in Metaflow's configuration file attaches as the environment's does", [], {}, { config: { METAFLOW_DEFAULT_DECOSPECS: 'kubernetes:compute_pool=fromfile resources:gpu=1' } }],
  [
    "an empty METAFLOW_DEFAULT_DECOSPECS in the environment turns the configuration file's off",
    ['kubernetes'],
    { METAFLOW_DEFAULT_DECOSPECS: '' },
    { config: { METAFLOW_DEFAULT_DECOSPECS: 'kubernetes:compute_pool=fromfile resources:gpu=1' } },
  ],
  [
    "the project's .metaflow/config.json (where the flow runs) wins over the global configuration file",
    [],
    {},
    { config: { METAFLOW_DEFAULT_DECOSPECS: 'kubernetes:compute_pool=fromfile', METAFLOW_KUBERNETES_GPU_VENDOR: 'amd' }, projectConfig: { METAFLOW_DEFAULT_DECOSPECS: 'kubernetes:compute_pool=project resources:gpu=1' } },
  ],
  [
    "METAFLOW_KUBERNETES_NODE_SELECTOR and _TOLERATIONS set empty in the environment turn the configuration file's off",
    ['kubernetes'],
    { METAFLOW_KUBERNETES_NODE_SELECTOR: '', METAFLOW_KUBERNETES_TOLERATIONS: '' },
    { config: { METAFLOW_KUBERNETES_NODE_SELECTOR: 'zone=fromfile', METAFLOW_KUBERNETES_TOLERATIONS: `[${GPU_TAINT}]` } },
  ],
  [
    "an empty key in the project's .metaflow/config.json turns the global file's off",
    ['kubernetes'],
    {},
    { config: { METAFLOW_KUBERNETES_NODE_SELECTOR: 'zone=fromfile' }, projectConfig: { METAFLOW_KUBERNETES_NODE_SELECTOR: '' } },
  ],
  ["a step's own @batch is on AWS Batch, the others are placed anywhere", [], {}, { fixture: BATCH }],
  ['--with batch sends every step to AWS Batch', ['batch'], {}, { fixture: BATCH }],
  ["METAFLOW_DEFAULT_DECOSPECS' batch (in the configuration file) sends every step to AWS Batch", [], {}, { fixture: BATCH, config: { METAFLOW_DEFAULT_DECOSPECS: 'batch' } }],
];

/** Refused by Metaflow, and so by prepull (the message names the --with). */
const refused: [name: string, spec: string, metaflow: RegExp, ours: RegExp, fixture?: Fixture, settings?: Record<string, string>][] = [
  ['a k=v node selector with a plain key is split at ",zone=" into an attribute @kubernetes lacks', 'kubernetes:node_selector=pool=gpu,zone=a', /Decorator 'kubernetes' does not support the attribute 'zone'/, /^--with kubernetes:node_selector=pool=gpu,zone=a: Metaflow's @kubernetes does not support the attribute 'zone'/],
  ['a GPU vendor other than nvidia or amd', 'kubernetes:gpu_vendor=intel', /GPU vendor intel for step \w+ is not currently supported/, /^--with kubernetes:gpu_vendor=intel is not valid for Metaflow: the GPU vendor "intel" is not one Metaflow supports/],
  ['--with batch on a step with its own @kubernetes', 'batch', /Step own is marked for execution both on AWS Batch and Kubernetes/, /^placement\.py:\d+: step 'own' has @kubernetes, and --with batch gives it @batch too/],
  ['--with kubernetes on a step with its own @batch', 'kubernetes', /Step train is marked for execution both on AWS Batch and Kubernetes/, /^batch\.py:\d+: step 'train' has @batch, and --with kubernetes gives it @kubernetes too/, BATCH],
  ['METAFLOW_KUBERNETES_GPU_VENDOR set empty (not the default nvidia)', 'kubernetes', /GPU vendor {2}for step \w+ is not currently supported/, /^METAFLOW_KUBERNETES_GPU_VENDOR is not valid for Metaflow: the GPU vendor "" is not one Metaflow supports/, PLACEMENT, { METAFLOW_KUBERNETES_GPU_VENDOR: '' }],
];

describeOrFailInCi(
  'step placements agree with real Metaflow',
  missing,
  () => {
    // Metaflow creates .metaflow/ where it runs, and reads its configuration from METAFLOW_HOME: work on a copy.
    const dir = mkdtempSync(join(tmpdir(), 'prebuilt-placement-oracle-'));
    for (const fixture of [PLACEMENT, BATCH]) cpSync(join(FIXTURES, fixture.file), join(dir, fixture.file));
    const config = join(dir, 'config.json');
    const projectConfig = join(dir, '.metaflow', 'config.json');
    afterEach(() => {
      rmSync(config, { force: true });
      rmSync(projectConfig, { force: true });
    });
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
    async function oracle(specs: string[], env: Record<string, string | undefined>, fixture: Fixture = PLACEMENT): Promise<{ line: string; output: string }> {
      const args = [join(FIXTURES, 'placement_oracle.py'), fixture.file, fixture.flow, ...specs.flatMap((spec) => ['--with', spec])];
      const { stdout, stderr } = await run(python, args, { cwd: dir, env });
      const line = stdout.split('\n').find((l) => l.startsWith('PLACED=') || l.startsWith('REFUSED='));
      if (!line) throw new Error(`Metaflow printed no placement:\n${stdout}${stderr}`);
      return { line, output: `${stdout}${stderr}` };
    }

    it.each(placed)('%s', async (_name, specs, settings, setup = {}) => {
      const env = { ...base, ...settings };
      const fixture = setup.fixture ?? PLACEMENT;
      if (setup.config) writeFileSync(config, JSON.stringify(setup.config));
      if (setup.projectConfig) {
        mkdirSync(dirname(projectConfig), { recursive: true });
        writeFileSync(projectConfig, JSON.stringify(setup.projectConfig));
      }
      const [{ line }, flow] = await Promise.all([oracle(specs, env, fixture), readFlow(join(dir, fixture.file), { env, cwd: dir })]);
      expect(line).toMatch(/^PLACED=/);
      const metaflow = JSON.parse(line.slice('PLACED='.length)) as Record<string, Placed>;
      const names = flow.steps.map((step) => step.name);
      // Read from where Metaflow ran, as `prebuilt prepull` reads from where the user runs it (the project's configuration is found from `cwd`, not this process's directory).
      const [attached, defaults] = [attachedDecorators(specs, env, dir), placementDefaults(env, dir)];
      const groups = stepPlacements(flow, names, fixture.file, defaults, attached);
      // Metaflow's steps on @batch are ours; a step with neither decorator runs anywhere (prepull warms it on every node).
      const onBatch = Object.keys(metaflow).filter((step) => metaflow[step]!.batch);
      expect(batchSteps(flow, names, fixture.file, attached).map((entry) => entry.step).sort()).toEqual(onBatch.sort());
      for (const step of names.filter((name) => !(name in metaflow))) expect(isDefaultPlacement(groups.find((group) => group.steps.includes(step))!), step).toBe(true);
      for (const step of Object.keys(metaflow).filter((name) => !onBatch.includes(name))) {
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

    it.each(refused)('refused: %s', async (_name, spec, metaflow, ours, fixture = PLACEMENT, settings = {}) => {
      const env = { ...base, ...settings };
      const [{ line, output }, flow] = await Promise.all([oracle([spec], env, fixture), readFlow(join(dir, fixture.file), { env, cwd: dir })]);
      expect(line).toMatch(/^REFUSED=/);
      expect(output).toMatch(metaflow);
      const error = (() => {
        try {
          stepPlacements(flow, flow.steps.map((step) => step.name), fixture.file, placementDefaults(env, dir), attachedDecorators([spec], env, dir));
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
