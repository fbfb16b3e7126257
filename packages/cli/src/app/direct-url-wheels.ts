/**
 * The wheels pip took at a direct URL (a dependency's `Requires-Dist: bar @ https://other-host/…`,
 * core's `LockedPackage.directUrl`): what `lock`, `plan` and `build` name in a note and in --json.
 * That host is one no setting names; the lock pins the file's sha256 and the index's credentials
 * never go there, but people should see it.
 */
import { oneLineText, redactUrl, type LockEntry, type LockForFlowResult } from '@prebuilt/core';

/**
 * What a note quotes of the lock at most: a name, version or host, the URL, and the packages that
 * required the wheel (a cloned repo's lock, or a hostile index through pip's report, holds any length).
 */
const NAME_MAX = 100;
const URL_MAX = 300;
const REQUIRERS_SHOWN = 10;

/** `text` cut to its first `max` characters and `…`. */
function cut(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

/** A wheel of an env locked at a direct URL, as --json gives it. */
export interface DirectUrlWheel {
  name: string;
  version: string;
  /** The locked URL, as printed (credentials and secret query parameters hidden; a lock's URL carries none). */
  url: string;
  /** `host:port` of the URL; empty for a `file:` URL. */
  host: string;
  /** The packages whose metadata required it at that URL. */
  requiredBy: string[];
}

/** A wheel locked at a direct URL in one env of a flow (plan's and build's --json `directUrls`). */
export interface FlowDirectUrlWheel extends DirectUrlWheel {
  /** The env's key in the lock file, and its platform. */
  lockKey: string;
  platform: string;
  /** The steps whose env holds it. */
  steps: string[];
}

/** An env of the lock with the steps that use it. */
export interface FlowLockEnv {
  key: string;
  entry: LockEntry;
  steps: string[];
}

/** The wheels of `entry` locked at a direct URL. */
export function directUrlWheels(entry: LockEntry): DirectUrlWheel[] {
  return entry.packages.flatMap((p) => {
    if (p.directUrl === undefined) return [];
    let host = '';
    try {
      host = new URL(p.url).host;
    } catch {
      // Not a URL (a lock validated on read has URLs): no host to name.
    }
    return [{ name: p.name, version: p.version, url: redactUrl(p.url), host, requiredBy: [...p.directUrl.requiredBy] }];
  });
}

/** Each env of a flow's lock (by its key) with the steps that use it, in the lock's step order. */
export function lockedEnvs(result: Pick<LockForFlowResult, 'lock'>): FlowLockEnv[] {
  const envs = new Map<string, FlowLockEnv>();
  for (const [step, locks] of Object.entries(result.lock.steps)) {
    for (const key of Object.values(locks ?? {})) {
      const env = envs.get(key) ?? { key, entry: result.lock.envs[key]!, steps: [] };
      env.steps.push(step);
      envs.set(key, env);
    }
  }
  return [...envs.values()];
}

/** Every wheel a flow's lock took at a direct URL, one per env (and platform) that holds it; `envs`: the lock's {@link lockedEnvs}. */
export function flowDirectUrlWheels(envs: readonly FlowLockEnv[]): FlowDirectUrlWheel[] {
  return envs.flatMap((env) =>
    directUrlWheels(env.entry).map((wheel) => ({ ...wheel, lockKey: env.key, platform: env.entry.platform, steps: [...env.steps] })),
  );
}

/**
 * One note per wheel locked at a direct URL (over every env and platform that has it): what,
 * from which host, who required it, and what prebuilt does about it. Its words come from the index
 * (names, the URL): kept on one line, and short (each cut, ten of the packages that required it named).
 */
export function directUrlNotes(envs: readonly Pick<FlowLockEnv, 'entry' | 'steps'>[]): string[] {
  const byWheel = new Map<string, { wheel: DirectUrlWheel; steps: Set<string> }>();
  for (const env of envs) {
    for (const wheel of directUrlWheels(env.entry)) {
      const key = `${wheel.name} ${wheel.version} ${wheel.url}`;
      const seen = byWheel.get(key) ?? { wheel, steps: new Set<string>() };
      for (const step of env.steps) seen.steps.add(step);
      for (const by of wheel.requiredBy) if (!seen.wheel.requiredBy.includes(by)) seen.wheel.requiredBy.push(by);
      byWheel.set(key, seen);
    }
  }
  return [...byWheel.values()].map(({ wheel, steps }) => {
    const sorted = [...steps].sort();
    const where = `step${sorted.length === 1 ? '' : 's'} ${sorted.join(', ')}`;
    const from = wheel.host === '' ? 'a file on this machine' : `the host ${cut(wheel.host, NAME_MAX)}`;
    const requirers = wheel.requiredBy.sort();
    const more = requirers.length - REQUIRERS_SHOWN;
    const by =
      requirers.length === 0
        ? 'a package pip picked'
        : requirers.slice(0, REQUIRERS_SHOWN).map((one) => cut(one, NAME_MAX)).join(', ') + (more > 0 ? ` and ${more} more` : '');
    const name = cut(wheel.name, NAME_MAX);
    return oneLineText(
      `${where}: ${name} ${cut(wheel.version, NAME_MAX)} is locked from ${from} (${cut(wheel.url, URL_MAX)}), a direct URL that ${by} require${requirers.length > 1 ? '' : 's'} ` +
        `(Requires-Dist: ${name} @ …), not a file of the PyPI index; the lock pins its sha256, and the index's credentials go to the index's own host only.`,
    );
  });
}
