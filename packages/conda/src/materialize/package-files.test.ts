import { lstat, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { useExampleChannel } from '../__fixtures__/example-channel.js';
import { parsePrefixLayers, PREFIX_LAYERS_FILE, type LockedEnv } from '@prebuilt/core';
import { PackageCache } from '../cache/package-cache.js';
import { isEnvSpecificEntry, materializeEnv } from './materialize.js';
import { createMaterializedRecipeRunner } from './recipe-runner.js';

const PREFIX = '/opt/prebuilt/envs/0123456789abcdef';

const example = useExampleChannel('prebuilt-package-files-');
let lock: LockedEnv;

beforeAll(() => {
  const { fixtures, condaFile } = example;
  const conda = [condaFile('tinyframe', '.tar.bz2'), condaFile('tinycli', '.conda'), condaFile('tinytool', '.conda')];
  const wheels = fixtures.index.wheels.filter((w) => w.project === 'tinyhttp').map((w) => w.filename);
  lock = example.lock({ conda, wheels }, { pypiRequested: ['tinyhttp'], condaRequested: ['tinycli'] });
});

describe('materializeEnv packageFiles (per-package layers)', () => {
  it('lists, per package in lock order, the entries it installed; env-specific entries in none', async () => {
    const out = join(example.work, 'env');
    const result = await materializeEnv({ lock, prefix: PREFIX, outDir: out, cache: new PackageCache({ cacheDir: join(example.work, 'cache') }) });
    expect(result.packageFiles.map((p) => p.filename)).toEqual(lock.packages.map((p) => p.filename));
    const all = result.packageFiles.flatMap((p) => p.files);
    expect(new Set(all).size).toBe(all.length);
    for (const rel of all) {
      expect(isEnvSpecificEntry(rel)).toBe(false);
      await expect(lstat(join(out, rel))).resolves.toBeTruthy();
    }
    const files = (name: string): string[] => result.packageFiles.find((p) => p.name === name)!.files;
    expect(files('tinyframe')).toContain('lib/python3.11/site-packages/tinyframe/__init__.py');
    expect(files('tinycli')).toContain('bin/tinycli');
    expect(files('tinytool')).toContain('bin/tt');
    expect(files('tinyhttp').some((f) => f.endsWith('.dist-info/METADATA'))).toBe(true);
    expect(files('tinyhttp').some((f) => f.endsWith('.dist-info/REQUESTED') || f.endsWith('.dist-info/RECORD'))).toBe(false);
    expect(all.some((f) => f.startsWith('conda-meta'))).toBe(false);
    for (const p of result.packageFiles) expect([...p.files].sort()).toEqual(p.files);
  });

  it('isEnvSpecificEntry names conda-meta and a wheel REQUESTED/RECORD', () => {
    expect(isEnvSpecificEntry('conda-meta/history')).toBe(true);
    expect(isEnvSpecificEntry('conda-meta')).toBe(true);
    expect(isEnvSpecificEntry('lib/python3.11/site-packages/a-1.0.dist-info/RECORD')).toBe(true);
    expect(isEnvSpecificEntry('lib/python3.11/site-packages/a-1.0.dist-info/METADATA')).toBe(false);
    expect(isEnvSpecificEntry('bin/python')).toBe(false);
  });

  it('the recipe runner writes prefix-layers.json beside the prefix (not inside it)', async () => {
    const runner = createMaterializedRecipeRunner({ cacheDir: join(example.work, 'cache'), tempDir: example.work });
    const base = { ref: 'x', digest: `sha256:${'a'.repeat(64)}`, pinned: `127.0.0.1:5000/base@sha256:${'a'.repeat(64)}` };
    const prepared = await runner.prepare({ lock, envId: '0123456789abcdef', prefix: PREFIX, base });
    try {
      const file = join(prepared.contextDir, PREFIX_LAYERS_FILE);
      const layers = parsePrefixLayers(await readFile(file, 'utf8'), file);
      expect(layers.prefixDir).toBe('prefix');
      expect(layers.packages.map((p) => p.name)).toEqual(lock.packages.map((p) => p.name));
      await expect(lstat(join(prepared.contextDir, 'prefix', PREFIX_LAYERS_FILE))).rejects.toThrow();
    } finally {
      await prepared.dispose();
    }
  });
});
