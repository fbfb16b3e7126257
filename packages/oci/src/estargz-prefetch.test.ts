import { execFile, execFileSync, spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, symlink, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '@prebuilt/core/backend';
import {
  MAX_PROFILE_BYTES,
  MAX_PROFILE_LINES,
  NO_PREFETCH_LANDMARK,
  PREFETCH_LANDMARK,
  PREFETCH_RECORDER_PY,
  envPrefetch,
  isStaticPrefetch,
  parsePrefetchProfile,
  prefetchOrder,
  prefetchSetting,
  profileSections,
  recordedProfilePaths,
} from './estargz-prefetch.js';
import { completeEntries, layerDiffId, writeLayer, type LayerEntry } from './layer.js';
import { ociSettings } from './oci-build-service.js';
import { landmarkOffset, readToc } from './__fixtures__/estargz-toc.js';

const ENV = 'opt/prebuilt/envs/x';
const SITE = `${ENV}/lib/python3.11/site-packages`;

function listTar(tar: Buffer): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const child = execFile('tar', ['-t'], { encoding: 'utf8', maxBuffer: 1 << 24 }, (error, stdout) => (error ? reject(error) : resolve(stdout.trim().split('\n'))));
    child.stdin!.end(tar);
  });
}

describe('eStargz prefetch: which files and in which order', () => {
  it('static: the interpreter, libpython, shared objects and every module\'s pyc (else its source) outside test directories — not data, -O pycs or tests', () => {
    const layer = new Set([`${SITE}/numpy/linalg.py`, `${SITE}/numpy/__pycache__/linalg.cpython-311.pyc`, `${SITE}/numpy/version.py`]);
    for (const path of [`${ENV}/bin/python3`, `${ENV}/bin/python3.11`, `${ENV}/lib/libpython3.11.so.1.0`, `${SITE}/numpy/__init__.py`, `${SITE}/numpy/core/__pycache__/__init__.cpython-311.pyc`, `${SITE}/numpy/__pycache__/linalg.cpython-311.pyc`, `${SITE}/numpy/core/_multiarray_umath.cpython-311-x86_64-linux-gnu.so`, `${ENV}/lib/libopenblas.so.0`]) {
      expect(isStaticPrefetch(path, layer), path).toBe(true);
    }
    // A source without its pyc in the layer is read by the import: it goes first.
    expect(isStaticPrefetch(`${SITE}/numpy/version.py`, layer)).toBe(true);
    for (const path of [`${SITE}/numpy/linalg.py`, `${SITE}/numpy/__pycache__/linalg.cpython-311.opt-1.pyc`, `${SITE}/numpy/tests/test_a.py`, `${SITE}/numpy/tests/__pycache__/test_a.cpython-311.pyc`, `${ENV}/share/doc/README`, `${ENV}/bin/pip`, `${SITE}/pkg/so.txt`]) {
      expect(isStaticPrefetch(path, layer), path).toBe(false);
    }
    // Without the layer's paths, only packages' __init__ sources count.
    expect(isStaticPrefetch(`${SITE}/numpy/version.py`)).toBe(false);
    expect(isStaticPrefetch(`${SITE}/numpy/__init__.py`)).toBe(true);
  });

  it('prioritized files first, each after its missing parent directories, then .prefetch.landmark, then the rest bytewise', () => {
    const entries: LayerEntry[] = [
      { path: `${SITE}/b/data.txt`, kind: 'file', source: '/x' },
      { path: `${SITE}/b/__init__.py`, kind: 'file', source: '/x' },
      { path: `${SITE}/a/_ext.so`, kind: 'file', source: '/x' },
      { path: `${SITE}/a/mod.py`, kind: 'file', source: '/x' },
      { path: `${SITE}/a/__pycache__/mod.cpython-311.pyc`, kind: 'file', source: '/x' },
    ];
    const order = prefetchOrder(entries, { mode: 'static' }).map((e) => e.path);
    const dirs = ['opt', 'opt/prebuilt', 'opt/prebuilt/envs', ENV, `${ENV}/lib`, `${ENV}/lib/python3.11`, SITE];
    expect(order).toEqual([...dirs, `${SITE}/a`, `${SITE}/a/__pycache__`, `${SITE}/a/__pycache__/mod.cpython-311.pyc`, `${SITE}/a/_ext.so`, `${SITE}/b`, `${SITE}/b/__init__.py`, PREFETCH_LANDMARK, `${SITE}/a/mod.py`, `${SITE}/b/data.txt`]);
    // Every entry once, nothing lost.
    expect([...order].filter((p) => p !== PREFETCH_LANDMARK).sort()).toEqual(completeEntries(entries).map((e) => e.path).sort());
  });

  it('a profile keeps its order and skips paths the layer lacks; a layer none of whose files is prioritized gets .no.prefetch.landmark; off keeps the plain order', () => {
    const entries: LayerEntry[] = [
      { path: 'a/one.txt', kind: 'file', source: '/x' },
      { path: 'a/two.txt', kind: 'file', source: '/x' },
      { path: 'c/three.txt', kind: 'file', source: '/x' },
    ];
    const profile = prefetchOrder(entries, { mode: 'profile', paths: ['c/three.txt', 'usr/lib/libc.so.6', 'a/two.txt'] }).map((e) => e.path);
    expect(profile).toEqual(['c', 'c/three.txt', 'a', 'a/two.txt', PREFETCH_LANDMARK, 'a/one.txt']);
    const none = prefetchOrder(entries, { mode: 'static' });
    expect(none[0]).toMatchObject({ path: NO_PREFETCH_LANDMARK, kind: 'file' });
    expect(Buffer.from(none[0]!.content!)).toEqual(Buffer.of(0x0f));
    expect(none.slice(1)).toEqual(completeEntries(entries));
    expect(prefetchOrder(entries, { mode: 'off' })).toEqual(completeEntries(entries));
    // A landmark among the entries is replaced, not doubled.
    const again = prefetchOrder([...entries, { path: PREFETCH_LANDMARK, kind: 'file', source: '/x' }], { mode: 'profile', paths: ['a/one.txt'] });
    expect(again.filter((e) => e.path === PREFETCH_LANDMARK)).toHaveLength(1);
  });

  it('a profile file: absolute or relative paths, normalised, deduplicated, comments and blank lines ignored', () => {
    expect(parsePrefetchProfile('# recorded\n/opt/env/bin/python3\n\nopt/env/lib/./x.so\n/opt/env/bin/python3\n  /a//b  \n')).toEqual(['opt/env/bin/python3', 'opt/env/lib/x.so', 'a/b']);
  });
});

