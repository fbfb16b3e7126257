import { describe, expect, it } from 'vitest';
import { parsePrefixLayers, PREFIX_LAYERS_VERSION, serializePrefixLayers, type PrefixLayers } from './prefix-layers.js';

const pkg = { kind: 'conda' as const, name: 'six', version: '1.16.0', filename: 'six.conda', sha256: 'a'.repeat(64), files: ['lib/six.py'] };

describe('prefix-layers.json', () => {
  it('keeps a package\'s content key through serialize and parse; a package without one has none', () => {
    const layers: PrefixLayers = { version: PREFIX_LAYERS_VERSION, prefixDir: 'prefix', packages: [{ ...pkg, contentKey: `sha256:${'c'.repeat(64)}` }, { ...pkg, name: 'other' }] };
    const parsed = parsePrefixLayers(serializePrefixLayers(layers), 'prefix-layers.json');
    expect(parsed).toEqual(layers);
    expect('contentKey' in parsed.packages[1]!).toBe(false);
  });

  it('refuses a content key that is not a sha256 digest, naming the package', () => {
    const text = JSON.stringify({ version: PREFIX_LAYERS_VERSION, prefixDir: 'prefix', packages: [{ ...pkg, contentKey: 'md5:abc' }] });
    expect(() => parsePrefixLayers(text, 'ctx/prefix-layers.json')).toThrow(/packages\[0\]\.contentKey is not a sha256 digest/);
  });
});
