import { expect } from 'vitest';
import { ConfigError } from '@prebuilt/core/backend';

/** The ConfigError `fn` throws (failing the test when it throws nothing, or something else). */
export function thrownConfigError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return e as ConfigError;
  }
  throw new Error('expected a ConfigError');
}
