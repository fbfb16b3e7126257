/**
 * Locking a flow: the lock file's entries whose request (and pins, glibc) still match are reused;
 * the other envs are resolved by the env resolver (core's `EnvResolver` contract, which
 * `@prebuilt/conda`'s `createResolver()` implements), each unique env once; the file is written
 * when its content changed.
 */
import { basename } from 'node:path';
import type { EnvResolver } from './contracts.js';
import type { CondaPlatform, EnvPins, EnvRequest, EnvToResolve, LockedEnv, ResolvedWith } from './env-model.js';
import { ConfigError, InputError } from './errors.js';
import { canonicalJson, specHash } from './identity.js';
import { fileArgument } from './shell-word.js';
import { shownPath } from './shown-path.js';
import {
  comparePackages,
  lockFilePath,
  lockFileVersion,
  lockKey,
  lockPlatforms,
  packageRecord,
  readLockFile,
  serializeLockFile,
  writeLockFile,
  type LockEntry,
  type LockFile,
  type StepLocks,
} from './lock-file.js';

/** The resolve function alone (the call shape before `EnvResolver`): one LockedEnv per input, in order. */
export type ResolveEnvs = (envs: readonly EnvToResolve[]) => Promise<LockedEnv[]>;

/** A step's effective request and Metaflow's pins for it; null when its env is disabled. */
export type StepToLock = { request: EnvRequest; pins: EnvPins } | null;

interface LockForFlowCommon {
  /** Path of the flow file; the lock file is found beside it. */
  flowFile: string;
  /**
   * Platforms to lock every step for (each gets its own entry, the request's platform replaced).
   * Default: the platforms of the existing lock file (a lock made for two platforms stays so), else
   * each step's request platform.
   */
  platforms?: readonly CondaPlatform[];
  /** step → its effective request and pins, or null when the step's env is disabled. */
  steps: Record<string, StepToLock>;
  /** Use the lock as it is; an unlocked step, a stale or corrupt lock → InputError (exit 2). */
  frozen?: boolean;
  /**
   * What requires the lock as it is, at the start of that InputError's message (default
   * `--frozen`): a command that freezes without the user's `--frozen` says why, e.g. `gc`.
   */
  frozenBy?: string;
  /**
   * The directory the user runs in: that InputError names the lock and flow files relative to it
   * when they are inside it (`flows/my_flow.prebuilt.lock`), as the CLI's other messages do.
   * Default: the absolute paths.
   */
  cwd?: string;
  /** Re-resolve every env even when the lock has it. */
  update?: boolean;
  /** Write the lock file when its content changed (default: true unless frozen). */
  write?: boolean;
}

export type LockForFlowOptions = LockForFlowCommon &
  (
    | {
        /** Resolves what the lock lacks; its `glibc` is recorded in every entry's `resolvedWith`. */
        resolver: EnvResolver;
        glibc?: never;
        resolve?: never;
      }
    | {
        /** The resolver's glibc (same as `resolver: { glibc, resolve }`). */
        glibc: string;
        resolve: ResolveEnvs;
        resolver?: never;
      }
  );

export interface LockForFlowResult {
  lockFile: string;
  lock: LockFile;
  /** step → its locked env per platform, in platform order (null when disabled). */
  steps: Record<string, LockEntry[] | null>;
  /** lockKeys of the envs resolved now, and of those taken from the existing lock. */
  resolved: string[];
  reused: string[];
  /** Whether the file on disk was (re)written. */
  written: boolean;
}

/** The flow's envs: each unique env (by lockKey) with its steps, and step → platform → lockKey. */
interface WantedEnvs {
  unique: Map<string, EnvToResolve>;
  stepKeys: Record<string, StepLocks | null>;
}

/** An env the existing lock does not have (or --update re-resolves). */
interface ToResolve {
  key: string;
  env: EnvToResolve;
}

