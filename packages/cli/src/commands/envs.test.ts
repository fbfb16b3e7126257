/**
 * `prebuilt envs` through the real CLI (node bin/prebuilt.js, after `pnpm build`) over the flow
 * corpus in packages/metaflow/src/__fixtures__/flows: every merge rule and every input error.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { specHash, type EnvRequest } from '@prebuilt/core';
import type { FlowEnvsJson } from '@prebuilt/metaflow';

const run = promisify(execFile);
const BIN = fileURLToPath(new URL('../../bin/prebuilt.js', import.meta.url));
const DIST = fileURLToPath(new URL('../../dist/main.js', import.meta.url));
const FLOWS = fileURLToPath(new URL('../../../metaflow/src/__fixtures__/flows/', import.meta.url));

const CONDA_FORGE = 'https://conda.anaconda.org/conda-forge';

/** The host python3's real executable (resolved once: version-manager shims are slow to start). */
let hostPython = 'python3';

/**
 * A clean environment: no inherited prebuilt/pip settings, a fixed default python, the host
 * python3 given directly (the PATH lookup itself is covered by the default-python test).
 */
function cleanEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (value === undefined || key.startsWith('METAFLOW_') || key.startsWith('PIP_')) continue;
    env[key] = value;
  }
  return { ...env, METAFLOW_PREBUILT_DEFAULT_PYTHON: '3.11.9', METAFLOW_PREBUILT_PYTHON: hostPython, ...extra };
}

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

