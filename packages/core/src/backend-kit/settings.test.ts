import { describe, expect, it } from 'vitest';
import { ConfigError } from '../errors.js';
import { PULL_ENV, checkRepository, envTag, parseHost, pullConfigFromSettings, refuseHostCredentials, secondsSetting } from './settings.js';

describe('envTag', () => {
  it('is <repository>:env-<envId>-<arch> for both platforms', () => {
    expect(envTag('docker.io/me/metaflow-prebuilt', { envId: 'abc123', platform: 'linux-64' })).toBe('docker.io/me/metaflow-prebuilt:env-abc123-amd64');
    expect(envTag('r', { envId: 'abc123', platform: 'linux-aarch64' })).toBe('r:env-abc123-arm64');
  });

  it('is <repository>:env-<id> for a multi-platform image index, and -<arch> for one platform', () => {
    expect(envTag('r', { envId: 'abc123', platform: 'linux-64', platforms: ['linux-64', 'linux-aarch64'] })).toBe('r:env-abc123');
    expect(envTag('r', { envId: 'abc123', platform: 'linux-64', platforms: ['linux-64'] })).toBe('r:env-abc123-amd64');
    expect(() => envTag('r', { envId: 'abc', platform: 'linux-64', platforms: ['linux-64', 'osx-64' as never] })).toThrow(/'osx-64'/);
  });

  it('refuses an env id that cannot be part of a tag, and an unknown platform', () => {
    expect(() => envTag('r', { envId: 'a/b', platform: 'linux-64' })).toThrow(ConfigError);
    expect(() => envTag('r', { envId: 'abc', platform: 'osx-64' as never })).toThrow(/not one prebuilt builds for/);
  });
});

describe('parseHost', () => {
  it('accepts host, host:port and an IPv6 literal', () => {
    for (const host of ['docker.io', '127.0.0.1:5000', '[::1]:5000']) expect(parseHost(host, 'ENV', 'registry')).toBe(host);
  });

  it('refuses a URL and a path, naming the env var and the option', () => {
    const error = (() => {
      try {
        parseHost('https://docker.io', 'ENV', 'registry');
      } catch (caught) {
        return caught;
      }
      throw new Error('no error');
    })();
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).message).toMatch(/not a URL/);
    expect((error as ConfigError).setting).toBe('ENV');
    expect((error as ConfigError).hint).toMatch(/option 'registry'/);
    expect(() => parseHost('docker.io/x', 'ENV', 'registry')).toThrow(/host\[:port\]/);
    expect(() => parseHost('registry.example:65536', 'ENV', 'registry')).toThrow("ENV='registry.example:65536' is not a registry host: the port 65536 of 'registry.example:65536' is not between 1 and 65535.");
  });
});

