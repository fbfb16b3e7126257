import { describe, expect, it } from 'vitest';
import type { BuildRequest } from '../contracts.js';
import { CancelledError, ConfigError, InputError } from '../errors.js';
import { Secret } from '../secret.js';
import { DOCKER_PLATFORM, checkBuildRequest, pushTarget } from './build-request.js';

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

describe('checkBuildRequest', () => {
  const request = { imageTag: '127.0.0.1:5000/ns:env-1', platform: 'linux/amd64', contextDir: '/x', dockerfile: 'FROM scratch' } as BuildRequest;
  const one = { what: 'The test build', example: 'reg/ns:env-…', platforms: { one: 'Test' } } as const;

  it('returns the target and the platforms', () => {
    expect(checkBuildRequest(request, one)).toMatchObject({ target: { registry: '127.0.0.1:5000', tag: 'env-1' }, platforms: ['linux/amd64'] });
    const several = checkBuildRequest({ ...request, platform: 'linux/amd64, linux/arm64' }, { ...one, platforms: 'several' });
    expect(several.platforms).toEqual(['linux/amd64', 'linux/arm64']);
  });

  it('refuses an aborted signal, a second platform for a one-platform service, a bad platform and foreign credentials', () => {
    const aborted = new AbortController();
    aborted.abort('SIGINT');
    expect(() => checkBuildRequest({ ...request, signal: aborted.signal }, one)).toThrow(CancelledError);
    expect(() => checkBuildRequest({ ...request, platform: 'linux/amd64,linux/arm64' }, one)).toThrow(
      "Test builds one platform per image; 'linux/amd64,linux/arm64' is not a single Docker platform such as linux/amd64.",
    );
    expect(() => checkBuildRequest({ ...request, platform: 'linux/amd64,Linux' }, { ...one, platforms: 'several' })).toThrow(
      "The platform 'Linux' is not a Docker platform such as linux/amd64.",
    );
    const pushCredentials = { registry: 'docker.io', source: 'test', username: 'u', password: new Secret('pw') };
    expect(() => checkBuildRequest({ ...request, pushCredentials }, one)).toThrow(ConfigError);
  });
});
