import { lstat } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { useExampleChannel } from '../__fixtures__/example-channel.js';
import type { EnvProgress, LockedEnv } from '@prebuilt/core';
import { createEnvMaterializer } from './env-materializer.js';
import type { MaterializeResult } from './materialize.js';

const example = useExampleChannel('prebuilt-env-materializer-');
let lock: LockedEnv;

beforeAll(() => {
  const tinyhttp = example.fixtures.index.wheels.filter((w) => w.project === 'tinyhttp').map((w) => w.filename);
  lock = example.lock({ conda: [example.condaFile('tinycli', '.conda')], wheels: tinyhttp }, { pypiRequested: ['tinyhttp'], condaRequested: ['tinycli'] });
});

describe('createEnvMaterializer (core\'s EnvMaterializer contract)', () => {
  it('lays the prefix out where core says, reports downloads then installs, and returns the per-package entries', async () => {
    const materialized: [string, MaterializeResult][] = [];
    const materializer = createEnvMaterializer({ cacheDir: join(example.work, 'cache'), onMaterialized: (envId, result) => materialized.push([envId, result]) });
    const progress: EnvProgress[] = [];
    const outDir = join(example.work, 'context', 'prefix');
    const result = await materializer.materialize({ lock, envId: 'abc', prefix: '/opt/prebuilt/env', outDir, onProgress: (p) => progress.push(p) });
    expect(result.packages.map((p) => p.filename)).toEqual(lock.packages.map((p) => p.filename));
    await expect(lstat(join(outDir, 'bin', 'tinycli'))).resolves.toBeTruthy();
    expect(materialized.map(([envId, r]) => [envId, r.outDir, r.packageFiles])).toEqual([['abc', outDir, result.packages]]);
    const phases = progress.map((p) => p.phase);
    expect(phases[0]).toBe('downloading');
    expect(phases.lastIndexOf('downloading')).toBeLessThan(phases.indexOf('materializing'));
    expect(progress.at(-1)).toEqual({ phase: 'materializing', done: lock.packages.length, total: lock.packages.length });
  });
});