describe('a registry host written with credentials', () => {
  it.each([
    ['robot:s3cr3t@registry.example.com', '***@registry.example.com'],
    ['https://robot:s3cr3t@registry.example.com', 'https://***@registry.example.com'],
    ['s3cr3t@registry.example.com:5000', '***@registry.example.com:5000'],
    // GitHub's form: the token is the user name.
    ['https://ghp_s3cr3t:x-oauth-basic@ghcr.io', 'https://***@ghcr.io'],
    ['robot:s3/cr@t@127.0.0.1:5000/team', '***@127.0.0.1:5000/team'],
  ])('%s: a ConfigError with them hidden (%s), saying to use docker login', (value, shown) => {
    let error: unknown;
    try {
      parseHost(value, 'ENV', 'registry');
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const config = error as ConfigError;
    expect(config.message).toBe(`ENV='${shown}' is not a registry host: it starts with credentials (user:password@ or token@), which a host cannot carry.`);
    expect(config.setting).toBe('ENV');
    expect(config.hint).toContain("option 'registry'");
    expect(config.hint).toContain("'docker login <host>'");
    expect(JSON.stringify({ message: config.message, hint: config.hint })).not.toMatch(/s3cr|cr@t/);
  });

  it('a host without @ passes', () => {
    expect(() => refuseHostCredentials('127.0.0.1:5000/team', 'ENV', 'hint')).not.toThrow();
  });
});

describe('checkRepository', () => {
  it('accepts valid paths and refuses bad parts, or a path where one part is allowed', () => {
    expect(checkRepository('a/b-c/d_e', 'ENV', 'repository')).toBe('a/b-c/d_e');
    expect(() => checkRepository('Upper', 'ENV', 'repository')).toThrow(ConfigError);
    expect(() => checkRepository('a/b', 'ENV', 'repository', 1)).toThrow(/repository name part/);
    expect(() => checkRepository('Team/app', 'ENV', 'repository')).toThrow("The repository 'Team/app' in ENV (or the option 'repository') is not a valid repository name: 'Team' has capital letters, and repository names are lowercase.");
    expect(() => checkRepository('team/', 'ENV', 'repository')).toThrow(/: it has an empty part/);
  });
});

describe('pullConfigFromSettings', () => {
  const arn = 'arn:aws:secretsmanager:us-east-1:123456789012:secret:hub-AbCdEf';

  it('is empty when nothing is set (empty strings count as unset)', () => {
    expect(pullConfigFromSettings({}, {})).toEqual({});
    expect(pullConfigFromSettings({ pullSecret: '' }, { [PULL_ENV.pullSecret]: '' })).toEqual({});
  });

  it('takes the option before the env var', () => {
    const env = { [PULL_ENV.pullSecret]: 'from-env', [PULL_ENV.batchRepositoryCredentials]: arn };
    expect(pullConfigFromSettings({ pullSecret: 'from-option' }, env)).toEqual({
      kubernetes: { imagePullSecrets: ['from-option'] },
      batch: { repositoryCredentials: { credentialsParameter: arn } },
    });
    expect(pullConfigFromSettings({}, env).kubernetes).toEqual({ imagePullSecrets: ['from-env'] });
  });

  it('refuses a bad secret name and a non-ARN, naming the setting', () => {
    expect(() => pullConfigFromSettings({ pullSecret: 'Bad_Name' }, {})).toThrow(expect.objectContaining({ setting: PULL_ENV.pullSecret }));
    expect(() => pullConfigFromSettings({ batchRepositoryCredentials: 'hub-secret' }, {})).toThrow(
      expect.objectContaining({ setting: PULL_ENV.batchRepositoryCredentials }),
    );
  });
});

describe('secondsSetting', () => {
  const input = { envVar: 'X_TIMEOUT', option: 'timeoutSeconds', fallback: 3600 };
  it('takes the option, else the env var, else the fallback', () => {
    expect(secondsSetting({ ...input, value: 5, env: { X_TIMEOUT: '9' } })).toBe(5);
    expect(secondsSetting({ ...input, value: undefined, env: { X_TIMEOUT: '9.5' } })).toBe(9.5);
    expect(secondsSetting({ ...input, value: undefined, env: { X_TIMEOUT: ' ' } })).toBe(3600);
    expect(secondsSetting({ ...input, value: undefined, env: {} })).toBe(3600);
  });

  it('refuses what is not a positive number, naming the setting and the range', () => {
    expect(() => secondsSetting({ ...input, value: 0, env: {} })).toThrow("The option 'timeoutSeconds' must be a number of seconds above 0, at most 2147483 (24 days), not 0.");
    const error = (() => {
      try {
        secondsSetting({ ...input, value: undefined, env: { X_TIMEOUT: 'soon' } });
      } catch (e) {
        return e as ConfigError;
      }
      return undefined;
    })();
    expect(error).toBeInstanceOf(ConfigError);
    expect(error!.message).toBe("X_TIMEOUT='soon' is not a number of seconds above 0, at most 2147483 (24 days).");
    expect(error!.setting).toBe('X_TIMEOUT');
    expect(error!.hint).toBe("Set X_TIMEOUT (or the option 'timeoutSeconds') to a number of seconds above 0, at most 2147483 (24 days), e.g. 3600 (the default).");
  });

  it('refuses a timeout longer than a timer holds (it would fire at once), saying the range', () => {
    expect(secondsSetting({ ...input, value: undefined, env: { X_TIMEOUT: '2147483' } })).toBe(2147483);
    expect(() => secondsSetting({ ...input, value: undefined, env: { X_TIMEOUT: '2147484' } })).toThrow("X_TIMEOUT='2147484' is not a number of seconds above 0, at most 2147483 (24 days).");
    expect(() => secondsSetting({ ...input, value: 1e9, env: {} })).toThrow("The option 'timeoutSeconds' must be a number of seconds above 0, at most 2147483 (24 days), not 1000000000.");
  });
});
