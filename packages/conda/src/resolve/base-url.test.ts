/**
 * A channel's repodata may name where its packages live (`info.base_url`, repodata v2): a CDN, as
 * conda allows. A remote channel naming a `file:` base_url made the lock point at files of the
 * machine that locks or builds (`file:///etc/…`): hashed when the repodata gave no sha256 (a device
 * such as /dev/zero hashed forever), their sha256 and size written to the lock.
 */
import { createServer, type Server } from 'node:http';
import { ResolutionError } from '@prebuilt/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createResolver } from './resolver.js';

const python = { name: 'python', version: '3.11.9', build: '0', build_number: 0, depends: [], subdir: 'linux-64', size: 10, sha256: 'a'.repeat(64), md5: 'b'.repeat(32) };
let server: Server;
let origin: string;

beforeAll(async () => {
  server = createServer((req, res) => {
    const match = /^\/(file|cdn)\/([^/]+)\/repodata\.json$/.exec(req.url ?? '');
    if (!match) return void res.writeHead(404).end();
    const base = match[1] === 'file' ? 'file:///etc/' : 'https://cdn.example.org/pkgs/';
    const packages = match[2] === 'linux-64' ? { 'python-3.11.9-0.tar.bz2': python } : {};
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ info: { subdir: match[2], base_url: base }, repodata_version: 2, packages, 'packages.conda': {} }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  origin = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});
afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

describe("a channel's base_url", () => {
  it('is followed to another http(s) host (a CDN), and refused when it is not an http(s) URL', async () => {
    const resolver = createResolver({ cacheDir: false, env: {} });
    try {
      const request = (channel: string) => ({ python: '3.11', conda: {}, pypi: {}, channels: [`${origin}/${channel}`], indexUrl: null, platform: 'linux-64' as const });
      const cdn = await resolver.resolveEnv(request('cdn'));
      expect(cdn.packages.map((p) => p.url)).toEqual(['https://cdn.example.org/pkgs/python-3.11.9-0.tar.bz2']);
      const error = await resolver.resolveEnv(request('file')).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ResolutionError);
      expect((error as ResolutionError).message).toBe(
        `Conda channel ${origin}/file names python-3.11.9-0.tar.bz2 at file:///etc/python-3.11.9-0.tar.bz2 (its repodata's base_url), which is not an http(s) URL; refusing to lock it.`,
      );
      expect((error as ResolutionError).exitCode).toBe(2);
    } finally {
      await resolver.close();
    }
  });
});
