import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { chmod, lstat, mkdtemp, readdir, readFile, rm, stat, symlink, truncate, utimes, writeFile } from 'node:fs/promises';
import { pathToFileURL } from 'node:url';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { acquireFileLock, CancelledError, InputError } from '@prebuilt/core';
import { defaultCacheDir, PackageCache, type CacheNote, type DownloadProgress } from './package-cache.js';
import { PackageDownloadError, PackageIntegrityError } from './errors.js';

const files = new Map<string, Buffer>();
for (let i = 0; i < 8; i++) files.set(`/f${i}.tar.bz2`, Buffer.alloc(50_000 + i * 1000, i + 1));
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

let server: Server;
let base: string;
const requests: { path: string; range: string | undefined }[] = [];
let active = 0;
let maxActive = 0;
/** Paths whose next full response is cut after half the body. */
const cutOnce = new Set<string>();

beforeAll(async () => {
  server = createServer((req, res) => {
    const path = req.url ?? '';
    requests.push({ path, range: req.headers.range });
    const body = files.get(path);
    if (!body) {
      res.writeHead(404).end();
      return;
    }
    active += 1;
    maxActive = Math.max(maxActive, active);
    setTimeout(() => {
      active -= 1;
      const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
      if (range) {
        const start = Number(range[1]);
        res.writeHead(206, { 'content-length': body.length - start, 'content-range': `bytes ${start}-${body.length - 1}/${body.length}` });
        res.end(body.subarray(start));
        return;
      }
      if (cutOnce.delete(path)) {
        res.writeHead(200, { 'content-length': body.length });
        res.write(body.subarray(0, body.length / 2), () => setTimeout(() => res.destroy(), 100));
        return;
      }
      res.writeHead(200, { 'content-length': body.length }).end(body);
    }, 20);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
});

function pkg(path: string, content = files.get(path)!) {
  return { url: `${base}${path}`, sha256: sha(content), size: content.length, filename: path.slice(1) };
}

async function tempCache(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'prebuilt-cache-'));
}

describe('defaultCacheDir', () => {
  it('prefers the option, then METAFLOW_PREBUILT_CACHE_DIR, then XDG_CACHE_HOME', () => {
    expect(defaultCacheDir({ cacheDir: '/a', env: { METAFLOW_PREBUILT_CACHE_DIR: '/b' } })).toBe('/a');
    expect(defaultCacheDir({ env: { METAFLOW_PREBUILT_CACHE_DIR: '/b', XDG_CACHE_HOME: '/x' } })).toBe('/b');
    expect(defaultCacheDir({ env: { XDG_CACHE_HOME: '/x' } })).toBe('/x/prebuilt');
    expect(defaultCacheDir({ env: {} })).toMatch(/\.cache\/prebuilt$/);
    expect(defaultCacheDir({ env: { METAFLOW_PREBUILT_CACHE_DIR: 'rel' } })).toBe(join(process.cwd(), 'rel'));
  });
});

