import { execFile, execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { chmod, chown, lstat, mkdir, mkdtemp, readdir, readFile, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { skipOrFailInCi } from '../../../../test/services.js';
import { buildCondaPackage } from '@prebuilt/fixtures';
import { fileLock } from '../materialize/__fixtures__/helpers.js';
import { useExampleChannel } from '../__fixtures__/example-channel.js';
import { currentBootId, type LockedEnv } from '@prebuilt/core';
import { ExtractPool } from '../materialize/extract-pool.js';
import { materializeEnv } from '../materialize/materialize.js';
import { writeDeterministicTar } from '../materialize/deterministic-tar.js';
import { ExtractionCache, PRUNE_AFTER_DAYS } from './extraction-cache.js';
import { PackageCache } from './package-cache.js';

const PREFIX = '/opt/prebuilt/envs/fedcba9876543210';
const run = promisify(execFile);
/** Why a build cannot be run as another user here: needs root (to switch) and setpriv. */
const notRootWithSetpriv = process.getuid?.() !== 0 ? 'needs root' : !existsSync('/usr/bin/setpriv') ? 'needs setpriv (util-linux)' : undefined;

const example = useExampleChannel('prebuilt-extraction-cache-');
let lock: LockedEnv;

beforeAll(() => {
  const { condaFile } = example;
  lock = example.lock({ conda: [condaFile('tinyframe', '.tar.bz2'), condaFile('tinycli', '.conda'), condaFile('tinytool', '.conda')], wheels: [] });
});

const tarSha = async (dir: string, name: string): Promise<string> => (await writeDeterministicTar(dir, join(example.work, `${name}.tar`), { root: 'prefix', mtime: 0 })).sha256;

/** A regular file of the prefix that is a hard link (nlink > 1), relative to it. */
async function linkedFile(dir: string): Promise<string | undefined> {
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    if ((await lstat(path)).nlink > 1) return path.slice(dir.length + 1);
  }
  return undefined;
}

/** The inodes of every file of the derived sets under the extraction cache `dir`. */
async function derivedSets(dir: string): Promise<Set<number>> {
  const inodes = new Set<number>();
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    const path = join(entry.parentPath, entry.name);
    if (entry.isFile() && /\/derived\/[^/]+$/.test(entry.parentPath) && entry.name !== 'manifest.json') inodes.add((await lstat(path)).ino);
  }
  return inodes;
}

