import { describe, expect, it } from 'vitest';
import { ConfigError } from '../errors.js';
import { settingsReader } from './build-service-settings.js';

describe('settingsReader', () => {
  const read = settingsReader({ SET: 'from-env', EMPTY: '', SECONDS: '90', BAD: 'soon' });

  it('takes the option, then the env var; an empty value counts as unset', () => {
    expect(read.optional('given', 'SET', 'o', 'thing')).toBe('given');
    expect(read.optional(undefined, 'SET', 'o', 'thing')).toBe('from-env');
    expect(read.optional(undefined, 'EMPTY', 'o', 'thing')).toBeUndefined();
    expect(read.required(undefined, 'SET', 'o', 'The thing')).toBe('from-env');
    expect(read.seconds(undefined, 'SECONDS', 'timeoutSeconds', 10)).toBe(90);
    expect(read.seconds(undefined, 'UNSET', 'timeoutSeconds', 10)).toBe(10);
  });

  it('refuses a missing required setting and a timeout that is not a number, naming the env var', () => {
    expect(() => read.required(undefined, 'UNSET', 'o', 'The thing')).toThrow(ConfigError);
    expect(() => read.required(undefined, 'UNSET', 'o', 'The thing')).toThrow('The thing is not set.');
    expect(() => read.seconds(undefined, 'BAD', 'timeoutSeconds', 10)).toThrow("BAD='soon' is not a number of seconds above 0, at most 2147483 (24 days).");
  });
});
