import { mkdir, mkdtemp, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PREFIX_LAYERS_FILE, type PrefixLayers } from '@prebuilt/core/backend';
import { dockerfileInstructions, fetchBase, planImage } from './image-assembly.js';
import { GROUPING, groupOf, layerGroups, type SizedPackage } from './layering.js';

const MiB = 1 << 20;

/** 40 packages: 12 big ones (9–20 MiB, more than the 10 that may stand alone), 28 small ones. */
function env40(): SizedPackage[] {
  return Array.from({ length: 40 }, (_, i) => ({ kind: i % 5 === 0 ? 'pypi' : 'conda', name: `pkg${String(i).padStart(2, '0')}`, bytes: i < 12 ? (9 + i) * MiB : (i + 1) * 1000 }));
}

describe('layerGroups', () => {
  it('grouped: the 10 largest big packages alone (lock order), the rest in at most 8 groups by name hash; every package once', () => {
    const pkgs = env40();
    const groups = layerGroups(pkgs, 'grouped');
    expect(groups.length).toBeLessThanOrEqual(GROUPING.maxSolo + GROUPING.groups);
    const solo = groups.slice(0, GROUPING.maxSolo);
    // pkg02…pkg11 are the 10 largest (pkg00, pkg01 are big but smaller): alone, in lock order.
    expect(solo).toEqual(Array.from({ length: 10 }, (_, k) => [k + 2]));
    expect(groups.flat().sort((a, b) => a - b)).toEqual(pkgs.map((_, i) => i));
    for (const group of groups.slice(GROUPING.maxSolo)) {
      expect(group.length).toBeGreaterThan(0);
      expect(new Set(group.map((i) => groupOf(pkgs[i]!)))).toHaveProperty('size', 1);
      expect(group).toEqual([...group].sort((a, b) => a - b));
    }
  });

  it('grouped is deterministic and local: a new version (size) of a small package moves nothing else; a removed package changes only its group', () => {
    const pkgs = env40();
    const before = layerGroups(pkgs, 'grouped');
    expect(layerGroups(env40(), 'grouped')).toEqual(before);
    const changed = pkgs.map((p, i) => (i === 20 ? { ...p, bytes: p.bytes * 3 } : p));
    expect(layerGroups(changed, 'grouped')).toEqual(before);
    const names = (groups: number[][], list: SizedPackage[]): string[] => groups.map((g) => g.map((i) => list[i]!.name).join(','));
    const without = pkgs.filter((_, i) => i !== 20);
    const after = names(layerGroups(without, 'grouped'), without);
    const old = names(before, pkgs);
    const differing = old.filter((g) => !after.includes(g));
    expect(differing).toHaveLength(1);
    expect(differing[0]).toContain('pkg20');
  });

  it('an env with no more packages than the layer budget gets one layer per package under grouped; per-package and single', () => {
    const small = env40().slice(0, GROUPING.maxSolo + GROUPING.groups);
    expect(layerGroups(small, 'grouped')).toEqual(small.map((_, i) => [i]));
    expect(layerGroups(env40(), 'per-package')).toHaveLength(40);
    expect(layerGroups(env40(), 'single')).toEqual([env40().map((_, i) => i)]);
    expect(layerGroups([], 'single')).toEqual([]);
  });
});

describe('planImage with the layering policies (a 30-package prefix, scratch base)', () => {
  let context: string;
  const instructions = dockerfileInstructions('FROM scratch\nCOPY prefix /opt/env\n');

  beforeAll(async () => {
    context = await mkdtemp(join(tmpdir(), 'prebuilt-oci-layering-'));
    const packages: PrefixLayers['packages'] = [];
    await mkdir(join(context, 'prefix', 'conda-meta'), { recursive: true });
    await writeFile(join(context, 'prefix', 'conda-meta', 'history'), 'x\n');
    for (let i = 0; i < 30; i++) {
      const name = `p${String(i).padStart(2, '0')}`;
      await mkdir(join(context, 'prefix', 'lib', name), { recursive: true });
      const file = join(context, 'prefix', 'lib', name, 'data.bin');
      await writeFile(file, name);
      // Three big packages (sparse files: sized, not written).
      if (i < 3) await truncate(file, 10 * MiB + i);
      packages.push({ kind: 'conda', name, version: '1.0', filename: `${name}-1.0-0.conda`, sha256: '0'.repeat(64), files: [`lib/${name}`, `lib/${name}/data.bin`] });
    }
    const layers: PrefixLayers = { version: 1, prefixDir: 'prefix', packages };
    await writeFile(join(context, PREFIX_LAYERS_FILE), JSON.stringify(layers));
  });
  afterAll(async () => {
    if (context) await rm(context, { recursive: true, force: true });
  });

  const plan = async (policy: 'grouped' | 'per-package' | 'single') =>
    planImage(instructions, await fetchBase(undefined as never, 'scratch', 'linux/amd64', undefined), context, undefined, policy);

  it('grouped: the 3 big packages alone, the 27 small ones in groups (history names them), then the env layer', async () => {
    const { layers } = await plan('grouped');
    expect(layers.slice(0, 3).map((l) => l.name)).toEqual(['p00-1.0-0.conda', 'p01-1.0-0.conda', 'p02-1.0-0.conda']);
    const groups = layers.slice(3, -1);
    expect(groups.length).toBeGreaterThan(1);
    expect(groups.length).toBeLessThanOrEqual(GROUPING.groups);
    expect(groups.every((l) => /^COPY prefix \/opt\/env # \d+ packages: /.test(l.createdBy))).toBe(true);
    const files = groups.flatMap((l) => l.entries.filter((e) => e.kind === 'file').map((e) => e.path));
    expect(files).toHaveLength(27);
    expect(layers.at(-1)!.name).toBe('env');
    expect(layers.at(-1)!.entries.map((e) => e.path)).toContain('opt/env/conda-meta/history');
  });

  it('per-package: 30 package layers and the env layer; single: one layer of the whole prefix', async () => {
    expect((await plan('per-package')).layers).toHaveLength(31);
    const single = (await plan('single')).layers;
    expect(single).toHaveLength(1);
    expect(single[0]!.entries.filter((e) => e.kind === 'file')).toHaveLength(31);
  });
});
