import { describe, expect, it } from 'vitest';
import { EnvironmentError } from '../errors.js';
import { importLazily } from './lazy-import.js';

describe('importLazily', () => {
  it('returns the module, or an EnvironmentError with the cause and the install hint', async () => {
    await expect(importLazily(() => import('node:path'), { message: 'x', hint: 'y' })).resolves.toHaveProperty('join');
    const missing = 'prebuilt-no-such-module';
    const error = await importLazily(() => import(missing), {
      message: 'The test service cannot load prebuilt-no-such-module',
      hint: 'Install it beside prebuilt: npm i prebuilt-no-such-module',
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(EnvironmentError);
    expect((error as EnvironmentError).message).toMatch(/^The test service cannot load prebuilt-no-such-module: .*prebuilt-no-such-module.*\.$/);
    expect((error as EnvironmentError).hint).toBe('Install it beside prebuilt: npm i prebuilt-no-such-module');
    expect((error as EnvironmentError).cause).toBeDefined();
  });
});
