import { describe, expect, it } from 'vitest';
import { ConfigError } from './errors.js';
import { DEFAULT_PIP_TIMEOUT_SECONDS, DEFAULT_REPODATA_MAX_MIB, checkResolverSettings, pipTimeoutMs, repodataMaxBytes } from './resolver-settings.js';

describe('METAFLOW_PREBUILT_REPODATA_MAX_SIZE: a bound that bounds', () => {
  const bound = (value: string) => repodataMaxBytes({ METAFLOW_PREBUILT_REPODATA_MAX_SIZE: value });

  it('MiB to bytes; unset or blank is the default; a fraction of a MiB is fine', () => {
    expect(repodataMaxBytes({})).toBe(DEFAULT_REPODATA_MAX_MIB * 1024 * 1024);
    expect(bound(' ')).toBe(DEFAULT_REPODATA_MAX_MIB * 1024 * 1024);
    expect(bound('2048')).toBe(2048 * 1024 * 1024);
    expect(bound('0.5')).toBe(512 * 1024);
    expect(bound('4096')).toBe(4096 * 1024 * 1024);
  });

  it.each(['1e308', '9007199254740993', '4097', '1e-9', '0', '-1', 'abc'])('%s (no bound at all, past what Node can hold, under a byte, or no number) is a ConfigError saying the range', (value) => {
    let error: unknown;
    try {
      bound(value);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).message).toBe(
      `METAFLOW_PREBUILT_REPODATA_MAX_SIZE='${value}' is not a number of MiB from 1 byte to 4096 MiB: a repodata.json is read into memory.`,
    );
    expect((error as ConfigError).setting).toBe('METAFLOW_PREBUILT_REPODATA_MAX_SIZE');
    expect((error as ConfigError).hint).toBe("Set METAFLOW_PREBUILT_REPODATA_MAX_SIZE (or the option 'repodataMaxMiB') to a number of MiB from 1 byte to 4096 MiB, e.g. 1024 (the default).");
  });

  it('the option is held to the same range', () => {
    expect(() => repodataMaxBytes({}, 1e12)).toThrow("The option 'repodataMaxMiB' must be a number of MiB from 1 byte to 4096 MiB, not 1000000000000: a repodata.json is read into memory.");
    expect(repodataMaxBytes({}, 1 / (1024 * 1024))).toBe(1);
  });
});

describe('METAFLOW_PREBUILT_PIP_TIMEOUT: the bound of one whole pip resolve', () => {
  it('seconds to ms; unset or blank is the default (an hour)', () => {
    expect(pipTimeoutMs({})).toBe(DEFAULT_PIP_TIMEOUT_SECONDS * 1000);
    expect(DEFAULT_PIP_TIMEOUT_SECONDS).toBe(3600);
    expect(pipTimeoutMs({ METAFLOW_PREBUILT_PIP_TIMEOUT: ' ' })).toBe(3_600_000);
    expect(pipTimeoutMs({ METAFLOW_PREBUILT_PIP_TIMEOUT: '90' })).toBe(90_000);
    expect(pipTimeoutMs({ METAFLOW_PREBUILT_PIP_TIMEOUT: '0.5' })).toBe(500);
    expect(pipTimeoutMs({ METAFLOW_PREBUILT_PIP_TIMEOUT: '90' }, 2)).toBe(2000);
  });

  it.each(['0', '-5', 'ten', '1e12'])('%s is a ConfigError naming the setting and the range, also for a command that resolves nothing', (value) => {
    const env = { METAFLOW_PREBUILT_PIP_TIMEOUT: value };
    for (const read of [() => pipTimeoutMs(env), () => checkResolverSettings(env)]) {
      let error: unknown;
      try {
        read();
      } catch (caught) {
        error = caught;
      }
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).message).toBe(`METAFLOW_PREBUILT_PIP_TIMEOUT='${value}' is not a number of seconds above 0, at most 2147483 (24 days).`);
      expect((error as ConfigError).setting).toBe('METAFLOW_PREBUILT_PIP_TIMEOUT');
    }
  });
});
