/**
 * The merge rules checked against real Metaflow: each corpus flow is run through Metaflow's own
 * decorators and CondaEnvironment.get_environment (micromamba stubbed out), and compared with
 * flowEnvs(). Needs a Metaflow source checkout: PREBUILT_TEST_METAFLOW_SOURCE=<dir holding metaflow/>.
 */
import { execFile } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, expect, it } from 'vitest';
import { describeOrFailInCi, metaflowSource } from '../../../test/services.js';
import { InputError } from '@prebuilt/core';
import { flowEnvs } from './flow-envs.js';

const run = promisify(execFile);
const { source, missing: metaflowMissing } = metaflowSource();
const FIXTURES = fileURLToPath(new URL('./__fixtures__/', import.meta.url));

const PINS: Record<string, string> = { requests: '>=2.21.0', boto3: '>=1.14.0' };
const withoutPins = (packages: Record<string, string>) =>
  Object.fromEntries(Object.entries(packages).filter(([name, spec]) => PINS[name] !== spec));

interface OracleEnv {
  conda?: { packages: Record<string, string>; python: string };
  pypi?: { packages: Record<string, string>; python: string };
  error?: string;
}

const flows: [file: string, flowClass: string][] = [
  ['merge_rules.py', 'MergeRulesFlow'],
  ['pypi_rules.py', 'PypiRulesFlow'],
  ['pypi_step_only.py', 'PypiStepOnlyFlow'],
  ['attribute_form.py', 'AttributeFormFlow'],
  ['aliases.py', 'AliasesFlow'],
  ['constants.py', 'ConstantsFlow'],
  ['disabled.py', 'DisabledFlow'],
  ['disabled_step.py', 'DisabledStepFlow'],
  ['default_python.py', 'DefaultPythonFlow'],
  ['main_guard.py', 'RunThisFlow'],
  ['inheritance.py', 'ChildFlow'],
  ['imported_base.py', 'ImportedBaseFlow'],
  ['imported_package.py', 'ImportedPackageFlow'],
  ['imported_constants.py', 'ImportedConstantsFlow'],
];
const refused: [file: string, flowClass: string, step: string][] = [
  ['err_mixed.py', 'MixedFlow', 'both'],
  ['err_mixed_base.py', 'MixedBaseFlow', 'start'],
];

describeOrFailInCi(
  'merge rules agree with real Metaflow',
  metaflowMissing,
  () => {
    // Metaflow creates .metaflow/ where it runs: work on a copy.
    const dir = mkdtempSync(join(tmpdir(), 'prebuilt-oracle-'));
    cpSync(join(FIXTURES, 'flows'), dir, { recursive: true });
    afterAll(() => rmSync(dir, { recursive: true, force: true }));
    const python = process.env.METAFLOW_PREBUILT_PYTHON ?? 'python3';
    const env: Record<string, string | undefined> = {
      ...process.env,
      PYTHONPATH: source,
      USERNAME: 'prebuilt-test',
      METAFLOW_DEFAULT_METADATA: 'local',
      // @kubernetes/@batch need a cloud datastore to pass their checks; nothing is contacted.
      METAFLOW_DEFAULT_DATASTORE: 's3',
      METAFLOW_DATASTORE_SYSROOT_S3: 's3://prebuilt-test/metaflow',
      METAFLOW_KUBERNETES_NAMESPACE: 'default',
      METAFLOW_BATCH_JOB_QUEUE: 'queue',
      METAFLOW_ECS_S3_ACCESS_IAM_ROLE: 'arn:aws:iam::000000000000:role/test',
      AWS_ACCESS_KEY_ID: 'test',
      AWS_SECRET_ACCESS_KEY: 'test',
      AWS_DEFAULT_REGION: 'us-east-1',
      METAFLOW_PREBUILT_DEFAULT_PYTHON: undefined,
    };

    async function oracle(file: string, flowClass: string): Promise<Record<string, OracleEnv>> {
      const { stdout } = await run(python, [join(FIXTURES, 'metaflow_oracle.py'), file, flowClass], { cwd: dir, env });
      const line = stdout.split('\n').find((l) => l.startsWith('ENVS='));
      if (!line) throw new Error(`Metaflow printed no envs for ${file}:\n${stdout}`);
      return JSON.parse(line.slice(5)) as Record<string, OracleEnv>;
    }

    it.each(flows)('%s', async (file, flowClass) => {
      const [expected, actual] = await Promise.all([oracle(file, flowClass), flowEnvs(file, { cwd: dir, env })]);
      expect(actual.steps.map((s) => s.step).sort()).toEqual(Object.keys(expected).sort());
      for (const step of actual.steps) {
        const mf = expected[step.step]!;
        if (!mf.conda && !mf.pypi) {
          expect(step.disabled, step.step).toBe(true);
          continue;
        }
        expect({ step: step.step, disabled: step.disabled, python: step.python, conda: step.conda, pypi: step.pypi }).toEqual({
          step: step.step,
          disabled: false,
          python: (mf.pypi ?? mf.conda)!.python,
          conda: withoutPins(mf.conda!.packages),
          pypi: mf.pypi ? withoutPins(mf.pypi.packages) : {},
        });
      }
    });

    it.each(refused)('%s is refused by both', async (file, flowClass, step) => {
      const expected = await oracle(file, flowClass);
      expect(expected[step]?.error).toMatch(/Mixing and matching PyPI packages and Conda packages/);
      await expect(flowEnvs(file, { cwd: dir, env })).rejects.toThrow(InputError);
    });
  },
);
