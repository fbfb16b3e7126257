/** A flow's lock as the commands use it: read the flow, add Metaflow's pins, reuse or resolve each env. */
import { resolve } from 'node:path';
import { checkLockFlags, checkResolverSettings, lockForFlow, lockPlatforms, prebuiltCacheDir, platformsSetting, prepareCacheDir, targetGlibc, targetPlatforms, type CondaPlatform, type LockForFlowResult, type StepToLock } from '@prebuilt/core';
import type { Resolver } from '@prebuilt/conda';
import { flowEnvs, metaflowPins, type FlowEnvs } from '@prebuilt/metaflow';
import type { AppScope } from './app-scope.js';
import { unknownSettingsNotes } from './ignored-settings-note.js';

/** The scope lockFlow needs: the CLI's directory only to know its backends' settings ({@link LockFlowOptions.settingsNotes}). */
export type LockScope = Omit<AppScope, 'cliDir'> & { cliDir?: string };

export interface LockFlowOptions {
  /** Require the lock to be complete and current; never resolve or write (exit 2 otherwise). */
  frozen?: boolean;
  /** What requires the lock as it is, for the error (default `--frozen`; see core's lockForFlow). */
  frozenBy?: string;
  /** Re-resolve every env (and revalidate cached repodata). */
  update?: boolean;
  /** The datastore Metaflow runs the flow with (its command line's `--datastore`), whose packages it pins; default METAFLOW_DEFAULT_DATASTORE as Metaflow reads it. */
  datastore?: string;
  /** Write the lock file when it changed (default: true unless frozen). */
  write?: boolean;
  /** The flow's envs when the caller started reading them already (see {@link readFlowEnvs}); default: read now. */
  envs?: Promise<FlowEnvs>;
  /** Told once per finding when the cache directory, or one above it, can be written by other users (core's prepareCacheDir). */
  onNote?: (message: string) => void;
  /**
   * Tell `onNote` first of each set METAFLOW_PREBUILT_* variable no part of prebuilt reads
   * ({@link unknownSettingsNotes}), as `prebuilt lock` does; a deploy tells them itself, beside the
   * settings of the build services it does not use.
   */
  settingsNotes?: boolean;
}

export interface LockFlowResult extends LockForFlowResult {
  envs: FlowEnvs;
  /** The target platforms every env was locked for (METAFLOW_PREBUILT_PLATFORM). */
  platforms: CondaPlatform[];
}

/**
 * A flow's lock, as `plan`, `build` and `lock` use it: reads the flow, adds Metaflow's pins,
 * reuses the entries of `<flow>.prebuilt.lock` whose request matches and resolves the rest
 * (each unique env once). `frozen`: an unlocked step or a corrupt/stale lock is an InputError (exit 2).
 */
export async function lockFlow(file: string, scope: LockScope, options: LockFlowOptions = {}): Promise<LockFlowResult> {
  checkLockFlags(options);
  if (options.settingsNotes) for (const note of unknownSettingsNotes(scope)) options.onNote?.(note);
  // The resolver's own settings are read when an env is resolved; checked here too, so a bad
  // value is exit 2 even when the lock file has every env.
  checkResolverSettings(scope.env);
  // The cache directory is made here, before anything writes in it: private to its user (0700); an
  // existing one others may write in gets a note, and keeps working (it may be shared on purpose).
  for (const note of await prepareCacheDir(prebuiltCacheDir(scope.env))) options.onNote?.(note);
  const envs = await (options.envs ?? readFlowEnvs(file, scope));
  // METAFLOW_PREBUILT_PLATFORM when set (core says what counts as set); otherwise the lock keeps the platforms it was made for.
  const platforms = platformsSetting({ env: scope.env });
  const steps: Record<string, StepToLock> = {};
  for (const step of envs.steps) {
    steps[step.step] = step.request === null ? null : { request: step.request, pins: metaflowPins(step, { env: scope.env, cwd: scope.cwd, ...(options.datastore !== undefined ? { datastore: options.datastore } : {}) }) };
  }
  // The resolver (and @prebuilt/conda with it) is loaded only when the lock lacks an env: a
  // redeploy whose every env is locked never loads it.
  let resolver: Promise<Resolver> | undefined;
  const resolverFor = (): Promise<Resolver> =>
    (resolver ??= import('@prebuilt/conda').then(({ createResolver }) => createResolver({ env: scope.env, signal: scope.signal, ...(options.update ? { refresh: true } : {}) })));
  try {
    const result = await lockForFlow({
      flowFile: resolve(scope.cwd, file),
      cwd: scope.cwd,
      steps,
      ...(platforms ? { platforms } : {}),
      glibc: targetGlibc(scope.env),
      resolve: async (toResolve) => (await resolverFor()).resolve(toResolve),
      ...(options.frozen ? { frozen: true } : {}),
      ...(options.frozenBy !== undefined ? { frozenBy: options.frozenBy } : {}),
      ...(options.update ? { update: true } : {}),
      ...(options.write !== undefined ? { write: options.write } : {}),
    });
    const locked = lockPlatforms(result.lock);
    return { ...result, envs, platforms: locked.length > 0 ? locked : (platforms ?? targetPlatforms({ env: scope.env })) };
  } finally {
    await (await resolver?.catch(() => undefined))?.close();
  }
}

/**
 * Starts reading the flow's envs (the flow file, read by a python3 subprocess): a caller that has
 * other work before locking (creating backends, checking the build service) starts it first and
 * hands the promise to {@link lockFlow}, so the subprocess runs meanwhile. A rejection is held
 * until lockFlow awaits it.
 */
export function readFlowEnvs(file: string, scope: Omit<AppScope, 'cliDir'>): Promise<FlowEnvs> {
  const reading = flowEnvs(file, { env: scope.env, cwd: scope.cwd, signal: scope.signal });
  reading.catch(() => {});
  return reading;
}
