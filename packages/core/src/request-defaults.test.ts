import { describe, expect, it } from 'vitest';
import { ConfigError } from './errors.js';
import { channelUrl, platformsSetting, requestDefaults, targetPlatforms } from './request-defaults.js';

describe('requestDefaults', () => {
  it('defaults to conda-forge, no index, linux-64', () => {
    expect(requestDefaults({ env: {} })).toEqual({
      channels: ['https://conda.anaconda.org/conda-forge'],
      indexUrl: null,
      platform: 'linux-64',
    });
  });

  it('reads channels, index and platform from the environment', () => {
    const env = {
      METAFLOW_PREBUILT_CONDA_CHANNELS: ' http://127.0.0.1:8000/chan/ , bioconda,conda-forge/label/dev,',
      PIP_INDEX_URL: 'https://pip.example/simple/',
      METAFLOW_PREBUILT_PLATFORM: 'linux-aarch64',
    };
    expect(requestDefaults({ env })).toEqual({
      channels: [
        'http://127.0.0.1:8000/chan',
        'https://conda.anaconda.org/bioconda',
        'https://conda.anaconda.org/conda-forge/label/dev',
      ],
      indexUrl: 'https://pip.example/simple',
      platform: 'linux-aarch64',
    });
  });

  it('prefers METAFLOW_PREBUILT_PYPI_INDEX_URL over PIP_INDEX_URL, and options over both', () => {
    const env = { METAFLOW_PREBUILT_PYPI_INDEX_URL: 'http://127.0.0.1:9/simple', PIP_INDEX_URL: 'http://other/simple' };
    expect(requestDefaults({ env }).indexUrl).toBe('http://127.0.0.1:9/simple');
    expect(requestDefaults({ env, indexUrl: 'http://opt/simple', channels: ['x'], platform: 'linux-64' })).toEqual({
      channels: ['https://conda.anaconda.org/x'],
      indexUrl: 'http://opt/simple',
      platform: 'linux-64',
    });
  });

  it('rejects an unknown platform, naming the variable', () => {
    const error = (() => {
      try {
        requestDefaults({ env: { METAFLOW_PREBUILT_PLATFORM: 'osx-arm64' } });
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).setting).toBe('METAFLOW_PREBUILT_PLATFORM');
    expect((error as ConfigError).hint).toMatch(/linux-64, linux-aarch64/);
  });

  it('reads a comma-separated list of target platforms; the request carries the first', () => {
    const env = { METAFLOW_PREBUILT_PLATFORM: ' linux-aarch64 , linux-64,linux-aarch64 ' };
    expect(targetPlatforms({ env })).toEqual(['linux-aarch64', 'linux-64']);
    expect(requestDefaults({ env }).platform).toBe('linux-aarch64');
    expect(targetPlatforms({ env: {} })).toEqual(['linux-64']);
    expect(targetPlatforms({ env, platform: 'linux-64' })).toEqual(['linux-64']);
    expect(() => targetPlatforms({ env: { METAFLOW_PREBUILT_PLATFORM: 'linux-64,osx-arm64' } })).toThrow(/'osx-arm64' is not supported/);
    expect(() => targetPlatforms({ env: { METAFLOW_PREBUILT_PLATFORM: ' , ' } })).toThrow(ConfigError);
  });

  it('platformsSetting: the platforms the setting names, undefined only when it is unset or empty; spaces alone are a ConfigError, as targetPlatforms says', () => {
    expect(platformsSetting({ env: {} })).toBeUndefined();
    expect(platformsSetting({ env: { METAFLOW_PREBUILT_PLATFORM: '' } })).toBeUndefined();
    expect(platformsSetting({ env: { METAFLOW_PREBUILT_PLATFORM: 'linux-aarch64' } })).toEqual(['linux-aarch64']);
    expect(() => platformsSetting({ env: { METAFLOW_PREBUILT_PLATFORM: '  ' } })).toThrow(/No target platform is given in '  '/);
    expect(() => targetPlatforms({ env: { METAFLOW_PREBUILT_PLATFORM: '  ' } })).toThrow(/No target platform is given in '  '/);
  });

  it('rejects malformed channels and index URLs', () => {
    expect(() => channelUrl('ftp://x/y')).toThrow(ConfigError);
    // A token (anaconda.org's /t/<token>/) is a credential: never kept in the request (the lock file).
    expect(channelUrl('https://conda.anaconda.org/t/ab-0123-secret/private/')).toBe('https://conda.anaconda.org/private');
    expect(() => channelUrl('not a channel')).toThrow(/neither a URL nor a channel name/);
    expect(() => requestDefaults({ env: { PIP_INDEX_URL: 'pypi.org/simple' } })).toThrow(/PIP_INDEX_URL/);
  });
});
