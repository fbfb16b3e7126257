import { createServer, type IncomingMessage, type Server } from 'node:http';
import { mkdtemp, mkdir, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { NetworkError, ResolutionError, UnreachableError, UrlCredentials } from '@prebuilt/core';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { RepodataCache } from './repodata-cache.js';

/** A tiny channel server on 127.0.0.1 with ETags, max-age and failure modes, recording requests. */
let server: Server;
let base: string;
let dir: string;
let requests: { url: string; ifNoneMatch: string | undefined; authorization?: string | undefined }[] = [];
let body = '{"packages":{}}';
let maxAge = 0;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'prebuilt-repodata-'));
  server = createServer((req: IncomingMessage, res) => {
    requests.push({ url: req.url ?? '', ifNoneMatch: req.headers['if-none-match'], authorization: req.headers.authorization });
    if (req.url === '/big/linux-64/repodata.json') return void res.writeHead(200, { 'content-type': 'application/json' }).end(`{"x":"${'a'.repeat(3 * 1024 * 1024)}"}`);
    if (req.url === '/broken/linux-64/repodata.json') return void res.writeHead(500, 'Boom').end();
    if (req.url === '/drip/linux-64/repodata.json') {
      // A channel that trickles: a byte every 100 ms, never idle long enough for the idle timeout.
      res.writeHead(200, { 'content-type': 'application/json' }).write('{');
      const timer = setInterval(() => res.write(' '), 100);
      req.socket.on('close', () => clearInterval(timer));
      return;
    }
    if (!req.url?.startsWith('/ch/') || req.url.includes('linux-aarch64')) return void res.writeHead(404).end();
    const etag = `"${body.length}"`;
    const cacheControl = maxAge ? `max-age=${maxAge}` : 'no-cache';
    if (req.headers['if-none-match'] === etag) return void res.writeHead(304, { etag, 'cache-control': cacheControl }).end();
    res.writeHead(200, { etag, 'cache-control': cacheControl, 'content-type': 'application/json' }).end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});
afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await rm(dir, { recursive: true, force: true });
});
beforeEach(() => {
  requests = [];
  maxAge = 0;
});

describe('RepodataCache', () => {
  it('fetches once per process, revalidates with If-None-Match in the next one (304 reuses the copy)', async () => {
    const cacheDir = join(dir, 'etag');
    const first = new RepodataCache({ dir: cacheDir });
    expect((await first.get(`${base}/ch`, 'noarch'))?.toString()).toBe(body);
    await first.get(`${base}/ch`, 'noarch');
    expect(requests).toHaveLength(1);
    const second = new RepodataCache({ dir: cacheDir });
    expect((await second.get(`${base}/ch/`, 'noarch'))?.toString()).toBe(body);
    expect(requests).toEqual([
      { url: '/ch/noarch/repodata.json', ifNoneMatch: undefined },
      { url: '/ch/noarch/repodata.json', ifNoneMatch: `"${body.length}"` },
    ]);
  });

  it('makes its missing directory private to its user (0700) before writing a copy there, whatever the umask', async () => {
    const cacheDir = join(dir, 'private', 'repodata');
    const previous = process.umask(0o002);
    try {
      expect((await new RepodataCache({ dir: cacheDir }).get(`${base}/ch`, 'noarch'))?.toString()).toBe(body);
    } finally {
      process.umask(previous);
    }
    expect((await stat(cacheDir)).mode & 0o7777).toBe(0o700);
    expect((await readdir(cacheDir)).sort()).toHaveLength(2);
  });

  it('uses a copy without asking while max-age says it is fresh; refresh asks anyway', async () => {
    const cacheDir = join(dir, 'fresh');
    maxAge = 600;
    await new RepodataCache({ dir: cacheDir }).get(`${base}/ch`, 'linux-64');
    await new RepodataCache({ dir: cacheDir }).get(`${base}/ch`, 'linux-64');
    expect(requests).toHaveLength(1);
    await new RepodataCache({ dir: cacheDir, refresh: true }).get(`${base}/ch`, 'linux-64');
    expect(requests).toHaveLength(2);
  });

  it('a copy fetched while the clock was ahead (then set back: NTP, a wrong RTC) is not taken for fresh until the clock catches up: it is revalidated', async () => {
    // max-age counts from the fetch: fetched a year ahead, the copy read as fresh for a year and a
    // lock resolved against it, however stale the channel's packages.
    const cacheDir = join(dir, 'clock-back');
    maxAge = 600;
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      vi.setSystemTime(Date.now() + 365 * 86_400_000);
      await new RepodataCache({ dir: cacheDir }).get(`${base}/ch`, 'linux-64');
    } finally {
      vi.useRealTimers();
    }
    expect(requests).toHaveLength(1);
    await new RepodataCache({ dir: cacheDir }).get(`${base}/ch`, 'linux-64');
    expect(requests).toEqual([
      { url: '/ch/linux-64/repodata.json', ifNoneMatch: undefined },
      { url: '/ch/linux-64/repodata.json', ifNoneMatch: `"${body.length}"` },
    ]);
    // Revalidated now, it is fresh from now on, by this clock.
    await new RepodataCache({ dir: cacheDir }).get(`${base}/ch`, 'linux-64');
    expect(requests).toHaveLength(2);
  });

  it('a missing subdir (404) is null; a server error is a ResolutionError, an unreachable channel an UnreachableError, each with the URL', async () => {
    const cache = new RepodataCache();
    expect(await cache.get(`${base}/ch`, 'linux-aarch64')).toBeNull();
    await expect(cache.get(`${base}/broken`, 'linux-64')).rejects.toThrow(`500 Boom for ${base}/broken/linux-64/repodata.json`);
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const closed = `http://127.0.0.1:${(probe.address() as { port: number }).port}/nothing`;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const error = await cache.get(closed, 'noarch').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UnreachableError);
    expect(error).toMatchObject({ code: 'unreachable', service: `conda channel ${new URL(closed).origin}` });
    expect((error as Error).message).toContain(`GET ${closed}/noarch/repodata.json failed: `);
    expect((error as Error).message).toMatch(/ECONNREFUSED/);
    // The channel may come from a decorator's channel::package (conda-forge::numpy), not the setting.
    expect((error as UnreachableError).hint).toBe('Check the channel URL (METAFLOW_PREBUILT_CONDA_CHANNELS, or channel::package in a decorator) and your network or proxy settings.');
    const failed = await cache.get(`${base}/broken`, 'linux-64').catch((e: unknown) => e);
    expect((failed as ResolutionError).hint).toBe('Check the channel URL (METAFLOW_PREBUILT_CONDA_CHANNELS, or channel::package in a decorator) and any credentials it needs.');
  });

  it('reads file:// channels from disk (missing subdir → null)', async () => {
    const channel = join(dir, 'file-channel');
    await mkdir(join(channel, 'noarch'), { recursive: true });
    await writeFile(join(channel, 'noarch', 'repodata.json'), '{"packages":{"a":1}}');
    const cache = new RepodataCache();
    expect((await cache.get(pathToFileURL(channel).href, 'noarch'))?.toString()).toBe('{"packages":{"a":1}}');
    expect(await cache.get(pathToFileURL(channel).href, 'linux-64')).toBeNull();
  });
});

