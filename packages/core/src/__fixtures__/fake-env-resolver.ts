import type { EnvResolver } from '../contracts.js';
import type { EnvPins, EnvRequest, EnvToResolve, LockedEnv } from '../env-model.js';
import type { ResolveEnvs, StepToLock } from '../lock-for-flow.js';

/** The fake resolution inputs of the lock tests (no channel behind them). */
export const req = (conda: Record<string, string>, pypi: Record<string, string> = {}): EnvRequest => ({
  python: '3.11',
  conda,
  pypi,
  channels: ['http://127.0.0.1:1/main'],
  indexUrl: null,
  platform: 'linux-64',
});

/** A FAKE resolve function that records its calls and locks each env to one fake file per package. */
export function fakeResolver(): ResolveEnvs & { calls: EnvToResolve[][] } {
  const calls: EnvToResolve[][] = [];
  const resolver = async (envs: readonly EnvToResolve[]): Promise<LockedEnv[]> => {
    calls.push([...envs]);
    return envs.map((env) => ({
      specHash: env.specHash,
      request: env.request,
      platform: env.request.platform,
      pythonVersion: '3.11.9',
      packages: [...Object.keys(env.request.conda), 'python'].reverse().map((name) => ({
        kind: 'conda' as const,
        name,
        version: '1.0',
        build: 'h0_0',
        url: `http://127.0.0.1:1/main/linux-64/${name}-1.0-h0_0.conda`,
        sha256: '0'.repeat(64),
        size: 10,
        filename: `${name}-1.0-h0_0.conda`,
        subdir: 'linux-64',
      })),
    }));
  };
  return Object.assign(resolver, { calls });
}

/** The same FAKE as an EnvResolver object, as @prebuilt/conda's createResolver() gives one (its resolve() uses `this`). */
export class FakeEnvResolver implements EnvResolver {
  readonly #resolve = fakeResolver();
  constructor(readonly glibc: string) {}
  get calls(): EnvToResolve[][] {
    return this.#resolve.calls;
  }
  resolve(envs: readonly EnvToResolve[]): Promise<LockedEnv[]> {
    return this.#resolve(envs);
  }
}

export const condaPins: EnvPins = { conda: { requests: '>=2.21.0' }, pypi: {} };
export const request = (conda: Record<string, string>, pins: EnvPins = condaPins): StepToLock => ({ request: req(conda), pins });
export const glibc = '2.28';
