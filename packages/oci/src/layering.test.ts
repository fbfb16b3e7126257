import { mkdir, mkdtemp, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PREFIX_LAYERS_FILE, type PrefixLayers } from '@prebuilt/core/backend';
import { dockerfileInstructions, fetchBase, planImage } from './image-assembly.js';
import { GROUPING, groupOf, layerGroups, tieredGroupOf, type SizedPackage } from './layering.js';

const MiB = 1 << 20;

/** 40 packages: 14 big ones (9–22 MiB, more than the 12 that may stand alone), 6 medium ones (1–6 MiB), 20 small ones. */
function env40(): SizedPackage[] {
  const bytes = (i: number): number => (i < 14 ? (9 + i) * MiB : i < 20 ? (i - 13) * MiB : (i + 1) * 1000);
  return Array.from({ length: 40 }, (_, i) => ({ kind: i % 5 === 0 ? 'pypi' : 'conda', name: `pkg${String(i).padStart(2, '0')}`, bytes: bytes(i) }));
}

describe('layerGroups', () => {
  it('grouped: the 12 largest big packages alone (lock order), the rest in at most 7 groups by size tier and name hash; every package once', () => {
    const pkgs = env40();
    const groups = layerGroups(pkgs, 'grouped');
    expect(groups.length).toBeLessThanOrEqual(GROUPING.maxSolo + GROUPING.groups);
    const solo = groups.slice(0, GROUPING.maxSolo);
    // pkg02…pkg13 are the 12 largest (pkg00, pkg01 are big but smaller): alone, in lock order.
    expect(solo).toEqual(Array.from({ length: 12 }, (_, k) => [k + 2]));
    expect(groups.flat().sort((a, b) => a - b)).toEqual(pkgs.map((_, i) => i));
    for (const group of groups.slice(GROUPING.maxSolo)) {
      expect(group.length).toBeGreaterThan(0);
      expect(new Set(group.map((i) => tieredGroupOf(pkgs[i]!)))).toHaveProperty('size', 1);
      expect(group).toEqual([...group].sort((a, b) => a - b));
    }
  });

  it('grouped keeps small packages (the often-changing ones) apart from bigger ones: a small package\'s group holds only small packages', () => {
    const pkgs = env40();
    const groups = layerGroups(pkgs, 'grouped').slice(GROUPING.maxSolo);
    const small = (i: number): boolean => pkgs[i]!.bytes < GROUPING.smallBytes;
    for (const group of groups) expect(new Set(group.map(small)).size).toBe(1);
    // The overflow big packages (pkg00, pkg01) and the medium ones share the bigger tier's groups.
    const bigger = groups.filter((g) => !small(g[0]!)).flat().sort((a, b) => a - b);
    expect(bigger).toEqual([0, 1, 14, 15, 16, 17, 18, 19]);
    for (const i of bigger) expect(tieredGroupOf(pkgs[i]!)).toBeGreaterThanOrEqual(GROUPING.smallGroups);
    for (let i = 20; i < 40; i++) expect(tieredGroupOf(pkgs[i]!)).toBe(groupOf(pkgs[i]!, GROUPING.smallGroups));
    // The largest small group is a few small packages: well under a medium package.
    const largestSmall = Math.max(...groups.filter((g) => small(g[0]!)).map((g) => g.reduce((sum, i) => sum + pkgs[i]!.bytes, 0)));
    expect(largestSmall).toBeLessThan(MiB);
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
      await writeFile(join(context, 'prefix', 'conda-meta', `${name}-1.0-0.json`), `{"name": "${name}"}\n`);
      packages.push({ kind: 'conda', name, version: '1.0', filename: `${name}-1.0-0.conda`, sha256: '0'.repeat(64), files: [`conda-meta/${name}-1.0-0.json`, `lib/${name}`, `lib/${name}/data.bin`] });
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
    const files = groups.flatMap((l) => l.entries.filter((e) => e.kind === 'file' && e.path.endsWith('data.bin')).map((e) => e.path));
    expect(files).toHaveLength(27);
    expect(layers.at(-1)!.name).toBe('env');
    expect(layers.at(-1)!.entries.map((e) => e.path)).toContain('opt/env/conda-meta/history');
  });

  it('a package\'s conda-meta record is in the layer of its files; the env layer holds only what no package owns (history)', async () => {
    for (const policy of ['grouped', 'per-package'] as const) {
      const { layers } = await plan(policy);
      const env = layers.at(-1)!;
      expect(env.entries.filter((e) => e.kind === 'file').map((e) => e.path)).toEqual(['opt/env/conda-meta/history']);
      for (const layer of layers.slice(0, -1)) {
        const paths = layer.entries.map((e) => e.path);
        const names = paths.filter((p) => p.endsWith('/data.bin')).map((p) => p.split('/')[3]);
        expect(names.length).toBeGreaterThan(0);
        expect(paths.filter((p) => p.startsWith('opt/env/conda-meta/')).sort()).toEqual(names.map((n) => `opt/env/conda-meta/${n}-1.0-0.json`).sort());
      }
    }
  });

  it('per-package: 30 package layers and the env layer; single: one layer of the whole prefix', async () => {
    expect((await plan('per-package')).layers).toHaveLength(31);
    const single = (await plan('single')).layers;
    expect(single).toHaveLength(1);
    expect(single[0]!.entries.filter((e) => e.kind === 'file')).toHaveLength(61);
  });
});
