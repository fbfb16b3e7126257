/**
 * The one place the CLI creates backends: the selected build service or image registry, found,
 * loaded and checked by core's resolver (`resolveBackend`: shape and apiVersion) and created by
 * core's `createResolvedBackend` (the instance must have the contract's method). Lazy: a backend
 * package is imported only when a command's action asks for it, never by `--help` or `envs`.
 */
import { PrebuiltError, createResolvedBackend, resolveBackend, selectedBackendNames, type BackendKind, type BuildService, type ImageRegistry } from '@prebuilt/core';
import type { AppScope } from './app-scope.js';
import { jsonError } from '../output.js';
import { unknownSettingsNotes } from './ignored-settings-note.js';

type BackendOf<K extends BackendKind> = K extends 'build-service' ? BuildService : ImageRegistry;
export type ResolvedSelectedBackend = Awaited<ReturnType<typeof resolveBackend>>;

export interface SelectedBackend<K extends BackendKind> {
  backend: BackendOf<K>;
  /** Where it was found (package, version, directory), for `backends --check`. */
  resolved: ResolvedSelectedBackend;
}

/**
 * Finds and loads the selected backend of `kind` without creating it (no settings read, nothing
 * contacted): a name that is no backend is a BackendNotFoundError, a package that is none a
 * BackendInvalidError (exit 2).
 */
export async function resolveSelectedBackend(kind: BackendKind, scope: Pick<AppScope, 'cwd' | 'cliDir' | 'env'>): Promise<ResolvedSelectedBackend> {
  const names = selectedBackendNames(scope.env);
  const selection = kind === 'build-service' ? names.buildService : names.imageRegistry;
  return resolveBackend({ kind, name: selection.name, setting: selection.envVar, cwd: scope.cwd, cliDir: scope.cliDir });
}

/**
 * Resolves and creates the selected backend of `kind` (METAFLOW_PREBUILT_BUILD_SERVICE /
 * METAFLOW_PREBUILT_IMAGE_REGISTRY). The caller closes it.
 * @throws BackendNotFoundError, BackendInvalidError or the backend's own ConfigError (exit 2).
 */
export async function createSelectedBackend<K extends BackendKind>(kind: K, scope: Pick<AppScope, 'cwd' | 'cliDir' | 'env'>): Promise<SelectedBackend<K>> {
  const resolved = await resolveSelectedBackend(kind, scope);
  const backend = await createResolvedBackend<BackendOf<K>>(resolved, {}, { env: scope.env, cwd: scope.cwd }, kind === 'build-service' ? 'buildAndPush' : 'imageTag');
  return { backend, resolved };
}

/** One selected backend as `prebuilt backends --check` found it: where it came from, or the error that stopped it. */
export interface BackendCheck {
  name: string;
  envVar: string;
  from: 'env' | 'default';
  ok: boolean;
  source?: string;
  packageName?: string;
  version?: string;
  path?: string;
  resolvedFrom?: string;
  error?: Record<string, unknown>;
}

/**
 * Creates and checks the selected build service and image registry as a build creates and checks
 * them, so `ok` means a build would get past their configuration (settings complete, SDKs
 * installed, the build service reachable); each is closed again. A PrebuiltError of either is kept
 * in `failures` (in that order) and its entry; any other error is thrown. `onNote` is told first of
 * each set METAFLOW_PREBUILT_* variable no part of prebuilt reads: a misspelt setting is the
 * likeliest reason for a check that says a setting is missing.
 */
export async function checkSelectedBackends(
  scope: AppScope,
  options: { onNote?: (message: string) => void } = {},
): Promise<{ entries: Record<'buildService' | 'imageRegistry', BackendCheck>; failures: PrebuiltError[] }> {
  for (const note of unknownSettingsNotes(scope)) options.onNote?.(note);
  const selected = selectedBackendNames(scope.env);
  const entries = {} as Record<'buildService' | 'imageRegistry', BackendCheck>;
  const failures: PrebuiltError[] = [];
  for (const [key, kind] of [
    ['buildService', 'build-service'],
    ['imageRegistry', 'image-registry'],
  ] as const) {
    const selection = selected[key];
    try {
      const { backend: instance, resolved } = await createSelectedBackend(kind, scope);
      try {
        if (kind === 'build-service') await (instance as BuildService).check?.({ signal: scope.signal });
      } finally {
        await instance.close?.();
      }
      entries[key] = {
        ...selection,
        ok: true,
        source: resolved.source,
        ...(resolved.packageName ? { packageName: resolved.packageName } : {}),
        ...(resolved.version ? { version: resolved.version } : {}),
        ...(resolved.path ? { path: resolved.path } : {}),
        ...(resolved.resolvedFrom ? { resolvedFrom: resolved.resolvedFrom } : {}),
      };
    } catch (error) {
      if (!PrebuiltError.isInstance(error)) throw error;
      failures.push(error);
      entries[key] = { ...selection, ok: false, error: { ...jsonError(error) } };
    }
  }
  return { entries, failures };
}
