import { describe, expect, it } from 'vitest';
import { ConfigError } from './errors.js';
import { DEFAULT_GLIBC, targetGlibc } from './target-glibc.js';

describe('targetGlibc', () => {
  it('takes the given glibc, else METAFLOW_PREBUILT_GLIBC_VERSION, else the default', () => {
    expect(targetGlibc({ METAFLOW_PREBUILT_GLIBC_VERSION: '2.31' }, '2.17')).toBe('2.17');
    expect(targetGlibc({ METAFLOW_PREBUILT_GLIBC_VERSION: ' 2.31 ' })).toBe('2.31');
    expect(targetGlibc({ METAFLOW_PREBUILT_GLIBC_VERSION: '' })).toBe(DEFAULT_GLIBC);
    expect(targetGlibc({})).toBe('2.28');
  });

  it('refuses what is not a version, naming the setting', () => {
    expect(() => targetGlibc({ METAFLOW_PREBUILT_GLIBC_VERSION: 'bookworm' })).toThrow(ConfigError);
    expect(() => targetGlibc({ METAFLOW_PREBUILT_GLIBC_VERSION: 'bookworm' })).toThrow(/METAFLOW_PREBUILT_GLIBC_VERSION is 'bookworm'/);
  });
});
