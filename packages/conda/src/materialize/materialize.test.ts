import { lstat, mkdtemp, readdir, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { extract } from 'tar-stream';
import { useExampleChannel } from '../__fixtures__/example-channel.js';
import type { LockedEnv } from '@prebuilt/core';
import { PackageCache } from '../cache/package-cache.js';
import { PackageIntegrityError } from '../cache/errors.js';
import { ExtractPool } from './extract-pool.js';
import { InstallError } from './errors.js';
import { bzip2Sync, fileLock, rawTar } from './__fixtures__/helpers.js';
import { materializeEnv } from './materialize.js';
import { writeDeterministicTar, sourceDateEpoch } from './deterministic-tar.js';

const PREFIX = '/opt/prebuilt/envs/0123456789abcdef';

const example = useExampleChannel('prebuilt-materialize-');
let lock: LockedEnv;

beforeAll(() => {
  const { fixtures, condaFile } = example;
  const conda = [
    fixtures.channel.artifacts.find((a) => a.record.name === 'tinynum' && a.record.version === '1.4.0')!.filename,
    condaFile('tinyframe', '.tar.bz2'),
    condaFile('tinycli', '.conda'),
    condaFile('tinytool', '.conda'),
    condaFile('tinypost', '.tar.bz2'),
  ];
  const wheels = fixtures.index.wheels.filter((w) => ['tinyhttp', 'tinyplot'].includes(w.project) || w.filename.startsWith('tinyurl-1.1.0')).map((w) => w.filename);
  lock = example.lock({ conda, wheels }, { pypiRequested: ['tinyhttp', 'tinyplot'], condaRequested: ['tinycli', 'tinytool'] });
});

async function tarEntries(file: string): Promise<{ name: string; mode: number; uid: number; gid: number; mtime: number; type: string }[]> {
  const out: { name: string; mode: number; uid: number; gid: number; mtime: number; type: string }[] = [];
  const reader = extract();
  const done = (async () => {
    for await (const entry of reader) {
      const h = entry.header;
      out.push({ name: h.name, mode: h.mode ?? 0, uid: h.uid ?? -1, gid: h.gid ?? -1, mtime: (h.mtime?.getTime() ?? -1) / 1000, type: h.type ?? '' });
      entry.resume();
    }
  })();
  reader.end(await readFile(file));
  await done;
  return out;
}

describe('materializeEnv', () => {
  it('lays out conda packages and wheels with conda-meta, and a second run downloads nothing', async () => {
    const cacheDir = join(example.work, 'cache-a');
    const out = join(example.work, 'env-a');
    example.server.clearRequests();
    const progress: string[] = [];
    const result = await materializeEnv({
      lock,
      prefix: PREFIX,
      outDir: out,
      cache: new PackageCache({ cacheDir }),
      onProgress: (p) => progress.push(p.phase),
    });
    const packageRequests = example.server.requests.filter((r) => /\.(conda|tar\.bz2|whl)$/.test(r.path));
    expect(packageRequests).toHaveLength(lock.packages.length);
    expect(result.filesDownloaded).toBe(lock.packages.length);
    expect(progress).toContain('download');
    expect(progress.filter((p) => p === 'install')).toHaveLength(lock.packages.length);
    expect(result.linkScriptPackages).toEqual(['tinypost']);
    expect(result.warnings.join('\n')).toMatch(/tinypost has a pre-link or post-link script.*micromamba recipe/);

    // conda packages
    const sp = join(out, 'lib/python3.11/site-packages');
    expect(await readFile(join(sp, 'tinyframe/__init__.py'), 'utf8')).toContain('class Frame');
    expect(await readFile(join(out, 'bin/tinycli'), 'utf8')).toMatch(new RegExp(`^#!${PREFIX}/bin/python\n`));
    expect(await readFile(join(out, 'bin/tinytool'), 'utf8')).toContain(`prefix="${PREFIX}"`);
    expect(await readlink(join(out, 'bin/tt'))).toBe('tinytool');
    const meta = (await readdir(join(out, 'conda-meta'))).sort();
    expect(meta).toEqual(['history', ...lock.packages.filter((p) => p.kind === 'conda').map((p) => `${p.name}-${p.version}-${p.build}.json`)].sort());
    const tinytoolMeta = JSON.parse(await readFile(join(out, 'conda-meta', meta.find((m) => m.startsWith('tinytool'))!), 'utf8'));
    expect(tinytoolMeta.requested_spec).toBe('tinytool');
    expect(tinytoolMeta.url).toBe(lock.packages.find((p) => p.name === 'tinytool')!.url);
    expect(tinytoolMeta.channel).toBe(example.server.channelUrls.main);
    const history = await readFile(join(out, 'conda-meta/history'), 'utf8');
    expect(history).toMatch(/^==> 1970-01-01 00:00:00 <==\n# cmd: prebuilt materialize/);
    expect(history).toContain(`+${example.server.channelUrls.main}::tinytool-1.0.0-`);

    // wheels
    expect(await readFile(join(out, 'bin/tinyhttp'), 'utf8')).toContain('from tinyhttp.cli import main');
    expect(await readFile(join(out, 'bin/tinyplot-gui'), 'utf8')).toContain('from tinyplot import gui');
    expect(await readFile(join(out, 'bin/tinyhttp-env'), 'utf8')).toMatch(new RegExp(`^#!${PREFIX}/bin/python\n`));
    expect(await readdir(join(sp, 'tinyhttp-0.3.0.dist-info'))).toContain('REQUESTED');
    expect(await readdir(join(sp, 'tinyurl-1.1.0.dist-info'))).not.toContain('REQUESTED');

    // normalised metadata on disk
    const info = await lstat(join(out, 'bin/tinytool'));
    expect(info.mode & 0o777).toBe(0o755);
    expect(info.mtimeMs).toBe(sourceDateEpoch() * 1000);

    // the second materialize of the same lock downloads nothing
    example.server.clearRequests();
    const again = await materializeEnv({ lock, prefix: PREFIX, outDir: join(example.work, 'env-a2'), cache: new PackageCache({ cacheDir }) });
    expect(example.server.requests).toHaveLength(0);
    expect(again.filesDownloaded).toBe(0);
    expect((await readdir(example.work)).filter((n) => n.includes('.partial-'))).toEqual([]);
  });

  it('gives byte-identical tars from two cache directories and any number of extraction workers, with sorted entries, uid/gid 0, fixed mtimes and normalised modes', async () => {
    const results = [];
    // b: the process's pool; c: extraction on the calling thread; d: two workers, every archive to them.
    const pools: Record<string, ExtractPool | undefined> = { b: undefined, c: new ExtractPool({ script: undefined }), d: new ExtractPool({ workers: 2, startMin: 0 }) };
    for (const [name, extractPool] of Object.entries(pools)) {
      const out = join(example.work, `env-${name}`);
      try {
        await materializeEnv({ lock, prefix: PREFIX, outDir: out, cache: new PackageCache({ cacheDir: join(example.work, `cache-${name}`) }), mtime: 1_700_000_000, ...(extractPool ? { extractPool } : {}) });
      } finally {
        await extractPool?.close();
      }
      results.push(await writeDeterministicTar(out, join(example.work, `env-${name}.tar`), { root: 'prefix', mtime: 1_700_000_000, extraFiles: [{ path: 'Dockerfile', content: 'FROM scratch\n' }] }));
    }
    expect(pools.d!.peakWorkers).toBe(2);
    expect(results[0]!.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(results[1]!.sha256).toBe(results[0]!.sha256);
    expect(results[2]!.sha256).toBe(results[0]!.sha256);
    expect((await readFile(join(example.work, 'env-b.tar'))).equals(await readFile(join(example.work, 'env-c.tar')))).toBe(true);

    const entries = await tarEntries(join(example.work, 'env-b.tar'));
    const names = entries.map((e) => e.name);
    expect(names).toEqual([...names].sort((a, b) => Buffer.compare(Buffer.from(a.replace(/\/$/, '')), Buffer.from(b.replace(/\/$/, '')))));
    expect(names[0]).toBe('Dockerfile');
    expect(names).toContain('prefix/');
    expect(names).toContain('prefix/bin/tinytool');
    for (const e of entries) {
      expect(e.uid).toBe(0);
      expect(e.gid).toBe(0);
      expect(e.mtime).toBe(1_700_000_000);
      if (e.type === 'directory') expect(e.mode).toBe(0o755);
      if (e.type === 'file') expect([0o644, 0o755]).toContain(e.mode);
    }
    expect(entries.find((e) => e.name === 'prefix/bin/tinytool')!.mode).toBe(0o755);
    expect(entries.find((e) => e.name === 'prefix/etc/tinytool.conf')!.mode).toBe(0o644);
    expect(entries.find((e) => e.name === 'prefix/bin/tt')!.type).toBe('symlink');
  });

  it('fails with the URL and both hashes when the example.server serves a corrupted file, leaving no env behind', async () => {
    const target = lock.packages.find((p) => p.name === 'tinyframe')!;
    const remove = example.server.fault(new URL(target.url).pathname, { type: 'corrupt' });
    const out = join(example.work, 'env-corrupt');
    try {
      const error = await materializeEnv({ lock, prefix: PREFIX, outDir: out, cache: new PackageCache({ cacheDir: join(example.work, 'cache-corrupt') }) }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(PackageIntegrityError);
      expect((error as Error).message).toContain(target.url);
      expect((error as Error).message).toContain(`expected sha256 ${target.sha256}`);
      expect((error as PackageIntegrityError).actualSha256).not.toBe(target.sha256);
      await expect(lstat(out)).rejects.toThrow();
    } finally {
      remove();
    }
  });

  it("writes each archive's md5 from the package cache's record (not hashed again by the extraction), hashed anew once the archive's metadata changed", async () => {
    const cacheDir = join(example.work, 'cache-md5');
    const cache = new PackageCache({ cacheDir });
    const pkg = lock.packages.find((p) => p.name === 'tinyframe')!;
    const artifact = example.fixtures.channel.artifacts.find((a) => a.filename === pkg.filename)!;
    const recordMd5 = async (out: string): Promise<string> =>
      (JSON.parse(await readFile(join(out, 'conda-meta', `${pkg.name}-${pkg.version}-${pkg.build}.json`), 'utf8')) as { md5: string }).md5;
    await materializeEnv({ lock, prefix: PREFIX, outDir: join(example.work, 'env-md5-a'), cache });
    expect(await recordMd5(join(example.work, 'env-md5-a'))).toBe(artifact.record.md5);
    // The verified record names another md5 (as if it had been hashed so): with the extraction
    // cache emptied, the package is extracted again and its record takes that md5 — no second hash.
    const entry = cache.pathFor(pkg.sha256);
    const verified = JSON.parse(await readFile(`${entry}.verified`, 'utf8')) as Record<string, unknown>;
    await writeFile(`${entry}.verified`, JSON.stringify({ ...verified, md5: 'e'.repeat(32) }));
    await rm(join(cacheDir, 'extracted'), { recursive: true });
    await materializeEnv({ lock, prefix: PREFIX, outDir: join(example.work, 'env-md5-b'), cache });
    expect(await recordMd5(join(example.work, 'env-md5-b'))).toBe('e'.repeat(32));
    // The archive's metadata changed (same bytes rewritten): never trusted, hashed again.
    await writeFile(entry, await readFile(entry));
    await rm(join(cacheDir, 'extracted'), { recursive: true });
    await materializeEnv({ lock, prefix: PREFIX, outDir: join(example.work, 'env-md5-c'), cache });
    expect(await recordMd5(join(example.work, 'env-md5-c'))).toBe(artifact.record.md5);
    // Without the extraction cache (scratch extraction, files moved in) the same md5 is used.
    await materializeEnv({ lock, prefix: PREFIX, outDir: join(example.work, 'env-md5-d'), cache, extractionCache: false });
    expect(await recordMd5(join(example.work, 'env-md5-d'))).toBe(artifact.record.md5);
  });

  it("marks a wheel REQUESTED when the request names it with extras or another spelling (PEP 503, as core's normalizePypiName)", async () => {
    const wheels = example.fixtures.index.wheels.filter((w) => w.project === 'tinyhttp' || w.filename.startsWith('tinyurl-1.1.0')).map((w) => w.filename);
    const extras = example.lock({ conda: [], wheels }, { pypiRequested: ['TinyHTTP[socks]'] });
    const out = join(example.work, 'env-extras');
    await materializeEnv({ lock: extras, prefix: PREFIX, outDir: out, cache: new PackageCache({ cacheDir: join(example.work, 'cache-a') }) });
    const sp = join(out, 'lib/python3.11/site-packages');
    expect(await readdir(join(sp, 'tinyhttp-0.3.0.dist-info'))).toContain('REQUESTED');
    expect(await readdir(join(sp, 'tinyurl-1.1.0.dist-info'))).not.toContain('REQUESTED');
  });

  it('refuses a relative prefix', async () => {
    await expect(materializeEnv({ lock, prefix: 'opt/env', outDir: join(example.work, 'x'), cache: new PackageCache({ cacheDir: join(example.work, 'cache-a') }) })).rejects.toThrow(
      /not a normalised absolute path/,
    );
  });
});

describe('materializeEnv: a conda-meta record is named by its own package only', () => {
  // The build string is the channel's (rattler keeps it as any string) and the package's
  // info/index.json's: the record path conda-meta/<name>-<version>-<build>.json is made of it.
  it.each([
    ['a slash and ..: the record of another package', 'h0/../victim-1.0-h0'],
    ['a newline: a forged line in conda-meta/history', 'h0\n+https://evil.invalid::victim-9.9-h0'],
  ])('a build string with %s is refused naming the package; no env is left', async (_what, build) => {
    const dir = await mkdtemp(join(tmpdir(), 'prebuilt-record-name-'));
    try {
      const condaPackage = async (name: string, packageBuild: string): Promise<Buffer> =>
        bzip2Sync(
          await rawTar([
            { name: 'info/index.json', data: JSON.stringify({ name, version: '1.0', build: packageBuild, build_number: 0, depends: [], subdir: 'linux-64' }) },
            { name: 'info/paths.json', data: JSON.stringify({ paths: [{ _path: `share/${name}.txt`, path_type: 'hardlink' }], paths_version: 1 }) },
            { name: `share/${name}.txt`, data: `${name}\n` },
          ]),
        );
      const victim = await condaPackage('victim', 'h0');
      const evil = await condaPackage('evil', build);
      const lock = await fileLock(join(dir, 'pkgs'), [
        { kind: 'conda', filename: 'victim-1.0-h0.tar.bz2', bytes: victim, name: 'victim', version: '1.0', build: 'h0', subdir: 'linux-64' },
        { kind: 'conda', filename: 'evil-1.0-h0.tar.bz2', bytes: evil, name: 'evil', version: '1.0', build, subdir: 'linux-64' },
      ]);
      const out = join(dir, 'env');
      const error = await materializeEnv({ lock, prefix: PREFIX, outDir: out, cache: new PackageCache({ cacheDir: join(dir, 'cache') }), mtime: 0 }).catch((e: unknown) => e);
      expect(error, String(error)).toBeInstanceOf(InstallError);
      expect((error as Error).message).toContain('evil-1.0-h0.tar.bz2');
      expect((error as Error).message).toContain(`its build string ${JSON.stringify(build)}`);
      expect(await lstat(out).catch(() => undefined)).toBeUndefined();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
