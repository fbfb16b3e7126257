/**
 * Resolving env requests to exact files: conda with rattler, then PyPI with the host's pip on
 * top (python always comes from conda). Identical envs are solved once; solve results are
 * cached on disk by specHash (+ pins and glibc), repodata by URL.
 */
import { join } from 'node:path';
import {
  canonicalJson,
  createLogger,
  mapLimit,
  pipIsolated,
  pipTimeoutMs,
  pythonSetting,
  repodataMaxBytes,
  normalizeCondaName,
  normalizePypiName,
  pypiProjectName,
  sha256Hex,
  specHash,
  targetGlibc,
  type EnvPins,
  type EnvRequest,
  type EnvResolver,
  type EnvToResolve,
  type LockedEnv,
  type LockedPackage,
  type ResolvedWith,
  networkTimeouts,
  urlCredentialsFromEnv,
  type UrlCredentials,
  writeFileAtomic,
  readCacheFile,
} from '@prebuilt/core';
import { CACHE_DIR_SETTING, cacheDirPreparation, prebuiltCacheDir } from './cache-dir.js';
import { ChannelServer } from './channel-server.js';
import { solveConda } from './conda-solver.js';
import { resolvePypi, type PipOptions } from './pip-resolver.js';
import { loadRattler } from './rattler.js';
import { RepodataCache } from './repodata-cache.js';

/** The largest cached solve read (a solve of a few hundred packages is a few hundred KiB). */
const MAX_CACHED_SOLVE_BYTES = 64 * 1024 * 1024;

const log = createLogger('conda:resolve');

/**
 * Version of the cached solve format and of the resolution rules; bump to invalidate caches.
 * 2: a wheel pip took at a direct URL carries `directUrl` (a solve cached before lacks it).
 */
export const RESOLVER_VERSION = 2;

/** glibc assumed for the target when METAFLOW_PREBUILT_GLIBC_VERSION is not set (core's, as the lock needs it). */
export { DEFAULT_GLIBC } from '@prebuilt/core';
/** Kernel version reported to the solver as `__linux`. */
export const DEFAULT_LINUX = '4.18';

export interface ResolverOptions {
  /**
   * Cache directory (default: {@link prebuiltCacheDir}), made private to its user (0700) when missing,
   * as the CLI makes it; `false` caches nothing on disk.
   */
  cacheDir?: string | false;
  /** glibc of the target (default METAFLOW_PREBUILT_GLIBC_VERSION, else 2.28). */
  glibc?: string;
  /** Re-solve every env and revalidate all repodata (what `--update` does). */
  refresh?: boolean;
  /** Unique envs solved at the same time (default 2). */
  concurrency?: number;
  /**
   * How pip runs. Defaults: `python` = METAFLOW_PREBUILT_PYTHON, else `python3`; `isolated` =
   * METAFLOW_PREBUILT_PIP_ISOLATED (`1`/`true`), else off (the user's pip configuration counts);
   * `timeoutMs` = METAFLOW_PREBUILT_PIP_TIMEOUT (seconds), else an hour.
   */
  pip?: PipOptions;
  env?: Record<string, string | undefined>;
  fetch?: typeof fetch;
  /**
   * Credentials of channel and index URLs (default: those in METAFLOW_PREBUILT_CONDA_CHANNELS,
   * METAFLOW_PREBUILT_PYPI_INDEX_URL and PIP_INDEX_URL). Locked URLs never carry them.
   */
  credentials?: UrlCredentials;
  /** Aborts fetches and pip. */
  signal?: AbortSignal;
}

/** Core's `EnvResolver` (what `lockForFlow({ resolver })` asks), plus single-request resolution. */
export interface Resolver extends EnvResolver {
  /** glibc used when a call does not say otherwise. */
  readonly glibc: string;
  /**
   * Resolves envs, one LockedEnv per input in the same order; identical envs (same specHash and
   * resolvedWith) are solved once.
   */
  resolve(envs: readonly EnvToResolve[]): Promise<LockedEnv[]>;
  /** Resolves one request with these pins (default none) and the resolver's glibc. */
  resolveEnv(request: EnvRequest, options?: { pins?: EnvPins; steps?: readonly string[] }): Promise<LockedEnv>;
  close(): Promise<void>;
}

