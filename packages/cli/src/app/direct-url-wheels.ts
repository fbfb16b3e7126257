/**
 * The wheels pip took at a direct URL (a dependency's `Requires-Dist: bar @ https://other-host/…`,
 * core's `LockedPackage.directUrl`): what `lock`, `plan` and `build` name in a note and in --json.
 * That host is one no setting names; the lock pins the file's sha256 and the index's credentials
 * never go there, but people should see it.
 *
 * A lock is a file anyone may edit (by hand, in a pull request): a package whose URL is under none
 * of its env's conda channels and not at its PyPI index, and that the lock does not record as a
 * direct URL, is named the same way (`recorded: false`), one note per host. Only the settings and
 * the flow (the env's request, which the lock's specHash binds) say what a source is: nothing the
 * lock records could, since whoever edits the URL edits the record too. Such a package is still
 * built (its sha256 pinned, no index credentials sent to its host, as for any URL): a channel whose
 * repodata names another base_url (a CDN) puts its packages there legitimately.
 */
import { channelUrl, oneLineText, redactUrl, type EnvRequest, type LockEntry, type LockForFlowResult, type LockedPackage } from '@prebuilt/core';

/**
 * What a note quotes of the lock at most: a name, version or host, the URL, and the packages that
 * required the wheel (a cloned repo's lock, or a hostile index through pip's report, holds any length).
 */
const NAME_MAX = 100;
const URL_MAX = 300;
const REQUIRERS_SHOWN = 10;
/**
 * Notes of each kind at most: wheels locked at a direct URL (one each), and hosts serving packages
 * off their env's sources that the lock does not record (one each); one more note counts the rest.
 * A lock of 10,000 direct-URL wheels printed 10,000 lines with every lock, plan and build.
 */
const NOTES_SHOWN = 10;

