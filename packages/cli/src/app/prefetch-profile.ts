/**
 * Which recorded prefetch profile a build of a flow lays its eStargz / zstd:chunked layers out
 * with: the setting METAFLOW_PREBUILT_OCI_PREFETCH when set (`static`, `off` or a file: an explicit
 * choice wins), else `<flow>.prebuilt.prefetch` beside the flow when it exists (the file
 * `prebuilt profile` writes), else none (the oci service's static order). The file found is handed
 * to the build service through its setting; the service reads it only for lazily pulled layers.
 */
import { existsSync } from 'node:fs';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { selectedBackendNames } from '@prebuilt/core';
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

/** The oci service's layer compression setting (its `OCI_ENV.layerCompression`, named here as PREFETCH_SETTING is). */
export const LAYER_COMPRESSION_SETTING = 'METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION';

/**
 * Why a build with these settings would not lay its layers out by a prefetch profile, or undefined
 * when it would: only the oci build service's eStargz and zstd:chunked layers are (its default
 * layers are gzip or zstd, which no profile orders; another build service never reads one).
 */
export function profileUnusedBy(env: Record<string, string | undefined>): string | undefined {
  const service = selectedBackendNames(env).buildService.name;
  if (service !== 'oci' && service !== '@prebuilt/oci') return `the ${service} build service lays out no prefetch`;
  const compression = env[LAYER_COMPRESSION_SETTING]?.trim().toLowerCase();
  if (compression === 'estargz' || compression === 'zstd:chunked') return undefined;
  return `the oci build service lays out only estargz and zstd:chunked layers by a profile, and ${LAYER_COMPRESSION_SETTING} ${compression ? `is ${compression}` : 'is not set'}`;
}
