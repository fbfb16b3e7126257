import { describe, expect, it } from 'vitest';
import type { EnvRequest } from './env-model.js';
import { canonicalJson, normalizeCondaName, normalizePypiName, pypiProjectName, sha256Hex, specHash } from './identity.js';

const base: EnvRequest = {
  python: '3.11.9',
  conda: { numpy: '1.26.4', pandas: '' },
  pypi: {},
  channels: ['https://conda.anaconda.org/conda-forge'],
  indexUrl: null,
  platform: 'linux-64',
};

describe('canonicalJson', () => {
  it('sorts keys recursively and drops whitespace, keeping array order', () => {
    expect(canonicalJson({ b: 1, a: { d: [3, 1, { z: true, y: null }], c: 'x' } })).toBe(
      '{"a":{"c":"x","d":[3,1,{"y":null,"z":true}]},"b":1}',
    );
  });
  it('refuses values JSON cannot represent', () => {
    expect(() => canonicalJson({ a: undefined })).toThrow(TypeError);
    expect(() => canonicalJson([Number.NaN])).toThrow(/NaN/);
    expect(() => canonicalJson(new Date(0))).toThrow(/plain object/);
  });
});

describe('sha256Hex', () => {
  it('hashes UTF-8 text', () => {
    expect(sha256Hex('abc')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  });
});

describe('package names', () => {
  it('normalises PyPI names per PEP 503', () => {
    expect(normalizePypiName('Foo.Bar__baz-qux')).toBe('foo-bar-baz-qux');
    expect(normalizePypiName('Requests[Socks, security]')).toBe('requests[security,socks]');
  });
  it("names a request's PyPI project without its extras", () => {
    expect(pypiProjectName(' Requests[Socks, security]')).toBe('requests');
    expect(pypiProjectName('Tiny_HTTP')).toBe('tiny-http');
  });
  it('lowercases conda names and keeps the channel', () => {
    expect(normalizeCondaName('conda-forge::PyTorch')).toBe('conda-forge::pytorch');
    expect(normalizeCondaName('NumPy')).toBe('numpy');
  });
});

describe('specHash', () => {
  it('is a hex sha256 and stable across calls and machines (golden value)', () => {
    const hash = specHash(base);
    expect(hash).toMatch(/^[0-9a-f]{64}$/);
    expect(specHash(structuredClone(base))).toBe(hash);
    // Golden: the canonical form is part of the contract (lock files key on it).
    expect(hash).toBe(sha256Hex(
      '{"channels":["https://conda.anaconda.org/conda-forge"],"conda":{"numpy":"1.26.4","pandas":""},"indexUrl":null,"platform":"linux-64","pypi":{},"python":"3.11.9","specHashVersion":1}',
    ));
  });

  it('ignores key order, name spelling and insignificant whitespace', () => {
    const reordered: EnvRequest = {
      platform: 'linux-64',
      indexUrl: null,
      channels: ['https://conda.anaconda.org/conda-forge/'],
      pypi: {},
      conda: { Pandas: '', numpy: ' 1.26.4 ' },
      python: '3.11.9',
    };
    expect(specHash(reordered)).toBe(specHash(base));
    const a: EnvRequest = { ...base, conda: {}, pypi: { 'scikit_learn': '>=1.0, <2', requests: '' } };
    const b: EnvRequest = { ...base, conda: {}, pypi: { requests: '', 'Scikit.Learn': '>=1.0,<2' } };
    expect(specHash(a)).toBe(specHash(b));
  });

  it('changes when anything meaningful changes', () => {
    const variants: EnvRequest[] = [
      { ...base, python: '3.11' },
      { ...base, conda: { numpy: '1.26.3', pandas: '' } },
      { ...base, conda: { numpy: '1.26.4' } },
      { ...base, conda: { numpy: '1.26.4', pandas: '', scipy: '' } },
      { ...base, conda: {}, pypi: { numpy: '1.26.4', pandas: '' } },
      { ...base, channels: ['https://conda.anaconda.org/bioconda'] },
      { ...base, channels: ['https://conda.anaconda.org/conda-forge', 'https://conda.anaconda.org/bioconda'] },
      { ...base, indexUrl: 'https://pypi.org/simple' },
      { ...base, platform: 'linux-aarch64' },
      { ...base, conda: { 'conda-forge::numpy': '1.26.4', pandas: '' } },
    ];
    const hashes = new Set([specHash(base), ...variants.map(specHash)]);
    expect(hashes.size).toBe(variants.length + 1);
  });

  it('keeps channel priority order significant', () => {
    const two = ['https://a.example/c1', 'https://a.example/c2'];
    expect(specHash({ ...base, channels: two })).not.toBe(specHash({ ...base, channels: [...two].reverse() }));
  });
});