describe('eStargz prefetch: the recorder (host python3)', () => {
  const record = (code: string): Promise<{ stdout: string; stderr: string }> =>
    new Promise((resolve, reject) => {
      execFile('python3', ['-c', PREFETCH_RECORDER_PY, code], { encoding: 'utf8', maxBuffer: 1 << 24 }, (error, stdout, stderr) => (error ? reject(Object.assign(error, { stdout, stderr })) : resolve({ stdout, stderr })));
    });

  it("prints the files the task opened and the interpreter; the task's output, even written to fd 1 directly, goes to stderr; a sys.exit(0) still prints the list", async () => {
    const { stdout, stderr } = await record('import json.decoder, os, sys\nprint("task says hi")\nos.write(1, b"/forged/path\\n")\nsys.exit(0)');
    const paths = stdout.trim().split('\n');
    expect(paths.some((p) => /\/json\/(__pycache__\/)?decoder\.(py|cpython-\d+\.pyc)$/.test(p)), stdout).toBe(true);
    expect(paths.some((p) => /\/python3(\.\d+)?$/.test(p) || /libpython3/.test(p)), stdout).toBe(true);
    expect(paths).not.toContain('/forged/path');
    expect(paths.some((p) => p.startsWith('/proc/'))).toBe(false);
    expect(stderr).toContain('task says hi');
    expect(stderr).toContain('/forged/path');
    expect(recordedProfilePaths(stdout, { maxPaths: 1000 }).refused).toBe(0);
  });

  it('a failing task: non-zero exit, the traceback on stderr, no list', async () => {
    const failed = await record('import no_such_module_here').then(() => undefined, (error: { code: number; stdout: string; stderr: string }) => error);
    expect(failed?.code).toBe(1);
    expect(failed?.stderr).toContain("ModuleNotFoundError: No module named 'no_such_module_here'");
    expect(failed?.stdout).toBe('');
  });
});

