import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { EnvPins } from './env-model.js';
import { InputError } from './errors.js';
import { specHash } from './identity.js';
import { LOCK_FILE_VERSION, readLockFile } from './lock-file.js';
import { lockForFlow } from './lock-for-flow.js';
import { FakeEnvResolver, condaPins, fakeResolver, glibc, req, request } from './__fixtures__/fake-env-resolver.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'prebuilt-lock-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('lockForFlow', () => {
  const steps = () => ({ start: request({ numpy: '1.26' }), train: request({ numpy: '1.26' }), end: request({}), off: null });

  it('resolves each unique env once, writes a sorted 2-space lock, and reuses it next time', async () => {
    const flowFile = join(dir, 'flow.py');
    const resolve = fakeResolver();
    const first = await lockForFlow({ flowFile, steps: steps(), glibc, resolve });
    expect(resolve.calls).toHaveLength(1);
    expect(resolve.calls[0]!.map((e) => e.steps)).toEqual([['end'], ['start', 'train']]);
    expect(first.written).toBe(true);
    const text = await readFile(join(dir, 'flow.prebuilt.lock'), 'utf8');
    expect(text.startsWith('{\n  "envs": {')).toBe(true);
    expect(text.endsWith('}\n')).toBe(true);
    // One platform: version 1 (step → entry), the format prebuilt versions before multi-platform read.
    const parsed = JSON.parse(text) as { lockVersion: number; steps: Record<string, string | null> };
    expect(parsed.lockVersion).toBe(1);
    const endKey = parsed.steps.end!;
    const numpyKey = parsed.steps.start!;
    expect(parsed.steps).toEqual({ end: endKey, off: null, start: numpyKey, train: numpyKey });
    expect(first.lock.steps.start).toEqual({ 'linux-64': numpyKey });
    expect(first.lock.envs[endKey]!.specHash).toBe(specHash(req({})));
    expect(first.lock.envs[numpyKey]!.specHash).toBe(specHash(req({ numpy: '1.26' })));
    // Packages are sorted by name within a kind, whatever order the resolver returned.
    const entry = first.lock.envs[numpyKey]!;
    expect(entry.packages.map((p) => p.name)).toEqual(['numpy', 'python']);
    const onDisk = JSON.parse(text) as { envs: Record<string, { packages: { name: string }[] }> };
    expect(onDisk.envs[numpyKey]!.packages.map((p) => p.name)).toEqual(['numpy', 'python']);

    const second = await lockForFlow({ flowFile, steps: steps(), glibc, resolve });
    expect(resolve.calls).toHaveLength(1);
    expect(second.written).toBe(false);
    expect(second.reused.sort()).toEqual(Object.keys(first.lock.envs).sort());
    expect(await readFile(join(dir, 'flow.prebuilt.lock'), 'utf8')).toBe(text);
    expect(await readdir(dir)).toEqual(['flow.prebuilt.lock']); // no temp files left behind
  });

  it('re-resolves only the changed env; --update re-resolves all; other pins are not reused', async () => {
    const flowFile = join(dir, 'flow.py');
    const resolve = fakeResolver();
    await lockForFlow({ flowFile, steps: steps(), glibc, resolve });
    await lockForFlow({ flowFile, steps: { ...steps(), end: request({ pandas: '' }) }, glibc, resolve });
    expect(resolve.calls[1]!.map((e) => e.steps)).toEqual([['end']]);
    await lockForFlow({ flowFile, steps: steps(), glibc, resolve, update: true });
    expect(resolve.calls[2]).toHaveLength(2);
    await lockForFlow({ flowFile, steps: steps(), glibc: '2.34', resolve });
    expect(resolve.calls[3]).toHaveLength(2);
  });

  it('keeps a @conda and a @pypi step with equal requests apart (their pins differ)', async () => {
    const flowFile = join(dir, 'flow.py');
    const resolve = fakeResolver();
    const pypiPins: EnvPins = { conda: {}, pypi: { requests: '>=2.21.0' } };
    const result = await lockForFlow({ flowFile, steps: { a: request({}), b: request({}, pypiPins) }, glibc, resolve });
    expect(resolve.calls[0]!.map((e) => e.resolvedWith.pins)).toEqual(expect.arrayContaining([condaPins, pypiPins]));
    expect(result.lock.steps.a).not.toEqual(result.lock.steps.b);
    expect(result.steps.a![0]!.specHash).toBe(result.steps.b![0]!.specHash);
  });

  it('locks every step once per target platform; a second platform reuses the first one\'s entries', async () => {
    const flowFile = join(dir, 'flow.py');
    const resolve = fakeResolver();
    await lockForFlow({ flowFile, steps: steps(), glibc, resolve });
    const both = await lockForFlow({ flowFile, steps: steps(), glibc, resolve, platforms: ['linux-64', 'linux-aarch64'] });
    // Only the aarch64 envs are new: one per distinct request (numpy, empty).
    expect(resolve.calls[1]!.map((e) => [e.request.platform, e.steps])).toEqual([
      ['linux-aarch64', ['end']],
      ['linux-aarch64', ['start', 'train']],
    ]);
    expect(both.reused).toHaveLength(2);
    expect(both.steps.start!.map((e) => e.platform)).toEqual(['linux-64', 'linux-aarch64']);
    expect(both.steps.start![1]!.specHash).toBe(specHash({ ...req({ numpy: '1.26' }), platform: 'linux-aarch64' }));
    expect(both.steps.off).toBeNull();
    const text = await readFile(join(dir, 'flow.prebuilt.lock'), 'utf8');
    expect(JSON.parse(text)).toMatchObject({ lockVersion: LOCK_FILE_VERSION });
    const onDisk = await readLockFile(join(dir, 'flow.prebuilt.lock'));
    expect(Object.keys(onDisk!.steps.train!)).toEqual(['linux-64', 'linux-aarch64']);
    expect(onDisk!.steps.train).toEqual(onDisk!.steps.start);
    // --frozen for both platforms holds; without platforms the lock keeps the two it was made for.
    await expect(lockForFlow({ flowFile, steps: steps(), glibc, resolve, platforms: ['linux-aarch64', 'linux-64'], frozen: true })).resolves.toMatchObject({ written: false });
    const kept = await lockForFlow({ flowFile, steps: steps(), glibc, resolve });
    expect(kept.written).toBe(false);
    expect(kept.steps.start!.map((e) => e.platform)).toEqual(['linux-64', 'linux-aarch64']);
    // Back to one platform: written as version 1 again; --frozen then fails for the other platform.
    const one = await lockForFlow({ flowFile, steps: steps(), glibc, resolve, platforms: ['linux-64'] });
    expect(one.written).toBe(true);
    expect(JSON.parse(await readFile(join(dir, 'flow.prebuilt.lock'), 'utf8'))).toMatchObject({ lockVersion: 1 });
    await expect(lockForFlow({ flowFile, steps: steps(), glibc, resolve, platforms: ['linux-aarch64'], frozen: true })).rejects.toThrow(/not locked: steps end, start, train on linux-aarch64\./);
    expect(resolve.calls).toHaveLength(2);
  });

  it('reads a lock written by a prebuilt before multi-platform (version 1) as it is, and leaves its bytes alone', async () => {
    const flowFile = join(dir, 'flow.py');
    const lockFile = join(dir, 'flow.prebuilt.lock');
    const resolve = fakeResolver();
    await lockForFlow({ flowFile, steps: steps(), glibc, resolve });
    // The old writer: the same JSON, not sorted the same way and on one line.
    const old = JSON.parse(await readFile(lockFile, 'utf8')) as Record<string, unknown>;
    await writeFile(lockFile, JSON.stringify({ steps: old.steps, lockVersion: 1, flow: old.flow, envs: old.envs }));
    const before = await readFile(lockFile, 'utf8');
    expect((await readLockFile(lockFile))!.steps.start).toEqual({ 'linux-64': (old.steps as Record<string, string>).start });
    expect((await lockForFlow({ flowFile, steps: steps(), glibc, resolve, frozen: true })).written).toBe(false);
    expect((await lockForFlow({ flowFile, steps: steps(), glibc, resolve })).written).toBe(false);
    expect(await readFile(lockFile, 'utf8')).toBe(before);
    expect(resolve.calls).toHaveLength(1);
  });

  it('--frozen and a corrupt lock: the hint\'s command names a flow file a shell would split as one quoted word', async () => {
    const flowFile = join(dir, 'my flow; id.py');
    const resolve = fakeResolver();
    const missing = await lockForFlow({ flowFile, steps: steps(), glibc, resolve, frozen: true }).catch((e: unknown) => e);
    expect((missing as InputError).hint).toBe(`Run \`prebuilt lock '${flowFile}'\` and commit my flow; id.prebuilt.lock.`);
    await writeFile(join(dir, 'my flow; id.prebuilt.lock'), 'not json');
    const corrupt = await lockForFlow({ flowFile, steps: steps(), glibc, resolve }).catch((e: unknown) => e);
    expect((corrupt as InputError).hint).toContain("`prebuilt lock --update 'my flow; id.py'`");
  });

  it('--frozen with the cwd: the message and the hint name the lock and the flow relative to it when inside it, else absolute', async () => {
    await mkdir(join(dir, 'flows'));
    const flowFile = join(dir, 'flows', 'flow.py');
    const resolve = fakeResolver();
    const missing = (await lockForFlow({ flowFile, steps: steps(), glibc, resolve, frozen: true, cwd: dir }).catch((e: unknown) => e)) as InputError;
    expect(missing.message).toBe('--frozen: there is no lock file flows/flow.prebuilt.lock.');
    expect(missing.hint).toBe('Run `prebuilt lock flows/flow.py` and commit flow.prebuilt.lock.');
    // The file field (for --json and tools) stays absolute.
    expect(missing.file).toBe(join(dir, 'flows', 'flow.prebuilt.lock'));
    await lockForFlow({ flowFile, steps: steps(), glibc, resolve });
    const changed = { ...steps(), extra: request({ numpy: '2.0' }) };
    const stale = (await lockForFlow({ flowFile, steps: changed, glibc, resolve, frozen: true, cwd: join(dir, 'flows') }).catch((e: unknown) => e)) as InputError;
    expect(stale.message).toBe('--frozen: the lock file flow.prebuilt.lock does not match the flow; not locked: step extra.');
    expect(stale.hint).toBe('Run `prebuilt lock flow.py` and commit flow.prebuilt.lock.');
    const elsewhere = (await lockForFlow({ flowFile, steps: changed, glibc, resolve, frozen: true, cwd: join(dir, 'other') }).catch((e: unknown) => e)) as InputError;
    expect(elsewhere.message).toContain(`the lock file ${join(dir, 'flows', 'flow.prebuilt.lock')} does not match`);
  });

  it('a corrupt, empty or newer-version lock with the cwd: the message names the lock relative to it; the file field stays absolute', async () => {
    await mkdir(join(dir, 'flows'));
    const flowFile = join(dir, 'flows', 'flow.py');
    const lockFile = join(dir, 'flows', 'flow.prebuilt.lock');
    const resolve = fakeResolver();
    for (const [text, message] of [
      ['not json', /^Lock file flows\/flow\.prebuilt\.lock is not valid JSON/],
      ['', /^Lock file flows\/flow\.prebuilt\.lock is empty/],
      [JSON.stringify({ lockVersion: 99, flow: 'F', envs: {}, steps: {} }), /^Lock file flows\/flow\.prebuilt\.lock has lockVersion 99/],
      [JSON.stringify({ lockVersion: 2, flow: 'F', envs: {}, steps: { start: 'x' } }), /^Lock file flows\/flow\.prebuilt\.lock is invalid: /],
    ] as const) {
      await writeFile(lockFile, text);
      const error = (await lockForFlow({ flowFile, steps: steps(), glibc, resolve, cwd: dir }).catch((e: unknown) => e)) as InputError;
      expect(InputError.isInstance(error), String(error)).toBe(true);
      expect(error.message).toMatch(message);
      expect(error.file).toBe(lockFile);
      // --update still replaces it (the file field, not the shown path, says it is the lock).
      expect((await lockForFlow({ flowFile, steps: steps(), glibc, resolve, cwd: dir, update: true })).written).toBe(true);
    }
    expect(resolve.calls.length).toBeGreaterThan(0);
  });

  it('--frozen: fails (InputError, exit 2) listing unlocked steps; succeeds without writing when all are locked', async () => {
    const flowFile = join(dir, 'flow.py');
    const resolve = fakeResolver();
    await expect(lockForFlow({ flowFile, steps: steps(), glibc, resolve, frozen: true })).rejects.toThrow(
      /no lock file .*flow\.prebuilt\.lock/,
    );
    await lockForFlow({ flowFile, steps: steps(), glibc, resolve });
    const changed = { ...steps(), train: request({ numpy: '2.0' }), extra: request({ numpy: '2.0' }) };
    const error = await lockForFlow({ flowFile, steps: changed, glibc, resolve, frozen: true }).catch((e: unknown) => e);
    expect(InputError.isInstance(error)).toBe(true);
    expect((error as InputError).exitCode).toBe(2);
    expect((error as InputError).message).toMatch(/^--frozen: the lock file .* not locked: steps extra, train\./);
    // A command that freezes without the user's --frozen (gc) says so in place of '--frozen'.
    const byGc = await lockForFlow({ flowFile, steps: changed, glibc, resolve, frozen: true, frozenBy: 'gc reads the lock' }).catch((e: unknown) => e);
    expect((byGc as InputError).message).toMatch(/^gc reads the lock: the lock file .* not locked: steps extra, train\./);
    const ok = await lockForFlow({ flowFile, steps: steps(), glibc, resolve, frozen: true });
    expect(ok.written).toBe(false);
    expect(resolve.calls).toHaveLength(1);
  });

  it.each([
    ['truncated', '{"lockVersion": 1, "envs": ', /is not valid JSON \(truncated or edited\?\)/],
    ['empty', '', /is empty \(truncated\?\)/],
    // A lock that is a symlink to a token file: the parser's own message would quote its first characters.
    ['token-file', 'ghp_S3CRETabcdefghijklmnopqrstuvwxyz012345', /is not valid JSON \(truncated or edited\?\)\.$/],
    ['misplaced', '{"lockVersion": 1 x}', /is not valid JSON \(truncated or edited\?\) at line 1, column 19\.$/],
    ['newer', JSON.stringify({ lockVersion: LOCK_FILE_VERSION + 1, flow: 'flow.py', envs: {}, steps: {} }), /lockVersion 3, written by a newer prebuilt/],
  ])('a %s lock is an InputError naming the file and the fix, never replaced; --update replaces it', async (_what, text, message) => {
    const flowFile = join(dir, 'flow.py');
    const lockFile = join(dir, 'flow.prebuilt.lock');
    await writeFile(lockFile, text);
    const resolve = fakeResolver();
    for (const options of [{ frozen: true }, {}]) {
      const error = await lockForFlow({ flowFile, steps: steps(), glibc, resolve, ...options }).catch((e: unknown) => e);
      expect(InputError.isInstance(error)).toBe(true);
      expect((error as InputError).message).toContain(lockFile);
      expect((error as InputError).message).toMatch(message);
      expect((error as InputError).message).not.toContain('S3CRET');
      expect((error as InputError).hint).toContain('prebuilt lock --update flow.py');
      expect(await readFile(lockFile, 'utf8')).toBe(text);
    }
    expect(resolve.calls).toHaveLength(0);
    const result = await lockForFlow({ flowFile, steps: steps(), glibc, resolve, update: true });
    expect(result.written).toBe(true);
    expect(await readLockFile(lockFile)).toEqual(result.lock);
  });

  it('rejects --frozen with --update', async () => {
    await expect(
      lockForFlow({ flowFile: join(dir, 'f.py'), steps: {}, glibc, resolve: fakeResolver(), frozen: true, update: true }),
    ).rejects.toThrow(/cannot be used together/);
  });
});