/**
 * Refuses `--frozen` with `--update` (exit 2). Front ends call it before any work (reading the
 * flow, creating backends), so the conflict is said first; {@link lockForFlow} checks it too.
 */
export function checkLockFlags(options: { frozen?: boolean | undefined; update?: boolean | undefined }): void {
  if (options.frozen && options.update) {
    throw new ConfigError('--frozen and --update cannot be used together.', {
      hint: 'Use --update to re-resolve the lock, or --frozen to require it to be up to date.',
    });
  }
}

/**
 * The lock of a flow: reuses the entries of the existing lock whose request (and pins, glibc)
 * match, resolves the others (each unique env once), and writes the file when it changed.
 */
export async function lockForFlow(options: LockForFlowOptions): Promise<LockForFlowResult> {
  const { frozen = false, update = false } = options;
  checkLockFlags({ frozen, update });
  const resolver: EnvResolver = options.resolver ?? { glibc: options.glibc, resolve: options.resolve };
  const file = lockFilePath(options.flowFile);
  const existing = await readExistingLock(file, update, options.cwd === undefined ? file : shownPath(options.cwd, file));
  const platforms = options.platforms ?? (existing && lockPlatforms(existing).length > 0 ? lockPlatforms(existing) : undefined);
  const wanted = wantedEnvs(options.steps, platforms, resolver.glibc);
  const { envs, toResolve } = reuseEntries(wanted.unique, update ? undefined : existing);
  if (frozen && (existing === undefined || toResolve.length > 0)) throw notFrozen({ file, flowFile: options.flowFile, cwd: options.cwd, existing, toResolve, wanted, platforms, by: options.frozenBy ?? '--frozen' });
  await resolveMissing(toResolve, resolver, envs);
  const lock: LockFile = { lockVersion: lockFileVersion(wanted.stepKeys), flow: basename(options.flowFile), envs: sortedEnvs(envs), steps: wanted.stepKeys };
  let written = false;
  if ((options.write ?? !frozen) && (existing === undefined || serializeLockFile(existing) !== serializeLockFile(lock))) {
    await writeLockFile(file, lock);
    written = true;
  }
  const steps: Record<string, LockEntry[] | null> = {};
  for (const [step, locks] of Object.entries(wanted.stepKeys)) steps[step] = locks === null ? null : Object.values(locks).map((key) => envs[key]!);
  const resolvedKeys = toResolve.map((t) => t.key);
  return { lockFile: file, lock, steps, resolved: resolvedKeys, reused: Object.keys(envs).filter((k) => !resolvedKeys.includes(k)), written };
}

/** The lock file as it is; undefined when there is none, or when --update replaces a corrupt one. */
async function readExistingLock(file: string, update: boolean, shownAs: string): Promise<LockFile | undefined> {
  try {
    return await readLockFile(file, { shownAs });
  } catch (error) {
    // A corrupt, truncated or newer-version lock is never silently replaced (exit 2 naming the
    // fix); only --update, which re-resolves every env anyway, writes a new one over it.
    if (!update || !InputError.isInstance(error) || (error as InputError).file !== file) throw error;
    return undefined;
  }
}

/** Every step's env on every platform, keyed by lockKey (steps in name order). */
function wantedEnvs(steps: Record<string, StepToLock>, platforms: readonly CondaPlatform[] | undefined, glibc: string): WantedEnvs {
  const unique = new Map<string, EnvToResolve>();
  const stepKeys: Record<string, StepLocks | null> = {};
  for (const step of Object.keys(steps).sort()) {
    const input = steps[step];
    if (input === null || input === undefined) {
      stepKeys[step] = null;
      continue;
    }
    const locks: StepLocks = {};
    for (const platform of platforms ?? [input.request.platform]) {
      const request: EnvRequest = { ...input.request, platform };
      const hash = specHash(request);
      const resolvedWith: ResolvedWith = { pins: { conda: { ...input.pins.conda }, pypi: { ...input.pins.pypi } }, glibc };
      const key = lockKey(hash, resolvedWith);
      locks[platform] = key;
      const env = unique.get(key) ?? { specHash: hash, request, resolvedWith, steps: [] };
      env.steps.push(step);
      unique.set(key, env);
    }
    stepKeys[step] = locks;
  }
  return { unique, stepKeys };
}

