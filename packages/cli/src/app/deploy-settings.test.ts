import { ConfigError } from '@prebuilt/core';
import { describe, expect, it } from 'vitest';
import { checkMicromambaImageSetting, DEFAULT_BASE_IMAGE, deploySettings } from './deploy-settings.js';

/** What deploySettings throws for `env` (undefined when it does not). */
function settingsError(env: Record<string, string>): unknown {
  try {
    deploySettings(env);
  } catch (error) {
    return error;
  }
  return undefined;
}

describe('deploySettings: the base images', () => {
  it('default, or the image references given', () => {
    expect(deploySettings({})).toMatchObject({ baseImage: DEFAULT_BASE_IMAGE, gpuBaseImage: DEFAULT_BASE_IMAGE });
    expect(deploySettings({ METAFLOW_PREBUILT_BASE_IMAGE: '127.0.0.1:5000/team/base:1.0', METAFLOW_PREBUILT_GPU_BASE_IMAGE: 'nvidia/cuda:12.4.1-base' })).toMatchObject({
      baseImage: '127.0.0.1:5000/team/base:1.0',
      gpuBaseImage: 'nvidia/cuda:12.4.1-base',
    });
  });

  it.each(['METAFLOW_PREBUILT_BASE_IMAGE', 'METAFLOW_PREBUILT_GPU_BASE_IMAGE'])('%s that is not an image reference: a ConfigError naming the variable, the value and why', (envVar) => {
    let error: unknown;
    try {
      deploySettings({ [envVar]: 'not a ref' });
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).message).toBe(`${envVar}='not a ref' is not an image reference: it contains whitespace.`);
    expect((error as ConfigError).setting).toBe(envVar);
    expect((error as ConfigError).hint).toContain(`Set ${envVar} to [host[:port]/]repository[:tag]`);
  });

  it.each([
    ['https://robot:s3cr3t-token@registry.example.com/team/base:1', "https://***@registry.example.com/team/base:1"],
    ['robot:s3cr3t-token@registry.example.com/team/base:1', '***@registry.example.com/team/base:1'],
    ['https://s3cr3t-token@ghcr.io/team/base', 'https://***@ghcr.io/team/base'],
    // A password holding '@' or '/' is hidden whole, up to the '@' before the host.
    ['robot:s3cr3t@part@registry.example.com/team/base:1', '***@registry.example.com/team/base:1'],
    ['robot:s3cr3t/part@registry.example.com/team/base:1', '***@registry.example.com/team/base:1'],
    ['https://robot:s3cr3t@p/rt@registry.example.com/team/base', 'https://***@registry.example.com/team/base'],
    [`robot:s3cr3t@registry.example.com/team/base@sha256:${'a'.repeat(64)}`, `***@registry.example.com/team/base@sha256:${'a'.repeat(64)}`],
    // A token without a user, before a host and repository.
    ['s3cr3t@registry.example.com/team/base', '***@registry.example.com/team/base'],
    ['robot:s3cr3t@127.0.0.1:5000', '***@127.0.0.1:5000'],
    // The token as the user name (GitHub's form), or GitLab's oauth2:<token>: the user part is hidden too.
    ['https://ghp_s3cr3t:x-oauth-basic@ghcr.io/team/base', 'https://***@ghcr.io/team/base'],
    ['oauth2:glpat-s3cr3t@registry.gitlab.com/team/base:1', '***@registry.gitlab.com/team/base:1'],
    // A bare token before a host and nothing after it: hidden (nobody names an image name@host).
    ['ghp_s3cr3t@ghcr.io', '***@ghcr.io'],
    ['s3cr3t@registry.example.com:5000', '***@registry.example.com:5000'],
    ['s3cr3t@localhost:5000', '***@localhost:5000'],
    ['s3cr3t@10.0.0.7', '***@10.0.0.7'],
    // A one-label host with its port (a compose service's), an IPv6 address: hosts too.
    ['s3cr3t@registry:5000', '***@registry:5000'],
    ['s3cr3t@[::1]:5000', '***@[::1]:5000'],
    ['s3cr3t@[fd00::7]', '***@[fd00::7]'],
  ])('a base image written with credentials (%s): the error hides them, says why, and neither it nor its cause carries the secret', (value, shown) => {
    const error = settingsError({ METAFLOW_PREBUILT_BASE_IMAGE: value });
    expect(error).toBeInstanceOf(ConfigError);
    const config = error as ConfigError;
    expect(config.message).toBe(`METAFLOW_PREBUILT_BASE_IMAGE='${shown}' is not an image reference: it starts with credentials (user:password@ or token@), which an image reference cannot carry.`);
    expect(config.hint).toContain("'docker login <host>'");
    expect(JSON.stringify({ message: config.message, hint: config.hint, cause: String(config.cause ?? '') })).not.toMatch(/s3cr3t|robot|oauth2/);
  });

  it('a digest reference without a host (name@sha256:…) is not taken for credentials', () => {
    const digest = `python@sha256:${'a'.repeat(64)}`;
    expect(deploySettings({ METAFLOW_PREBUILT_BASE_IMAGE: digest }).baseImage).toBe(digest);
    expect(() => deploySettings({ METAFLOW_PREBUILT_BASE_IMAGE: 'python@sha256:zz' })).toThrow("METAFLOW_PREBUILT_BASE_IMAGE='python@sha256:zz' is not an image reference");
    expect(() => deploySettings({ METAFLOW_PREBUILT_BASE_IMAGE: '127.0.0.1:5000/team/base@sha256:zz' })).toThrow(
      "METAFLOW_PREBUILT_BASE_IMAGE='127.0.0.1:5000/team/base@sha256:zz' is not an image reference",
    );
    // `@` for `:` before a tag is a typo, not credentials: named as it is.
    for (const typo of ['python@3.11', 'ubuntu@22.04', 'ubuntu@latest', 'python@sha256:123', 'python@blake3:9']) {
      const error = settingsError({ METAFLOW_PREBUILT_BASE_IMAGE: typo });
      expect((error as ConfigError).message).toContain(`METAFLOW_PREBUILT_BASE_IMAGE='${typo}' is not an image reference: `);
      expect((error as ConfigError).message).not.toContain('credentials');
    }
  });

  it.each([
    // A digest reference written as a URL (skopeo's docker://, a registry's https://): no credentials in it.
    `https://ghcr.io/team/base@sha256:${'a'.repeat(64)}`,
    `docker://python@sha256:${'a'.repeat(64)}`,
    // A tag and a digest cut short (a typo): the tag is no user, nor the digest a host.
    'python:3.11@sha256:abc',
  ])('%s names no credentials: refused naming the value, not told to change a password', (value) => {
    const error = settingsError({ METAFLOW_PREBUILT_BASE_IMAGE: value });
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).message).toContain(`METAFLOW_PREBUILT_BASE_IMAGE='${value}' is not an image reference: `);
    expect((error as ConfigError).message).not.toContain('credentials');
    expect((error as ConfigError).hint).not.toContain('change that password');
  });
});