/** `text` cut to its first `max` characters and `…`. */
function cut(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

/** A wheel of an env locked at a direct URL (or a package at a URL off the env's sources), as --json gives it. */
export interface DirectUrlWheel {
  kind: LockedPackage['kind'];
  name: string;
  version: string;
  /** The locked URL, as printed (credentials and secret query parameters hidden; a lock's URL carries none). */
  url: string;
  /** `host:port` of the URL; empty for a `file:` URL. */
  host: string;
  /**
   * Whether the lock records it as a direct URL (`directUrl`); false for a URL under none of the
   * env's channels and not at its index that the lock says nothing of (a lock edited by hand?).
   */
  recorded: boolean;
  /** The packages whose metadata required it at that URL (none when not recorded). */
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

/** PyPI's index (pip's default) and the host it serves its files from. */
const PYPI_ORIGINS: readonly string[] = ['https://pypi.org', 'https://files.pythonhosted.org'];

/** A URL with its `.`/`..` segments resolved; undefined for no URL. */
function parsedUrl(text: string): URL | undefined {
  try {
    return new URL(text);
  } catch {
    return undefined;
  }
}

/** The env's conda channels: the request's, then those its decorators name (`channel::package`). */
function envChannels(request: EnvRequest): string[] {
  const named = Object.keys(request.conda).filter((k) => k.includes('::')).map((k) => k.slice(0, k.lastIndexOf('::')));
  return [...request.channels, ...named].flatMap((channel) => {
    try {
      return [channelUrl(channel, 'channels')];
    } catch {
      return [];
    }
  });
}

/** The origins the env's PyPI index serves its files from: its own (PyPI's file host too for PyPI); none for a file: index. */
function indexOrigins(request: EnvRequest): readonly string[] {
  if (request.indexUrl === null) return PYPI_ORIGINS;
  const origin = parsedUrl(request.indexUrl)?.origin;
  if (origin === undefined || origin === 'null') return [];
  return origin === PYPI_ORIGINS[0] ? PYPI_ORIGINS : [origin];
}

/**
 * Whether a package's URL is one its env's sources give: a conda package's under one of its
 * channels (`channelPrefixes`), a wheel's at its index's origin. A `file:` URL is (the lock's
 * reader let it through only under a `file:` channel or index of the env).
 */
function fromEnvSources(p: LockedPackage, request: EnvRequest | undefined, channelPrefixes: readonly string[]): boolean {
  const url = parsedUrl(p.url);
  if (url === undefined || request === undefined || url.protocol === 'file:') return true;
  if (p.kind === 'pypi') return indexOrigins(request).includes(url.origin);
  return channelPrefixes.some((prefix) => url.href.startsWith(prefix));
}

/** The wheels of `entry` locked at a direct URL, and its packages at a URL off its sources the lock says nothing of. */
export function directUrlWheels(entry: LockEntry): DirectUrlWheel[] {
  const prefixes = entry.request === undefined ? [] : envChannels(entry.request).map((channel) => `${parsedUrl(channel)?.href.replace(/\/+$/, '') ?? channel}/`);
  return entry.packages.flatMap((p) => {
    if (p.directUrl === undefined && fromEnvSources(p, entry.request, prefixes)) return [];
    const host = parsedUrl(p.url)?.host ?? '';
    return [{ kind: p.kind, name: p.name, version: p.version, url: redactUrl(p.url), host, recorded: p.directUrl !== undefined, requiredBy: [...(p.directUrl?.requiredBy ?? [])] }];
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

/** What an env's sources are, as a note names them: its conda channels and its PyPI index's host. */
function sourcesText(request: EnvRequest | undefined): string {
  if (request === undefined) return "under none of the env's sources";
  const channels = envChannels(request);
  const shown = channels.slice(0, REQUIRERS_SHOWN).map((c) => cut(redactUrl(c), URL_MAX)).join(', ') + (channels.length > REQUIRERS_SHOWN ? ` and ${channels.length - REQUIRERS_SHOWN} more` : '');
  const index = request.indexUrl === null ? 'pypi.org' : (parsedUrl(request.indexUrl)?.host ?? '') || cut(redactUrl(request.indexUrl), URL_MAX);
  return `under none of the env's conda channels (${shown}) and not its PyPI index (${cut(index, NAME_MAX)})`;
}

/** The note of a recorded direct-URL wheel: what, from which host, who required it. */
function recordedNote(wheel: DirectUrlWheel, where: string): string {
  const from = wheel.host === '' ? 'a file on this machine' : `the host ${cut(wheel.host, NAME_MAX)}`;
  const requirers = wheel.requiredBy.sort();
  const more = requirers.length - REQUIRERS_SHOWN;
  const by =
    requirers.length === 0
      ? 'a package pip picked'
      : requirers.slice(0, REQUIRERS_SHOWN).map((one) => cut(one, NAME_MAX)).join(', ') + (more > 0 ? ` and ${more} more` : '');
  const name = cut(wheel.name, NAME_MAX);
  return (
    `${where}: ${name} ${cut(wheel.version, NAME_MAX)} is locked from ${from} (${cut(wheel.url, URL_MAX)}), a direct URL that ${by} require${requirers.length > 1 ? '' : 's'} ` +
    `(Requires-Dist: ${name} @ …), not a file of the PyPI index; the lock pins its sha256, and the index's credentials go to the index's own host only.`
  );
}

/** The note of the packages one host serves off the env's sources that the lock does not record: how many, which (ten named), what to do. */
function unrecordedNote(host: string, sources: string, packages: readonly DirectUrlWheel[], where: string): string {
  const one = packages.length === 1;
  const more = packages.length - REQUIRERS_SHOWN;
  const named =
    packages.slice(0, REQUIRERS_SHOWN).map((p) => `${cut(p.name, NAME_MAX)} ${cut(p.version, NAME_MAX)} (${cut(p.url, URL_MAX)})`).join(', ') + (more > 0 ? ` and ${more} more` : '');
  return (
    `${where}: ${packages.length} package${one ? ' is' : 's are'} locked from the host ${cut(host, NAME_MAX)}, which is ${sources}, ` +
    `and the lock file does not record ${one ? 'it' : 'them'} as a direct URL a package requires: ${named}. ` +
    `The lock pins ${one ? 'its' : 'their'} sha256 and no index's credentials go there; if prebuilt lock did not write ${one ? 'this URL' : 'these URLs'} (a lock edited by hand or in a pull request), re-create the lock with prebuilt lock --update.`
  );
}

/** `step a` / `steps a, b` of a set of steps. */
function stepsWhere(steps: ReadonlySet<string>): string {
  const sorted = [...steps].sort();
  return `step${sorted.length === 1 ? '' : 's'} ${sorted.join(', ')}`;
}

/**
 * One note per wheel locked at a direct URL (over every env and platform that has it): what,
 * from which host, who required it, and what prebuilt does about it; and one per host serving
 * packages off the env's sources that the lock does not record (see the module comment). Ten of
 * each at most, and a note counting the rest. Its words come from the index or the lock (names,
 * URLs): kept on one line, and short (each cut, ten names).
 */
export function directUrlNotes(envs: readonly Pick<FlowLockEnv, 'entry' | 'steps'>[]): string[] {
  // Who required each wheel, over every env: a set (a lock's envs may each list 100,000 names).
  const byWheel = new Map<string, { wheel: DirectUrlWheel; steps: Set<string>; requiredBy: Set<string> }>();
  const byHost = new Map<string, { host: string; sources: string; packages: Map<string, DirectUrlWheel>; steps: Set<string> }>();
  for (const env of envs) {
    let sources: string | undefined; // The env's sources as a note names them: made once, for its first unrecorded package.
    for (const wheel of directUrlWheels(env.entry)) {
      const key = `${wheel.kind} ${wheel.name} ${wheel.version} ${wheel.url}`;
      if (!wheel.recorded) {
        sources ??= sourcesText(env.entry.request);
        const group = byHost.get(`${wheel.host} ${sources}`) ?? { host: wheel.host, sources, packages: new Map<string, DirectUrlWheel>(), steps: new Set<string>() };
        group.packages.set(key, wheel);
        for (const step of env.steps) group.steps.add(step);
        byHost.set(`${wheel.host} ${sources}`, group);
        continue;
      }
      const seen = byWheel.get(key) ?? { wheel, steps: new Set<string>(), requiredBy: new Set<string>() };
      for (const step of env.steps) seen.steps.add(step);
      for (const by of wheel.requiredBy) seen.requiredBy.add(by);
      byWheel.set(key, seen);
    }
  }
  const wheels = [...byWheel.values()];
  const hosts = [...byHost.values()];
  return [
    ...capped(wheels, ({ wheel, steps, requiredBy }) => recordedNote({ ...wheel, requiredBy: [...requiredBy] }, stepsWhere(steps)), (more) =>
      `${more} more wheel${more === 1 ? ' is' : 's are'} locked at a direct URL a package requires, not from the PyPI index: --json's directUrls lists them all.`,
    ),
    ...capped(hosts, ({ host, sources, packages, steps }) => unrecordedNote(host, sources, [...packages.values()], stepsWhere(steps)), (more) =>
      `${more} more host${more === 1 ? '' : 's'} serve${more === 1 ? 's' : ''} packages of the lock under none of their env's channels and not at its index, which the lock does not record as direct URLs: --json's directUrls lists them all.`,
    ),
  ].map((note) => oneLineText(note));
}

/** A note for each of the first {@link NOTES_SHOWN} items, and one counting the rest (`moreNote`) when there are more. */
function capped<T>(items: readonly T[], note: (item: T) => string, moreNote: (more: number) => string): string[] {
  const more = items.length - NOTES_SHOWN;
  return [...items.slice(0, NOTES_SHOWN).map(note), ...(more > 0 ? [moreNote(more)] : [])];
}