describe('the extraction cache (materializeEnv)', () => {
  it('links a rebuild from the cache: the same bytes as without it, hard links to the cache, nothing extracted again', async () => {
    const cacheDir = join(example.work, 'cache-a');
    await materializeEnv({ lock, prefix: PREFIX, outDir: join(example.work, 'plain'), cache: new PackageCache({ cacheDir }), extractionCache: false, mtime: 0 });
    expect(await readdir(join(cacheDir, 'extracted')).catch(() => [])).toEqual([]);
    await materializeEnv({ lock, prefix: PREFIX, outDir: join(example.work, 'first'), cache: new PackageCache({ cacheDir }), mtime: 0 });
    const entries = (await readdir(join(cacheDir, 'extracted'))).sort();
    expect(entries).toHaveLength(3);
    const manifests = await Promise.all(entries.map((e) => lstat(join(cacheDir, 'extracted', e, 'manifest.json'))));
    await materializeEnv({ lock, prefix: PREFIX, outDir: join(example.work, 'second'), cache: new PackageCache({ cacheDir }), mtime: 0 });
    // The same entries, not extracted again (the same manifest inodes).
    expect((await readdir(join(cacheDir, 'extracted'))).sort()).toEqual(entries);
    const again = await Promise.all(entries.map((e) => lstat(join(cacheDir, 'extracted', e, 'manifest.json'))));
    expect(again.map((s) => s.ino)).toEqual(manifests.map((s) => s.ino));
    expect(await linkedFile(join(example.work, 'second'))).toBeDefined();
    const plain = await tarSha(join(example.work, 'plain'), 'plain');
    expect(await tarSha(join(example.work, 'first'), 'first')).toBe(plain);
    expect(await tarSha(join(example.work, 'second'), 'second')).toBe(plain);
  });

  it('builds running at once share the entries (one extraction each, none removed under another build) and one bounded worker pool: four envs from one fresh cache', async () => {
    const cacheDir = join(example.work, 'cache-parallel');
    const outs = ['p1', 'p2', 'p3', 'p4'].map((name) => join(example.work, name));
    // Every archive through the worker threads (no small-archive shortcut), at most one worker.
    const extractPool = new ExtractPool({ workers: 1, startMin: 0 });
    try {
      await Promise.all(outs.map((outDir) => materializeEnv({ lock, prefix: PREFIX, outDir, cache: new PackageCache({ cacheDir }), mtime: 0, extractPool })));
    } finally {
      await extractPool.close();
    }
    expect(extractPool.peakWorkers).toBe(1);
    expect((await readdir(join(cacheDir, 'extracted'))).filter((name) => !name.includes('.'))).toHaveLength(3);
    expect((await readdir(join(cacheDir, 'extracted'))).filter((name) => /\.(partial|stale)-/.test(name))).toEqual([]);
    const shas = await Promise.all(outs.map((outDir, i) => tarSha(outDir, `p${i}`)));
    expect(new Set(shas).size).toBe(1);
  });

  it('two caches of one process (each env\'s materialize makes its own) share one extraction of an entry, and both get its files', async () => {
    const dir = join(example.work, 'cache-instances', 'extracted');
    const archive = join(example.work, 'instances-archive');
    await writeFile(archive, 'archive bytes');
    let extractions = 0;
    const extract = async (scratch: string) => {
      extractions += 1;
      await mkdir(scratch, { recursive: true });
      await new Promise((r) => setTimeout(r, 50));
      await writeFile(join(scratch, '1'), 'print(1)\n');
      return { info: new Map<string, Buffer>(), entries: [{ path: 'lib/a.py', type: 'file' as const, mode: 0o644, size: 9, file: join(scratch, '1') }] };
    };
    const sha = 'a'.repeat(64);
    const [one, two] = await Promise.all([new ExtractionCache(dir).obtain(archive, sha, 0, extract), new ExtractionCache(dir).obtain(archive, sha, 0, extract)]);
    expect(extractions).toBe(1);
    expect([one.hit, two.hit].sort()).toEqual([false, true]);
    for (const got of [one, two]) {
      const file = got.contents.entries[0]!;
      expect(file.type === 'file' && (await readFile(file.file, 'utf8'))).toBe('print(1)\n');
    }
    expect((await readdir(dir)).filter((name) => /\.(partial|stale)-/.test(name))).toEqual([]);
  });

  it('extracts a package again when a cached file was changed, also through a hard link in a prefix, and never serves the change', async () => {
    const cacheDir = join(example.work, 'cache-b');
    const first = join(example.work, 'b-first');
    await materializeEnv({ lock, prefix: PREFIX, outDir: first, cache: new PackageCache({ cacheDir }), mtime: 0 });
    const expected = await tarSha(first, 'b-expected');
    const rel = (await linkedFile(first))!;
    const original = await readFile(join(first, rel));
    // Written through the prefix's hard link (as a tool editing the built prefix in place would).
    await writeFile(join(first, rel), 'tampered\n');
    const second = join(example.work, 'b-second');
    await materializeEnv({ lock, prefix: PREFIX, outDir: second, cache: new PackageCache({ cacheDir }), mtime: 0 });
    expect(await readFile(join(second, rel))).toEqual(original);
    expect(await tarSha(second, 'b-second')).toBe(expected);
    // The shared inode was replaced: the first prefix's tampered file is no longer the cache's.
    expect((await lstat(join(first, rel))).ino).not.toBe((await lstat(join(second, rel))).ino);
  });

  it('checks an entry written in another boot by content once: a file whose bytes a power cut lost (stamps intact) is never used, the others are re-stamped and kept', async (ctx) => {
    const boot = currentBootId();
    if (boot === undefined) return ctx.skip('no /proc/sys/kernel/random/boot_id here');
    const cacheDir = join(example.work, 'cache-boot');
    const first = join(example.work, 'boot-first');
    await materializeEnv({ lock, prefix: PREFIX, outDir: first, cache: new PackageCache({ cacheDir }), mtime: 0 });
    const expected = await tarSha(first, 'boot-expected');
    const extracted = join(cacheDir, 'extracted');
    const entries = (await readdir(extracted)).filter((name) => !name.includes('.')).sort();
    expect(entries).toHaveLength(3);
    const manifestOf = async (entry: string) => JSON.parse(await readFile(join(extracted, entry, 'manifest.json'), 'utf8')) as { boot?: string; entries: { type: string; file?: string; path: string }[] };
    for (const entry of entries) expect((await manifestOf(entry)).boot).toBe(boot);
    // A power cut in another boot: every manifest names that boot; one file of the first entry lost
    // its bytes (zeros, as unwritten blocks read) while its size, inode, mode and mtime stayed.
    for (const entry of entries) {
      const path = join(extracted, entry, 'manifest.json');
      await writeFile(path, JSON.stringify({ ...(await manifestOf(entry)), boot: 'another-boot' }));
    }
    const victim = (await manifestOf(entries[0]!)).entries.find((e) => e.type === 'file' && e.file)!;
    const victimPath = join(extracted, entries[0]!, victim.file!);
    const before = await lstat(victimPath, { bigint: true });
    await writeFile(victimPath, Buffer.alloc(Number(before.size)));
    await utimes(victimPath, 0, 0);
    const after = await lstat(victimPath, { bigint: true });
    expect([after.ino, after.size, after.mode, after.mtimeNs]).toEqual([before.ino, before.size, before.mode, before.mtimeNs]);
    const kept = await Promise.all(entries.slice(1).map(async (entry) => (await lstat(join(extracted, entry, 'f', '1'))).ino));

    const second = join(example.work, 'boot-second');
    await materializeEnv({ lock, prefix: PREFIX, outDir: second, cache: new PackageCache({ cacheDir }), mtime: 0 });
    expect(await tarSha(second, 'boot-second')).toBe(expected);
    // The damaged entry was extracted anew: its file is another inode, with the package's bytes.
    expect((await lstat(victimPath)).ino).not.toBe(Number(before.ino));
    expect((await readFile(victimPath)).equals(Buffer.alloc(Number(before.size)))).toBe(false);
    // The intact ones were kept (the same inodes) and re-stamped with this boot.
    expect(await Promise.all(entries.slice(1).map(async (entry) => (await lstat(join(extracted, entry, 'f', '1'))).ino))).toEqual(kept);
    for (const entry of entries) expect((await manifestOf(entry)).boot).toBe(boot);
  });

  it('checks a file whose bytes the extraction changed (a stamped pyc) against the sha256 recorded then, and one paths.json gives no sha256 for is extracted again', async () => {
    const dir = join(example.work, 'cache-boot-unit', 'extracted');
    const archive = join(example.work, 'boot-unit-archive');
    await writeFile(archive, 'archive bytes');
    const pyc = Buffer.from('stamped pyc bytes');
    const { createHash } = await import('node:crypto');
    const paths = (withSha: boolean) => Buffer.from(JSON.stringify({ paths: [{ _path: 'lib/a.py', sha256: withSha ? createHash('sha256').update('print(1)\n').digest('hex') : undefined }, { _path: 'lib/__pycache__/a.cpython-311.pyc', sha256: 'f'.repeat(64) }] }));
    let extractions = 0;
    const extractWith = (withSha: boolean) => async (scratch: string) => {
      extractions += 1;
      await mkdir(scratch, { recursive: true });
      await writeFile(join(scratch, '1'), 'print(1)\n');
      await writeFile(join(scratch, '2'), pyc);
      return {
        info: new Map([['info/paths.json', paths(withSha)]]),
        entries: [
          { path: 'lib/a.py', type: 'file' as const, mode: 0o644, size: 9, file: join(scratch, '1') },
          { path: 'lib/__pycache__/a.cpython-311.pyc', type: 'file' as const, mode: 0o644, size: pyc.length, file: join(scratch, '2'), sha256: createHash('sha256').update(pyc).digest('hex') },
        ],
      };
    };
    const setBoot = async (sha: string) => {
      const path = join(dir, `${sha}-0-v3`, 'manifest.json');
      await writeFile(path, JSON.stringify({ ...JSON.parse(await readFile(path, 'utf8')), boot: 'another-boot' }));
    };
    const good = 'b'.repeat(64);
    expect((await new ExtractionCache(dir).obtain(archive, good, 0, extractWith(true))).hit).toBe(false);
    await setBoot(good);
    expect((await new ExtractionCache(dir).obtain(archive, good, 0, extractWith(true))).hit).toBe(true);
    expect(extractions).toBe(1);
    const unknown = 'c'.repeat(64);
    await new ExtractionCache(dir).obtain(archive, unknown, 0, extractWith(false));
    await setBoot(unknown);
    expect((await new ExtractionCache(dir).obtain(archive, unknown, 0, extractWith(false))).hit).toBe(false);
    expect(extractions).toBe(3);
  });

  it('an entry whose manifest name holds a planted FIFO, symlink or directory is extracted again: never followed, never waited on', async () => {
    const cacheDir = join(example.work, 'cache-planted');
    const first = join(example.work, 'planted-first');
    await materializeEnv({ lock, prefix: PREFIX, outDir: first, cache: new PackageCache({ cacheDir }), mtime: 0 });
    const expected = await tarSha(first, 'planted-expected');
    const manifests: string[] = [];
    for (const entry of await readdir(cacheDir, { recursive: true, withFileTypes: true })) {
      if (entry.name === 'manifest.json' && !entry.parentPath.includes('/derived/')) manifests.push(join(entry.parentPath, entry.name));
    }
    expect(manifests.length).toBeGreaterThanOrEqual(3);
    const outside = join(example.work, 'planted-outside.json');
    await writeFile(outside, await readFile(manifests[1]!));
    const plants = [async (path: string) => void execFileSync('mkfifo', [path]), (path: string) => symlink(outside, path), (path: string) => mkdir(path).then(() => undefined)];
    for (const [i, plant] of plants.entries()) {
      await rm(manifests[i]!);
      await plant(manifests[i]!);
    }
    const second = join(example.work, 'planted-second');
    const built = materializeEnv({ lock, prefix: PREFIX, outDir: second, cache: new PackageCache({ cacheDir }), mtime: 0 });
    expect(await Promise.race([built.then(() => 'built'), new Promise<'hung'>((resolve) => setTimeout(() => resolve('hung'), 20_000).unref())])).toBe('built');
    expect(await tarSha(second, 'planted-second')).toBe(expected);
    // Each entry was extracted anew: its manifest is a regular file again.
    for (const manifest of manifests) expect((await lstat(manifest)).isFile(), manifest).toBe(true);
  });

  it('keeps each package\'s compiled pycs with its entry: a rebuild links them (no pyc written), the same bytes; a pyc changed through the prefix is derived again, never served', async (ctx) => {
    const cacheDir = join(example.work, 'cache-pyc');
    const plain = join(example.work, 'pyc-plain');
    await materializeEnv({ lock, prefix: PREFIX, outDir: plain, cache: new PackageCache({ cacheDir: join(example.work, 'cache-pyc-plain') }), extractionCache: false, mtime: 0 });
    const pycs = (await readdir(plain, { recursive: true })).filter((rel) => rel.endsWith('.pyc'));
    if (pycs.length === 0) skipOrFailInCi(ctx, 'no python3.11 on this host to compile the example modules with: apt-get install python3.11 (scripts/setup.sh does)');
    const expected = await tarSha(plain, 'pyc-plain');
    await materializeEnv({ lock, prefix: PREFIX, outDir: join(example.work, 'pyc-first'), cache: new PackageCache({ cacheDir }), mtime: 0 });
    const sets = await derivedSets(join(cacheDir, 'extracted'));
    expect(sets.size).toBeGreaterThan(0);
    const second = join(example.work, 'pyc-second');
    await materializeEnv({ lock, prefix: PREFIX, outDir: second, cache: new PackageCache({ cacheDir }), mtime: 0 });
    expect(await tarSha(second, 'pyc-second')).toBe(expected);
    // Every pyc of the rebuild is a hard link to a file of a derived set.
    for (const rel of pycs) expect(sets.has((await lstat(join(second, rel))).ino), rel).toBe(true);
    // Written through the prefix's hard link: the set no longer matches its manifest, so it is derived again.
    await writeFile(join(second, pycs[0]!), 'tampered');
    const third = join(example.work, 'pyc-third');
    await materializeEnv({ lock, prefix: PREFIX, outDir: third, cache: new PackageCache({ cacheDir }), mtime: 0 });
    expect(await tarSha(third, 'pyc-third')).toBe(expected);
    expect((await lstat(join(third, pycs[0]!))).ino).not.toBe((await lstat(join(second, pycs[0]!))).ino);
  });

  it('keeps shipped timestamp pycs already stamped: linked into the prefix as they are (no copy), the same bytes as without the cache; hash pycs untouched; a source the install changed still re-stamps', async () => {
    const site = 'lib/python3.11/site-packages';
    const pyc = (flags: number, payload: string): Buffer => {
      const header = Buffer.alloc(16);
      header.set([0xa7, 0x0d, 0x0d, 0x0a]);
      header.writeUInt32LE(flags, 4);
      header.writeUInt32LE(12_345, 8);
      header.writeUInt32LE(99, 12);
      return Buffer.concat([header, Buffer.from(payload)]);
    };
    const [artifact] = await buildCondaPackage({
      name: 'shippy',
      version: '1.0',
      subdir: 'linux-64',
      formats: ['.conda'],
      files: [
        { path: `${site}/shipmod.py`, content: 'X = 1\n' },
        { path: `${site}/__pycache__/shipmod.cpython-311.pyc`, content: pyc(0, 'code') },
        { path: `${site}/hashmod.py`, content: 'Y = 2\n' },
        { path: `${site}/__pycache__/hashmod.cpython-311.pyc`, content: pyc(1, 'hashed') },
        { path: `${site}/placed.py`, content: 'WHERE = "@PREFIX@"\n', prefix: 'text' },
        { path: `${site}/__pycache__/placed.cpython-311.pyc`, content: pyc(0, 'placed') },
      ],
    });
    const shippy = await fileLock(join(example.work, 'shippy-pkgs'), [
      { kind: 'conda', filename: artifact!.filename, bytes: artifact!.bytes, name: 'shippy', version: '1.0', build: artifact!.record.build, subdir: 'linux-64' },
    ]);
    const plain = join(example.work, 'shippy-plain');
    await materializeEnv({ lock: shippy, prefix: PREFIX, outDir: plain, cache: new PackageCache({ cacheDir: join(example.work, 'cache-shippy-plain') }), extractionCache: false, mtime: 0 });
    const cacheDir = join(example.work, 'cache-shippy');
    const cached = join(example.work, 'shippy-cached');
    await materializeEnv({ lock: shippy, prefix: PREFIX, outDir: cached, cache: new PackageCache({ cacheDir }), mtime: 0 });
    expect(await tarSha(cached, 'shippy-cached')).toBe(await tarSha(plain, 'shippy-plain'));
    const header = async (rel: string): Promise<number[]> => {
      const data = await readFile(join(cached, site, '__pycache__', rel));
      return [data.readUInt32LE(4), data.readUInt32LE(8), data.readUInt32LE(12)];
    };
    expect(await header('shipmod.cpython-311.pyc')).toEqual([0, 0, 'X = 1\n'.length]);
    expect(await header('hashmod.cpython-311.pyc')).toEqual([1, 12_345, 99]);
    expect(await header('placed.cpython-311.pyc')).toEqual([0, 0, (await lstat(join(cached, site, 'placed.py'))).size]);
    // The stamped pyc is the extraction-cache file itself (not a derived copy): its inode is under f/.
    const entry = (await readdir(join(cacheDir, 'extracted')))[0]!;
    const kept = new Set<number>();
    for (const name of await readdir(join(cacheDir, 'extracted', entry, 'f'))) kept.add((await lstat(join(cacheDir, 'extracted', entry, 'f', name))).ino);
    expect(kept.has((await lstat(join(cached, site, '__pycache__', 'shipmod.cpython-311.pyc'))).ino)).toBe(true);
    expect(kept.has((await lstat(join(cached, site, '__pycache__', 'placed.cpython-311.pyc'))).ino)).toBe(false);
  });

  it('removes entries unused for the prune period, keeps recent ones', async () => {
    const dir = join(example.work, 'cache-c', 'extracted');
    const cacheDir = join(example.work, 'cache-c');
    await materializeEnv({ lock, prefix: PREFIX, outDir: join(example.work, 'c-env'), cache: new PackageCache({ cacheDir }), mtime: 0 });
    const [old, ...recent] = await readdir(dir);
    const past = new Date(Date.now() - (PRUNE_AFTER_DAYS + 1) * 86_400_000);
    await utimes(join(dir, old!, 'manifest.json'), past, past);
    expect(await new ExtractionCache(dir).prune()).toBe(1);
    expect((await readdir(dir)).sort()).toEqual(recent.sort());
  });

  it.skipIf(notRootWithSetpriv !== undefined)(`a cache shared by two users (a directory both may write in): a damaged entry of one is replaced by the other's build, not an EACCES (${notRootWithSetpriv ?? 'root and setpriv'})`, async () => {
    // The cache's `extracted/` writable by both users (a cache shared on purpose, as cache-dir.ts
    // lets it be); the entry made by the first (root here), with its own directories 0755 as
    // under the usual umask; then one of its files changed (its mtime moved: a write through a
    // hard link in a prefix of the first user's). The second user (uid 65534) can rename the entry
    // aside — the name is then free — but not empty the directories of another user.
    const work = await mkdtemp(join(tmpdir(), 'prebuilt-extraction-shared-'));
    await chmod(work, 0o755);
    const dir = join(work, 'extracted');
    await mkdir(dir, { mode: 0o777 });
    await chmod(dir, 0o777);
    const archive = join(work, 'archive.conda');
    await writeFile(archive, 'the archive', { mode: 0o644 });
    const script = join(work, 'obtain.mjs');
    await writeFile(
      script,
      `const { ExtractionCache } = await import(${JSON.stringify(fileURLToPath(new URL('../../dist/cache/extraction-cache.js', import.meta.url)))});
const { mkdir, writeFile } = await import('node:fs/promises');
const [dir, archive, text] = process.argv.slice(2);
const got = await new ExtractionCache(dir).obtain(archive, 'a'.repeat(64), 0, async (scratch) => {
  await mkdir(scratch, { recursive: true });
  await writeFile(scratch + '/0', text);
  return { info: new Map(), entries: [{ path: 'hello.txt', type: 'file', mode: 0o644, size: text.length, file: scratch + '/0' }], md5: '0'.repeat(32) };
});
const { readFile } = await import('node:fs/promises');
process.stdout.write(JSON.stringify({ hit: got.hit, dir: got.dir, text: await readFile(got.contents.entries[0].file, 'utf8'), ...(got.privateNote ? { privateNote: got.privateNote } : {}) }));`,
      { mode: 0o644 },
    );
    const obtain = async (text: string, asOther: boolean): Promise<{ hit: boolean; dir: string; text: string; privateNote?: string }> => {
      const node = [process.execPath, script, dir, archive, text];
      const { stdout } = asOther
        ? await run('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', ...node], { env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin' } })
        : await run(node[0]!, node.slice(1));
      return JSON.parse(stdout) as { hit: boolean; dir: string; text: string };
    };
    try {
      const first = await obtain('first user', false);
      expect(first).toMatchObject({ hit: false, text: 'first user' });
      const past = new Date('2020-01-01T00:00:00Z');
      await utimes(join(first.dir, 'f', '0'), past, past);
      const second = await obtain('second user', true);
      expect(second).toEqual({ hit: false, dir: first.dir, text: 'second user' });
      // The damaged entry's directory, renamed aside, is what is left for a prune (of the first user).
      expect((await readdir(dir)).filter((name) => name.includes('.stale-'))).toHaveLength(1);
      expect(await obtain('not extracted again', false)).toEqual({ hit: true, dir: first.dir, text: 'second user' });
      expect(await new ExtractionCache(dir).prune(Date.now() + 2 * 86_400_000)).toBeGreaterThanOrEqual(1);
      expect((await readdir(dir)).filter((name) => name.includes('.stale-'))).toEqual([]);

      // With the sticky bit (a shared /tmp-like cache), the second user may not rename the first's
      // damaged entry aside: the package is extracted for that build alone, with a note naming the
      // entry and its owner; the damaged entry stays for its owner to remove.
      await chmod(dir, 0o1777);
      const entry = first.dir;
      const past2 = new Date('2019-01-01T00:00:00Z');
      await chown(entry, 0, 0);
      await utimes(join(entry, 'f', '0'), past2, past2);
      const stuck = await obtain('private copy', true);
      expect(stuck.hit).toBe(false);
      expect(stuck.text).toBe('private copy');
      expect(stuck.dir).not.toBe(entry);
      expect(stuck.dir.startsWith(`${entry}.partial-`)).toBe(true);
      expect(stuck.privateNote).toBe(
        `The extraction cache entry ${entry} is damaged and belongs to another user (uid 0), who alone may replace it (the cache directory has the sticky bit): ` +
          `its package was extracted for this build alone. Its owner (or root) can remove it (rm -r ${entry}); the next build then puts a sound one in its place.`,
      );
      expect(existsSync(entry)).toBe(true);
      // Its owner's next build replaces it as usual.
      expect(await obtain('owner again', false)).toMatchObject({ hit: false, dir: entry, text: 'owner again' });
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  });
});