describe('eStargz prefetch: a recorded run\'s output, validated', () => {
  it('keeps absolute normalised paths once, in order; refuses relative, dot-dot, double-slash, trailing-slash, control characters, /proc, /sys, /dev and over-long lines', () => {
    const lines = ['/opt/prebuilt/env/bin/python3.11', 'relative/x', '/a/../etc/passwd', '/a//b', '/a/b/', '/a/\u0007b', '/proc/self/maps', '/sys/x', '/dev/null', `/${'x'.repeat(5000)}`, '/', '/opt/prebuilt/env/bin/python3.11', '/usr/lib/libz.so.1', ''];
    expect(recordedProfilePaths(lines.join('\n'), { maxPaths: 10 })).toEqual({ paths: ['/opt/prebuilt/env/bin/python3.11', '/usr/lib/libz.so.1'], refused: 10, truncated: false });
  });

  it('beyond maxPaths distinct paths: the first ones, truncated', () => {
    expect(recordedProfilePaths('/a\n/b\n/a\n/c\n/d\n', { maxPaths: 2 })).toEqual({ paths: ['/a', '/b'], refused: 0, truncated: true });
    expect(recordedProfilePaths('/a\n/b\n/a\n', { maxPaths: 2 }).truncated).toBe(false);
  });
});