describe('PackageCache', () => {
  it('downloads at most `concurrency` files at once, verifies them, and downloads nothing the second time', async () => {
    const dir = await tempCache();
    const cache = new PackageCache({ cacheDir: dir, concurrency: 3 });
    const all = [...files.keys()].map((p) => pkg(p));
    requests.length = 0;
    maxActive = 0;
    const events: DownloadProgress[] = [];
    const first = await cache.ensure(all, { onProgress: (e) => events.push(e) });
    expect(first.filesDownloaded).toBe(8);
    expect(requests).toHaveLength(8);
    expect(maxActive).toBeLessThanOrEqual(3);
    expect(maxActive).toBeGreaterThan(1);
    const last = events.at(-1)!;
    expect(last.filesDone).toBe(8);
    expect(last.bytesDone).toBe(last.bytesTotal);
    for (const p of all) expect(sha(await readFile(first.paths.get(p.sha256)!))).toBe(p.sha256);
    expect((await readdir(join(dir, 'pkgs'))).filter((f) => f.endsWith('.partial'))).toEqual([]);

    requests.length = 0;
    const second = await new PackageCache({ cacheDir: dir }).ensure(all);
    expect(requests).toHaveLength(0);
    expect(second.filesDownloaded).toBe(0);
    expect(second.filesCached).toBe(8);
    await rm(dir, { recursive: true });
  });

  it('resumes an interrupted download with a Range request', async () => {
    const dir = await tempCache();
    const p = pkg('/f1.tar.bz2');
    cutOnce.add('/f1.tar.bz2');
    requests.length = 0;
    await new PackageCache({ cacheDir: dir }).ensure([p]);
    expect(requests.map((r) => r.path)).toEqual(['/f1.tar.bz2', '/f1.tar.bz2']);
    expect(requests[1]!.range).toMatch(/^bytes=\d+-$/);
    expect(Number(/\d+/.exec(requests[1]!.range!)![0])).toBeGreaterThan(0);
    expect(sha(await readFile(join(dir, 'pkgs', p.sha256)))).toBe(p.sha256);
    await rm(dir, { recursive: true });
  });

  it('resumes from a partial file left by an earlier process', async () => {
    const dir = await tempCache();
    const p = pkg('/f2.tar.bz2');
    await new PackageCache({ cacheDir: dir }).ensure([]);
    await writeFile(join(dir, 'pkgs', `${p.sha256}.partial`), files.get('/f2.tar.bz2')!.subarray(0, 1234));
    requests.length = 0;
    await new PackageCache({ cacheDir: dir }).ensure([p]);
    expect(requests).toEqual([{ path: '/f2.tar.bz2', range: 'bytes=1234-' }]);
    expect(sha(await readFile(join(dir, 'pkgs', p.sha256)))).toBe(p.sha256);
    await rm(dir, { recursive: true });
  });

  it('never writes through a symlink planted at the partial file: it is removed and the file downloaded whole', async () => {
    // Another user of a shared cache directory knows the sha256 (lock files are public) and points
    // <sha256>.partial at a file of the user's: the resume appended the package's bytes to it.
    const dir = await tempCache();
    const victim = join(dir, 'authorized_keys');
    await writeFile(victim, 'ssh-ed25519 AAAA the-users-key\n');
    const p = pkg('/f3.tar.bz2');
    await new PackageCache({ cacheDir: dir }).ensure([]);
    await symlink(victim, join(dir, 'pkgs', `${p.sha256}.partial`));
    requests.length = 0;
    await new PackageCache({ cacheDir: dir }).ensure([p]);
    expect(await readFile(victim, 'utf8')).toBe('ssh-ed25519 AAAA the-users-key\n');
    expect(requests).toEqual([{ path: '/f3.tar.bz2', range: undefined }]);
    expect((await lstat(join(dir, 'pkgs', p.sha256))).isFile()).toBe(true);
    expect(sha(await readFile(join(dir, 'pkgs', p.sha256)))).toBe(p.sha256);
    // A file: URL is copied the same way.
    const local = join(dir, 'local.tar.bz2');
    await writeFile(local, files.get('/f4.tar.bz2')!);
    const q = { ...pkg('/f4.tar.bz2'), url: pathToFileURL(local).href };
    await symlink(victim, join(dir, 'pkgs', `${q.sha256}.partial`));
    await new PackageCache({ cacheDir: dir }).ensure([q]);
    expect(await readFile(victim, 'utf8')).toBe('ssh-ed25519 AAAA the-users-key\n');
    expect(sha(await readFile(join(dir, 'pkgs', q.sha256)))).toBe(q.sha256);
    await rm(dir, { recursive: true });
  });

  it('makes a missing cache directory private to its user (0700); an existing one keeps its mode', async () => {
    const parent = await tempCache();
    const dir = join(parent, 'prebuilt');
    await new PackageCache({ cacheDir: dir }).ensure([pkg('/f1.tar.bz2')]);
    expect((await stat(dir)).mode & 0o7777).toBe(0o700);
    await chmod(parent, 0o755);
    await new PackageCache({ cacheDir: parent }).ensure([pkg('/f1.tar.bz2')]);
    expect((await stat(parent)).mode & 0o7777).toBe(0o755);
    await rm(parent, { recursive: true });
  });

  it('reads a FIFO planted at an entry\'s verified record as no record: the entry is hashed, nothing hangs', async () => {
    const dir = await tempCache();
    const p = pkg('/f5.tar.bz2');
    await new PackageCache({ cacheDir: dir }).ensure([p]);
    const record = join(dir, 'pkgs', `${p.sha256}.verified`);
    await rm(record);
    execFileSync('mkfifo', [record]);
    const result = await Promise.race([new PackageCache({ cacheDir: dir }).ensure([p]), new Promise<'hung'>((resolve) => setTimeout(() => resolve('hung'), 5000).unref())]);
    expect(result).not.toBe('hung');
    expect((result as { filesCached: number }).filesCached).toBe(1);
    await rm(dir, { recursive: true });
  });

  it('refuses a file: URL that is not a regular file (a lock naming /dev/zero filled the disk up to its locked size)', async () => {
    const dir = await tempCache();
    const zero = { url: 'file:///dev/zero', sha256: 'a'.repeat(64), size: 1024 ** 4, filename: 'zero-1.0-0.conda' };
    const started = Date.now();
    const error = await new PackageCache({ cacheDir: dir }).ensure([zero]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InputError);
    expect((error as InputError).message).toBe('The lock names file:///dev/zero for zero-1.0-0.conda, which is a device, not a regular file.');
    expect((error as InputError).exitCode).toBe(2);
    expect(Date.now() - started).toBeLessThan(5000);
    expect(await readdir(join(dir, 'pkgs'))).toEqual([]);
    await rm(dir, { recursive: true });
  });

  it('discards a file whose hash does not match and names the URL and both hashes', async () => {
    const dir = await tempCache();
    const wrong = Buffer.alloc(files.get('/f3.tar.bz2')!.length, 9);
    const p = pkg('/f3.tar.bz2', wrong);
    const error = await new PackageCache({ cacheDir: dir }).ensure([p]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PackageIntegrityError);
    const message = (error as Error).message;
    expect(message).toContain(p.url);
    expect(message).toContain(p.sha256);
    expect(message).toContain(sha(files.get('/f3.tar.bz2')!));
    expect(await readdir(join(dir, 'pkgs'))).toEqual([]);
    await rm(dir, { recursive: true });
  });

  it('fails on HTTP 404 naming the URL, without retrying', async () => {
    const dir = await tempCache();
    requests.length = 0;
    const p = { url: `${base}/missing.conda`, sha256: 'a'.repeat(64), size: 3, filename: 'missing.conda' };
    const error = await new PackageCache({ cacheDir: dir }).ensure([p]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PackageDownloadError);
    expect((error as Error).message).toContain(`${base}/missing.conda`);
    expect((error as Error).message).toContain('404');
    expect(requests).toHaveLength(1);
    await rm(dir, { recursive: true });
  });

  it('stops with CancelledError when the signal is aborted', async () => {
    const dir = await tempCache();
    const controller = new AbortController();
    controller.abort();
    const error = await new PackageCache({ cacheDir: dir }).ensure([pkg('/f4.tar.bz2')], { signal: controller.signal }).catch((e: unknown) => e);
    expect(CancelledError.isInstance(error)).toBe(true);
    expect(await new PackageCache({ cacheDir: dir }).has(pkg('/f4.tar.bz2').sha256)).toBe(false);
    await rm(dir, { recursive: true });
  });
});

