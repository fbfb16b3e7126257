/**
 * Runs the Metaflow extension's own Python unit tests (packages/metaflow/python_tests) with the
 * host python3: the image map tests always, the environment/decorator tests against real Metaflow
 * when PREBUILT_TEST_METAFLOW_SOURCE names a Metaflow source checkout.
 */
import { execFile } from 'node:child_process';
import { delimiter } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { itOrFailInCi, metaflowSource } from '../../../test/services.js';
import { EXTENSION_PYTHONPATH } from './extension-files.js';

const run = promisify(execFile);
const TESTS = fileURLToPath(new URL('../python_tests', import.meta.url));
const { source, missing: metaflowMissing } = metaflowSource();
const python = process.env.METAFLOW_PREBUILT_PYTHON ?? 'python3';

async function unittest(pattern: string, pythonPath: string[]): Promise<{ ran: number; skipped: number; output: string }> {
  const { stderr } = await run(python, ['-m', 'unittest', 'discover', '-v', '-s', TESTS, '-p', pattern], {
    env: { ...process.env, PYTHONPATH: pythonPath.join(delimiter), PYTHONDONTWRITEBYTECODE: '1', METAFLOW_PREBUILT_IMAGE_MAP: '' },
    timeout: 120_000,
  }).catch((error: { stderr?: string; message: string }) => {
    throw new Error(`the Python tests failed:\n${error.stderr ?? error.message}`);
  });
  const ran = Number(/^Ran (\d+) tests?/m.exec(stderr)?.[1] ?? NaN);
  const skipped = Number(/skipped=(\d+)/.exec(stderr)?.[1] ?? 0);
  expect(stderr).toMatch(/^OK/m);
  return { ran, skipped, output: stderr };
}

describe('the Metaflow extension (Python unit tests)', () => {
  it('image map and CLI lookup: pass without Metaflow', async () => {
    const result = await unittest('test_image_map.py', [EXTENSION_PYTHONPATH]);
    expect(result.ran).toBe(19);
    expect(result.skipped).toBe(0);
  });

  it('environment tests skip, saying why, when Metaflow is not importable (run, when this python has Metaflow installed)', async () => {
    const installed = await run(python, ['-c', 'import metaflow'], { env: { ...process.env, PYTHONPATH: EXTENSION_PYTHONPATH } }).then(
      () => true,
      () => false,
    );
    const result = await unittest('test_environment.py', [EXTENSION_PYTHONPATH]);
    expect(result.ran).toBe(18);
    expect(result.skipped).toBe(installed ? 0 : 18);
    if (!installed) expect(result.output).toContain('Metaflow is not importable');
  });

  itOrFailInCi(
    'environment and decorators against real Metaflow, stock behaviour without an image map',
    metaflowMissing,
    async () => {
      const result = await unittest('test_environment.py', [EXTENSION_PYTHONPATH, source!]);
      expect(result.ran).toBe(18);
      expect(result.skipped).toBe(0);
      for (const name of ['test_same_executable_bootstrap_and_package_commands_as_stock', 'test_remote_steps_get_their_image_pull_secrets_and_interpreter']) {
        expect(result.output).toMatch(new RegExp(`${name} .* ok`));
      }
    },
  );
});
