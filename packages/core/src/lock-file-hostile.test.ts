import { mkdir, mkdtemp, realpath, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { InputError } from './errors.js';
import { readLockFile, serializeLockFile } from './lock-file.js';
import { lockForFlow } from './lock-for-flow.js';
import { fakeResolver, glibc, request } from './__fixtures__/fake-env-resolver.js';

// Every realpath the lock's reader makes, counted by the path it resolves.
vi.mock('node:fs/promises', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:fs/promises')>();
  return { ...actual, realpath: vi.fn(actual.realpath) };
});

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'prebuilt-lock-roots-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A lock whose one env has `count` wheels at file: URLs `inside(i)` of its file: index `index`. */
async function lockOfLocalWheels(index: string, count: number, inside: (i: number) => string): Promise<string> {
  await rm(join(dir, 'flow.prebuilt.lock'), { force: true });
  const { lock, lockFile } = await lockForFlow({ flowFile: join(dir, 'flow.py'), steps: { start: request({}) }, glibc, resolve: fakeResolver() });
  const parsed = JSON.parse(serializeLockFile(lock)) as { envs: Record<string, { request: { indexUrl: string | null }; packages: unknown[] }> };
  const entry = Object.values(parsed.envs)[0]!;
  entry.request.indexUrl = pathToFileURL(index).href;
  for (let i = 0; i < count; i++) {
    const filename = `p${i}-1.0-py3-none-any.whl`;
    entry.packages.push({ kind: 'pypi', name: `p${i}`, version: '1.0', build: '', url: pathToFileURL(inside(i)).href, sha256: '1'.repeat(64), size: 1, filename });
  }
  await writeFile(lockFile, JSON.stringify(parsed));
  return lockFile;
}

describe("a lock of many file: packages: each source directory resolved once per read", () => {
  it('resolves the index directory once for 2,000 wheels inside it, not once per wheel; a wheel out of it is still refused', async () => {
    const index = join(dir, 'wheels', 'simple');
    await mkdir(index, { recursive: true });
    const lockFile = await lockOfLocalWheels(index, 2000, (i) => join(index, `p${i}`, `p${i}-1.0-py3-none-any.whl`));
    const realpathCalls = vi.mocked(realpath);
    realpathCalls.mockClear();
    const read = await readLockFile(lockFile);
    expect(Object.values(read!.envs)[0]!.packages.length).toBeGreaterThanOrEqual(2000);
    const ofIndex = realpathCalls.mock.calls.filter(([path]) => path === index);
    // It was 2,000: one per wheel.
    expect(ofIndex).toHaveLength(1);

    await mkdir(join(dir, 'home'));
    await writeFile(join(dir, 'home', 'config.json'), '{}');
    const escaping = await lockOfLocalWheels(index, 3, (i) => (i === 2 ? join(dir, 'home', 'config.json') : join(index, `p${i}`, `p${i}-1.0-py3-none-any.whl`)));
    const error = await readLockFile(escaping).catch((e: unknown) => e);
    expect(InputError.isInstance(error), String(error)).toBe(true);
    expect((error as InputError).message).toContain("which is not inside the env's file: index");
  });
});

describe("an error quoting a lock's URL and file name", () => {
  it('cuts them (a lock file holds a URL of any length) and hides its secrets, on one line', async () => {
    const { lock, lockFile } = await lockForFlow({ flowFile: join(dir, 'flow.py'), steps: { start: request({}) }, glibc, resolve: fakeResolver() });
    const parsed = JSON.parse(serializeLockFile(lock)) as { envs: Record<string, { packages: unknown[] }> };
    const url = `file://user:hunter2@/home/u/${'a'.repeat(1_000_000)}.whl?token=hunter3`;
    const filename = `canary\n\u001b[2Jerror: ${'b'.repeat(1_000_000)}.whl`;
    Object.values(parsed.envs)[0]!.packages.push({ kind: 'pypi', name: 'canary', version: '1.0', build: '', url, sha256: '1'.repeat(64), size: 1, filename });
    await writeFile(lockFile, JSON.stringify(parsed));
    const error = await readLockFile(lockFile).catch((e: unknown) => e);
    expect(InputError.isInstance(error), String(error)).toBe(true);
    const { message } = error as InputError;
    // It was over 2,000,000 characters.
    expect(message.length).toBeLessThan(lockFile.length + 1500);
    expect(message).toContain('locks the wheel canary\\n\\x1b[2Jerror: bbb');
    expect(message).not.toMatch(/hunter|\n|\u001b/);
  });
});
