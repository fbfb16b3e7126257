import { describe, expect, it } from 'vitest';
import { InputError } from '../errors.js';
import { DOCKER_PLATFORM, pushTarget } from './build-request.js';

describe('pushTarget', () => {
  it('parses a tagged reference', () => {
    expect(pushTarget({ imageTag: '127.0.0.1:5000/ns:env-1' }, 'x')).toMatchObject({ registry: '127.0.0.1:5000', tag: 'env-1' });
  });

  it('refuses a reference with a digest, or without a tag, showing the example', () => {
    const digest = `127.0.0.1:5000/ns@sha256:${'a'.repeat(64)}`;
    for (const imageTag of [digest, '127.0.0.1:5000/ns:env-1@sha256:' + 'b'.repeat(64)]) {
      const error = (() => {
        try {
          pushTarget({ imageTag }, 'reg/ns:env-…');
        } catch (e) {
          return e;
        }
        return undefined;
      })();
      expect(error).toBeInstanceOf(InputError);
      expect((error as InputError).message).toBe(`The image tag '${imageTag}' must be a tagged reference without a digest.`);
      expect((error as InputError).hint).toBe('Pass a reference such as reg/ns:env-…');
    }
  });
});

describe('DOCKER_PLATFORM', () => {
  it('matches one platform and nothing else', () => {
    for (const ok of ['linux/amd64', 'linux/arm64', 'linux/arm/v7']) expect(DOCKER_PLATFORM.test(ok)).toBe(true);
    for (const bad of ['linux/amd64,linux/arm64', 'linux', 'Linux/AMD64', '']) expect(DOCKER_PLATFORM.test(bad)).toBe(false);
  });
});