describe('eStargz prefetch: the setting', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'prebuilt-prefetch-setting-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('static by default, off, or a profile file; a missing or empty file is a configuration error naming the setting', async () => {
    expect(prefetchSetting(undefined)).toEqual({ mode: 'static' });
    expect(prefetchSetting(' OFF ')).toEqual({ mode: 'off' });
    await writeFile(join(dir, 'profile.txt'), '/opt/env/bin/python3\n');
    expect(prefetchSetting(join(dir, 'profile.txt'))).toEqual({ mode: 'profile', paths: ['opt/env/bin/python3'] });
    expect(() => prefetchSetting(join(dir, 'missing.txt'))).toThrow(ConfigError);
    await writeFile(join(dir, 'empty.txt'), '# nothing\n');
    expect(() => prefetchSetting(join(dir, 'empty.txt'))).toThrow(/lists no path/);
  });

  it('a profile with env sections: each env gets the common paths then its own; an env it does not name gets the static order', async () => {
    const text = '# recorded\n/opt/env/bin/python3\n[env aaa111]\n/opt/env/lib/a.so\n/opt/env/bin/python3\n[env bbb222]\n/opt/env/lib/b.so\n[env aaa111]\n/opt/env/lib/a2.so\n';
    expect(profileSections(text)).toEqual({
      common: ['opt/env/bin/python3'],
      envs: new Map([
        ['aaa111', ['opt/env/lib/a.so', 'opt/env/bin/python3', 'opt/env/lib/a2.so'],],
        ['bbb222', ['opt/env/lib/b.so']],
      ]),
    });
    expect(parsePrefetchProfile(text)).toEqual(['opt/env/bin/python3', 'opt/env/lib/a.so', 'opt/env/lib/a2.so', 'opt/env/lib/b.so']);
    await writeFile(join(dir, 'sections.txt'), text);
    const setting = prefetchSetting(join(dir, 'sections.txt'));
    expect(envPrefetch(setting, 'aaa111')).toEqual({ mode: 'profile', paths: ['opt/env/bin/python3', 'opt/env/lib/a.so', 'opt/env/lib/a2.so'] });
    expect(envPrefetch(setting, 'bbb222')).toEqual({ mode: 'profile', paths: ['opt/env/bin/python3', 'opt/env/lib/b.so'] });
    expect(envPrefetch(setting, 'ccc333')).toEqual({ mode: 'profile', paths: ['opt/env/bin/python3'] });
    expect(envPrefetch(setting, undefined)).toEqual({ mode: 'profile', paths: parsePrefetchProfile(text) });
    const own = prefetchSetting((await writeFile(join(dir, 'own.txt'), '[env aaa111]\n/opt/env/lib/a.so\n'), join(dir, 'own.txt')));
    expect(envPrefetch(own, 'ccc333'), 'no path of its own and none common').toEqual({ mode: 'static' });
    expect(envPrefetch({ mode: 'off' }, 'aaa111')).toEqual({ mode: 'off' });
    expect(envPrefetch(prefetchSetting(join(dir, 'profile.txt')), 'aaa111'), 'a profile without sections is every env\'s').toEqual({ mode: 'profile', paths: ['opt/env/bin/python3'] });
  });

  it('a malformed profile (a control character, a broken section line) is a configuration error naming the file and the line', async () => {
    await writeFile(join(dir, 'broken-section.txt'), '/opt/env/bin/python3\n[env a b]\n/opt/env/lib/a.so\n');
    expect(() => prefetchSetting(join(dir, 'broken-section.txt'))).toThrow(/broken-section\.txt': line 2 is not a section line \(\[env <envId>\]\)/);
    await writeFile(join(dir, 'binary.txt'), '/opt/env/bin/python3\n\u0001\u0002ELF\n');
    const error = (() => {
      try {
        prefetchSetting(join(dir, 'binary.txt'));
      } catch (e) {
        return e as ConfigError;
      }
      return undefined;
    })();
    expect(error).toBeInstanceOf(ConfigError);
    expect(error?.message).toMatch(/binary\.txt': line 2 has a control character/);
    expect(error?.hint).toContain("prebuilt profile <flow.py>");
  });

  it('a profile that is not a regular file (a FIFO, a device, a directory) or is too large is a configuration error, at once: never a hang', async () => {
    // The profile beside the flow comes with the flow's repository (git keeps symlinks): it may point anywhere.
    const fifo = join(dir, 'fifo.prefetch');
    execFileSync('mkfifo', [fifo]);
    // A writer that holds the FIFO open without writing: a blocking read would wait for it (3 s), then see an empty file.
    const writer = spawn('sh', ['-c', `exec 3>'${fifo}'; sleep 3`], { stdio: 'ignore' });
    try {
      const started = Date.now();
      expect(() => prefetchSetting(fifo)).toThrow(/fifo\.prefetch' is not a regular file \(a FIFO\)/);
      expect(Date.now() - started).toBeLessThan(2000);
    } finally {
      writer.kill();
    }
    await symlink('/dev/zero', join(dir, 'zero.prefetch'));
    expect(() => prefetchSetting(join(dir, 'zero.prefetch'))).toThrow(/zero\.prefetch' is not a regular file \(a device\)/);
    expect(() => prefetchSetting(dir)).toThrow(/is not a regular file \(a directory\)/);
    await truncate((await writeFile(join(dir, 'huge.prefetch'), ''), join(dir, 'huge.prefetch')), MAX_PROFILE_BYTES + 1);
    expect(() => prefetchSetting(join(dir, 'huge.prefetch'))).toThrow(ConfigError);
    expect(() => prefetchSetting(join(dir, 'huge.prefetch'))).toThrow(/huge\.prefetch' is larger than 128 MiB/);
    expect(() => prefetchSetting(fifo)).toThrow(ConfigError);
    // Within the size, but millions of one-letter lines: refused before they are split into strings.
    await writeFile(join(dir, 'many.prefetch'), 'a\n'.repeat(MAX_PROFILE_LINES));
    expect(() => prefetchSetting(join(dir, 'many.prefetch'))).toThrow(/many\.prefetch' has more than 2000000 lines/);
    // A symlink to a regular file is read as that file.
    await writeFile(join(dir, 'target.txt'), '/opt/env/bin/python3\n');
    await symlink(join(dir, 'target.txt'), join(dir, 'link.prefetch'));
    expect(prefetchSetting(join(dir, 'link.prefetch'))).toEqual({ mode: 'profile', paths: ['opt/env/bin/python3'] });
  });

  it('the oci settings read METAFLOW_PREBUILT_OCI_PREFETCH for eStargz layers only', () => {
    const missing = join(dir, 'nope.txt');
    expect(ociSettings({ env: { METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION: 'estargz' } }).prefetch).toEqual({ mode: 'static' });
    expect(ociSettings({ env: { METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION: 'gzip', METAFLOW_PREBUILT_OCI_PREFETCH: missing } }).prefetch).toEqual({ mode: 'off' });
    const error = (() => {
      try {
        ociSettings({ env: { METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION: 'estargz', METAFLOW_PREBUILT_OCI_PREFETCH: missing } });
      } catch (e) {
        return e as ConfigError;
      }
      return undefined;
    })();
    expect(error).toBeInstanceOf(ConfigError);
    expect(error!.setting).toBe('METAFLOW_PREBUILT_OCI_PREFETCH');
    expect(error!.hint).toMatch(/static/);
  });
});

describe('eStargz prefetch: the layer', () => {
  let dir: string;
  let entries: LayerEntry[];
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'prebuilt-prefetch-layer-'));
    await mkdir(join(dir, 'src'));
    const files: [string, string][] = [
      [`${SITE}/pkg/__init__.py`, 'from . import _ext\n'],
      [`${SITE}/pkg/_ext.cpython-311-x86_64-linux-gnu.so`, '\x7fELF fake'],
      [`${SITE}/pkg/data.csv`, 'a,b\n1,2\n'.repeat(100)],
      [`${SITE}/pkg/tests/test_util.py`, 'X = 1\n'],
    ];
    entries = [];
    for (const [i, [path, text]] of files.entries()) {
      await writeFile(join(dir, 'src', String(i)), text);
      entries.push({ path, kind: 'file', source: join(dir, 'src', String(i)) });
    }
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('the TOC lists the prioritized files before the landmark (whose offset ends the prefetched range), the rest after; still valid gzip of a tar that lists them so', async () => {
    const layer = await writeLayer(entries, join(dir, 'static'), { compression: 'estargz', mtime: 1_700_000_000, prefetch: { mode: 'static' } });
    const blob = await readFile(layer.file);
    const { entries: toc } = readToc(blob);
    const landmark = landmarkOffset(toc)!;
    expect(landmark).toBeGreaterThan(0);
    const offset = (name: string) => toc.find((e) => e.name === name && e.type === 'reg')!.offset!;
    expect(offset(`${SITE}/pkg/__init__.py`)).toBeLessThan(landmark);
    expect(offset(`${SITE}/pkg/_ext.cpython-311-x86_64-linux-gnu.so`)).toBeLessThan(landmark);
    expect(offset(`${SITE}/pkg/data.csv`)).toBeGreaterThan(landmark);
    expect(offset(`${SITE}/pkg/tests/test_util.py`)).toBeGreaterThan(landmark);
    expect(toc.find((e) => e.name === PREFETCH_LANDMARK)).toMatchObject({ type: 'reg', size: 1 });
    const listing = await listTar(gunzipSync(blob));
    expect(listing.indexOf(PREFETCH_LANDMARK)).toBe(listing.indexOf(`${SITE}/pkg/_ext.cpython-311-x86_64-linux-gnu.so`) + 1);
    expect(listing.at(-1)).toBe('stargz.index.json');
  });

  it('reproducible: the same entries and choice give the same digest, and the layer cache key (layerDiffId) is that layer\'s tar; another choice gives another digest; gzip layers ignore the choice', async () => {
    const options = { compression: 'estargz' as const, mtime: 1_700_000_000, prefetch: { mode: 'static' as const } };
    const a = await writeLayer(entries, join(dir, 'a'), options);
    const b = await writeLayer([...entries].reverse(), join(dir, 'b'), options);
    expect(b.digest).toBe(a.digest);
    expect((await layerDiffId(entries, { mtime: 1_700_000_000, prefetch: { mode: 'static' } })).diffId).toBe(a.tarDigest);
    const profile = await writeLayer(entries, join(dir, 'p'), { ...options, prefetch: { mode: 'profile', paths: [`/${SITE}/pkg/util.py`.slice(1)] } });
    expect(profile.digest).not.toBe(a.digest);
    const off = await writeLayer(entries, join(dir, 'o'), { ...options, prefetch: { mode: 'off' } });
    const none = await writeLayer(entries, join(dir, 'n'), { compression: 'estargz', mtime: 1_700_000_000 });
    expect(off.digest).toBe(none.digest);
    const gzip = await writeLayer(entries, join(dir, 'g'), { ...options, compression: 'gzip' });
    const plain = await writeLayer(entries, join(dir, 'g2'), { compression: 'gzip', mtime: 1_700_000_000 });
    expect(gzip.digest).toBe(plain.digest);
  });
});
