import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, InputError } from '@prebuilt/core';
import type { FlowStep, RemoteDecorator } from '@prebuilt/metaflow';
import { attachedDecorators, batchSteps, COMPUTE_POOL_LABEL, isDefaultPlacement, parseStepNodeSelector, parseStepTolerations, placementDefaults, stepPlacements } from './prepull-placement.js';

const where = { file: 'flow.py', step: 'train', line: 7 };
const kubernetes = (more: Partial<RemoteDecorator> = {}): RemoteDecorator => ({ name: 'kubernetes', line: 5, gpu: null, image: { kind: 'absent' }, ...more });
const step = (name: string, more: Partial<FlowStep> = {}): FlowStep => ({ name, line: 10, imports: [], ...more });
const GPU_TAINT = { key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' };
const arg = (value: unknown, line = 5) => ({ kind: 'static' as const, value, line });
function thrown(fn: () => unknown): Error & { exitCode?: number; hint?: string } {
  try {
    fn();
  } catch (error) {
    return error as Error;
  }
  throw new Error('nothing was thrown');
}

describe('step placements (as Metaflow places @kubernetes pods)', () => {
  let home: string;
  beforeAll(async () => {
    home = await mkdtemp(join(tmpdir(), 'prebuilt-placement-'));
  });
  afterAll(() => rm(home, { recursive: true, force: true }));
  const none = (): Record<string, string> => ({ METAFLOW_HOME: home });

  it('node_selector: a dict, or "k=v,k2=v2" split as Metaflow does (at the first =); anything else an InputError at file:line naming the step', () => {
    expect(parseStepNodeSelector({ pool: 'gpu', 'node.kubernetes.io/instance-type': 'g5.xlarge' }, where)).toEqual({ pool: 'gpu', 'node.kubernetes.io/instance-type': 'g5.xlarge' });
    expect(parseStepNodeSelector('pool=gpu,zone=eu-1a', where)).toEqual({ pool: 'gpu', zone: 'eu-1a' });
    expect(parseStepNodeSelector('', where)).toEqual({});
    for (const [value, message] of [
      ['pool', /node_selector 'pool' has 'pool', which is not key=value/],
      ['a=1,a=2', /node_selector 'a=1,a=2' names a twice/],
      [['pool'], /must be a dict of node labels/],
      [{ pool: 3 }, /node_selector has "pool": 3, which is not a node label/],
      [{ 'bad key': 'x' }, /not a node label/],
    ] as const) {
      const error = (() => { try { parseStepNodeSelector(value, where); } catch (e) { return e; } return undefined; })();
      expect(error, JSON.stringify(value)).toBeInstanceOf(InputError);
      expect((error as InputError).message).toMatch(new RegExp(`^flow\\.py:7: step 'train': .*${message.source}`));
      expect((error as InputError).exitCode).toBe(2);
    }
  });

  it("tolerations: Metaflow's V1Toleration arguments (toleration_seconds → tolerationSeconds); an unknown key or a wrong type is refused", () => {
    expect(parseStepTolerations([GPU_TAINT, { key: 'spot', operator: 'Equal', value: 'true', effect: 'NoExecute', toleration_seconds: 30 }], where)).toEqual([
      GPU_TAINT,
      { key: 'spot', operator: 'Equal', value: 'true', effect: 'NoExecute', tolerationSeconds: 30 },
    ]);
    expect(() => parseStepTolerations({ key: 'x' }, where)).toThrow(/tolerations must be a list of dicts/);
    expect(() => parseStepTolerations([{ key: 'x', tolerationSeconds: 3 }], where)).toThrow(/has the key 'tolerationSeconds' \(Metaflow accepts key, operator, value, effect, toleration_seconds\)/);
    expect(() => parseStepTolerations([{ key: 5 }], where)).toThrow(/has key=5/);
  });

  it('groups steps by node selector, tolerations and GPUs (@resources counts), in the order of their first step', () => {
    const steps = [
      step('start'),
      step('train', { remote: kubernetes({ gpu: 1, nodeSelector: { kind: 'static', value: { pool: 'gpu' }, line: 5 }, tolerations: { kind: 'static', value: [GPU_TAINT], line: 5 } }) }),
      step('tune', { remote: kubernetes({ nodeSelector: { kind: 'static', value: 'pool=gpu', line: 6 }, tolerations: { kind: 'static', value: [GPU_TAINT], line: 6 } }), resources: { line: 7, gpu: 2 } }),
      step('score', { resources: { line: 8, gpu: 1 } }),
      step('end', { remote: kubernetes({ nodeSelector: { kind: 'static', value: {}, line: 9 } }) }),
    ];
    const groups = stepPlacements({ steps }, steps.map((s) => s.name), 'flow.py', placementDefaults(none()));
    expect(groups.map((g) => [g.steps, g.nodeSelector, g.tolerations, g.gpu])).toEqual([
      [['start', 'end'], {}, [], false],
      [['train', 'tune'], { pool: 'gpu' }, [GPU_TAINT], true],
      [['score'], {}, [], true],
    ]);
    expect(groups.map(isDefaultPlacement)).toEqual([true, false, false]);
    // Only the steps asked for.
    expect(stepPlacements({ steps }, ['score'], 'flow.py', {}).map((g) => g.steps)).toEqual([['score']]);
  });

  it("Metaflow's defaults METAFLOW_KUBERNETES_NODE_SELECTOR / _TOLERATIONS (environment, else its config file) apply where a step names none", async () => {
    const steps = [step('start'), step('train', { remote: kubernetes({ nodeSelector: { kind: 'static', value: { pool: 'gpu' }, line: 5 } }) })];
    const env = { ...none(), METAFLOW_KUBERNETES_NODE_SELECTOR: 'pool=cpu', METAFLOW_KUBERNETES_TOLERATIONS: JSON.stringify([{ key: 'team', operator: 'Exists' }]) };
    expect(stepPlacements({ steps }, ['start', 'train'], 'flow.py', placementDefaults(env)).map((g) => [g.steps, g.nodeSelector, g.tolerations])).toEqual([
      [['start'], { pool: 'cpu' }, [{ key: 'team', operator: 'Exists' }]],
      [['train'], { pool: 'gpu' }, [{ key: 'team', operator: 'Exists' }]],
    ]);
    await writeFile(join(home, 'config.json'), JSON.stringify({ METAFLOW_KUBERNETES_NODE_SELECTOR: 'pool=batch' }));
    expect(stepPlacements({ steps }, ['start'], 'flow.py', placementDefaults(none()))[0]!.nodeSelector).toEqual({ pool: 'batch' });
    await rm(join(home, 'config.json'));
    const bad = (() => { try { stepPlacements({ steps }, ['start'], 'flow.py', placementDefaults({ ...none(), METAFLOW_KUBERNETES_TOLERATIONS: '[{' })); } catch (e) { return e; } return undefined; })();
    expect(bad).toBeInstanceOf(ConfigError);
    expect((bad as ConfigError).message).toMatch(/^METAFLOW_KUBERNETES_TOLERATIONS is not valid for Metaflow: not JSON/);
  });

  it('a computed node_selector or tolerations is an InputError (exit 2) at file:line naming the step and the fix', () => {
    const steps = [step('train', { remote: kubernetes({ nodeSelector: { kind: 'dynamic', line: 12, why: "'os.environ[...]' is not a literal, a constant or a simple expression" } }) })];
    const error = (() => { try { stepPlacements({ steps }, ['train'], 'flow.py', {}); } catch (e) { return e; } return undefined; })() as InputError;
    expect(error).toBeInstanceOf(InputError);
    expect(error.message).toBe("flow.py:12: step 'train': the 'node_selector' argument of @kubernetes cannot be read without running the flow: 'os.environ[...]' is not a literal, a constant or a simple expression");
    expect(error.hint).toMatch(/literal or a module-level constant/);
  });

  it("an inherited step's computed node_selector is named at its base flow module's file and line, not the flow file's", () => {
    const steps = [step('train', { file: 'teamlib/base.py', remote: kubernetes({ nodeSelector: { kind: 'dynamic', line: 4, why: "'pick()' is not a literal, a constant or a simple expression" } }) })];
    const error = (() => { try { stepPlacements({ steps }, ['train'], 'flow.py', {}); } catch (e) { return e; } return undefined; })() as InputError;
    expect(error).toBeInstanceOf(InputError);
    expect(error.message).toMatch(/^teamlib\/base\.py:4: step 'train': the 'node_selector' argument/);
    expect(error.file).toBe('teamlib/base.py');
  });

  // Metaflow 2.19: decorators._attach_decorators_to_step (a step keeps its own @kubernetes whole),
  // cli.py / cli_components/run_cmds.py (--with, then METAFLOW_DEFAULT_DECOSPECS), KubernetesDecorator.init / step_init.
  describe('--with kubernetes:… / resources:… (the deploy\'s command line)', () => {
    it('the first --with kubernetes goes to every step without its own @kubernetes; a step\'s own wins whole (no merge); --with resources gives its gpu to steps without @resources', () => {
      const steps = [step('start'), step('own', { remote: kubernetes({ nodeSelector: arg({ pool: 'cpu' }) }) }), step('res', { resources: { line: 8, gpu: 2 } })];
      const attached = attachedDecorators(['kubernetes:node_selector={"pool": "gpu"},tolerations=[{"key": "gpu", "operator": "Exists"}],gpu_vendor=AMD', 'kubernetes:compute_pool=ignored', 'retry:times=3', 'resources:gpu=1'], none());
      expect(attached.get('kubernetes')?.source).toBe('--with kubernetes:node_selector={"pool": "gpu"},tolerations=[{"key": "gpu", "operator": "Exists"}],gpu_vendor=AMD');
      const groups = stepPlacements({ steps }, ['start', 'own', 'res'], 'flow.py', placementDefaults(none()), attached);
      expect(groups.map((g) => [g.steps, g.nodeSelector, g.tolerations, g.gpu, g.gpuVendor])).toEqual([
        [['start', 'res'], { pool: 'gpu' }, [{ key: 'gpu', operator: 'Exists' }], true, 'amd'],
        [['own'], { pool: 'cpu' }, [], true, 'nvidia'],
      ]);
    });

    it('METAFLOW_DEFAULT_DECOSPECS (environment, else the configuration file) comes after --with (the first of a name wins), and names itself in errors', async () => {
      const env = { ...none(), METAFLOW_DEFAULT_DECOSPECS: 'kubernetes:compute_pool=dflt resources:gpu=1' };
      expect(stepPlacements({ steps: [step('start')] }, ['start'], 'flow.py', {}, attachedDecorators([], env))[0]).toMatchObject({ nodeSelector: { [COMPUTE_POOL_LABEL]: 'dflt' }, gpu: true, gpuVendor: 'nvidia' });
      expect(stepPlacements({ steps: [step('start')] }, ['start'], 'flow.py', {}, attachedDecorators(['kubernetes:compute_pool=given'], env))[0]!.nodeSelector).toEqual({ [COMPUTE_POOL_LABEL]: 'given' });
      const error = thrown(() => stepPlacements({ steps: [step('start')] }, ['start'], 'flow.py', {}, attachedDecorators([], { ...none(), METAFLOW_DEFAULT_DECOSPECS: 'kubernetes:node_selector=pool' })));
      expect(error).toBeInstanceOf(ConfigError);
      expect(error.message).toBe("METAFLOW_DEFAULT_DECOSPECS (kubernetes:node_selector=pool) is not valid for Metaflow: node_selector 'pool' has 'pool', which is not key=value.");
      expect((error as ConfigError).setting).toBe('METAFLOW_DEFAULT_DECOSPECS');
      await writeFile(join(home, 'config.json'), JSON.stringify({ METAFLOW_DEFAULT_DECOSPECS: 'kubernetes:gpu_vendor=intel' }));
      const fromFile = thrown(() => stepPlacements({ steps: [step('start')] }, ['start'], 'flow.py', {}, attachedDecorators([], none())));
      await rm(join(home, 'config.json'));
      expect(fromFile.message).toBe(`METAFLOW_DEFAULT_DECOSPECS in ${join(home, 'config.json')} (kubernetes:gpu_vendor=intel) is not valid for Metaflow: the GPU vendor "intel" is not one Metaflow supports (nvidia or amd).`);
      expect(fromFile.hint).toMatch(/as Metaflow reads --with/);
    });

    it('an attribute @kubernetes does not take is refused as Metaflow refuses it (a "k=v,k2=v2" selector with plain keys is split into one), naming the --with and listing the attributes', () => {
      const error = thrown(() => attachedDecorators(['kubernetes:node_selector=pool=gpu,zone=a'], none()));
      expect(error).toBeInstanceOf(ConfigError);
      expect(error.message).toBe("--with kubernetes:node_selector=pool=gpu,zone=a: Metaflow's @kubernetes does not support the attribute 'zone'.");
      expect(error.hint).toMatch(/^The attributes of @kubernetes: cpu, memory, .*compute_pool/);
      expect(error.exitCode).toBe(2);
      // Written as JSON it is one attribute, as in Metaflow.
      expect(stepPlacements({ steps: [step('start')] }, ['start'], 'flow.py', {}, attachedDecorators(['kubernetes:node_selector={"pool": "gpu", "zone": "a"}'], none()))[0]!.nodeSelector).toEqual({ pool: 'gpu', zone: 'a' });
    });

    it('bad values are ConfigErrors naming the --with; a GPU count must be whole (a string of one is fine, as in step_init)', () => {
      const placeWith = (spec: string) => stepPlacements({ steps: [step('start')] }, ['start'], 'flow.py', {}, attachedDecorators([spec], none()));
      expect(placeWith('kubernetes:gpu="2"')[0]!.gpu).toBe(true);
      expect(thrown(() => placeWith('kubernetes:gpu=1.5')).message).toBe('--with kubernetes:gpu=1.5 is not valid for Metaflow: gpu=1.5 is not a whole number of GPUs.');
      expect(thrown(() => placeWith('kubernetes:tolerations={"key": "x"}')).message).toMatch(/^--with kubernetes:tolerations=\{"key": "x"\} is not valid for Metaflow: tolerations must be a list of dicts/);
      const vendor = thrown(() => placeWith('kubernetes:gpu_vendor=intel'));
      expect(vendor).toBeInstanceOf(ConfigError);
      expect(vendor.message).toBe('--with kubernetes:gpu_vendor=intel is not valid for Metaflow: the GPU vendor "intel" is not one Metaflow supports (nvidia or amd).');
      expect(vendor.hint).toMatch(/--with 'kubernetes:node_selector=/);
    });

    it('a step on @batch that --with kubernetes reaches is refused, as Metaflow refuses a step on both', () => {
      const steps = [step('start', { remote: { name: 'batch', line: 4, gpu: null, image: { kind: 'absent' } } })];
      const error = thrown(() => stepPlacements({ steps }, ['start'], 'flow.py', {}, attachedDecorators(['kubernetes'], none())));
      expect(error).toBeInstanceOf(InputError);
      expect(error.message).toBe("flow.py:4: step 'start' has @batch, and --with kubernetes gives it @kubernetes too, which Metaflow refuses (\"Step *start* is marked for execution both on AWS Batch and Kubernetes\").");
    });

    it('a step on AWS Batch has no placement: its own @batch, or --with batch / METAFLOW_DEFAULT_DECOSPECS (in the configuration file too) when it has no @kubernetes', async () => {
      const batch = (line: number): RemoteDecorator => ({ name: 'batch', line, gpu: 1, image: { kind: 'absent' } });
      const steps = [step('start'), step('train', { remote: batch(4) }), step('end')];
      const all = ['start', 'train', 'end'];
      expect(batchSteps({ steps }, all, 'flow.py', attachedDecorators([], none()))).toEqual([{ step: 'train', source: '@batch' }]);
      expect(stepPlacements({ steps }, all, 'flow.py', {}).map((group) => group.steps)).toEqual([['start', 'end']]);
      expect(batchSteps({ steps }, all, 'flow.py', attachedDecorators(['retry', 'batch:queue=q'], none()))).toEqual([
        { step: 'start', source: '--with batch:queue=q' },
        { step: 'train', source: '@batch' },
        { step: 'end', source: '--with batch:queue=q' },
      ]);
      expect(stepPlacements({ steps }, all, 'flow.py', {}, attachedDecorators(['batch'], none()))).toEqual([]);
      await writeFile(join(home, 'config.json'), JSON.stringify({ METAFLOW_DEFAULT_DECOSPECS: 'batch' }));
      try {
        expect(batchSteps({ steps }, ['start'], 'flow.py', attachedDecorators([], none()))).toEqual([{ step: 'start', source: `METAFLOW_DEFAULT_DECOSPECS in ${join(home, 'config.json')} (batch)` }]);
        // Set in the environment (empty too), the setting wins over the file.
        expect(batchSteps({ steps }, ['start'], 'flow.py', attachedDecorators([], { ...none(), METAFLOW_DEFAULT_DECOSPECS: '' }))).toEqual([]);
      } finally {
        await rm(join(home, 'config.json'));
      }
    });

    it('a step with its own @kubernetes that --with batch reaches is refused, and so is every step when both are attached', () => {
      const own = thrown(() => stepPlacements({ steps: [step('gpu', { remote: kubernetes() })] }, ['gpu'], 'flow.py', {}, attachedDecorators(['batch'], none())));
      expect(own).toBeInstanceOf(InputError);
      expect(own.message).toBe("flow.py:5: step 'gpu' has @kubernetes, and --with batch gives it @batch too, which Metaflow refuses (\"Step *gpu* is marked for execution both on AWS Batch and Kubernetes\").");
      const both = thrown(() => batchSteps({ steps: [step('start')] }, ['start'], 'flow.py', attachedDecorators(['kubernetes'], { ...none(), METAFLOW_DEFAULT_DECOSPECS: 'batch' })));
      expect(both.message).toBe("flow.py:10: step 'start' gets @kubernetes from --with kubernetes, and METAFLOW_DEFAULT_DECOSPECS (batch) gives it @batch too, which Metaflow refuses (\"Step *start* is marked for execution both on AWS Batch and Kubernetes\").");
      expect(both.exitCode).toBe(2);
    });
  });

  describe('compute_pool and gpu_vendor of a step\'s own @kubernetes', () => {
    it(`compute_pool is the node label ${'outerbounds.co/compute-pool'} over the node_selector (or Metaflow's default selector)`, () => {
      const steps = [
        step('start', { remote: kubernetes({ computePool: arg('a100'), nodeSelector: arg('team=ml,outerbounds.co/compute-pool=other') }) }),
        step('end', { remote: kubernetes({ computePool: arg('cpu-pool') }) }),
      ];
      const env = { ...none(), METAFLOW_KUBERNETES_NODE_SELECTOR: 'zone=a' };
      expect(stepPlacements({ steps }, ['start', 'end'], 'flow.py', placementDefaults(env)).map((g) => g.nodeSelector)).toEqual([
        { team: 'ml', [COMPUTE_POOL_LABEL]: 'a100' },
        { zone: 'a', [COMPUTE_POOL_LABEL]: 'cpu-pool' },
      ]);
      const bad = thrown(() => stepPlacements({ steps: [step('start', { remote: kubernetes({ computePool: arg('no pool!', 9) }) })] }, ['start'], 'flow.py', {}));
      expect(bad).toBeInstanceOf(InputError);
      expect(bad.message).toBe("flow.py:9: step 'start': compute_pool \"no pool!\" is not a node label value (Metaflow puts it in the label outerbounds.co/compute-pool).");
      const dynamic = thrown(() => stepPlacements({ steps: [step('start', { remote: kubernetes({ computePool: { kind: 'dynamic', line: 11, why: "'pool()' is not a literal" } }) })] }, ['start'], 'flow.py', {}));
      expect(dynamic.message).toBe("flow.py:11: step 'start': the 'compute_pool' argument of @kubernetes cannot be read without running the flow: 'pool()' is not a literal");
    });

    it("gpu_vendor places GPU steps apart (step's own, else METAFLOW_KUBERNETES_GPU_VENDOR, else nvidia; case aside); NVIDIA placements keep the key they had without a vendor", () => {
      const steps = [
        step('a', { remote: kubernetes({ gpu: 1, gpuVendor: arg('AMD') }) }),
        step('b', { remote: kubernetes({ gpu: 1 }) }),
        step('c', { remote: kubernetes({ gpuVendor: arg('amd') }) }),
      ];
      const groups = stepPlacements({ steps }, ['a', 'b', 'c'], 'flow.py', placementDefaults(none()));
      expect(groups.map((g) => [g.steps, g.gpu, g.gpuVendor])).toEqual([[['a'], true, 'amd'], [['b'], true, 'nvidia'], [['c'], false, undefined]]);
      expect(groups[1]!.key).toBe('{"gpu":true,"nodeSelector":{},"tolerations":[]}');
      expect(groups[0]!.key).toBe('{"gpu":true,"gpuVendor":"amd","nodeSelector":{},"tolerations":[]}');
      const fromSetting = stepPlacements({ steps: [steps[1]!] }, ['b'], 'flow.py', placementDefaults({ ...none(), METAFLOW_KUBERNETES_GPU_VENDOR: 'AMD' }));
      expect(fromSetting[0]!.gpuVendor).toBe('amd');
      const bad = thrown(() => stepPlacements({ steps: [step('c', { remote: kubernetes({ gpuVendor: arg('intel', 6) }) })] }, ['c'], 'flow.py', {}));
      expect(bad).toBeInstanceOf(InputError);
      expect(bad.message).toBe("flow.py:6: step 'c': the GPU vendor \"intel\" is not one Metaflow supports (nvidia or amd).");
      const setting = thrown(() => stepPlacements({ steps: [steps[1]!] }, ['b'], 'flow.py', placementDefaults({ ...none(), METAFLOW_KUBERNETES_GPU_VENDOR: 'intel' })));
      expect(setting).toBeInstanceOf(ConfigError);
      expect(setting.message).toMatch(/^METAFLOW_KUBERNETES_GPU_VENDOR is not valid for Metaflow: the GPU vendor "intel"/);
    });
  });
});
