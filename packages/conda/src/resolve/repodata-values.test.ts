/**
 * What a channel's repodata says of a package is written to the lock: a size the lock's reader
 * refuses (no safe integer) made a lock that no prebuilt command could read again.
 */
import { ResolutionError } from '@prebuilt/core';
import { describe, expect, it } from 'vitest';
import { useRepodataServer } from '../__fixtures__/repodata-server.js';
import { createResolver } from './resolver.js';

// 2^60: a u64 as repodata may hold, and no safe integer.
const HUGE = '1152921504606846976';
const served = useRepodataServer((name, subdir) => {
  if (name !== 'huge') return undefined;
  const packages = subdir === 'linux-64' ? `{"python-3.11.9-0.tar.bz2": {"name": "python", "version": "3.11.9", "build": "0", "build_number": 0, "depends": [], "subdir": "linux-64", "size": ${HUGE}, "sha256": "${'a'.repeat(64)}", "md5": "${'b'.repeat(32)}"}}` : '{}';
  return `{"info": {"subdir": "${subdir}"}, "packages": ${packages}, "packages.conda": {}}`;
});

describe("a channel's repodata", () => {
  it('naming a size no lock can hold is a ResolutionError naming the package and the channel', async () => {
    const resolver = createResolver({ cacheDir: false, env: {} });
    try {
      const error = await resolver.resolveEnv({ python: '3.11', conda: {}, pypi: {}, channels: [`${served.origin}/huge`], indexUrl: null, platform: 'linux-64' }).catch((e: unknown) => e);
      expect(ResolutionError.isInstance(error), String(error)).toBe(true);
      expect((error as ResolutionError).message).toBe(`Conda channel ${served.origin}/huge gives python-3.11.9-0.tar.bz2 the size ${HUGE}, which is not a byte count a lock can hold; refusing to lock it.`);
      expect((error as ResolutionError).exitCode).toBe(2);
    } finally {
      await resolver.close();
    }
  });
});
