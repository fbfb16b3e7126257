import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, InputError } from '@prebuilt/core';
import type { FlowStep, RemoteDecorator } from '@prebuilt/metaflow';
import { isDefaultPlacement, parseStepNodeSelector, parseStepTolerations, placementDefaults, stepPlacements } from './prepull-placement.js';

const where = { file: 'flow.py', step: 'train', line: 7 };
const kubernetes = (more: Partial<RemoteDecorator> = {}): RemoteDecorator => ({ name: 'kubernetes', line: 5, gpu: null, image: { kind: 'absent' }, ...more });
const step = (name: string, more: Partial<FlowStep> = {}): FlowStep => ({ name, line: 10, imports: [], ...more });
const GPU_TAINT = { key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' };

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
});
