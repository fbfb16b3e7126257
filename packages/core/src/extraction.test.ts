/** `@prebuilt/core/extraction`: the barrel's own objects, so errors thrown through it are the barrel's classes. */
import { describe, expect, it } from 'vitest';
import * as barrel from './index.js';
import * as extraction from './extraction.js';

describe('@prebuilt/core/extraction', () => {
  it('exports the very objects the barrel exports (classes, functions, constants)', () => {
    const names = Object.keys(extraction);
    expect(names.length).toBeGreaterThan(0);
    for (const name of names) expect([name, (extraction as Record<string, unknown>)[name]]).toEqual([name, (barrel as Record<string, unknown>)[name]]);
    expect(extraction.PrebuiltError).toBe(barrel.PrebuiltError);
    expect(new extraction.TarFormatError('x.conda', 'bad header')).toBeInstanceOf(barrel.PrebuiltError);
  });
});
