import { describe, expect, it } from 'vitest';
import { InputError } from '@prebuilt/core';
import { mergeStepEnv, stepGpus } from './merge.js';
import type { EnvDecorator, EnvDecoratorName, FlowFile, FlowStep, RemoteDecorator } from './read-flow.js';

function deco(name: EnvDecoratorName, fields: Partial<Omit<EnvDecorator, 'name' | 'line' | 'argLines'>>, line = 1): EnvDecorator {
  const argLines: Record<string, number> = {};
  for (const key of Object.keys(fields)) argLines[key] = line;
  return { name, line, argLines, ...fields };
}

function flow(fields: Partial<Pick<FlowFile, 'condaBase' | 'pypiBase'>> = {}): Pick<FlowFile, 'file' | 'condaBase' | 'pypiBase'> {
  return { file: 'flow.py', ...fields };
}

const step = (fields: Partial<FlowStep> = {}): FlowStep => ({ name: 'train', line: 10, imports: [], ...fields });

describe('mergeStepEnv: packages', () => {
  it('layers base libraries < base packages < step libraries < step packages', () => {
    const env = mergeStepEnv(
      flow({ condaBase: deco('conda_base', { libraries: { a: 'bl', b: 'bl', c: 'bl', d: 'bl' }, packages: { b: 'bp', c: 'bp', d: 'bp' } }) }),
      step({ conda: deco('conda', { libraries: { c: 'sl', d: 'sl' }, packages: { d: 'sp' } }) }),
      '3.11.7',
    );
    expect(env.conda).toEqual({ a: 'bl', b: 'bp', c: 'sl', d: 'sp' });
    expect(env.pypi).toEqual({});
  });

  it('overlays @pypi packages on @pypi_base', () => {
    const env = mergeStepEnv(
      flow({ pypiBase: deco('pypi_base', { packages: { requests: '2.32.3', rich: '' } }) }),
      step({ pypi: deco('pypi', { packages: { requests: '2.31.0' } }) }),
      '3.11.7',
    );
    expect(env).toMatchObject({ conda: {}, pypi: { requests: '2.31.0', rich: '' }, usesPypi: true, disabled: false });
  });
});

describe('mergeStepEnv: python', () => {
  const cases: [string, Parameters<typeof mergeStepEnv>[0], FlowStep, string][] = [
    ['default', flow(), step(), '3.11.7'],
    ['@conda_base', flow({ condaBase: deco('conda_base', { python: '3.10' }) }), step(), '3.10'],
    ['@conda over @conda_base', flow({ condaBase: deco('conda_base', { python: '3.10' }) }), step({ conda: deco('conda', { python: '3.12' }) }), '3.12'],
    ['@conda python None falls back', flow({ condaBase: deco('conda_base', { python: '3.10' }) }), step({ conda: deco('conda', { python: null }) }), '3.10'],
    ['@pypi_base over @conda', flow({ pypiBase: deco('pypi_base', { python: '3.9' }) }), step({ conda: deco('conda', { python: '3.12' }) }), '3.9'],
    [
      '@pypi over @pypi_base',
      flow({ pypiBase: deco('pypi_base', { python: '3.9' }) }),
      step({ pypi: deco('pypi', { python: '3.13' }) }),
      '3.13',
    ],
    ['@pypi without python: @conda python', flow(), step({ pypi: deco('pypi', {}), conda: deco('conda', { python: '3.12' }) }), '3.12'],
  ];
  it.each(cases)('%s', (_title, flowFile, s, python) => {
    expect(mergeStepEnv(flowFile, s, '3.11.7').python).toBe(python);
  });

  it('rejects a python that is not a version, pointing at the decorator line', () => {
    try {
      mergeStepEnv(flow(), step({ conda: deco('conda', { python: '3.x' }, 7) }), '3.11.7');
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(InputError);
      expect((error as InputError).line).toBe(7);
      expect((error as InputError).message).toBe("flow.py:7: step 'train' asks for python '3.x', which is not a version.");
    }
  });
});

describe('mergeStepEnv: a free-threaded python', () => {
  it("names it as such (Metaflow's @conda takes python='3.13t'), with the fix, pointing at the decorator line", () => {
    try {
      mergeStepEnv(flow(), step({ conda: deco('conda', { python: '3.13t' }, 9) }), '3.11.7');
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(InputError);
      expect((error as InputError).line).toBe(9);
      expect((error as InputError).message).toBe("flow.py:9: step 'train' asks for the free-threaded python '3.13t', which prebuilt does not build.");
      expect((error as InputError).hint).toBe('Ask for the python without the \'t\' ("3.13"): prebuilt builds CPython\'s standard (GIL) interpreter.');
    }
  });
});

