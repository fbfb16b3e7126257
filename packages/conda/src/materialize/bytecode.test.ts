import { execFile, execFileSync } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, readdir, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '@prebuilt/core';
import { skipOrFailInCi } from '../../../../test/services.js';
import { BytecodePass, cacheTagOf, findBytecodeCompiler, pycPathOf, validateBytecode, type BytecodeCompiler } from './bytecode.js';
import { PrefixWriter } from './prefix-writer.js';

const execFileAsync = promisify(execFile);
const PY = '3.11.2';
const SITE = 'lib/python3.11/site-packages';
const MTIME = 1_700_000_000;
const PREFIX = '/opt/prebuilt/env';
const NO_COMPILER = "no python3.11 on this host to compile with: apt-get install python3.11 (scripts/setup.sh does)";

let work: string;
let compiler: BytecodeCompiler | undefined;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'prebuilt-bytecode-'));
  compiler = await findBytecodeCompiler(PY);
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

/** Sets every file's mtime as normaliseTree does. */
async function normalise(dir: string): Promise<void> {
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    const path = join(entry.parentPath, entry.name);
    await utimes(path, MTIME, MTIME);
  }
}

/** Imports `modules` with the host python from the prefix's site-packages; its `-v` trace (what it did with each pyc). */
async function importTrace(root: string, modules: string[]): Promise<string> {
  const { stderr } = await execFileAsync(compiler!.path, ['-I', '-S', '-B', '-v', '-c', `import sys; sys.path.insert(0, ${JSON.stringify(join(root, SITE))}); import ${modules.join(', ')}`]);
  return stderr;
}

/** A timestamp pyc of `source` compiled by the host python, with another mtime in its header (as shipped by a conda package). */
async function shippedPyc(source: string): Promise<Buffer> {
  const script = `import importlib.util, marshal, struct, sys\nsrc = sys.stdin.buffer.read()\nsys.stdout.buffer.write(importlib.util.MAGIC_NUMBER + struct.pack("<III", 0, 1234, len(src)) + marshal.dumps(compile(src, "old.py", "exec")))`;
  return new Promise((resolve, reject) => {
    const child = execFile(compiler!.path, ['-c', script], { encoding: 'buffer' }, (error, stdout) => (error ? reject(error) : resolve(stdout)));
    child.stdin!.end(source);
  });
}

describe('findBytecodeCompiler', () => {
  it('never runs a python found only through an empty or relative PATH entry (the current directory): a ConfigError', async () => {
    const bin = join(work, 'checkout');
    const marker = join(work, 'ran');
    await mkdir(bin, { recursive: true });
    await writeFile(join(bin, 'python3'), `#!/bin/sh\n: > '${marker}'\necho cpython-399\n`);
    await chmod(join(bin, 'python3'), 0o755);
    const here = relative(process.cwd(), bin);
    const saved = process.env['PATH'];
    process.env['PATH'] = `/nonexistent:${here}`;
    try {
      const error = await findBytecodeCompiler('3.99.0').catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).message).toContain(`the python that compiles the env's modules ('python3') was found only in '${here}'`);
    } finally {
      process.env['PATH'] = saved;
    }
    await expect(readFile(marker)).rejects.toThrow(/ENOENT/);
  });
});

