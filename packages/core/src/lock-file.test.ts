import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { InputError } from './errors.js';
import { lockFilePath, readLockFile, serializeLockFile } from './lock-file.js';
import { lockForFlow } from './lock-for-flow.js';
import { fakeResolver, glibc, request } from './__fixtures__/fake-env-resolver.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'prebuilt-lock-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('lockFilePath', () => {
  it('puts <stem>.prebuilt.lock beside the flow', () => {
    expect(lockFilePath('/a/b/my_flow.py')).toBe('/a/b/my_flow.prebuilt.lock');
    expect(lockFilePath('flow')).toBe('flow.prebuilt.lock');
  });
});

describe('readLockFile validation', () => {
  it('returns undefined for a missing file', async () => {
    expect(await readLockFile(join(dir, 'none.prebuilt.lock'))).toBeUndefined();
  });

  it.each([
    ['a newer format version', (l: Record<string, unknown>) => ({ ...l, lockVersion: 99 }), /lockVersion 99, written by a newer prebuilt/],
    ['an unknown format version', (l: Record<string, unknown>) => ({ ...l, lockVersion: 'x' }), /lockVersion is "x"/],
    ['a bad sha256', (l: Record<string, unknown>) => JSON.parse(JSON.stringify(l).replace('"0000', '"zz00')) as unknown, /sha256 is not a hex sha256/],
    ['a step naming a missing env', (l: Record<string, unknown>) => ({ ...l, steps: { start: 'abc' } }), /steps\.start names no env/],
    ['a version-2 step naming a missing env', (l: Record<string, unknown>) => ({ ...l, lockVersion: 2, steps: { start: { 'linux-64': 'abc' } } }), /steps\.start\.linux-64 names no env/],
    ['a version-1 step in a version-2 file', (l: Record<string, unknown>) => ({ ...l, lockVersion: 2 }), /steps\.start is not an object/],
    ['a step naming an env of another platform', (l: Record<string, unknown>) => ({ ...l, lockVersion: 2, steps: { start: { 'linux-aarch64': Object.keys(l.envs as object)[0] } } }), /locked for linux-64/],
    ['a step with no platform', (l: Record<string, unknown>) => ({ ...l, lockVersion: 2, steps: { start: {} } }), /names no platform/],
    ['an entry under the wrong key', (l: Record<string, unknown>) => ({ ...l, envs: { wrong: Object.values(l.envs as object)[0] } }), /envs\.wrong does not match/],
  ])('rejects %s with an InputError naming the file', async (_what, mutate, message) => {
    const flowFile = join(dir, 'flow.py');
    const { lock, lockFile } = await lockForFlow({ flowFile, steps: { start: request({}) }, glibc, resolve: fakeResolver() });
    await writeFile(lockFile, JSON.stringify(mutate(JSON.parse(serializeLockFile(lock)) as Record<string, unknown>)));
    const error = await readLockFile(lockFile).catch((e: unknown) => e);
    expect(InputError.isInstance(error)).toBe(true);
    expect((error as InputError).message).toContain(lockFile);
    expect((error as InputError).message).toMatch(message);
  });
});
