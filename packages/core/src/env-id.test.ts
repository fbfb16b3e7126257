import { describe, expect, it } from 'vitest';
import { ENV_ID_LENGTH, computeEnvId, envId, indexId, type EnvIdInput } from './env-id.js';
import { PRUNE_REVISION } from './prune.js';

const sha = (c: string) => c.repeat(64);
const base: EnvIdInput = {
  packages: [
    { url: 'https://conda.example/linux-64/python-3.11.9-h0_0.conda', sha256: sha('a') },
    { url: 'https://pypi.example/requests-2.32.0-py3-none-any.whl', sha256: sha('b') },
  ],
  platform: 'linux-64',
  baseImageDigest: `sha256:${sha('c')}`,
  recipe: { name: 'materialized', version: 1 },
};

describe('envId', () => {
  it('is a short lowercase hex string of the documented length', () => {
    expect(envId(base)).toMatch(new RegExp(`^[0-9a-f]{${ENV_ID_LENGTH}}$`));
  });

  it('is equal for equal inputs, whatever the package order and extra package fields', () => {
    const reordered: EnvIdInput = {
      ...base,
      packages: [...base.packages].reverse().map((p) => ({ ...p, name: 'ignored', size: 1 })),
      recipe: { name: 'materialized', version: '1' },
    };
    expect(envId(reordered)).toBe(envId(base));
  });

  it('is pinned for a known input (stable across machines and releases)', () => {
    // Computed independently with Python's json + hashlib. If it changes, bump ENV_ID_VERSION.
    expect(envId(base)).toBe('97fbd134e35b3417');
  });

  it.each<[string, EnvIdInput]>([
    ['a file hash', { ...base, packages: [base.packages[0]!, { ...base.packages[1]!, sha256: sha('d') }] }],
    ['a file url', { ...base, packages: [base.packages[0]!, { ...base.packages[1]!, url: 'https://pypi.example/x.whl' }] }],
    ['one more file', { ...base, packages: [...base.packages, { url: 'https://x/y.conda', sha256: sha('e') }] }],
    ['the platform', { ...base, platform: 'linux-aarch64' }],
    ['the base image digest', { ...base, baseImageDigest: `sha256:${sha('f')}` }],
    ['the recipe name', { ...base, recipe: { name: 'micromamba', version: 1 } }],
    ['the recipe version', { ...base, recipe: { name: 'materialized', version: 2 } }],
  ])('changes when %s changes', (_what, changed) => {
    expect(envId(changed)).not.toBe(envId(base));
  });

  it('takes prune presets only when there are some: an unpruned env keeps its known id', () => {
    expect(envId({ ...base, prune: [] })).toBe('97fbd134e35b3417');
    const pruned = envId({ ...base, prune: ['tests'] });
    expect(pruned).not.toBe(envId(base));
    expect(envId({ ...base, prune: ['tests', 'tests'] })).toBe(pruned);
    expect(envId({ ...base, prune: ['tests', 'headers'] })).toBe(envId({ ...base, prune: ['headers', 'tests', 'headers'] }));
    expect(envId({ ...base, prune: ['tests', 'headers'] })).not.toBe(pruned);
    const lock = { platform: base.platform, packages: base.packages };
    expect(computeEnvId({ lock, baseDigest: base.baseImageDigest, recipe: { ...base.recipe, prune: ['tests'] } })).toBe(pruned);
  });

  it('is pinned for a known pruned input, which hashes the revision of the preset definitions', () => {
    // Computed independently with Python's json + hashlib over {…, prune: ['tests'], pruneRevision: 2}.
    // Before the revision was hashed (the first meaning of `tests`) this env's id was 44bc6dc7e2db0db2.
    expect(PRUNE_REVISION).toBe(2);
    expect(envId({ ...base, prune: ['tests'] })).toBe('c1ed684c26bad8f8');
  });

  it('refuses a base image tag in place of a digest, and files without sha256', () => {
    expect(() => envId({ ...base, baseImageDigest: 'python:3.11' })).toThrow(/not a digest/);
    expect(() => envId({ ...base, packages: [{ url: 'https://x/y.whl', sha256: '' }] })).toThrow(/no valid sha256/);
  });

  it('computeEnvId takes a locked env and gives the same id', () => {
    const lock = { platform: 'linux-64' as const, packages: base.packages.map((p) => ({ ...p })) };
    expect(computeEnvId({ lock, baseDigest: base.baseImageDigest, recipe: base.recipe })).toBe(envId(base));
  });
});

describe('indexId', () => {
  const amd = { platform: 'linux-64' as const, envId: '0123456789abcdef' };
  const arm = { platform: 'linux-aarch64' as const, envId: 'fedcba9876543210' };

  it('is the same for the same per-platform images in any order, and differs from each member', () => {
    const id = indexId([amd, arm]);
    expect(id).toMatch(new RegExp(`^[0-9a-f]{${ENV_ID_LENGTH}}$`));
    expect(indexId([arm, amd])).toBe(id);
    expect(id).not.toBe(amd.envId);
    expect(id).not.toBe(arm.envId);
  });

  it('changes when one platform image changes', () => {
    expect(indexId([amd, { ...arm, envId: 'fedcba9876543211' }])).not.toBe(indexId([amd, arm]));
  });

  it('needs two distinct platforms', () => {
    expect(() => indexId([amd])).toThrow(/at least two/);
    expect(() => indexId([amd, { ...amd, envId: 'ffffffffffffffff' }])).toThrow(/named twice/);
  });
});