/** The pins the user did not name themselves (the user's own spec of a package wins over a pin). */
export function effectivePins(request: EnvRequest, pins: EnvPins): EnvPins {
  const named = new Set([
    ...Object.keys(request.conda).map((n) => normalizeCondaName(n).replace(/^.*::/, '')),
    ...Object.keys(request.pypi).map((n) => pypiProjectName(n)),
  ]);
  const keep = (group: Record<string, string>) =>
    Object.fromEntries(Object.entries(group).filter(([name]) => !named.has(normalizePypiName(name)) && !named.has(name.toLowerCase())));
  return { conda: keep(pins.conda), pypi: keep(pins.pypi) };
}

function validCachedEnv(value: unknown, hash: string): value is LockedEnv {
  if (value === null || typeof value !== 'object') return false;
  const env = value as Partial<LockedEnv>;
  return env.specHash === hash && typeof env.pythonVersion === 'string' && Array.isArray(env.packages) &&
    env.packages.every((p: Partial<LockedPackage>) => typeof p.url === 'string' && typeof p.sha256 === 'string' && typeof p.size === 'number');
}

export function createResolver(options: ResolverOptions = {}): Resolver {
  const env = options.env ?? process.env;
  const glibc = targetGlibc(env, options.glibc);
  const cacheDir = options.cacheDir === false ? undefined : (options.cacheDir ?? prebuiltCacheDir(env));
  const credentials = options.credentials ?? urlCredentialsFromEnv(env);
  const timeouts = networkTimeouts({ env });
  const remote = { credentials, timeouts, ...(options.fetch ? { fetch: options.fetch } : {}), ...(options.signal ? { signal: options.signal } : {}) };
  const repodata = new RepodataCache({
    credentials,
    timeouts,
    maxBytes: repodataMaxBytes(env),
    ...(options.signal ? { signal: options.signal } : {}),
    // Inside the cache directory, which is prepared (made private when missing) before anything is
    // cached: made like the cache's other subdirectories, so a cache shared through its group stays so.
    ...(cacheDir ? { dir: join(cacheDir, 'repodata'), prepareDir: false } : {}),
    ...(options.refresh ? { refresh: true } : {}),
    ...(options.fetch ? { fetch: options.fetch } : {}),
  });
  let server: Promise<ChannelServer> | undefined;
  const solver: Solver = {
    cacheDir,
    refresh: options.refresh === true,
    remote,
    pipOptions: pipOptionsFor(options, env, credentials, timeouts),
    channelServer: () => (server ??= ChannelServer.start(repodata)),
  };
  const inFlight = new Map<string, Promise<LockedEnv>>();
  // The cache directory is made private to its user (0700) before anything is cached in it.
  const prepareCacheDir = cacheDir ? cacheDirPreparation(cacheDir, log) : async () => undefined;

  function resolveOne(request: EnvRequest, resolvedWith: ResolvedWith, steps: readonly string[]): Promise<LockedEnv> {
    const hash = specHash(request);
    const flightKey = canonicalJson({ hash, resolvedWith });
    let pending = inFlight.get(flightKey);
    if (!pending) {
      pending = prepareCacheDir().then(() => solve(solver, request, hash, resolvedWith, steps));
      inFlight.set(flightKey, pending);
      pending.catch(() => undefined).finally(() => inFlight.delete(flightKey));
    }
    return pending;
  }

  return {
    glibc,
    async resolve(envs) {
      const { keys, entries } = uniqueEnvs(envs);
      const solved = await mapLimit(entries, options.concurrency ?? 2, ([, u]) => resolveOne(u.env.request, u.env.resolvedWith, [...u.steps].sort()));
      const byKey = new Map(entries.map(([key], i) => [key, solved[i]!]));
      return keys.map((key) => byKey.get(key)!);
    },
    resolveEnv(request, { pins = { conda: {}, pypi: {} }, steps = [] } = {}) {
      return resolveOne(request, { pins, glibc }, steps);
    },
    async close() {
      if (server) await (await server).close();
      server = undefined;
    },
  };
}

