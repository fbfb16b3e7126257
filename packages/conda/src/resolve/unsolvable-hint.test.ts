/**
 * A version no channel has, or a misspelt name: the solver says "No candidates were found for
 * tinynum ==9.9", and the hint says what the channels do have (read from the repodata the solve
 * served, by its file-name keys: a longer name sharing the prefix, tinynum-extra, is not listed).
 */
import { ResolutionError } from '@prebuilt/core';
import { describe, expect, it } from 'vitest';
import { useRepodataServer } from '../__fixtures__/repodata-server.js';
import { createResolver } from './resolver.js';

const record = (name: string, version: string, subdir: string) => ({ name, version, build: '0', build_number: 0, depends: [], subdir, size: 10, sha256: 'a'.repeat(64), md5: 'b'.repeat(32) });
const tinynums = ['1.2.0', '1.10.0', '1.9.0', '0.1', '0.2', '0.3', '0.4', '0.5', '0.6', '0.7', '0.8'];
const served = useRepodataServer((name, subdir) => {
  if (name !== 'chan') return undefined;
  const packages: Record<string, unknown> =
    subdir === 'linux-64'
      ? { 'python-3.11.9-0.tar.bz2': record('python', '3.11.9', subdir) }
      : {
          ...Object.fromEntries(tinynums.map((v) => [`tinynum-${v}-0.tar.bz2`, record('tinynum', v, subdir)])),
          'tinynum-extra-7.0-0.tar.bz2': record('tinynum-extra', '7.0', subdir),
        };
  const conda = subdir === 'noarch' ? { 'tinynum-1.9.0-0.conda': record('tinynum', '1.9.0', subdir) } : {};
  return { info: { subdir }, repodata_version: 1, packages, 'packages.conda': conda };
});

describe('an unsolvable conda request', () => {
  it("names the versions the channel has (newest first, ten, the rest counted), or that no channel has the name", async () => {
    const resolver = createResolver({ cacheDir: false, env: {} });
    try {
      const hint = async (conda: Record<string, string>) => {
        const error = await resolver.resolveEnv({ python: '3.11', conda, pypi: {}, channels: [`${served.origin}/chan`], indexUrl: null, platform: 'linux-64' }).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(ResolutionError);
        expect((error as ResolutionError).exitCode).toBe(2);
        return (error as ResolutionError).hint ?? '';
      };
      expect(await hint({ tinynum: '==9.9' })).toContain(' The channel has tinynum 1.10.0, 1.9.0, 1.2.0, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2 and 1 older. Check the package names');
      expect(await hint({ tinynun: '' })).toContain(' No channel has a package named tinynun for linux-64 or noarch. Check the package names');
    } finally {
      await resolver.close();
    }
  });
});
