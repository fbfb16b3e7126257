import { describe, expect, it } from 'vitest';
import { IMAGE_DIGEST, isImageDigest } from './digest.js';

describe('isImageDigest', () => {
  it('accepts sha256: and 64 lowercase hex digits, and nothing else', () => {
    expect(isImageDigest(`sha256:${'a'.repeat(64)}`)).toBe(true);
    for (const bad of [undefined, '', `sha256:${'A'.repeat(64)}`, `sha256:${'a'.repeat(63)}`, `sha512:${'a'.repeat(64)}`, ` sha256:${'a'.repeat(64)}`]) {
      expect(isImageDigest(bad)).toBe(false);
    }
    expect(IMAGE_DIGEST.test(`sha256:${'0'.repeat(64)}\n`)).toBe(false);
  });
});