describe('checkMicromambaImageSetting (the micromamba recipe)', () => {
  it('unset, or an image reference: fine', () => {
    expect(() => checkMicromambaImageSetting({})).not.toThrow();
    expect(() => checkMicromambaImageSetting({ METAFLOW_PREBUILT_MICROMAMBA_IMAGE: `mambaorg/micromamba:1.5.10@sha256:${'b'.repeat(64)}` })).not.toThrow();
  });

  it('written with credentials: a ConfigError naming the setting, the credentials hidden (they reached the Dockerfile and the build log)', () => {
    let error: unknown;
    try {
      checkMicromambaImageSetting({ METAFLOW_PREBUILT_MICROMAMBA_IMAGE: 'robot:s3cr3t@registry.example.com/mamba:1' });
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const config = error as ConfigError;
    expect(config.setting).toBe('METAFLOW_PREBUILT_MICROMAMBA_IMAGE');
    expect(config.message).toBe("METAFLOW_PREBUILT_MICROMAMBA_IMAGE='***@registry.example.com/mamba:1' is not an image reference: it starts with credentials (user:password@ or token@), which an image reference cannot carry.");
    expect(config.hint).toContain('e.g. mambaorg/micromamba:1.5.10@sha256:<digest>');
    expect(JSON.stringify({ message: config.message, hint: config.hint })).not.toContain('s3cr3t');
  });

  it('not an image reference: named with why', () => {
    expect(() => checkMicromambaImageSetting({ METAFLOW_PREBUILT_MICROMAMBA_IMAGE: 'mamba micromamba' })).toThrow("METAFLOW_PREBUILT_MICROMAMBA_IMAGE='mamba micromamba' is not an image reference: it contains whitespace.");
  });
});