describe('mergeStepEnv: disabled', () => {
  const base = flow({ condaBase: deco('conda_base', { disabled: true, packages: { numpy: '' } }) });
  it('takes the base value when the step says nothing or None', () => {
    expect(mergeStepEnv(base, step(), '3.11.7')).toMatchObject({ disabled: true, python: null, conda: {}, pypi: {} });
    expect(mergeStepEnv(base, step({ conda: deco('conda', { disabled: null }) }), '3.11.7').disabled).toBe(true);
  });
  it('lets the step override the base', () => {
    expect(mergeStepEnv(base, step({ conda: deco('conda', { disabled: false }) }), '3.11.7')).toMatchObject({
      disabled: false,
      python: '3.11.7',
      conda: { numpy: '' },
    });
    expect(mergeStepEnv(flow(), step({ conda: deco('conda', { disabled: true }) }), '3.11.7').disabled).toBe(true);
  });
  it('is disabled when @pypi or @pypi_base is disabled, and then skips the mixing check', () => {
    const pypiOff = flow({ pypiBase: deco('pypi_base', { disabled: true }), condaBase: deco('conda_base', { packages: { numpy: '' } }) });
    expect(mergeStepEnv(pypiOff, step(), '3.11.7').disabled).toBe(true);
    expect(mergeStepEnv(flow(), step({ pypi: deco('pypi', { disabled: true }) }), '3.11.7').disabled).toBe(true);
  });
  it('keeps remote and gpu on a disabled step', () => {
    const env = mergeStepEnv(base, step({ remote: { name: 'batch', line: 3, gpu: 1, image: { kind: 'absent' } } }), '3.11.7');
    expect(env).toMatchObject({ disabled: true, remote: 'batch', gpu: true });
  });
});

describe('mergeStepEnv: conda and PyPI together', () => {
  it('refuses conda packages on a step that uses @pypi, naming the step and the lines', () => {
    const f = flow({ condaBase: deco('conda_base', { libraries: { numpy: '' } }, 3) });
    try {
      mergeStepEnv(f, step({ pypi: deco('pypi', {}, 9) }), '3.11.7');
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(InputError);
      expect((error as InputError).line).toBe(3);
      expect((error as InputError).message).toMatch(/^flow\.py:3: step 'train' asks for conda packages \(numpy, from @conda_base\) and uses @pypi \(line 9\)/);
    }
  });
  it('allows @pypi with a @conda that only sets python', () => {
    const env = mergeStepEnv(flow(), step({ conda: deco('conda', { python: '3.12' }), pypi: deco('pypi', { packages: { rich: '' } }) }), '3.11.7');
    expect(env).toMatchObject({ python: '3.12', conda: {}, pypi: { rich: '' } });
  });
});

describe('mergeStepEnv: remote', () => {
  it('reports the remote decorator and whether it asks for a GPU', () => {
    const remote = (gpu: number | null) => step({ remote: { name: 'kubernetes', line: 2, gpu, image: { kind: 'absent' } } });
    expect(mergeStepEnv(flow(), remote(null), '3.11.7')).toMatchObject({ remote: 'kubernetes', gpu: false });
    expect(mergeStepEnv(flow(), remote(0), '3.11.7')).toMatchObject({ remote: 'kubernetes', gpu: false });
    expect(mergeStepEnv(flow(), remote(4), '3.11.7')).toMatchObject({ remote: 'kubernetes', gpu: true });
    expect(mergeStepEnv(flow(), step(), '3.11.7')).toMatchObject({ remote: null, gpu: false });
  });
});

describe('mergeStepEnv: GPUs', () => {
  const remote = (name: 'kubernetes' | 'batch', gpu: number | null): RemoteDecorator => ({ name, line: 3, gpu, image: { kind: 'absent' } });
  const resources = (gpu: number | null) => ({ line: 4, gpu });

  it("a step asking for GPUs with @resources alone is a GPU step (Metaflow gives them to the @kubernetes/@batch it runs on)", () => {
    expect(mergeStepEnv(flow(), step({ resources: resources(1) }), '3.11.7').gpu).toBe(true);
    expect(mergeStepEnv(flow(), step({ remote: remote('kubernetes', null), resources: resources(2) }), '3.11.7')).toMatchObject({ remote: 'kubernetes', gpu: true });
    expect(mergeStepEnv(flow(), step({ resources: resources(null) }), '3.11.7').gpu).toBe(false);
  });

  it("counts them as Metaflow 2.19 does: @kubernetes takes @resources' gpu over its own, @batch the larger", () => {
    const cases: [RemoteDecorator | undefined, number | null, number][] = [
      [remote('kubernetes', 1), null, 1],
      [remote('kubernetes', 1), 0, 0],
      [remote('kubernetes', 0), 2, 2],
      [remote('batch', 1), 0, 1],
      [remote('batch', 0), 2, 2],
      [remote('batch', null), null, 0],
      [undefined, 1, 1],
      [undefined, null, 0],
    ];
    for (const [deco, gpus, expected] of cases) {
      expect(stepGpus({ ...(deco ? { remote: deco } : {}), ...(gpus !== null || deco === undefined ? { resources: resources(gpus) } : {}) }), JSON.stringify([deco?.name, deco?.gpu, gpus])).toBe(expected);
    }
  });
});
