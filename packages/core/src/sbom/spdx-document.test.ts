import { describe, expect, it } from 'vitest';
import type { LockedEnv } from '../env-model.js';
import { createSbom, packageUrl } from './spdx-document.js';

const env: LockedEnv = {
  specHash: 'a'.repeat(64),
  request: { python: '3.11', conda: { numpy: '' }, pypi: { 'Typing_Extensions': '' }, channels: ['http://127.0.0.1:1/conda-forge'], indexUrl: null, platform: 'linux-64' },
  platform: 'linux-64',
  pythonVersion: '3.11.9',
  packages: [
    { kind: 'conda', name: 'numpy', version: '1.26.4', build: 'py311h_0', url: 'http://127.0.0.1:1/conda-forge/linux-64/numpy-1.26.4-py311h_0.conda', sha256: '1'.repeat(64), size: 10, filename: 'numpy-1.26.4-py311h_0.conda', subdir: 'linux-64' },
    { kind: 'conda', name: 'python', version: '3.11.9', build: 'h_0', url: 'http://127.0.0.1:1/conda-forge/linux-64/python-3.11.9-h_0.tar.bz2', sha256: '2'.repeat(64), size: 10, filename: 'python-3.11.9-h_0.tar.bz2', subdir: 'linux-64' },
    { kind: 'pypi', name: 'Typing_Extensions', version: '4.12.2', build: '', url: 'http://127.0.0.1:2/packages/typing_extensions-4.12.2-py3-none-any.whl', sha256: '3'.repeat(64), size: 10, filename: 'typing_extensions-4.12.2-py3-none-any.whl' },
  ],
};

describe('createSbom', () => {
  const licenses = new Map([
    ['1'.repeat(64), 'BSD-3-Clause'],
    ['2'.repeat(64), 'Python-2.0'],
    ['3'.repeat(64), 'PSF'],
  ]);

  it('lists every conda package and wheel with version, sha256, download URL, purl and licence', () => {
    const sbom = createSbom({ name: '127.0.0.1:5100/app:env-x', envs: [env], licenses });
    const doc = sbom.document as { spdxVersion: string; packages: Record<string, unknown>[]; relationships: unknown[]; hasExtractedLicensingInfos: { licenseId: string; extractedText: string }[] };
    expect(doc.spdxVersion).toBe('SPDX-2.3');
    const numpy = doc.packages.find((p) => p['name'] === 'numpy')!;
    expect(numpy).toMatchObject({
      versionInfo: '1.26.4-py311h_0',
      downloadLocation: env.packages[0]!.url,
      checksums: [{ algorithm: 'SHA256', checksumValue: '1'.repeat(64) }],
      licenseDeclared: 'BSD-3-Clause',
      externalRefs: [{ referenceCategory: 'PACKAGE-MANAGER', referenceType: 'purl', referenceLocator: 'pkg:conda/numpy@1.26.4?build=py311h_0&channel=http%3A%2F%2F127.0.0.1%3A1%2Fconda-forge&subdir=linux-64&type=conda' }],
    });
    const wheel = doc.packages.find((p) => p['name'] === 'Typing_Extensions')!;
    expect(wheel['versionInfo']).toBe('4.12.2');
    expect(wheel['licenseDeclared']).toMatch(/^LicenseRef-PSF-/);
    expect(doc.hasExtractedLicensingInfos).toEqual([expect.objectContaining({ licenseId: wheel['licenseDeclared'], extractedText: 'PSF' })]);
    // A root package for the env, plus 3 packages, each CONTAINed by it.
    expect(doc.packages).toHaveLength(4);
    expect(doc.relationships).toHaveLength(4);
  });

  it('is reproducible: the same lock gives the same bytes, another lock another namespace and digest', () => {
    const a = createSbom({ name: 'img', envs: [env], licenses });
    const b = createSbom({ name: 'img', envs: [structuredClone(env)], licenses: new Map(licenses) });
    expect(Buffer.from(a.bytes).equals(Buffer.from(b.bytes))).toBe(true);
    expect(a.digest).toBe(b.digest);
    expect((a.document as { creationInfo: { created: string } }).creationInfo.created).toBe('1970-01-01T00:00:00Z');
    const other = createSbom({ name: 'img', envs: [{ ...env, packages: env.packages.slice(1) }], licenses });
    expect(other.digest).not.toBe(a.digest);
    expect((other.document as { documentNamespace: string }).documentNamespace).not.toBe((a.document as { documentNamespace: string }).documentNamespace);
  });

  it('says NOASSERTION for a package whose licence is unknown, and takes the creation time from SOURCE_DATE_EPOCH', () => {
    const doc = createSbom({ name: 'img', envs: [env], createdEpoch: 1_700_000_000 }).document as { packages: Record<string, unknown>[]; creationInfo: { created: string } };
    expect(doc.packages.filter((p) => p['SPDXID'] !== 'SPDXRef-Env-linux-64').every((p) => p['licenseDeclared'] === 'NOASSERTION')).toBe(true);
    expect(doc.creationInfo.created).toBe('2023-11-14T22:13:20Z');
  });

  it('names wheels by their normalised PyPI name in the purl', () => {
    expect(packageUrl(env.packages[2]!)).toBe('pkg:pypi/typing-extensions@4.12.2');
  });
});
