import { describe, expect, it } from 'vitest';
import { IMAGE_DIGEST, isImageDigest, sha256Digest } from './digest.js';

describe('isImageDigest', () => {
  it('accepts sha256: and 64 lowercase hex digits, and nothing else', () => {
    expect(isImageDigest(`sha256:${'a'.repeat(64)}`)).toBe(true);
    for (const bad of [undefined, '', `sha256:${'A'.repeat(64)}`, `sha256:${'a'.repeat(63)}`, `sha512:${'a'.repeat(64)}`, ` sha256:${'a'.repeat(64)}`]) {
      expect(isImageDigest(bad)).toBe(false);
    }
    expect(IMAGE_DIGEST.test(`sha256:${'0'.repeat(64)}\n`)).toBe(false);
  });
});

describe('sha256Digest', () => {
  it("names bytes (or a string's UTF-8) as a registry does: the OCI empty descriptor's {}", () => {
    const empty = 'sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a';
    expect(sha256Digest(Buffer.from('{}'))).toBe(empty);
    expect(sha256Digest('{}')).toBe(empty);
    expect(isImageDigest(sha256Digest(new Uint8Array()))).toBe(true);
  });
});