function pipOptionsFor(options: ResolverOptions, env: Record<string, string | undefined>, credentials: UrlCredentials, timeouts: PipOptions['timeouts']): PipOptions {
  const python = pythonSetting(env);
  return {
    credentials,
    timeouts,
    env,
    ...(python ? { python } : {}),
    isolated: pipIsolated(env),
    timeoutMs: pipTimeoutMs(env),
    ...(options.fetch ? { fetch: options.fetch } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
    ...options.pip,
  };
}

/** Identical envs (same specHash and resolvedWith) once, with the steps of all of them named together in errors. */
function uniqueEnvs(envs: readonly EnvToResolve[]): { keys: string[]; entries: [string, { env: EnvToResolve; steps: Set<string> }][] } {
  const unique = new Map<string, { env: EnvToResolve; steps: Set<string> }>();
  const keys = envs.map((e) => {
    const key = canonicalJson({ hash: specHash(e.request), resolvedWith: e.resolvedWith });
    const seen = unique.get(key) ?? { env: e, steps: new Set<string>() };
    for (const step of e.steps) seen.steps.add(step);
    unique.set(key, seen);
    return key;
  });
  return { keys, entries: [...unique.entries()] };
}

/** What solving one env needs from its resolver. */
interface Solver {
  cacheDir: string | undefined;
  refresh: boolean;
  remote: Parameters<typeof solveConda>[1]['remote'];
  pipOptions: PipOptions;
  /** The local channel server over the repodata cache, started on first use. */
  channelServer(): Promise<ChannelServer>;
}

/** Solves one env: from the solve cache, else conda with rattler then PyPI with pip, and caches it. */
async function solve(solver: Solver, request: EnvRequest, hash: string, resolvedWith: ResolvedWith, steps: readonly string[]): Promise<LockedEnv> {
  const { pins, glibc: targetGlibc } = resolvedWith;
  const key = sha256Hex(canonicalJson({ resolverVersion: RESOLVER_VERSION, specHash: hash, resolvedWith }));
  const cacheFile = solver.cacheDir ? join(solver.cacheDir, 'solves', `${key.slice(0, 32)}.json`) : undefined;
  if (cacheFile && !solver.refresh) {
    const cached = await cachedSolve(cacheFile, hash);
    if (cached) {
      log('solve cache hit for %s (%s)', hash.slice(0, 12), steps.join(', '));
      return { ...cached, request };
    }
  }
  const started = Date.now();
  const rattler = await loadRattler();
  const server = solver.channelServer();
  const placed = effectivePins(request, pins);
  const conda = await solveConda(
    { request, pins: placed.conda, steps },
    { rattler, server: await server, virtual: { glibc: targetGlibc, linux: DEFAULT_LINUX }, remote: solver.remote },
  );
  const pypiPackages = { ...placed.pypi, ...request.pypi };
  const wheels = Object.keys(pypiPackages).length > 0
    ? await resolvePypi(
        { packages: pypiPackages, pythonVersion: conda.pythonVersion, platform: request.platform, glibc: targetGlibc, indexUrl: request.indexUrl, steps },
        solver.pipOptions,
      )
    : [];
  const locked: LockedEnv = {
    specHash: hash,
    request,
    platform: request.platform,
    pythonVersion: conda.pythonVersion,
    packages: [...conda.packages, ...wheels],
  };
  log('solved %s (%s) in %d ms: %d files', hash.slice(0, 12), steps.join(', '), Date.now() - started, locked.packages.length);
  if (cacheFile) {
    await writeFileAtomic(cacheFile, JSON.stringify(locked), { setting: CACHE_DIR_SETTING });
  }
  return locked;
}

/** A cached solve of this specHash, or undefined (none, unreadable, or not a valid LockedEnv). */
async function cachedSolve(cacheFile: string, hash: string): Promise<LockedEnv | undefined> {
  try {
    const text = await readCacheFile(cacheFile, MAX_CACHED_SOLVE_BYTES);
    if (text === undefined) return undefined;
    const cached = JSON.parse(text.toString('utf8')) as unknown;
    if (validCachedEnv(cached, hash)) return cached;
  } catch {
    // not cached (or unreadable): solve
  }
  return undefined;
}
