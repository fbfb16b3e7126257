import { lstat, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LockedEnv, PrunePreset } from '@prebuilt/core';
import { fixtureCondaFile, fixtureLock, pruneFixtureSet, serveExampleFixtures, type ServedExample } from '@prebuilt/fixtures';
import { PackageCache } from '../cache/package-cache.js';
import { materializeEnv, type MaterializeResult } from './materialize.js';
import { findBytecodeCompiler } from './bytecode.js';
import { writeDeterministicTar } from './deterministic-tar.js';

const PREFIX = '/opt/prebuilt/env';
const SP = 'lib/python3.11/site-packages';
const ALL: PrunePreset[] = ['tests', 'static-libs', 'headers'];

/** What each preset must leave out of the tinybundle fixture, and what it must keep. */
const PRUNED = [
  `${SP}/tinybundle/tests/__init__.py`,
  `${SP}/tinybundle/tests/test_core.py`,
  `${SP}/tinybundle/sub/test/test_deep.py`,
  `${SP}/tests/__init__.py`,
  'lib/python3.11/test/test_stdlib_like.py',
  'lib/libtinybundle.a',
  'lib/libtinybundle_static.a',
  'include/tinybundle.h',
  `${SP}/tinywheeltests/tests/test_wheel.py`,
];
const KEPT = [
  `${SP}/tinybundle/__init__.py`,
  `${SP}/tinybundle/testing/__init__.py`,
  `${SP}/tinybundle/test_helpers.py`,
  `${SP}/tinybundle/sub/__init__.py`,
  'lib/libtinybundle.so',
  `${SP}/tinywheeltests/__init__.py`,
];

let served: ServedExample;
let cacheDir: string;
const lockOf = (format: '.conda'): LockedEnv =>
  fixtureLock(served.fixtures, served.server, {
    conda: [fixtureCondaFile(served.fixtures, 'tinybundle', format)],
    wheels: served.fixtures.index.wheels.filter((w) => w.project === 'tinywheeltests').map((w) => w.filename),
  });

beforeAll(async () => {
  served = await serveExampleFixtures('prebuilt-prune-', { python: false, extra: [pruneFixtureSet()] });
  cacheDir = join(served.work, 'cache');
});
afterAll(() => served?.close());

const exists = (path: string): Promise<boolean> => lstat(path).then(() => true, () => false);

async function materialize(name: string, prune: PrunePreset[] | undefined, cache = cacheDir): Promise<{ out: string; result: MaterializeResult }> {
  const out = join(served.work, name);
  const result = await materializeEnv({ lock: lockOf('.conda'), prefix: PREFIX, outDir: out, cache: new PackageCache({ cacheDir: cache }), mtime: 0, ...(prune ? { prune } : {}) });
  return { out, result };
}

/** Every entry under `dir`, relative to it. */
async function tree(dir: string): Promise<string[]> {
  return (await readdir(dir, { recursive: true })).map(String).sort();
}

describe('materializeEnv with prune presets', () => {
  it('without presets, the fixture has everything (the files the presets remove exist)', async () => {
    const { out, result } = await materialize('env-full', undefined);
    for (const rel of [...PRUNED, ...KEPT]) expect(await exists(join(out, rel)), rel).toBe(true);
    expect(result.pruned).toEqual({ presets: [], files: 0, bytes: 0 });
  });

  it('leaves the pruned files out of the prefix, conda-meta, RECORD, pycs and prefix layers, and keeps the rest', async () => {
    const { out, result } = await materialize('env-pruned', ALL);
    for (const rel of PRUNED) expect(await exists(join(out, rel)), rel).toBe(false);
    for (const rel of KEPT) expect(await exists(join(out, rel)), rel).toBe(true);
    // No directory of a pruned test suite, and so no pyc of its modules.
    for (const dir of [`${SP}/tinybundle/tests`, `${SP}/tinybundle/sub/test`, `${SP}/tests`, 'lib/python3.11/test', 'include']) expect(await exists(join(out, dir)), dir).toBe(false);
    const pycs = (await tree(out)).filter((rel) => rel.endsWith('.pyc'));
    expect(pycs.filter((rel) => /\/tests?\//.test(rel))).toEqual([]);
    // The kept modules have theirs, when this host has a python 3.11 to compile with.
    if (await findBytecodeCompiler('3.11')) expect(pycs).toContain(`${SP}/tinybundle/testing/__pycache__/__init__.cpython-311.pyc`);

    const metaFile = (await readdir(join(out, 'conda-meta'))).find((f) => f.startsWith('tinybundle-'))!;
    const meta = JSON.parse(await readFile(join(out, 'conda-meta', metaFile), 'utf8')) as { files: string[]; paths_data: { paths: { _path: string }[] } };
    const recorded = meta.paths_data.paths.map((p) => p._path);
    for (const rel of PRUNED) {
      expect(meta.files).not.toContain(rel);
      expect(recorded).not.toContain(rel);
    }
    // conda-meta names exactly the package's files in the prefix.
    for (const rel of meta.files) expect(await exists(join(out, rel)), rel).toBe(true);
    expect(meta.files).toContain('lib/libtinybundle.so');

    const record = await readFile(join(out, SP, 'tinywheeltests-0.1.0.dist-info/RECORD'), 'utf8');
    expect(record).toContain('tinywheeltests/__init__.py,');
    expect(record).not.toContain('tests/test_wheel.py');

    const listed = result.packageFiles.flatMap((p) => p.files);
    for (const rel of PRUNED) expect(listed).not.toContain(rel);
    for (const rel of listed) expect(await exists(join(out, rel)), rel).toBe(true);

    expect(result.pruned.presets).toEqual(['headers', 'static-libs', 'tests']);
    expect(result.pruned.files).toBe(PRUNED.length);
    expect(result.pruned.bytes).toBeGreaterThan(0);
  });

  it('gives the same tree every time, from a fresh cache or the one the unpruned env filled, whose extractions it reuses', async () => {
    const entriesBefore = (await readdir(join(cacheDir, 'extracted'))).length;
    const digests: string[] = [];
    for (const [name, cache] of [['again-1', join(served.work, 'cache-fresh')], ['again-2', cacheDir]] as const) {
      const { out } = await materialize(name, ['tests', 'tests', 'headers', 'static-libs'], cache);
      digests.push((await writeDeterministicTar(out, join(served.work, `${name}.tar`), { root: 'prefix', mtime: 0 })).sha256);
    }
    expect(digests[1]).toBe(digests[0]);
    // Pruned and unpruned envs share the packages' extractions: pruning added no entry.
    expect((await readdir(join(cacheDir, 'extracted'))).length).toBe(entriesBefore);
  });

  it('prunes each preset on its own', async () => {
    const { out, result } = await materialize('env-static', ['static-libs']);
    expect(await exists(join(out, 'lib/libtinybundle.a'))).toBe(false);
    expect(await exists(join(out, 'include/tinybundle.h'))).toBe(true);
    expect(await exists(join(out, `${SP}/tinybundle/tests/test_core.py`))).toBe(true);
    expect(result.pruned.files).toBe(2);
  });
});
