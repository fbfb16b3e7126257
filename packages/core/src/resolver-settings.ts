import { constants } from 'node:buffer';
import { positiveSetting } from './backend-kit/settings.js';
import { loadBooleanSetting } from './load-setting.js';

/** Bound of one repodata.json read into memory, in MiB (conda-forge's largest is a few hundred). */
export const REPODATA_MAX_SIZE_ENV = 'METAFLOW_PREBUILT_REPODATA_MAX_SIZE';
export const DEFAULT_REPODATA_MAX_MIB = 1024;

/** The largest buffer Node holds (4 GiB in Node 20 on 64-bit). */
const MAX_LENGTH = constants.MAX_LENGTH;
const MiB = 1024 * 1024;

/**
 * The repodata bound in bytes: option → METAFLOW_PREBUILT_REPODATA_MAX_SIZE (MiB) → 1024 MiB. A value
 * that is no number, or one that bounds nothing, is a ConfigError (exit 2) saying the range: under
 * a byte (`0`, `1e-9`: every repodata.json too large) or over the largest buffer Node holds (`1e308`:
 * no bound at all, the read failing only when memory runs out).
 */
export function repodataMaxBytes(env: Record<string, string | undefined> = process.env, value?: number): number {
  const maxMib = MAX_LENGTH / MiB;
  const mib = positiveSetting({
    value,
    envVar: REPODATA_MAX_SIZE_ENV,
    option: 'repodataMaxMiB',
    fallback: DEFAULT_REPODATA_MAX_MIB,
    unit: 'MiB',
    env,
    min: 1 / MiB,
    max: maxMib,
    range: `from 1 byte to ${maxMib} MiB`,
    why: 'a repodata.json is read into memory',
  });
  return Math.round(mib * MiB);
}

/** METAFLOW_PREBUILT_PIP_ISOLATED: resolve PyPI packages with `pip --isolated` (default off). A value neither on nor off is a ConfigError (exit 2). */
export function pipIsolated(env: Record<string, string | undefined>): boolean {
  return loadBooleanSetting({
    envVar: 'METAFLOW_PREBUILT_PIP_ISOLATED',
    description: 'pip isolation',
    default: false,
    meaning: { on: 'pip --isolated, ignoring your pip configuration', off: 'your pip configuration is honoured, the default' },
    env,
  });
}

/**
 * Reads every setting of the env resolver that only a resolution would read otherwise, so a bad
 * value stops a command at once (exit 2) even when the lock file makes resolving unnecessary.
 */
export function checkResolverSettings(env: Record<string, string | undefined>): void {
  pipIsolated(env);
  repodataMaxBytes(env);
}