describe('lockForFlow with an EnvResolver', () => {
  it('records the resolver\'s glibc and asks it only for what the lock lacks', async () => {
    const flowFile = join(dir, 'flow.py');
    const resolver = new FakeEnvResolver('2.31');
    const first = await lockForFlow({ flowFile, steps: { start: request({ tinynum: '' }), end: null }, resolver });
    expect(resolver.calls.map((call) => call.map((env) => [env.steps, env.resolvedWith.glibc]))).toEqual([[[['start'], '2.31']]]);
    expect(Object.values(first.lock.envs).map((entry) => entry.resolvedWith.glibc)).toEqual(['2.31']);
    expect(first.steps.end).toBeNull();
    const again = await lockForFlow({ flowFile, steps: { start: request({ tinynum: '' }), end: null }, resolver });
    expect(resolver.calls).toHaveLength(1);
    expect(again).toMatchObject({ written: false, resolved: [], reused: first.resolved });
    // Another glibc is another lock: the entry is resolved again.
    await lockForFlow({ flowFile, steps: { start: request({ tinynum: '' }), end: null }, resolver: new FakeEnvResolver('2.34') });
    expect(Object.values(JSON.parse(await readFile(first.lockFile, 'utf8')).envs as Record<string, { resolvedWith: { glibc: string } }>).map((e) => e.resolvedWith.glibc)).toEqual(['2.34']);
  });

  it('writes the same lock as the older call shape (glibc and resolve given apart)', async () => {
    const steps = { start: request({ tinynum: '' }), train: request({ tinyframe: '1.0' }) };
    const resolver = new FakeEnvResolver('2.28');
    const viaResolver = await lockForFlow({ flowFile: join(dir, 'a', 'flow.py'), steps, resolver, write: false });
    const apart = new FakeEnvResolver('2.28');
    const viaFunction = await lockForFlow({ flowFile: join(dir, 'b', 'flow.py'), steps, glibc: '2.28', resolve: (envs) => apart.resolve(envs), write: false });
    expect(viaFunction.lock).toEqual(viaResolver.lock);
    expect(apart.calls).toEqual(resolver.calls);
  });
});
