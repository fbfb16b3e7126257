/**
 * A channel's repodata may name where its packages live (`info.base_url`, repodata v2): a CDN, as
 * conda allows. A remote channel naming a `file:` base_url made the lock point at files of the
 * machine that locks or builds (`file:///etc/…`): hashed when the repodata gave no sha256 (a device
 * such as /dev/zero hashed forever), their sha256 and size written to the lock.
 */
import { ResolutionError } from '@prebuilt/core';
import { describe, expect, it } from 'vitest';
import { useRepodataServer } from '../__fixtures__/repodata-server.js';
import { createResolver } from './resolver.js';

const python = { name: 'python', version: '3.11.9', build: '0', build_number: 0, depends: [], subdir: 'linux-64', size: 10, sha256: 'a'.repeat(64), md5: 'b'.repeat(32) };
const served = useRepodataServer((name, subdir) => {
  if (name !== 'file' && name !== 'cdn') return undefined;
  const base = name === 'file' ? 'file:///etc/' : 'https://cdn.example.org/pkgs/';
  const packages = subdir === 'linux-64' ? { 'python-3.11.9-0.tar.bz2': python } : {};
  return { info: { subdir, base_url: base }, repodata_version: 2, packages, 'packages.conda': {} };
});

describe("a channel's base_url", () => {
  it('is followed to another http(s) host (a CDN), and refused when it is not an http(s) URL', async () => {
    const resolver = createResolver({ cacheDir: false, env: {} });
    try {
      const request = (channel: string) => ({ python: '3.11', conda: {}, pypi: {}, channels: [`${served.origin}/${channel}`], indexUrl: null, platform: 'linux-64' as const });
      const cdn = await resolver.resolveEnv(request('cdn'));
      expect(cdn.packages.map((p) => p.url)).toEqual(['https://cdn.example.org/pkgs/python-3.11.9-0.tar.bz2']);
      const error = await resolver.resolveEnv(request('file')).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ResolutionError);
      expect((error as ResolutionError).message).toBe(
        `Conda channel ${served.origin}/file names python-3.11.9-0.tar.bz2 at file:///etc/python-3.11.9-0.tar.bz2 (its repodata's base_url), which is not an http(s) URL; refusing to lock it.`,
      );
      expect((error as ResolutionError).exitCode).toBe(2);
    } finally {
      await resolver.close();
    }
  });
});
