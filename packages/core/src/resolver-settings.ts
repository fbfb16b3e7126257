import { constants } from 'node:buffer';
import { positiveSetting, secondsSetting } from './backend-kit/settings.js';
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

/** Seconds one pip resolve (`pip install --dry-run --report` of an env) may take in all. */
export const PIP_TIMEOUT_ENV = 'METAFLOW_PREBUILT_PIP_TIMEOUT';
/**
 * One hour. pip's own socket timeout bounds a read that stalls, not one that trickles (a byte every
 * few seconds keeps it waiting for ever), so the whole run needs a bound. A big resolve is slow for
 * good reasons: against an index without PEP 658 metadata files pip downloads every candidate wheel
 * whole to read its dependencies (a CUDA build of torch is ~2.5 GB; backtracking fetches several
 * versions), which over a 10 Mbit/s link takes tens of minutes. An hour is twice the bound of one
 * request (METAFLOW_PREBUILT_NETWORK_DEADLINE, 1800 s), so a resolve that one slow download ends is
 * not cut short by default, and a hostile index holds `prebuilt lock` for an hour at most.
 */
export const DEFAULT_PIP_TIMEOUT_SECONDS = 3600;

/** The pip resolve's bound in ms: option (seconds) → METAFLOW_PREBUILT_PIP_TIMEOUT → 3600 s. A bad value is a ConfigError (exit 2). */
export function pipTimeoutMs(env: Record<string, string | undefined> = process.env, seconds?: number): number {
  return Math.round(secondsSetting({ value: seconds, envVar: PIP_TIMEOUT_ENV, option: 'pipTimeoutSeconds', fallback: DEFAULT_PIP_TIMEOUT_SECONDS, env }) * 1000);
}

/**
 * Reads every setting of the env resolver that only a resolution would read otherwise, so a bad
 * value stops a command at once (exit 2) even when the lock file makes resolving unnecessary.
 */
export function checkResolverSettings(env: Record<string, string | undefined>): void {
  pipIsolated(env);
  pipTimeoutMs(env);
  repodataMaxBytes(env);
}
