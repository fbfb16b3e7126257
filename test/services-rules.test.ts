// The CI rule of test/services.ts: a test that needs something CI provides skips saying why on a
// developer's machine and fails saying why in CI. (describeOrFailInCi's failing suite in CI is shown
// by running a suite with CI=true and the services off; here, what can be checked without failing.)
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { metaflowSource, registerOrFailInCi, skipOrFailInCi } from './services.js';

/** A test context whose skip() records its note and throws, as vitest's does. */
function fakeContext(): { notes: (string | undefined)[]; skip(note?: string): never } {
  const notes: (string | undefined)[] = [];
  return {
    notes,
    skip(note?: string): never {
      notes.push(note);
      throw new Error('skipped');
    },
  };
}

describe('skipOrFailInCi', () => {
  it('on a developer machine skips the test with the reason as its note', () => {
    const ctx = fakeContext();
    expect(() => skipOrFailInCi(ctx, 'needs pip: apt-get install python3-pip', {})).toThrow('skipped');
    expect(ctx.notes).toEqual(['needs pip: apt-get install python3-pip']);
  });

  it('in CI (CI=true) fails saying why, and does not skip', () => {
    const ctx = fakeContext();
    expect(() => skipOrFailInCi(ctx, 'needs pip: apt-get install python3-pip', { CI: 'true' })).toThrow(
      'cannot run here, and CI must run it: needs pip: apt-get install python3-pip',
    );
    expect(ctx.notes).toEqual([]);
  });
});

describe('registerOrFailInCi', () => {
  const registered: string[] = [];
  registerOrFailInCi('nothing missing, in CI', undefined, () => registered.push('nothing missing, in CI'), { CI: 'true' });
  registerOrFailInCi('something missing, not in CI', 'needs x', () => registered.push('something missing, not in CI'), {});
  registerOrFailInCi('something missing, CI=false', 'needs x', () => registered.push('something missing, CI=false'), { CI: 'false' });

  it('registers the suite when nothing is missing, and outside CI (where the suite skips by its own skip option)', () => {
    expect(registered).toEqual(['nothing missing, in CI', 'something missing, not in CI', 'something missing, CI=false']);
  });
});

describe('metaflowSource', () => {
  it('gives the checkout when it holds metaflow/__init__.py; else no source and how to get one', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'prebuilt-metaflow-source-'));
    try {
      expect(metaflowSource({})).toEqual({ source: undefined, missing: expect.stringMatching(/^needs a Metaflow source checkout: set PREBUILT_TEST_METAFLOW_SOURCE=\$\(bash scripts\/metaflow-source\.sh\)/) });
      expect(metaflowSource({ PREBUILT_TEST_METAFLOW_SOURCE: dir }).source).toBeUndefined();
      await mkdir(join(dir, 'metaflow'));
      await writeFile(join(dir, 'metaflow', '__init__.py'), '');
      expect(metaflowSource({ PREBUILT_TEST_METAFLOW_SOURCE: dir })).toEqual({ source: dir, missing: undefined });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
