/**
 * Which recorded prefetch profile a build of a flow lays its eStargz / zstd:chunked layers out
 * with: the setting METAFLOW_PREBUILT_OCI_PREFETCH when set (`static`, `off` or a file: an explicit
 * choice wins), else `<flow>.prebuilt.prefetch` beside the flow when it exists (the file
 * `prebuilt profile` writes), else none (the oci service's static order). The file found is handed
 * to the build service through its setting; the service reads it only for lazily pulled layers.
 */
import { existsSync } from 'node:fs';
import { basename, dirname, extname, join, resolve } from 'node:path';
import type { AppScope } from './app-scope.js';

/** The setting a build reads the profile from (the oci service's `PREFETCH_ENV`, named here so that only a recording loads @prebuilt/oci). */
export const PREFETCH_SETTING = 'METAFLOW_PREBUILT_OCI_PREFETCH';

/** `<dir>/<stem>.prebuilt.prefetch` for `<dir>/<stem>.py`: beside the flow's lock file (`<stem>.prebuilt.lock`). */
export function profileFilePath(flowPath: string): string {
  const name = basename(flowPath);
  const ext = extname(name);
  return join(dirname(flowPath), `${ext ? name.slice(0, -ext.length) : name}.prebuilt.prefetch`);
}

/** The profile a build uses: its file (absolute) and where the choice came from (`flow`: found beside the flow; `setting`: the env variable). */
export interface PrefetchProfile {
  file: string;
  from: 'flow' | 'setting';
}

/** The profile a build of `flowFile` uses (see the module comment); undefined for none, `static` or `off`. */
export function prefetchProfileOf(flowFile: string, scope: Pick<AppScope, 'cwd' | 'env'>): PrefetchProfile | undefined {
  const set = scope.env[PREFETCH_SETTING]?.trim();
  if (set !== undefined && set !== '') return ['static', 'off'].includes(set.toLowerCase()) ? undefined : { file: resolve(scope.cwd, set), from: 'setting' };
  const beside = profileFilePath(resolve(scope.cwd, flowFile));
  return existsSync(beside) ? { file: beside, from: 'flow' } : undefined;
}

/** The scope the build service is created in: with the profile found beside the flow as its setting (an explicit setting is left as it is). */
export function withPrefetchProfile<S extends Pick<AppScope, 'env'>>(scope: S, profile: PrefetchProfile | undefined): S {
  if (profile?.from !== 'flow') return scope;
  return { ...scope, env: { ...scope.env, [PREFETCH_SETTING]: profile.file } };
}
