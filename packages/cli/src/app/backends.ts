/**
 * The one place the CLI creates backends: the selected build service or image registry, found,
 * loaded and checked by core's resolver (`resolveBackend`: shape and apiVersion) and created by
 * core's `createResolvedBackend` (the instance must have the contract's method). Lazy: a backend
 * package is imported only when a command's action asks for it, never by `--help` or `envs`.
 */
import { createResolvedBackend, resolveBackend, selectedBackendNames, type BackendKind, type BuildService, type ImageRegistry } from '@prebuilt/core';
import type { AppScope } from './app-scope.js';

type BackendOf<K extends BackendKind> = K extends 'build-service' ? BuildService : ImageRegistry;
export type ResolvedSelectedBackend = Awaited<ReturnType<typeof resolveBackend>>;

export interface SelectedBackend<K extends BackendKind> {
  backend: BackendOf<K>;
  /** Where it was found (package, version, directory), for `backends --check`. */
  resolved: ResolvedSelectedBackend;
}

/**
 * Resolves and creates the selected backend of `kind` (METAFLOW_PREBUILT_BUILD_SERVICE /
 * METAFLOW_PREBUILT_IMAGE_REGISTRY). The caller closes it.
 * @throws BackendNotFoundError, BackendInvalidError or the backend's own ConfigError (exit 2).
 */
export async function createSelectedBackend<K extends BackendKind>(kind: K, scope: Pick<AppScope, 'cwd' | 'cliDir' | 'env'>): Promise<SelectedBackend<K>> {
  const names = selectedBackendNames(scope.env);
  const selection = kind === 'build-service' ? names.buildService : names.imageRegistry;
  const resolved = await resolveBackend({ kind, name: selection.name, setting: selection.envVar, cwd: scope.cwd, cliDir: scope.cliDir });
  const backend = await createResolvedBackend<BackendOf<K>>(resolved, {}, { env: scope.env, cwd: scope.cwd }, kind === 'build-service' ? 'buildAndPush' : 'imageTag');
  return { backend, resolved };
}