function entryMatches(entry: LockEntry, env: EnvToResolve): boolean {
  return (
    entry.specHash === env.specHash &&
    specHash(entry.request) === env.specHash &&
    canonicalJson(entry.resolvedWith) === canonicalJson(env.resolvedWith)
  );
}

/** The existing lock's entries that still match, and the envs to resolve. */
function reuseEntries(unique: Map<string, EnvToResolve>, existing: LockFile | undefined): { envs: Record<string, LockEntry>; toResolve: ToResolve[] } {
  const envs: Record<string, LockEntry> = {};
  const toResolve: ToResolve[] = [];
  for (const [key, env] of unique) {
    const entry = existing?.envs[key];
    if (entry && entryMatches(entry, env)) envs[key] = entry;
    else toResolve.push({ key, env });
  }
  return { envs, toResolve };
}

/** --frozen with no lock file, or one that lacks envs: what is not locked, and how to fix it. */
function notFrozen(state: {
  file: string;
  flowFile: string;
  cwd: string | undefined;
  existing: LockFile | undefined;
  toResolve: ToResolve[];
  wanted: WantedEnvs;
  platforms: readonly CondaPlatform[] | undefined;
  by: string;
}): InputError {
  const { file, existing, toResolve, platforms, by } = state;
  const shown = (path: string): string => (state.cwd === undefined ? path : shownPath(state.cwd, path));
  const stepKeys = state.wanted.stepKeys;
  const steps = existing === undefined ? Object.keys(stepKeys).filter((s) => stepKeys[s] !== null) : [...new Set(toResolve.flatMap((e) => e.env.steps))];
  // Name the platforms when the lock is for several, or not for the default one.
  const missing = [...new Set(toResolve.map((e) => e.env.request.platform))];
  const missingOn = platforms && (platforms.length > 1 || platforms[0] !== 'linux-64') ? ` on ${missing.join(', ')}` : '';
  return new InputError(
    existing === undefined
      ? `${by}: there is no lock file ${shown(file)}.`
      : `${by}: the lock file ${shown(file)} does not match the flow; not locked: step${steps.length === 1 ? '' : 's'} ${steps.sort().join(', ')}${missingOn}.`,
    { file, hint: `Run \`prebuilt lock ${fileArgument(shown(state.flowFile))}\` and commit ${basename(file)}.` },
  );
}

/** Resolves the envs the lock lacks (one call for all) and enters them into `envs`. */
async function resolveMissing(toResolve: readonly ToResolve[], resolver: EnvResolver, envs: Record<string, LockEntry>): Promise<void> {
  const resolved = toResolve.length > 0 ? await resolver.resolve(toResolve.map((t) => t.env)) : [];
  toResolve.forEach(({ key, env }, i) => {
    const locked = resolved[i];
    if (!locked || locked.specHash !== env.specHash) throw new Error(`the resolver returned no lock for env ${env.specHash} (steps ${env.steps.join(', ')})`);
    if (locked.platform !== env.request.platform) throw new Error(`the resolver locked env ${env.specHash} for ${locked.platform}, not ${env.request.platform}`);
    envs[key] = {
      specHash: env.specHash,
      request: env.request,
      platform: locked.platform,
      pythonVersion: locked.pythonVersion,
      packages: locked.packages.map(packageRecord).sort(comparePackages),
      resolvedWith: env.resolvedWith,
    };
  });
}

function sortedEnvs(envs: Record<string, LockEntry>): Record<string, LockEntry> {
  return Object.fromEntries(Object.keys(envs).sort().map((k) => [k, envs[k]!]));
}