describe('RepodataCache: bounds and credentials', () => {
  it('refuses a repodata.json over its bound, naming the channel and the setting', async () => {
    const cache = new RepodataCache({ maxBytes: 2 * 1024 * 1024 });
    const error = await cache.get(`${base}/big`, 'linux-64').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(NetworkError);
    expect((error as NetworkError).message).toBe(`Conda channel: GET ${base}/big/linux-64/repodata.json failed: repodata from ${base.slice(7)} is larger than 2 MiB; refused.`);
    expect((error as NetworkError).hint).toContain('METAFLOW_PREBUILT_REPODATA_MAX_SIZE');
    expect((error as NetworkError).exitCode).toBe(1);
  });

  it('fails a repodata.json that trickles at the deadline of the request (not only a stalled one), naming the channel and the setting', async () => {
    const cache = new RepodataCache({ timeouts: { idleMs: 5000, deadlineMs: 1000 } });
    const started = performance.now();
    const error = await cache.get(`${base}/drip`, 'linux-64').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(NetworkError);
    expect((error as NetworkError).reason).toBe('deadline');
    expect((error as NetworkError).message).toContain(`repodata from ${base.slice(7)}: not finished within 1 s (METAFLOW_PREBUILT_NETWORK_DEADLINE)`);
    expect((error as NetworkError).exitCode).toBe(1);
    expect(performance.now() - started).toBeLessThan(4000);
  });

  it('reads a FIFO or a symlink planted at a cached copy as no copy: fetched again, nothing hangs', async () => {
    const cacheDir = join(dir, 'planted');
    maxAge = 3600;
    await new RepodataCache({ dir: cacheDir }).get(`${base}/ch`, 'linux-64');
    const { execFileSync } = await import('node:child_process');
    const { readdir, rm: remove, symlink } = await import('node:fs/promises');
    const files = await readdir(cacheDir);
    for (const file of files) {
      await remove(join(cacheDir, file));
      if (file.endsWith('.meta.json')) await symlink('/dev/zero', join(cacheDir, file));
      else execFileSync('mkfifo', [join(cacheDir, file)]);
    }
    const before = requests.length;
    const got = await Promise.race([new RepodataCache({ dir: cacheDir }).get(`${base}/ch`, 'linux-64'), new Promise<'hung'>((resolve) => setTimeout(() => resolve('hung'), 5000).unref())]);
    expect(got).not.toBe('hung');
    expect(String(got)).toBe(body);
    expect(requests.length).toBe(before + 1);
    // Written anew: the planted entries replaced (never written through).
    const { lstat } = await import('node:fs/promises');
    for (const file of files) expect((await lstat(join(cacheDir, file))).isFile(), file).toBe(true);
    maxAge = 0;
  });

  it("sends a channel's credentials as Basic auth, and caches under the URL without them", async () => {
    const credentials = new UrlCredentials();
    const channel = credentials.add(`http://ci:tok@${base.slice(7)}/ch`);
    const cacheDir = join(dir, 'with-credentials');
    await new RepodataCache({ dir: cacheDir, credentials }).get(channel, 'noarch');
    expect(requests.at(-1)).toMatchObject({ url: '/ch/noarch/repodata.json', authorization: `Basic ${Buffer.from('ci:tok').toString('base64')}` });
    const { readdir, readFile } = await import('node:fs/promises');
    for (const file of await readdir(cacheDir)) expect(await readFile(join(cacheDir, file), 'utf8')).not.toContain('tok');
  });
});
