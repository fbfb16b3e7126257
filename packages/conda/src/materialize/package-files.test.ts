import { lstat, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { useExampleChannel } from '../__fixtures__/example-channel.js';
import { parsePrefixLayers, PREFIX_LAYERS_FILE, type LockedEnv } from '@prebuilt/core';
import { PackageCache } from '../cache/package-cache.js';
import { isEnvWideEntry, materializeEnv } from './materialize.js';
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
  it('lists, per package in lock order, the entries it installed with its own conda-meta record or wheel RECORD; env-wide entries in none', async () => {
    const out = join(example.work, 'env');
    const result = await materializeEnv({ lock, prefix: PREFIX, outDir: out, cache: new PackageCache({ cacheDir: join(example.work, 'cache') }) });
    expect(result.packageFiles.map((p) => p.filename)).toEqual(lock.packages.map((p) => p.filename));
    const all = result.packageFiles.flatMap((p) => p.files);
    expect(new Set(all).size).toBe(all.length);
    for (const rel of all) {
      expect(isEnvWideEntry(rel)).toBe(false);
      await expect(lstat(join(out, rel))).resolves.toBeTruthy();
    }
    const files = (name: string): string[] => result.packageFiles.find((p) => p.name === name)!.files;
    expect(files('tinyframe')).toContain('lib/python3.11/site-packages/tinyframe/__init__.py');
    expect(files('tinycli')).toContain('bin/tinycli');
    expect(files('tinytool')).toContain('bin/tt');
    expect(files('tinyhttp').some((f) => f.endsWith('.dist-info/METADATA'))).toBe(true);
    // A package's record goes into its own layer: were it in the env layer, every one-package change
    // would re-push the records of all packages (issue 19: ≤ 2 % of the bytes for a rebuild).
    expect(files('tinyhttp').some((f) => f.endsWith('.dist-info/REQUESTED'))).toBe(true);
    expect(files('tinyhttp').some((f) => f.endsWith('.dist-info/RECORD'))).toBe(true);
    for (const pkg of lock.packages.filter((p) => p.kind === 'conda')) {
      const records = files(pkg.name).filter((f) => f.startsWith('conda-meta/'));
      expect(records).toHaveLength(1);
      const record = JSON.parse(await readFile(join(out, records[0]!), 'utf8')) as { name: string; fn: string };
      expect(record.fn).toBe(pkg.filename);
    }
    expect(all).not.toContain('conda-meta');
    expect(all).not.toContain('conda-meta/history');
    await expect(lstat(join(out, 'conda-meta/history'))).resolves.toBeTruthy();
    for (const p of result.packageFiles) expect([...p.files].sort()).toEqual(p.files);
  });

  it('isEnvWideEntry names conda-meta, its history and pinned files, not a package\'s record', () => {
    const wide = ['conda-meta', 'conda-meta/history', 'conda-meta/pinned'];
    const own = ['conda-meta/six-1.16.0-pyh_0.json', 'lib/python3.11/site-packages/a-1.0.dist-info/RECORD', 'bin/python'];
    expect([...wide, ...own].filter(isEnvWideEntry)).toEqual(wide);
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
