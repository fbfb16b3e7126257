import { homedir } from 'node:os';
import { describe, expect, it } from 'vitest';
import { prebuiltCacheDir } from './cache-dir.js';

describe('prebuiltCacheDir', () => {
  it('prefers METAFLOW_PREBUILT_CACHE_DIR, then XDG_CACHE_HOME, then ~/.cache', () => {
    expect(prebuiltCacheDir({ METAFLOW_PREBUILT_CACHE_DIR: '/x/c', XDG_CACHE_HOME: '/xdg' })).toBe('/x/c');
    expect(prebuiltCacheDir({ XDG_CACHE_HOME: '/xdg' })).toBe('/xdg/prebuilt');
    expect(prebuiltCacheDir({ XDG_CACHE_HOME: 'relative' })).toBe(`${homedir()}/.cache/prebuilt`);
    expect(prebuiltCacheDir({})).toBe(`${homedir()}/.cache/prebuilt`);
  });
});