describe('validateBytecode', () => {
  it('gives Python a pyc it accepts for every module: shipped ones re-stamped, missing ones compiled, a clobbered one recompiled', async (ctx) => {
    if (!compiler) skipOrFailInCi(ctx, NO_COMPILER);
    const root = join(work, 'all');
    const writer = await PrefixWriter.open(root);
    const shipped = 'VALUE = "shipped"\n';
    await writer.writeFile(`${SITE}/shipped.py`, shipped, 0o644, 'a.conda');
    await writer.writeFile(pycPathOf(`${SITE}/shipped.py`, 'cpython-311'), await shippedPyc(shipped), 0o644, 'a.conda');
    await writer.writeFile(`${SITE}/fresh/__init__.py`, 'from . import inner\n', 0o644, 'b.conda');
    await writer.writeFile(`${SITE}/fresh/inner.py`, 'def f():\n    raise ValueError("x")\n', 0o644, 'b.conda');
    // c's module replaced a's: a's pyc no longer belongs to the source beside it.
    await writer.writeFile(`${SITE}/clobbered.py`, 'VALUE = "old"\n', 0o644, 'a.conda');
    await writer.writeFile(pycPathOf(`${SITE}/clobbered.py`, 'cpython-311'), await shippedPyc('VALUE = "old"\n'), 0o644, 'a.conda');
    await writer.writeFile(`${SITE}/clobbered.py`, 'VALUE = "new"\n', 0o644, 'c.whl');
    await writer.writeFile(`${SITE}/broken.py`, 'print "python 2"\n', 0o644, 'c.whl');
    await writer.writeFile('bin/script.py', 'print(1)\n', 0o755, 'c.whl');

    const result = await validateBytecode({ writer, prefix: PREFIX, pythonVersion: PY, mtime: MTIME, compiler });
    expect(result).toEqual({ rewritten: 1, compiled: 3, cached: 0, uncompiled: 1, warnings: [] });
    await normalise(root);
    const trace = await importTrace(root, ['shipped', 'fresh.inner', 'clobbered']);
    for (const [dir, name] of [['', 'shipped'], ['fresh', '__init__'], ['fresh', 'inner'], ['', 'clobbered']] as const) {
      expect(trace).toContain(`${join(root, SITE, dir, '__pycache__', `${name}.cpython-311.pyc`)} matches ${join(root, SITE, dir, `${name}.py`)}`);
    }
    expect(trace).not.toMatch(/bytecode is stale|could not|code object from '?[^']*\.py'?$/m);
    // Each new pyc belongs to the package of its source (its image layer).
    expect(writer.owners().get(`${SITE}/fresh/__pycache__/inner.cpython-311.pyc`)).toBe('b.conda');
    expect(writer.owners().get(`${SITE}/__pycache__/clobbered.cpython-311.pyc`)).toBe('c.whl');
    expect(writer.owners().has(`${SITE}/__pycache__/broken.cpython-311.pyc`)).toBe(false);
    expect(writer.owners().has('bin/__pycache__/script.cpython-311.pyc')).toBe(false);
    // Compiled for the module's path in the image, not the staging directory.
    const inner = await readFile(join(root, SITE, 'fresh/__pycache__/inner.cpython-311.pyc'));
    expect(inner.includes(Buffer.from(`${PREFIX}/${SITE}/fresh/inner.py`))).toBe(true);
    expect(inner.includes(Buffer.from(root))).toBe(false);
    expect(inner.readUInt32LE(8)).toBe(MTIME);
  });

  it('settling each package as it is installed gives the tree one pass at the end gives, a later package replacing a settled module or its pyc included', async (ctx) => {
    if (!compiler) skipOrFailInCi(ctx, NO_COMPILER);
    const pyc = (rel: string): string => pycPathOf(rel, 'cpython-311');
    // Packages in install order; after each, `early` settles it as the materializer does.
    const packages: [string, [string, string | Buffer][]][] = [
      ['a.conda', [[`${SITE}/kept.py`, 'K = 1\n'], [`${SITE}/replaced.py`, 'R = "a"\n'], [`${SITE}/pycgone.py`, 'P = 1\n'], [`${SITE}/shipped.py`, 'S = 1\n'], [pyc(`${SITE}/shipped.py`), await shippedPyc('S = 1\n')]]],
      // b replaces a's module (its pyc then belongs to b's source) and puts a file where a's pyc is.
      ['b.conda', [[`${SITE}/replaced.py`, 'R = "b"\n'], [pyc(`${SITE}/pycgone.py`), 'not a pyc'], [`${SITE}/own.py`, 'O = 1\n']]],
      ['c.whl', [[`${SITE}/wheel.py`, 'W = 1\n']]],
    ];
    const build = async (name: string, early: boolean) => {
      const root = join(work, name);
      const writer = await PrefixWriter.open(root);
      const pass = new BytecodePass({ writer, prefix: PREFIX, pythonVersion: PY, mtime: MTIME, compiler });
      for (const [label, files] of packages) {
        for (const [rel, data] of files) await writer.writeFile(rel, data, 0o644, label);
        if (early && label.endsWith('.conda')) await pass.settle(label);
      }
      const result = await pass.finish();
      const tree = new Map<string, string>();
      for (const [rel, owner] of [...writer.owners()].sort(([x], [y]) => (x < y ? -1 : 1))) tree.set(rel, `${owner} ${writer.identity(rel) === 'directory' ? 'directory' : (await readFile(join(root, rel))).toString('hex')}`);
      return { tree, result };
    };
    const late = await build('late', false);
    const early = await build('early', true);
    expect([...early.tree]).toEqual([...late.tree]);
    expect(late.tree.get(pyc(`${SITE}/replaced.py`))?.startsWith('b.conda ')).toBe(true);
    expect(late.tree.get(pyc(`${SITE}/pycgone.py`))?.startsWith('a.conda ')).toBe(true);
    expect(late.tree.has(pyc(`${SITE}/wheel.py`))).toBe(true);
    expect(late.result).toEqual({ rewritten: 1, compiled: 5, cached: 0, uncompiled: 0, warnings: [] });
    // Early, the modules b touched were compiled again at the end.
    expect(early.result.compiled).toBeGreaterThanOrEqual(5);
    expect(early.result.uncompiled).toBe(0);
  });

  it('compiles the same bytes every time (one process per package, fixed hash seed)', async (ctx) => {
    if (!compiler) skipOrFailInCi(ctx, NO_COMPILER);
    const build = async (name: string) => {
      const writer = await PrefixWriter.open(join(work, name));
      await writer.writeFile(`${SITE}/sets.py`, 'A = {"x", "y", "z", "w"}\nB = frozenset(["a", "b", "c"])\ndef f(v):\n    return v in {"p", "q", "r"}\n', 0o644, 'p.conda');
      await validateBytecode({ writer, prefix: PREFIX, pythonVersion: PY, mtime: MTIME, compiler });
      return readFile(join(work, name, SITE, '__pycache__/sets.cpython-311.pyc'));
    };
    expect((await build('det1')).equals(await build('det2'))).toBe(true);
  });

  it('keeps compiled modules per package in a cache: a rebuild compiles only the package whose sources changed', async (ctx) => {
    if (!compiler) skipOrFailInCi(ctx, NO_COMPILER);
    const cacheDir = join(work, 'pyc-cache');
    const build = async (name: string, bSource: string) => {
      const writer = await PrefixWriter.open(join(work, name));
      await writer.writeFile(`${SITE}/a/__init__.py`, 'A = 1\n', 0o644, 'a.conda');
      await writer.writeFile(`${SITE}/a/bad.py`, 'print "no"\n', 0o644, 'a.conda');
      await writer.writeFile(`${SITE}/b/__init__.py`, bSource, 0o644, 'b.conda');
      const result = await validateBytecode({ writer, prefix: PREFIX, pythonVersion: PY, mtime: MTIME, compiler, cacheDir });
      return { result, a: await readFile(join(work, name, SITE, 'a/__pycache__/__init__.cpython-311.pyc')), b: await readFile(join(work, name, SITE, 'b/__pycache__/__init__.cpython-311.pyc')) };
    };
    const first = await build('c1', 'B = 1\n');
    expect(first.result).toMatchObject({ compiled: 2, cached: 0, uncompiled: 1 });
    const again = await build('c2', 'B = 1\n');
    expect(again.result).toMatchObject({ compiled: 2, cached: 2, uncompiled: 1 });
    expect(again.a.equals(first.a) && again.b.equals(first.b)).toBe(true);
    const changed = await build('c3', 'B = 2\n');
    expect(changed.result).toMatchObject({ compiled: 2, cached: 1, uncompiled: 1 });
    expect(changed.b.equals(first.b)).toBe(false);
  });

  it('a FIFO or symlink planted at a cache file\'s name (a hash anyone can work out) is no entry: compiled again, never followed, never waited on', async (ctx) => {
    if (!compiler) skipOrFailInCi(ctx, NO_COMPILER);
    const cacheDir = join(work, 'pyc-cache-planted');
    const build = async (name: string) => {
      const writer = await PrefixWriter.open(join(work, name));
      await writer.writeFile(`${SITE}/a/__init__.py`, 'A = 1\n', 0o644, 'a.conda');
      await writer.writeFile(`${SITE}/b/__init__.py`, 'B = 1\n', 0o644, 'b.conda');
      return validateBytecode({ writer, prefix: PREFIX, pythonVersion: PY, mtime: MTIME, compiler, cacheDir });
    };
    expect(await build('planted1')).toMatchObject({ compiled: 2, cached: 0 });
    const names = (await readdir(cacheDir)).sort();
    expect(names).toHaveLength(2);
    await writeFile(join(work, 'planted-outside'), await readFile(join(cacheDir, names[1]!)));
    await rm(join(cacheDir, names[0]!));
    execFileSync('mkfifo', [join(cacheDir, names[0]!)]);
    await rm(join(cacheDir, names[1]!));
    await symlink(join(work, 'planted-outside'), join(cacheDir, names[1]!));
    const again = await Promise.race([build('planted2'), new Promise<'hung'>((resolve) => setTimeout(() => resolve('hung'), 20_000).unref())]);
    expect(again).toMatchObject({ compiled: 2, cached: 0 });
  });

  it('leaves hash-based pycs as they are, and without a compiler says how many modules stay uncompiled', async () => {
    const root = join(work, 'nocompiler');
    const writer = await PrefixWriter.open(root);
    const hashPyc = Buffer.concat([Buffer.from([0xa7, 0x0d, 0x0d, 0x0a, 0x03, 0, 0, 0]), Buffer.alloc(8, 7), Buffer.from('code')]);
    await writer.writeFile(`${SITE}/hashed.py`, 'X = 1\n', 0o644, 'a.conda');
    await writer.writeFile(pycPathOf(`${SITE}/hashed.py`, cacheTagOf(PY)), hashPyc, 0o644, 'a.conda');
    await writer.writeFile(`${SITE}/plain.py`, 'Y = 2\n', 0o644, 'a.conda');
    await writer.writeFile(`${SITE}/other.py`, 'Z = 3\n', 0o644, 'b.conda');
    const result = await validateBytecode({ writer, prefix: PREFIX, pythonVersion: PY, mtime: MTIME, compiler: null });
    expect(result.rewritten).toBe(0);
    expect(result.compiled).toBe(0);
    expect(result.uncompiled).toBe(2);
    expect(result.warnings).toEqual([expect.stringMatching(/^2 python modules of the env have no bytecode: no python3\.11 on this host.*install python3\.11/)]);
    expect((await readFile(join(root, SITE, '__pycache__/hashed.cpython-311.pyc'))).equals(hashPyc)).toBe(true);
  });

  // A pyc shipped by one package for another package's module: Python runs it in place of that
  // module's source (an unchecked hash-based pyc whatever the source; a timestamp one whose header
  // matches). Compiled, the module's own pyc replaces it; left uncompiled, it must not stay.
  for (const [what, given, throughLink] of [
    ['no compiler on the host', null, false],
    ['a module that does not compile for this python', undefined, false],
    ['no compiler; its __pycache__ a symlink to the other package\'s directory', null, true],
  ] as const) {
    it(`another package's pyc for a module left uncompiled (${what}) is removed, the package and module named`, async (ctx) => {
      if (given === undefined && !compiler) skipOrFailInCi(ctx, NO_COMPILER);
      const root = join(work, `foreign-pyc-${given === null ? 'none' : 'syntax'}${throughLink ? '-link' : ''}`);
      const writer = await PrefixWriter.open(root);
      const source = given === null ? 'VALUE = "victim"\n' : 'VALUE = "victim"\nprint "python 2"\n';
      // flags 0b01: hash-based, source never checked.
      const unchecked = Buffer.concat([Buffer.from([0xa7, 0x0d, 0x0d, 0x0a, 0x01, 0, 0, 0]), Buffer.alloc(8, 7), Buffer.from('evil code')]);
      const pyc = pycPathOf(`${SITE}/victim/mod.py`, cacheTagOf(PY));
      await writer.writeFile(`${SITE}/victim/__init__.py`, '', 0o644, 'victim.conda');
      await writer.writeFile(`${SITE}/victim/mod.py`, source, 0o644, 'victim.conda');
      // Python follows a symlinked __pycache__: the pyc it reads is the file the link leads to.
      const planted = throughLink ? `${SITE}/evilcache/mod.cpython-311.pyc` : pyc;
      if (throughLink) await writer.symlink(`${SITE}/victim/__pycache__`, '../evilcache', 'evil.conda');
      await writer.writeFile(planted, unchecked, 0o644, 'evil.conda');
      // The package's own pyc of its own module stays (hash-based: valid whatever the mtime).
      await writer.writeFile(`${SITE}/evil.py`, 'X = 1\n', 0o644, 'evil.conda');
      await writer.writeFile(pycPathOf(`${SITE}/evil.py`, cacheTagOf(PY)), unchecked, 0o644, 'evil.conda');
      const result = await validateBytecode({ writer, prefix: PREFIX, pythonVersion: PY, mtime: MTIME, compiler: given === null ? null : compiler });
      await expect(readFile(join(root, pyc))).rejects.toThrow(/ENOENT/);
      await expect(readFile(join(root, planted))).rejects.toThrow(/ENOENT/);
      expect(writer.owners().has(planted)).toBe(false);
      expect(result.warnings).toContain(
        `evil.conda put '${pyc}', the bytecode of '${SITE}/victim/mod.py' of victim.conda, which is left uncompiled: removed, so Python reads the module's source rather than another package's code.`,
      );
      expect((await readFile(join(root, pycPathOf(`${SITE}/evil.py`, cacheTagOf(PY))))).equals(unchecked)).toBe(true);
    });
  }

  it("keeps only the last of a compiler's stderr: one printing 600 MiB (compile()'s SyntaxWarnings, a hostile package's) leaves its modules uncompiled with its last lines, never a crash", async () => {
    // A stand-in compiler: the warnings flood first, then why it failed.
    const fake = join(work, 'flooding-python');
    await writeFile(fake, '#!/bin/sh\nyes "SyntaxWarning: \\"is\\" with a literal" | head -c 629145600 >&2\necho "the compiler gave up" >&2\nexit 3\n', { mode: 0o755 });
    const writer = await PrefixWriter.open(join(work, 'flood'));
    await writer.writeFile(`${SITE}/flood.py`, 'x = 1 is 1\n', 0o644, 'flood.conda');
    const result = await validateBytecode({ writer, prefix: PREFIX, pythonVersion: PY, mtime: MTIME, compiler: { path: fake, cacheTag: 'cpython-311', identity: 'flooding' } });
    expect(result.uncompiled).toBe(1);
    expect(result.warnings.join('\n')).toMatch(/exited with 3: .*the compiler gave up/);
    expect(result.warnings.join('\n').length).toBeLessThan(2000);
  }, 60_000);

  it('names pycs as CPython does', () => {
    expect(pycPathOf('lib/python3.11/site-packages/a/b.py', 'cpython-311')).toBe('lib/python3.11/site-packages/a/__pycache__/b.cpython-311.pyc');
    expect(cacheTagOf('3.12.1')).toBe('cpython-312');
  });
});
