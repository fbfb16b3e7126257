import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { buildCondaPackage, buildWheel } from '@prebuilt/fixtures';
import type { LockedPackage } from '@prebuilt/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PackageCache } from '../cache/package-cache.js';
import { condaPackageLicense, lockedLicenses, metadataHeader, wheelLicense } from './package-license.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'prebuilt-license-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function written(name: string, bytes: Uint8Array): Promise<string> {
  const file = join(dir, name);
  await writeFile(file, bytes);
  return file;
}

describe('package licences', () => {
  it('reads the license of info/index.json from both conda formats', async () => {
    const artifacts = await buildCondaPackage({ name: 'tinylic', version: '1.0.0', license: 'BSD-3-Clause', files: [{ path: 'share/tinylic.txt', content: 'x' }] });
    expect(artifacts.map((a) => a.format).sort()).toEqual(['.conda', '.tar.bz2']);
    for (const artifact of artifacts) {
      expect(await condaPackageLicense(await written(artifact.filename, artifact.bytes), artifact.filename), artifact.format).toBe('BSD-3-Clause');
    }
  });

  it('reads License-Expression, else License, of a wheel METADATA', async () => {
    const wheel = buildWheel({ name: 'tinywheel', version: '2.0', license: 'MIT', files: [{ path: 'tinywheel/__init__.py', content: '' }] });
    expect(await wheelLicense(await written(wheel.filename, wheel.bytes), wheel.filename)).toBe('MIT');
    const text = 'Metadata-Version: 2.4\nName: x\nLicense: Some licence\n  with a second line\nLicense-Expression: Apache-2.0 OR MIT\n\nLicense: not a header';
    expect(metadataHeader(text, 'License-Expression')).toBe('Apache-2.0 OR MIT');
    expect(metadataHeader(text, 'License')).toBe('Some licence\nwith a second line');
    expect(metadataHeader('Name: x\nLicense: UNKNOWN\n', 'License')).toBeUndefined();
  });

  it('gives the licences of a lock from the package cache', async () => {
    const [conda] = await buildCondaPackage({ name: 'cachedlic', version: '1.0.0', license: 'Zlib', formats: ['.conda'], files: [{ path: 'share/c.txt', content: 'c' }] });
    const wheel = buildWheel({ name: 'cachedwheel', version: '1.0', license: 'ISC', files: [{ path: 'cachedwheel/__init__.py', content: '' }] });
    const cache = new PackageCache({ cacheDir: join(dir, 'cache'), env: {} });
    const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
    const packages: LockedPackage[] = [
      { kind: 'conda', name: 'cachedlic', version: '1.0.0', build: conda!.record.build, url: `http://127.0.0.1:9/noarch/${conda!.filename}`, sha256: sha(conda!.bytes), size: conda!.bytes.length, filename: conda!.filename, subdir: 'noarch' },
      { kind: 'pypi', name: 'cachedwheel', version: '1.0', build: '', url: `http://127.0.0.1:9/${wheel.filename}`, sha256: wheel.sha256, size: wheel.bytes.length, filename: wheel.filename },
    ];
    // Put them into the cache as a download would (no server: a fetch to 127.0.0.1:9 would fail).
    await mkdir(dirname(cache.pathFor(conda!.record.sha256)), { recursive: true });
    await writeFile(cache.pathFor(packages[0]!.sha256), conda!.bytes);
    await writeFile(cache.pathFor(packages[1]!.sha256), wheel.bytes);
    const licenses = await lockedLicenses(packages, cache);
    expect(licenses).toEqual(new Map([[packages[0]!.sha256, 'Zlib'], [packages[1]!.sha256, 'ISC']]));
  });
});
