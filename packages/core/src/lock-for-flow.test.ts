import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { EnvResolver } from './contracts.js';
import type { EnvRequest, EnvToResolve, LockedEnv } from './env-model.js';
import { lockForFlow, type StepToLock } from './lock-for-flow.js';

const request = (conda: Record<string, string>): StepToLock => ({
  request: { python: '3.11', conda, pypi: {}, channels: ['http://127.0.0.1:1/main'], indexUrl: null, platform: 'linux-64' } satisfies EnvRequest,
  pins: { conda: { requests: '>=2.21.0' }, pypi: {} },
});

/** A FAKE resolver object, as @prebuilt/conda's createResolver() gives one: glibc and a resolve() method using `this`. */
class FakeResolver implements EnvResolver {
  readonly calls: EnvToResolve[][] = [];
  constructor(readonly glibc: string) {}
  async resolve(envs: readonly EnvToResolve[]): Promise<LockedEnv[]> {
    this.calls.push([...envs]);
    return envs.map((env) => ({
      specHash: env.specHash,
      request: env.request,
      platform: env.request.platform,
      pythonVersion: '3.11.9',
      packages: [{ kind: 'conda', name: 'python', version: '3.11.9', build: 'h0', url: 'http://127.0.0.1:1/main/linux-64/python.conda', sha256: '0'.repeat(64), size: 1, filename: 'python.conda', subdir: 'linux-64' }],
    }));
  }
}

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'prebuilt-lock-for-flow-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('lockForFlow with an EnvResolver', () => {
  it('records the resolver\'s glibc and asks it only for what the lock lacks', async () => {
    const flowFile = join(dir, 'flow.py');
    const resolver = new FakeResolver('2.31');
    const first = await lockForFlow({ flowFile, steps: { start: request({ tinynum: '' }), end: null }, resolver });
    expect(resolver.calls.map((call) => call.map((env) => [env.steps, env.resolvedWith.glibc]))).toEqual([[[['start'], '2.31']]]);
    expect(Object.values(first.lock.envs).map((entry) => entry.resolvedWith.glibc)).toEqual(['2.31']);
    expect(first.steps.end).toBeNull();
    const again = await lockForFlow({ flowFile, steps: { start: request({ tinynum: '' }), end: null }, resolver });
    expect(resolver.calls).toHaveLength(1);
    expect(again).toMatchObject({ written: false, resolved: [], reused: first.resolved });
    // Another glibc is another lock: the entry is resolved again.
    await lockForFlow({ flowFile, steps: { start: request({ tinynum: '' }), end: null }, resolver: new FakeResolver('2.34') });
    expect(Object.values(JSON.parse(await readFile(first.lockFile, 'utf8')).envs as Record<string, { resolvedWith: { glibc: string } }>).map((e) => e.resolvedWith.glibc)).toEqual(['2.34']);
  });

  it('writes the same lock as the older call shape (glibc and resolve given apart)', async () => {
    const steps = { start: request({ tinynum: '' }), train: request({ tinyframe: '1.0' }) };
    const resolver = new FakeResolver('2.28');
    const viaResolver = await lockForFlow({ flowFile: join(dir, 'a', 'flow.py'), steps, resolver, write: false });
    const apart = new FakeResolver('2.28');
    const viaFunction = await lockForFlow({ flowFile: join(dir, 'b', 'flow.py'), steps, glibc: '2.28', resolve: (envs) => apart.resolve(envs), write: false });
    expect(viaFunction.lock).toEqual(viaResolver.lock);
    expect(apart.calls).toEqual(resolver.calls);
  });
});