describe('PackageCache: a cached entry is what was locked', () => {
  const tampers: [string, (entry: string) => Promise<void>][] = [
    ['replaced by other content of the same size, mtime restored', async (entry) => {
      execFileSync('touch', ['-r', entry, `${entry}.ref`]);
      await writeFile(entry, Buffer.alloc((await stat(entry)).size, 0x41));
      execFileSync('touch', ['-r', `${entry}.ref`, entry]);
      await rm(`${entry}.ref`);
    }],
    ['truncated', (entry) => truncate(entry, 100)],
    ['garbage', (entry) => writeFile(entry, 'not a package')],
  ];

  it.each(tampers)('an entry %s is removed with a note naming it and downloaded again', async (_what, tamper) => {
    const dir = await tempCache();
    const notes: CacheNote[] = [];
    const cache = new PackageCache({ cacheDir: dir, onNote: (note) => notes.push(note) });
    const file = pkg('/f6.tar.bz2');
    await cache.ensure([file]);
    const entry = cache.pathFor(file.sha256);
    await tamper(entry);
    requests.length = 0;
    const result = await cache.ensure([file]);
    expect(result.filesDownloaded).toBe(1);
    expect(result.filesCached).toBe(0);
    expect(requests.map((r) => r.path)).toEqual(['/f6.tar.bz2']);
    expect(await readFile(entry)).toEqual(files.get('/f6.tar.bz2'));
    expect(notes).toHaveLength(1);
    expect(notes[0]).toMatchObject({ kind: 'entry-mismatch', path: entry, filename: 'f6.tar.bz2' });
    expect(notes[0]!.message).toContain(entry);
    expect(notes[0]!.message).toMatch(/does not match the lock: .*It was removed and is downloaded again\./);
    // Healed: the next call uses the entry without a note or a download.
    requests.length = 0;
    expect((await cache.ensure([file])).filesCached).toBe(1);
    expect(requests).toEqual([]);
    expect(notes).toHaveLength(1);
  });

  it('an unchanged entry is used on its record without hashing; a changed mtime makes it hashed once, then recorded again', async () => {
    const dir = await tempCache();
    const cache = new PackageCache({ cacheDir: dir });
    const file = pkg('/f7.tar.bz2');
    await cache.ensure([file]);
    const entry = cache.pathFor(file.sha256);
    const record = JSON.parse(await readFile(`${entry}.verified`, 'utf8')) as Record<string, unknown>;
    expect(record).toMatchObject({ sha256: file.sha256, size: file.size });
    await utimes(entry, new Date(1_000_000), new Date(1_000_000));
    const { checkEntry } = await import('./verified-entry.js');
    const md5 = createHash('md5').update(files.get('/f7.tar.bz2')!).digest('hex');
    expect(await checkEntry(entry, file)).toEqual({ state: 'ok', hashed: true, md5 });
    expect(await checkEntry(entry, file)).toEqual({ state: 'ok', hashed: false, md5 });
    requests.length = 0;
    expect((await cache.ensure([file])).filesCached).toBe(1);
    expect(requests).toEqual([]);
  });

  it("gives each file's md5, hashed with its sha256 at download and kept in its record (a changed file is hashed again)", async () => {
    const dir = await tempCache();
    const cache = new PackageCache({ cacheDir: dir });
    const file = pkg('/f6.tar.bz2');
    const md5 = createHash('md5').update(files.get('/f6.tar.bz2')!).digest('hex');
    const downloaded = await cache.ensure([file]);
    expect([downloaded.filesDownloaded, downloaded.md5.get(file.sha256)]).toEqual([1, md5]);
    const entry = cache.pathFor(file.sha256);
    expect(JSON.parse(await readFile(`${entry}.verified`, 'utf8'))).toMatchObject({ sha256: file.sha256, md5 });
    // Trusted from the record while the file's metadata is unchanged: a record naming another md5
    // (written by hand here, to see where the value comes from) is what ensure gives.
    const record = JSON.parse(await readFile(`${entry}.verified`, 'utf8')) as Record<string, unknown>;
    await writeFile(`${entry}.verified`, JSON.stringify({ ...record, md5: '0'.repeat(32) }));
    expect((await cache.ensure([file])).md5.get(file.sha256)).toBe('0'.repeat(32));
    // The file's metadata changed (its mtime here): hashed again, the real md5 back in the record.
    await utimes(entry, new Date(2_000_000), new Date(2_000_000));
    expect((await cache.ensure([file])).md5.get(file.sha256)).toBe(md5);
    expect(JSON.parse(await readFile(`${entry}.verified`, 'utf8'))).toMatchObject({ md5 });
    // A record from before md5s were kept: the entry is hashed once more and the md5 recorded.
    const { md5: _dropped, ...old } = JSON.parse(await readFile(`${entry}.verified`, 'utf8')) as Record<string, unknown>;
    await writeFile(`${entry}.verified`, JSON.stringify(old));
    expect((await cache.ensure([file])).md5.get(file.sha256)).toBe(md5);
    expect(JSON.parse(await readFile(`${entry}.verified`, 'utf8'))).toMatchObject({ md5 });
  });

  it('a download another process holds is waited for with a note naming the holder', async () => {
    const dir = await tempCache();
    const notes: CacheNote[] = [];
    const cache = new PackageCache({ cacheDir: dir, onNote: (note) => notes.push(note) });
    const file = pkg('/f5.tar.bz2');
    const held = await acquireFileLock(`${cache.pathFor(file.sha256)}.lock`, { purpose: 'download elsewhere' });
    setTimeout(() => void held.release(), 300);
    const result = await cache.ensure([file]);
    expect(result.filesDownloaded + result.filesCached).toBe(1);
    expect(notes).toHaveLength(1);
    expect(notes[0]).toMatchObject({ kind: 'waiting', filename: 'f5.tar.bz2' });
    expect(notes[0]!.message).toMatch(new RegExp(`^Waiting for f5\\.tar\\.bz2, which another prebuilt process downloads: pid ${process.pid} on host .+ \\(download elsewhere\\), holding it since`));
  });
});