async function prebuilt(args: string[], env = cleanEnv()): Promise<CliResult> {
  try {
    const { stdout, stderr } = await run(process.execPath, [BIN, ...args], { cwd: FLOWS, env });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

/** A step of the `--json` contract, as @prebuilt/metaflow declares it. */
type StepJson = FlowEnvsJson['steps'][string];

async function envsJson(file: string, env = cleanEnv()): Promise<FlowEnvsJson> {
  const result = await prebuilt(['envs', file, '--json'], env);
  expect(result.stderr).toBe('');
  expect(result.code).toBe(0);
  return JSON.parse(result.stdout) as FlowEnvsJson;
}

/** The step as the JSON contract states it, with its specHash computed from the request. */
function expected(
  step: Omit<StepJson, 'specHash' | 'remote' | 'gpu' | 'disabled'> & Partial<Pick<StepJson, 'remote' | 'gpu' | 'disabled'>>,
  defaults: Pick<EnvRequest, 'channels' | 'indexUrl' | 'platform'> = { channels: [CONDA_FORGE], indexUrl: null, platform: 'linux-64' },
): StepJson {
  const disabled = step.disabled ?? false;
  return {
    python: step.python,
    conda: step.conda,
    pypi: step.pypi,
    disabled,
    remote: step.remote ?? null,
    gpu: step.gpu ?? false,
    specHash:
      disabled || step.python === null
        ? null
        : specHash({ python: step.python, conda: step.conda, pypi: step.pypi, ...defaults }),
  };
}

function disabledStep(remote: StepJson['remote'] = null): StepJson {
  return { python: null, conda: {}, pypi: {}, disabled: true, remote, gpu: false, specHash: null };
}

/** The line of a fixture that carries the `# expect-error` marker. */
function markedLine(file: string): number {
  const lines = readFileSync(join(FLOWS, file), 'utf8').split('\n');
  const index = lines.findIndex((line) => line.includes('# expect-error'));
  if (index === -1) throw new Error(`${file} has no '# expect-error' marker`);
  return index + 1;
}

beforeAll(async () => {
  if (!existsSync(DIST)) throw new Error(`${DIST} is missing: run \`pnpm build\` before these tests.`);
  hostPython = (await run('python3', ['-c', 'import sys; print(sys.executable)'])).stdout.trim();
});

describe.concurrent('prebuilt envs --json: merge rules', () => {
  it('overlays @conda on @conda_base, folds libraries under packages, takes python and remote per step', async () => {
    const out = await envsJson('merge_rules.py');
    expect(out.flow).toBe('MergeRulesFlow');
    expect(out.file).toBe('merge_rules.py');
    expect(Object.keys(out.steps)).toEqual(['start', 'override', 'newer_python', 'on_batch', 'end']);
    const base = { numpy: '1.26.4', pandas: '2.2.2', scipy: '1.13.0' };
    expect(out.steps.start).toEqual(expected({ python: '3.11', conda: base, pypi: {} }));
    expect(out.steps.override).toEqual(
      expected({ python: '3.11', conda: { ...base, pandas: '2.1.0', click: '8.1.7', pyarrow: '' }, pypi: {} }),
    );
    expect(out.steps.newer_python).toEqual(
      expected({ python: '3.12.4', conda: base, pypi: {}, remote: 'kubernetes', gpu: true }),
    );
    expect(out.steps.on_batch).toEqual(expected({ python: '3.11', conda: base, pypi: {}, remote: 'batch', gpu: false }));
    expect(out.steps.end).toEqual(expected({ python: '3.11', conda: base, pypi: {}, remote: 'kubernetes' }));
    // Same env, different remote: same specHash.
    expect(out.steps.end?.specHash).toBe(out.steps.start?.specHash);
    expect(out.steps.override?.specHash).not.toBe(out.steps.start?.specHash);
  });

  it('attaches @pypi_base to every step; @pypi python beats @conda python', async () => {
    const out = await envsJson('pypi_rules.py');
    const base = { requests: '2.32.3', Scikit_Learn: '>=1.4' };
    expect(out.steps).toEqual({
      start: expected({ python: '3.10.14', conda: {}, pypi: base }),
      step_pypi: expected({ python: '3.12', conda: {}, pypi: { ...base, requests: '2.31.0', rich: '' } }),
      conda_python: expected({ python: '3.10.14', conda: {}, pypi: base }),
      end: expected({ python: '3.10.14', conda: {}, pypi: base }),
    });
  });

  it('falls back from @pypi to @conda python, then to the default', async () => {
    const out = await envsJson('pypi_step_only.py');
    expect(out.flow).toBe('PypiStepOnlyFlow');
    expect(out.steps.start).toEqual(expected({ python: '3.11.9', conda: {}, pypi: { httpx: '0.27.0' } }));
    expect(out.steps.end).toEqual(expected({ python: '3.11.9', conda: {}, pypi: { httpx: '0.27.0' } }));
  });

  it('reads the metaflow.conda / mf.conda attribute form', async () => {
    const out = await envsJson('attribute_form.py');
    expect(out.flow).toBe('AttributeFormFlow');
    expect(out.steps).toEqual({
      start: expected({ python: '3.11.9', conda: { numpy: '1.26.4', pandas: '2.2.2' }, pypi: {}, remote: 'kubernetes', gpu: true }),
      end: expected({ python: '3.11.9', conda: { numpy: '1.26.4' }, pypi: {} }),
    });
  });

  it('follows `as` aliases and ignores look-alike decorators that are not Metaflow\'s', async () => {
    const out = await envsJson('aliases.py');
    expect(out.flow).toBe('AliasesFlow');
    expect(out.steps).toEqual({
      start: expected({ python: '3.11', conda: { polars: '1.0.0' }, pypi: {}, remote: 'batch', gpu: true }),
      end: expected({ python: '3.11', conda: {}, pypi: {} }),
    });
  });

  it('evaluates module and class constants, {**A, ...}, dict(), |, concatenation and f-strings', async () => {
    const out = await envsJson('constants.py');
    const base = { numpy: '1.26.4', pandas: '2.2.2' };
    expect(out.steps).toEqual({
      start: expected({ python: '3.11', conda: { ...base, click: '>=8', numpy: '2.0.0', pyarrow: '16.1.0' }, pypi: {} }),
      train: expected({
        python: '3.12',
        conda: { ...base, click: '>=8', scipy: '1.13.0', torch: '==2.3.1' },
        pypi: {},
        remote: 'kubernetes',
        gpu: true,
      }),
      end: expected({ python: '3.11', conda: { ...base, click: '>=8' }, pypi: {} }),
    });
  });

  it('takes disabled from the step when not None, else from the base', async () => {
    const out = await envsJson('disabled.py');
    expect(out.steps).toEqual({
      start: disabledStep(),
      enabled: expected({ python: '3.11.9', conda: { numpy: '1.26.4', pandas: '2.2.2' }, pypi: {} }),
      end: disabledStep(),
    });
  });

  it('disables a step through @pypi(disabled=True) or @conda(disabled="true")', async () => {
    const out = await envsJson('disabled_step.py');
    expect(out.steps).toEqual({
      start: disabledStep(),
      conda_off: disabledStep(),
      end: expected({ python: '3.11.9', conda: {}, pypi: { requests: '2.32.3' } }),
    });
  });

  it('uses METAFLOW_PREBUILT_DEFAULT_PYTHON, else the host python3 version', async () => {
    const pinned = await envsJson('default_python.py', cleanEnv({ METAFLOW_PREBUILT_DEFAULT_PYTHON: '3.12.1' }));
    expect(pinned.steps.start?.python).toBe('3.12.1');
    const env = cleanEnv();
    delete env.METAFLOW_PREBUILT_DEFAULT_PYTHON;
    delete env.METAFLOW_PREBUILT_PYTHON; // python3 from PATH
    const host = (await run('python3', ['-c', 'import sys; print("%d.%d.%d" % sys.version_info[:3])'], { env })).stdout.trim();
    const out = await envsJson('default_python.py', env);
    expect(out.steps).toEqual({
      start: expected({ python: host, conda: { numpy: '1.26.4' }, pypi: {} }),
      end: expected({ python: host, conda: {}, pypi: {} }),
    });
  });

  it('says of a misspelt METAFLOW_PREBUILT_* setting that it is ignored, naming the likely one, as lock does (stderr; the output stays)', async () => {
    const result = await prebuilt(['envs', 'default_python.py', '--json'], cleanEnv({ METAFLOW_PREBUILT_DEFAULT_PYTON: '3.12.1' }));
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toBe('note: METAFLOW_PREBUILT_DEFAULT_PYTON is not a setting prebuilt knows, ignored: did you mean METAFLOW_PREBUILT_DEFAULT_PYTHON?\n');
    expect((JSON.parse(result.stdout) as FlowEnvsJson).steps.start?.python).toBe('3.11.9');
  });

  it('picks the class run under if __name__ == "__main__" among several flows', async () => {
    const out = await envsJson('main_guard.py');
    expect(out.flow).toBe('RunThisFlow');
    expect(out.steps.start?.conda).toEqual({ numpy: '1.26.4' });
  });

  it('reads steps and @conda_base inherited from a base flow in the same file', async () => {
    const out = await envsJson('inheritance.py');
    expect(out.flow).toBe('ChildFlow');
    expect(out.steps).toEqual({
      start: expected({ python: '3.11', conda: { numpy: '1.26.4', pandas: '2.2.2' }, pypi: {} }),
      end: expected({ python: '3.11', conda: { numpy: '1.26.4' }, pypi: {} }),
    });
  });

  it('puts channels, index and platform from the environment into the specHash', async () => {
    const settings = {
      METAFLOW_PREBUILT_CONDA_CHANNELS: 'http://127.0.0.1:9/chan,bioconda',
      METAFLOW_PREBUILT_PYPI_INDEX_URL: 'http://127.0.0.1:9/simple',
      METAFLOW_PREBUILT_PLATFORM: 'linux-aarch64',
    };
    const out = await envsJson('default_python.py', cleanEnv(settings));
    const defaults = {
      channels: ['http://127.0.0.1:9/chan', 'https://conda.anaconda.org/bioconda'],
      indexUrl: 'http://127.0.0.1:9/simple',
      platform: 'linux-aarch64' as const,
    };
    expect(out.steps.start).toEqual(expected({ python: '3.11.9', conda: { numpy: '1.26.4' }, pypi: {} }, defaults));
    const plain = await envsJson('default_python.py');
    expect(out.steps.start?.specHash).not.toBe(plain.steps.start?.specHash);
    expect(out.steps.start?.conda).toEqual(plain.steps.start?.conda);
  });
});

describe('prebuilt envs: human view', () => {
  it('groups steps by env, printing each env once', async () => {
    const result = await prebuilt(['envs', 'merge_rules.py']);
    expect(result.code).toBe(0);
    const lines = result.stdout.split('\n');
    expect(lines[0]).toBe('MergeRulesFlow (merge_rules.py): 5 steps, 3 distinct envs');
    expect(lines[2]).toMatch(/^SPEC\s+PYTHON\s+PACKAGES\s+STEP\s+REMOTE$/); // the specHash's start: plan and build call the image id ENV
    const json = await envsJson('merge_rules.py');
    const short = json.steps.start!.specHash!.slice(0, 12);
    expect(lines[3]).toMatch(new RegExp(`^${short}\\s+3\\.11\\s+conda: numpy 1\\.26\\.4, pandas 2\\.2\\.2, scipy 1\\.13\\.0\\s+start\\s+local$`));
    expect(lines[4]).toMatch(/^\s+on_batch\s+batch$/);
    expect(lines[5]).toMatch(/^\s+end\s+kubernetes$/);
    expect(lines[6]).toMatch(/^\S{12}\s+3\.11\s+conda: click 8\.1\.7, numpy 1\.26\.4, pandas 2\.1\.0, pyarrow, scipy 1\.13\.0\s+override\s+local$/);
    expect(lines[7]).toMatch(/\s3\.12\.4\s.*newer_python\s+kubernetes \(gpu\)$/);
  });

  it('marks disabled steps', async () => {
    const result = await prebuilt(['envs', 'disabled.py']);
    expect(result.stdout).toMatch(/^-\s+-\s+disabled: runs with the image python\s+start\s+local\n\s+end\s+local$/m);
    expect(result.stdout).toMatch(/^DisabledFlow \(disabled\.py\): 3 steps, 1 distinct env$/m);
  });
});

describe.concurrent('prebuilt envs: bad input exits 2 with file:line and no stack trace', () => {
  const cases: [file: string, message: RegExp, line: boolean][] = [
    ['err_syntax.py', /Python syntax error/, true],
    ['err_no_flow.py', /no FlowSpec subclass found/, false],
    ['err_ambiguous.py', /more than one FlowSpec subclass.*FirstFlow \(line 4\), SecondFlow \(line 14\)/, true],
    ['err_dynamic.py', /step 'train'.*'NUMPY' \(line 5\).*is a call/, true],
    ['err_dynamic_base.py', /@conda_base on the flow class cannot be read without running the flow/, true],
    ['err_dynamic_gpu.py', /'gpu' argument of @kubernetes on step 'start'.*gpus\(\)/, true],
    ['err_reassigned.py', /'PACKAGES' is bound or changed more than once \(lines 3, 4, 6\)/, true],
    ['err_mixed.py', /step 'both' asks for conda packages \(numpy, from @conda\) and uses @pypi.*mixing conda and PyPI/, true],
    ['err_mixed_base.py', /step 'start' asks for conda packages \(numpy, from @conda_base\) and uses @pypi/, true],
    ['err_duplicate.py', /step 'start' has @conda twice/, true],
    ['err_bad_python.py', /step 'start' asks for python 'three', which is not a version/, true],
    ['err_unknown_arg.py', /@conda on step 'start' has no argument 'channels'/, true],
    ['err_bad_packages.py', /'packages' of @pypi on step 'start' must be a dict/, true],
  ];
  it.each(cases)('%s', async (file, message, hasLine) => {
    const result = await prebuilt(['envs', file, '--json']);
    expect(result.code).toBe(2);
    // --json keeps stdout to one JSON object: the error.
    expect(JSON.parse(result.stdout)).toMatchObject({ ok: false, error: { code: 'input', message: expect.stringMatching(message) } });
    const prefix = hasLine ? `error: ${file}:${markedLine(file)}: ` : `error: ${file}: `;
    expect(result.stderr.startsWith(prefix)).toBe(true);
    expect(result.stderr).toMatch(message);
    expect(result.stderr).toMatch(/\nhint: \S/);
    expect(result.stderr).not.toMatch(/\n\s+at /);
  });

  it('a missing flow file', async () => {
    const result = await prebuilt(['envs', 'no_such_flow.py']);
    expect(result.code).toBe(2);
    // Said plainly, with the path it looked at: not Node's errno text (ENOENT, stat '…').
    expect(result.stderr).toMatch(/^error: Flow file no_such_flow\.py does not exist \(\/\S+\/no_such_flow\.py\)\.\nhint: Check the path/);
    expect(result.stderr).not.toContain('ENOENT');
  });

  it('no python3 on the host names what to install', async () => {
    const result = await prebuilt(['envs', 'merge_rules.py'], cleanEnv({ METAFLOW_PREBUILT_PYTHON: '/nonexistent/python3' }));
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/No usable Python interpreter: '\/nonexistent\/python3' \(from METAFLOW_PREBUILT_PYTHON\) was not found/);
    expect(result.stderr).toMatch(/hint: Install Python 3\.8 or newer/);
  });

  it('an unsupported platform or default python is a configuration error', async () => {
    const platform = await prebuilt(['envs', 'merge_rules.py'], cleanEnv({ METAFLOW_PREBUILT_PLATFORM: 'win-64' }));
    expect(platform.code).toBe(2);
    expect(platform.stderr).toMatch(/Target platform 'win-64' is not supported/);
    const python = await prebuilt(['envs', 'merge_rules.py'], cleanEnv({ METAFLOW_PREBUILT_DEFAULT_PYTHON: 'latest' }));
    expect(python.code).toBe(2);
    expect(python.stderr).toMatch(/Default python 'latest' is not a version/);
  });
});
