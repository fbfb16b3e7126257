import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExtractionCache } from '../cache/extraction-cache.js';
import { BytecodePass, findBytecodeCompiler, pycPathOf, type BytecodeCompiler } from './bytecode.js';
import { extractCondaPackage } from './conda-extract.js';
import { linkCondaPackage } from './conda-install.js';
import { deriveAhead } from './derive-ahead.js';
import { bzip2Sync, infoEntries, lockedPackage, rawTar } from './__fixtures__/helpers.js';
import { PrefixWriter } from './prefix-writer.js';

const PY = '3.11.2';
const SITE = 'lib/python3.11/site-packages';
const MTIME = 1_700_000_000;
const PREFIX = '/opt/prebuilt/env';

let work: string;
let compiler: BytecodeCompiler | undefined;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'prebuilt-derive-ahead-'));
  compiler = await findBytecodeCompiler(PY);
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

/** A timestamp pyc of `source` compiled by the host python, with another mtime in its header (as a conda package ships it). */
function shippedPyc(source: string): Promise<Buffer> {
  const script = `import importlib.util, marshal, struct, sys\nsrc = sys.stdin.buffer.read()\nsys.stdout.buffer.write(importlib.util.MAGIC_NUMBER + struct.pack("<III", 0, 1234, len(src)) + marshal.dumps(compile(src, "old.py", "exec")))`;
  return new Promise((resolve, reject) => {
    const child = execFile(compiler!.path, ['-c', script], { encoding: 'buffer' }, (error, stdout) => (error ? reject(error) : resolve(stdout)));
    child.stdin!.end(source);
  });
}

/** A `.tar.bz2` conda package `name` with a module to compile and one whose shipped pyc needs re-stamping (and `extra` entries). */
async function modulePackage(name: string, extra: { _path: string; data: string; prefix_placeholder?: string }[] = []): Promise<Buffer> {
  const shipped = `VALUE = "${name}"\n`;
  const files = [
    { _path: `${SITE}/${name}/__init__.py`, data: `from . import shipped\n` },
    { _path: `${SITE}/${name}/shipped.py`, data: shipped },
    { _path: pycPathOf(`${SITE}/${name}/shipped.py`, 'cpython-311'), data: await shippedPyc(shipped) },
    ...extra,
  ];
  const paths = files.map(({ _path, prefix_placeholder }) => ({ _path, ...(prefix_placeholder ? { prefix_placeholder, file_mode: 'text' } : {}) }));
  return bzip2Sync(await rawTar([...infoEntries(name, paths), ...files.map((f) => ({ name: f._path, data: f.data }))]));
}

/** Extracts `bytes` into a fresh extraction cache (deriving its pycs ahead when `ahead`), links it into a prefix and settles its modules. */
async function build(name: string, bytes: Buffer, ahead: boolean) {
  const dir = await mkdtemp(join(work, `${name}-`));
  const archive = join(dir, `${name}-1.0-h0.tar.bz2`);
  await writeFile(archive, bytes);
  const pkg = lockedPackage('conda', `${name}-1.0-h0.tar.bz2`, bytes, { name, version: '1.0', build: 'h0' });
  let derived = 0;
  let setsAfterExtraction: string[] = [];
  const got = await new ExtractionCache(join(dir, 'extracted')).obtain(archive, pkg.sha256, MTIME, async (scratch, entry) => {
    const contents = await extractCondaPackage(archive, pkg.filename, scratch, { mtime: MTIME });
    if (ahead) derived = await deriveAhead(contents, pkg.filename, { prefix: PREFIX, pythonVersion: PY, mtime: MTIME, compiler: compiler!, compilerId: compiler!.identity!, root: entry.root, entryDir: entry.dir });
    setsAfterExtraction = await readdir(join(entry.root, 'derived')).catch(() => []);
    return { ...contents, md5: '0'.repeat(32) };
  });
  const writer = await PrefixWriter.open(join(dir, 'prefix'));
  await linkCondaPackage({ file: archive, contents: got.contents, files: 'link', md5: got.md5 }, pkg, { writer, prefix: PREFIX, pythonVersion: PY });
  const pass = new BytecodePass({ writer, prefix: PREFIX, pythonVersion: PY, mtime: MTIME, compiler: compiler!, derivedDir: () => got.dir });
  await pass.settle(pkg.filename);
  return { writer, derived, setsAfterExtraction, sets: await readdir(join(got.dir, 'derived')), result: await pass.finish() };
}

describe('deriveAhead', () => {
  it('derives a package\'s pycs into its entry as it is extracted, under the key the main thread looks up: the pass only links them, the same bytes as derived on the main thread', async (ctx) => {
    if (!compiler) ctx.skip(`no python3.11 on this host to compile with (needs Debian's python3.11)`);
    const bytes = await modulePackage('alpha');
    const ahead = await build('alpha', bytes, true);
    const main = await build('alpha', bytes, false);
    expect(ahead.derived).toBe(2);
    expect(ahead.setsAfterExtraction).toHaveLength(1);
    // The pass found the set made ahead and made no other.
    expect(ahead.sets).toEqual(ahead.setsAfterExtraction);
    expect(main.setsAfterExtraction).toEqual([]);
    // (Each in its own entry: the key names the entry's files.)
    expect(main.sets).toHaveLength(1);
    expect(ahead.result).toEqual({ rewritten: 1, compiled: 1, cached: 1, uncompiled: 0, warnings: [] });
    for (const rel of [pycPathOf(`${SITE}/alpha/__init__.py`, 'cpython-311'), pycPathOf(`${SITE}/alpha/shipped.py`, 'cpython-311')]) {
      expect(ahead.writer.isLinked(rel)).toBe(true);
      expect(await readFile(ahead.writer.full(rel))).toEqual(await readFile(main.writer.full(rel)));
      expect((await stat(ahead.writer.full(rel))).ino).toBe((await stat(ahead.writer.linkedSource(rel)!)).ino);
    }
  });

  it('leaves a package whose module is patched for the prefix to the main thread (its set would never be looked up)', async (ctx) => {
    if (!compiler) ctx.skip(`no python3.11 on this host to compile with (needs Debian's python3.11)`);
    const bytes = await modulePackage('beta', [{ _path: `${SITE}/beta/where.py`, data: 'PREFIX = "/placeholder/env"\n', prefix_placeholder: '/placeholder/env' }]);
    const ahead = await build('beta', bytes, true);
    expect(ahead.derived).toBe(0);
    expect(ahead.setsAfterExtraction).toEqual([]);
    expect(ahead.sets).toHaveLength(1);
    expect(ahead.result).toEqual({ rewritten: 1, compiled: 2, cached: 0, uncompiled: 0, warnings: [] });
  });
});
