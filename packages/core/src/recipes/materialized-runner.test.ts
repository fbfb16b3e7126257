import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { EnvMaterializer, EnvProgress, MaterializeRequest } from '../contracts.js';
import type { LockedEnv } from '../env-model.js';
import { ConfigError, PrebuiltError } from '../errors.js';
import { materializedRecipe } from './materialized.js';
import { createMaterializedRecipeRunner } from './materialized-runner.js';
import { PREFIX_LAYERS_FILE, parsePrefixLayers } from './prefix-layers.js';
import { createRecipeRunner } from './select.js';

const sha = (c: string): string => c.repeat(64);
const lock: LockedEnv = {
  specHash: 'abc',
  request: { python: '3.11', conda: {}, pypi: {}, channels: [], indexUrl: null, platform: 'linux-64' },
  platform: 'linux-64',
  pythonVersion: '3.11.9',
  packages: [{ kind: 'conda', name: 'python', version: '3.11.9', build: 'h0', url: 'https://conda.example/python.conda', sha256: sha('b'), size: 10, filename: 'python.conda', subdir: 'linux-64' }],
};
const base = { ref: 'base:1', digest: `sha256:${sha('d')}`, pinned: `127.0.0.1:5000/base@sha256:${sha('d')}` };
const input = { lock, envId: '0123456789abcdef', prefix: '/opt/prebuilt/env', base };

/** A FAKE materializer: writes one file into the prefix directory and reports what it was asked. */
function fakeMaterializer(fail?: Error): EnvMaterializer & { requests: MaterializeRequest[] } {
  const requests: MaterializeRequest[] = [];
  return {
    requests,
    async materialize(request) {
      requests.push(request);
      await mkdir(join(request.outDir, 'bin'), { recursive: true });
      await writeFile(join(request.outDir, 'bin/python'), '#!fake\n');
      request.onProgress?.({ phase: 'downloading', done: 1, total: 1 });
      if (fail) throw fail;
      return { packages: [{ kind: 'conda', name: 'python', version: '3.11.9', filename: 'python.conda', sha256: sha('b'), files: ['bin/python'] }] };
    },
  };
}

let work: string;
beforeEach(async () => {
  work = await mkdtemp(join(tmpdir(), 'prebuilt-materialized-runner-'));
});
afterEach(async () => {
  await rm(work, { recursive: true, force: true });
});

