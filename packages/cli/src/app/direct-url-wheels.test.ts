import { describe, expect, it } from 'vitest';
import type { LockEntry, LockFile, LockedPackage } from '@prebuilt/core';
import { directUrlNotes, flowDirectUrlWheels, lockedEnvs } from './direct-url-wheels.js';

const wheel = (name: string, url: string, requiredBy?: string[]): LockedPackage => ({
  kind: 'pypi',
  name,
  version: '2.0',
  build: '',
  url,
  sha256: '0'.repeat(64),
  size: 1,
  filename: url.slice(url.lastIndexOf('/') + 1),
  ...(requiredBy ? { directUrl: { requiredBy } } : {}),
});
const entry = (platform: string, packages: LockedPackage[]): LockEntry => ({ platform, packages }) as unknown as LockEntry;

/** Steps a and b share env k64/karm (one per platform); step c has k2 with no direct-URL wheel; step d is disabled. */
const lock = {
  envs: {
    k64: entry('linux-64', [wheel('foo', 'https://pypi.example/foo-1.0-py3-none-any.whl'), wheel('bar', 'https://user:secret@other.example:8443/bar-2.0-py3-none-any.whl', ['foo'])]),
    karm: entry('linux-aarch64', [wheel('bar', 'https://user:secret@other.example:8443/bar-2.0-py3-none-any.whl', ['baz', 'foo'])]),
    k2: entry('linux-64', [wheel('foo', 'https://pypi.example/foo-1.0-py3-none-any.whl')]),
  },
  steps: { a: { 'linux-64': 'k64', 'linux-aarch64': 'karm' }, b: { 'linux-64': 'k64', 'linux-aarch64': 'karm' }, c: { 'linux-64': 'k2' }, d: null },
} as unknown as LockFile;

describe('wheels locked at a direct URL (lock, plan, build)', () => {
  it('lists each env of the lock once with its steps', () => {
    expect(lockedEnvs({ lock }).map((env) => [env.key, env.steps])).toEqual([['k64', ['a', 'b']], ['karm', ['a', 'b']], ['k2', ['c']]]);
  });

  it("plan's and build's directUrls: one per env holding such a wheel, with its lock key, platform and steps; the URL's credentials hidden", () => {
    expect(flowDirectUrlWheels(lockedEnvs({ lock }))).toEqual([
      { name: 'bar', version: '2.0', url: expect.not.stringContaining('secret'), host: 'other.example:8443', requiredBy: ['foo'], lockKey: 'k64', platform: 'linux-64', steps: ['a', 'b'] },
      { name: 'bar', version: '2.0', url: expect.not.stringContaining('secret'), host: 'other.example:8443', requiredBy: ['baz', 'foo'], lockKey: 'karm', platform: 'linux-aarch64', steps: ['a', 'b'] },
    ]);
  });

  it('one note per wheel over every env and platform, naming its steps, host and who required it', () => {
    const notes = directUrlNotes(lockedEnvs({ lock }));
    expect(notes).toHaveLength(1);
    expect(notes[0]).toMatch(/^steps a, b: bar 2\.0 is locked from the host other\.example:8443 \(https:\/\/.*other\.example:8443\/bar-2\.0-py3-none-any\.whl\), a direct URL that baz, foo require \(Requires-Dist: bar @ …\), not a file of the PyPI index; /);
    expect(notes[0]).not.toContain('secret');
    expect(directUrlNotes(lockedEnvs({ lock: { ...lock, steps: { c: { 'linux-64': 'k2' } } } as unknown as LockFile }))).toEqual([]);
  });

  it("a note stays short whatever the lock holds (a cloned repo's lock, a hostile index): the URL, each name and the list of who required it cut", () => {
    const many = Array.from({ length: 5000 }, (_, i) => `pkg${i}-${'x'.repeat(200)}`);
    const huge = entry('linux-64', [wheel(`bar${'y'.repeat(5000)}`, `https://other.example/${'z'.repeat(100_000)}/bar-2.0-py3-none-any.whl`, many)]);
    const [note] = directUrlNotes([{ entry: huge, steps: ['a'] }]);
    // It was over a million characters, printed by every lock, plan and build.
    expect(note!.length).toBeLessThan(2500);
    expect(note).toContain('pkg0-');
    expect(note).toContain('and 4990 more');
    expect(note).toContain('the host other.example');
  });
});
