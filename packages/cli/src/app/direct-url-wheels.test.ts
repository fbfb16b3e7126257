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
const request = { python: '3.11', conda: {}, pypi: {}, channels: ['https://conda.anaconda.org/conda-forge'], indexUrl: 'https://pypi.example/simple', platform: 'linux-64' };
const entry = (platform: string, packages: LockedPackage[], overrides: Record<string, unknown> = {}): LockEntry =>
  ({ platform, packages, request: { ...request, platform, ...overrides } }) as unknown as LockEntry;
const conda = (name: string, url: string): LockedPackage => ({ ...wheel(name, url), kind: 'conda', build: '0' });

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
      { kind: 'pypi', name: 'bar', version: '2.0', url: expect.not.stringContaining('secret'), host: 'other.example:8443', recorded: true, requiredBy: ['foo'], lockKey: 'k64', platform: 'linux-64', steps: ['a', 'b'] },
      { kind: 'pypi', name: 'bar', version: '2.0', url: expect.not.stringContaining('secret'), host: 'other.example:8443', recorded: true, requiredBy: ['baz', 'foo'], lockKey: 'karm', platform: 'linux-aarch64', steps: ['a', 'b'] },
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

  it('names ten wheels locked at a direct URL in a note each, and counts the others in one more (a lock of 10,000 printed 10,000 lines)', () => {
    const many = entry('linux-64', Array.from({ length: 10_000 }, (_, i) => wheel(`w${i}`, `https://other.example/w${i}-1.0-py3-none-any.whl`, ['foo'])));
    const notes = directUrlNotes([{ entry: many, steps: ['a'] }]);
    expect(notes).toHaveLength(11);
    expect(notes[0]).toMatch(/^step a: w0 2\.0 is locked from the host other\.example /);
    expect(notes[10]).toBe("9990 more wheels are locked at a direct URL a package requires, not from the PyPI index: --json's directUrls lists them all.");
    expect(flowDirectUrlWheels([{ key: 'k', entry: many, steps: ['a'] }])).toHaveLength(10_000);
  });

  it('merges who required a wheel over envs listing 100,000 names each in seconds at most (it compared each name with every other: hours)', () => {
    const names = (from: number) => Array.from({ length: 100_000 }, (_, i) => `pkg${from + i}`);
    const url = 'https://other.example/bar-2.0-py3-none-any.whl';
    const started = performance.now();
    const notes = directUrlNotes([
      { entry: entry('linux-64', [wheel('bar', url, names(0))]), steps: ['a'] },
      { entry: entry('linux-aarch64', [wheel('bar', url, names(50_000))]), steps: ['b'] },
    ]);
    expect(performance.now() - started).toBeLessThan(3000);
    expect(notes).toHaveLength(1);
    expect(notes[0]).toContain('and 149990 more');
  });

  describe('a URL under none of the env\'s channels and not at its PyPI index, without the directUrl record (a lock edited by hand, or in a pull request)', () => {
    const planted = entry('linux-64', [
      wheel('foo', 'https://files.evil.example/foo-1.0-py3-none-any.whl'),
      wheel('ok', 'https://pypi.example/packages/ok-1.0-py3-none-any.whl'),
      conda('python', 'https://conda.anaconda.org/conda-forge/linux-64/python-3.11.9-0.conda'),
      conda('zlib', 'https://files.evil.example/linux-64/zlib-1.3-0.conda'),
      conda('sneaky', 'https://conda.anaconda.org/conda-forge-evil/linux-64/sneaky-1-0.conda'),
    ]);

    it('is listed as a recorded direct URL is (--json), marked as not recorded; packages under the sources are not', () => {
      expect(flowDirectUrlWheels([{ key: 'k', entry: planted, steps: ['a'] }]).map((w) => [w.kind, w.name, w.host, w.recorded, w.requiredBy])).toEqual([
        ['pypi', 'foo', 'files.evil.example', false, []],
        ['conda', 'zlib', 'files.evil.example', false, []],
        ['conda', 'sneaky', 'conda.anaconda.org', false, []],
      ]);
    });

    it('is named in a note per host, with the packages it serves and what to do', () => {
      const notes = directUrlNotes([{ entry: planted, steps: ['a'] }]);
      expect(notes).toEqual([
        'step a: 2 packages are locked from the host files.evil.example, which is under none of the env\'s conda channels (https://conda.anaconda.org/conda-forge) and not its PyPI index (pypi.example), ' +
          'and the lock file does not record them as a direct URL a package requires: foo 2.0 (https://files.evil.example/foo-1.0-py3-none-any.whl), zlib 2.0 (https://files.evil.example/linux-64/zlib-1.3-0.conda). ' +
          "The lock pins their sha256 and no index's credentials go there; if prebuilt lock did not write these URLs (a lock edited by hand or in a pull request), re-create the lock with prebuilt lock --update.",
        'step a: 1 package is locked from the host conda.anaconda.org, which is under none of the env\'s conda channels (https://conda.anaconda.org/conda-forge) and not its PyPI index (pypi.example), ' +
          'and the lock file does not record it as a direct URL a package requires: sneaky 2.0 (https://conda.anaconda.org/conda-forge-evil/linux-64/sneaky-1-0.conda). ' +
          "The lock pins its sha256 and no index's credentials go there; if prebuilt lock did not write this URL (a lock edited by hand or in a pull request), re-create the lock with prebuilt lock --update.",
      ]);
    });

    it("takes a decorator's channel (channel::package) as a source, and PyPI's file host for pip's default index", () => {
      const fromDecorator = entry(
        'linux-64',
        [conda('samtools', 'https://conda.anaconda.org/bioconda/linux-64/samtools-1.0-0.conda'), wheel('foo', 'https://files.pythonhosted.org/packages/foo-1.0-py3-none-any.whl')],
        { conda: { 'bioconda::samtools': '' }, indexUrl: null },
      );
      expect(flowDirectUrlWheels([{ key: 'k', entry: fromDecorator, steps: ['a'] }])).toEqual([]);
      const elsewhere = entry('linux-64', [wheel('foo', 'https://files.pythonhosted.org/packages/foo-1.0-py3-none-any.whl')]);
      expect(flowDirectUrlWheels([{ key: 'k', entry: elsewhere, steps: ['a'] }]).map((w) => w.host)).toEqual(['files.pythonhosted.org']);
    });

    it('a note of a lock planting thousands of packages stays short', () => {
      const many = entry('linux-64', Array.from({ length: 5000 }, (_, i) => wheel(`p${i}`, `https://evil.example/${'z'.repeat(1000)}/p${i}-1.0-py3-none-any.whl`)));
      const notes = directUrlNotes([{ entry: many, steps: ['a'] }]);
      expect(notes).toHaveLength(1);
      expect(notes[0]!.length).toBeLessThan(5000);
      expect(notes[0]).toContain('5000 packages are locked from the host evil.example');
      expect(notes[0]).toContain('and 4990 more');
    });

    it('names ten hosts in a note each, and counts the others in one more', () => {
      const spread = entry('linux-64', Array.from({ length: 5000 }, (_, i) => wheel(`p${i}`, `https://h${i}.evil.example/p${i}-1.0-py3-none-any.whl`)));
      const notes = directUrlNotes([{ entry: spread, steps: ['a'] }]);
      expect(notes).toHaveLength(11);
      expect(notes[10]).toBe("4990 more hosts serve packages of the lock under none of their env's channels and not at its index, which the lock does not record as direct URLs: --json's directUrls lists them all.");
    });
  });
});