describe('createMaterializedRecipeRunner (over a FAKE materializer)', () => {
  it('renders the Dockerfile, has the materializer lay out prefix/ and writes prefix-layers.json from its result', async () => {
    const materializer = fakeMaterializer();
    const runner = createMaterializedRecipeRunner(materializer, { tempDir: work });
    expect(runner).toMatchObject({ name: 'materialized', version: '2' });
    const progress: EnvProgress[] = [];
    const prepared = await runner.prepare({ ...input, onProgress: (p) => progress.push(p) });
    expect(prepared.dockerfile).toBe(materializedRecipe(input).dockerfile);
    expect(materializer.requests.map((r) => [r.envId, r.prefix, r.outDir])).toEqual([[input.envId, input.prefix, join(prepared.contextDir, 'prefix')]]);
    expect(progress).toEqual([{ phase: 'downloading', done: 1, total: 1 }]);
    expect((await readdir(prepared.contextDir)).sort()).toEqual(['prefix', PREFIX_LAYERS_FILE]);
    const layersFile = join(prepared.contextDir, PREFIX_LAYERS_FILE);
    expect(parsePrefixLayers(await readFile(layersFile, 'utf8'), layersFile)).toEqual({
      version: 1,
      prefixDir: 'prefix',
      packages: [{ kind: 'conda', name: 'python', version: '3.11.9', filename: 'python.conda', sha256: sha('b'), files: ['bin/python'] }],
    });
    await prepared.dispose();
    expect(await readdir(work)).toEqual([]);
  });

  it('removes the context when the materializer fails; a full disk names the context and the setting that moves it', async () => {
    const broken = new Error('corrupt download');
    await expect(createMaterializedRecipeRunner(fakeMaterializer(broken), { tempDir: work }).prepare(input)).rejects.toBe(broken);
    expect(await readdir(work)).toEqual([]);
    const full = Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
    const error = await createMaterializedRecipeRunner(fakeMaterializer(full), { tempDir: work, tempDirSetting: 'METAFLOW_PREBUILT_CACHE_DIR' }).prepare(input).catch((e: unknown) => e);
    expect(PrebuiltError.isInstance(error) && error.code).toBe('disk-full');
    expect((error as PrebuiltError).message).toMatch(new RegExp(`^No space left on the device of ${work} while materializing env ${input.envId} into ${work}/prebuilt-context-`));
    expect((error as PrebuiltError).hint).toContain('METAFLOW_PREBUILT_CACHE_DIR');
    expect(await readdir(work)).toEqual([]);
  });

  it('makes a missing context directory; one that cannot be made is exit 2 naming it and the setting', async () => {
    const contexts = join(work, 'cache', 'contexts');
    const prepared = await createMaterializedRecipeRunner(fakeMaterializer(), { tempDir: contexts }).prepare(input);
    expect(prepared.contextDir.startsWith(`${contexts}/prebuilt-context-`)).toBe(true);
    await prepared.dispose();
    expect(await readdir(contexts)).toEqual([]);
    await writeFile(join(work, 'file'), 'in the way');
    const error = await createMaterializedRecipeRunner(fakeMaterializer(), { tempDir: join(work, 'file', 'contexts'), tempDirSetting: 'METAFLOW_PREBUILT_CACHE_DIR' }).prepare(input).catch((e: unknown) => e);
    expect(PrebuiltError.isInstance(error) && error.exitCode).toBe(2);
    expect((error as PrebuiltError).message).toContain(`Cannot write ${join(work, 'file')}`);
    expect((error as PrebuiltError).message).toContain(`making the build context of env ${input.envId}`);
    expect((error as PrebuiltError).hint).toContain('METAFLOW_PREBUILT_CACHE_DIR');
  });
});

describe('createRecipeRunner', () => {
  it('gives the runner of the named recipe; the materialized one only with a materializer', () => {
    expect(createRecipeRunner('micromamba', { micromamba: { env: {} } })).toMatchObject({ name: 'micromamba' });
    expect(createRecipeRunner('materialized', { materializer: fakeMaterializer() })).toMatchObject({ name: 'materialized' });
    expect(() => createRecipeRunner('materialized')).toThrow(/needs an env materializer/);
  });

  it('the micromamba recipe refuses prune presets, naming the setting they came from', () => {
    const refusal = (pruneSetting?: string) => {
      try {
        createRecipeRunner('micromamba', { micromamba: { env: {} }, prune: ['tests'], ...(pruneSetting ? { pruneSetting } : {}) });
      } catch (error) {
        return error as ConfigError;
      }
      throw new Error('no refusal');
    };
    const fromEnv = refusal();
    expect(fromEnv).toBeInstanceOf(ConfigError);
    expect(fromEnv).toMatchObject({ setting: 'METAFLOW_PREBUILT_PRUNE', exitCode: 2 });
    expect(fromEnv.message).toMatch(/^METAFLOW_PREBUILT_PRUNE \(tests\) needs the materialized recipe/);
    expect(fromEnv.hint).toMatch(/^Unset METAFLOW_PREBUILT_PRUNE,/);
    const fromFlag = refusal('--prune');
    expect(fromFlag).toMatchObject({ setting: '--prune' });
    expect(fromFlag.message).toMatch(/^--prune \(tests\) needs the materialized recipe/);
    expect(`${fromFlag.message} ${fromFlag.hint}`).not.toContain('METAFLOW_PREBUILT_PRUNE');
    expect(createRecipeRunner('micromamba', { micromamba: { env: {} }, prune: [], pruneSetting: '--prune' })).toMatchObject({ name: 'micromamba' });
  });
});
