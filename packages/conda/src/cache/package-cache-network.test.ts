/**
 * The download path of the package cache against hostile servers on 127.0.0.1: an endless or
 * oversize body stops at the locked size, a stall fails at the idle timeout, the hash is taken as
 * the bytes stream, and credentials of a configured channel reach its origin only.
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { urlCredentialsFromEnv } from '@prebuilt/core';
import { PackageCache } from './package-cache.js';
import { PackageDownloadError, PackageIntegrityError } from './errors.js';

const servers: Server[] = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

async function serve(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ origin: string; seen: { url: string; authorization?: string }[] }> {
  const seen: { url: string; authorization?: string }[] = [];
  const server = createServer((req, res) => {
    seen.push({ url: req.url!, ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}) });
    handler(req, res);
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen };
}

async function cacheDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'prebuilt-cache-net-'));
  dirs.push(dir);
  return dir;
}

const BODY = Buffer.alloc(100_000, 7);
const SHA = createHash('sha256').update(BODY).digest('hex');

describe('PackageCache downloads from hostile servers (127.0.0.1)', () => {
  it('stops an endless body at the locked size, names the package, and caches nothing', async () => {
    const server = await serve((_req, res) => {
      res.writeHead(200);
      const chunk = Buffer.alloc(64 * 1024, 7);
      const pump = (): void => {
        while (!res.destroyed && res.write(chunk));
      };
      res.on('drain', pump);
      pump();
    });
    const dir = await cacheDir();
    const cache = new PackageCache({ cacheDir: dir, env: {} });
    const error = await cache.ensure([{ url: `${server.origin}/bomb-1.0-0.conda`, sha256: SHA, size: BODY.length, filename: 'bomb-1.0-0.conda' }]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PackageIntegrityError);
    expect((error as Error).message).toBe(
      `bomb-1.0-0.conda (${server.origin}/bomb-1.0-0.conda) is larger than its locked size of 100000 bytes; the download was stopped and discarded.`,
    );
    expect((await readdir(join(dir, 'pkgs'))).filter((f) => !f.endsWith('.lock'))).toEqual([]);
    expect(server.seen).toHaveLength(1); // not retried
  });

  it('fails a download that stalls at the idle timeout (retried, then named)', async () => {
    const server = await serve((_req, res) => {
      res.writeHead(200, { 'content-length': BODY.length });
      res.write(BODY.subarray(0, 1000));
    });
    const cache = new PackageCache({ cacheDir: await cacheDir(), env: { METAFLOW_PREBUILT_NETWORK_IDLE_TIMEOUT: '0.3' }, attempts: 2 });
    const error = await cache.ensure([{ url: `${server.origin}/slow.conda`, sha256: SHA, size: BODY.length, filename: 'slow.conda' }]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PackageDownloadError);
    expect((error as Error).message).toMatch(/^Downloading http:\/\/127\.0\.0\.1:\d+\/slow\.conda failed after 2 attempts: download of slow\.conda from 127\.0\.0\.1:\d+: no data for 0\.3 s \(METAFLOW_PREBUILT_NETWORK_IDLE_TIMEOUT\)\.$/);
    // The second attempt resumed where the first stopped.
    expect(server.seen).toHaveLength(2);
  });

  it('fails a download that trickles (a byte every 100 ms: never idle) at the deadline of the request, named with the setting', async () => {
    let open = 0;
    const server = await serve((req, res) => {
      res.writeHead(200, { 'content-length': BODY.length });
      open++;
      const timer = setInterval(() => res.write(BODY.subarray(0, 1)), 100);
      req.socket.on('close', () => {
        open--;
        clearInterval(timer);
      });
    });
    const env = { METAFLOW_PREBUILT_NETWORK_IDLE_TIMEOUT: '5', METAFLOW_PREBUILT_NETWORK_DEADLINE: '1' };
    const cache = new PackageCache({ cacheDir: await cacheDir(), env, attempts: 2 });
    const started = performance.now();
    const error = await cache.ensure([{ url: `${server.origin}/drip.conda`, sha256: SHA, size: BODY.length, filename: 'drip.conda' }]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PackageDownloadError);
    expect((error as Error).message).toMatch(/^Downloading http:\/\/127\.0\.0\.1:\d+\/drip\.conda failed after 2 attempts: download of drip\.conda from 127\.0\.0\.1:\d+: not finished within 1 s \(METAFLOW_PREBUILT_NETWORK_DEADLINE\)\.$/);
    // Two attempts of about a second each, far from the idle timeout's 5 s, and no connection left open.
    expect(performance.now() - started).toBeLessThan(4500);
    expect(server.seen).toHaveLength(2);
    for (let waited = 0; open > 0 && waited < 2000; waited += 20) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(open).toBe(0);
  });

  it('sends the credentials of a configured channel to its origin only, not to a host it redirects to', async () => {
    const mirror = await serve((_req, res) => res.writeHead(200, { 'content-length': BODY.length }).end(BODY));
    const channel = await serve((req, res) => {
      if (req.url === '/ch/linux-64/moved.conda') res.writeHead(302, { location: `${mirror.origin}/files/moved.conda` }).end();
      else res.writeHead(200, { 'content-length': BODY.length }).end(BODY);
    });
    const host = channel.origin.slice('http://'.length);
    const credentials = urlCredentialsFromEnv({ METAFLOW_PREBUILT_CONDA_CHANNELS: `http://ci:tok3n@${host}/ch` });
    const cache = new PackageCache({ cacheDir: await cacheDir(), env: {}, credentials });
    const other = Buffer.concat([BODY, Buffer.from('x')]);
    const result = await cache.ensure([
      { url: `${channel.origin}/ch/linux-64/here.conda`, sha256: SHA, size: BODY.length, filename: 'here.conda' },
      { url: `${channel.origin}/ch/linux-64/moved.conda`, sha256: createHash('sha256').update(other).digest('hex'), size: other.length, filename: 'moved.conda' },
    ]).catch((e: unknown) => e);
    // The mirror serves other bytes than were locked for moved.conda: the hash (taken while streaming) says so.
    expect(result).toBeInstanceOf(PackageIntegrityError);
    const basic = `Basic ${Buffer.from('ci:tok3n').toString('base64')}`;
    expect(channel.seen.map((s) => s.authorization)).toEqual([basic, basic]);
    expect(mirror.seen).toEqual([{ url: '/files/moved.conda' }]);
  });
});
