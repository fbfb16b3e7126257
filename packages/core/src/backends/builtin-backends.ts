import type { BackendKind } from '../contracts.js';

/** The environment variable that selects the build service, and its default. */
export const BUILD_SERVICE_ENV_VAR = 'METAFLOW_PREBUILT_BUILD_SERVICE';
export const DEFAULT_BUILD_SERVICE = 'docker';
/** The environment variable that selects the image registry, and its default. */
export const IMAGE_REGISTRY_ENV_VAR = 'METAFLOW_PREBUILT_IMAGE_REGISTRY';
export const DEFAULT_IMAGE_REGISTRY = 'dockerhub';

/** Backends that ship with prebuilt, by kind. Each name `n` is the package `@prebuilt/<n>`. */
export const BUILTIN_BACKENDS = {
  'build-service': ['docker', 'buildx', 'kaniko', 'codebuild', 'oci'],
  'image-registry': ['local', 'dockerhub', 'ecr', 'gcr'],
} as const satisfies Record<BackendKind, readonly string[]>;

export type BuiltinBuildServiceName = (typeof BUILTIN_BACKENDS)['build-service'][number];
export type BuiltinImageRegistryName = (typeof BUILTIN_BACKENDS)['image-registry'][number];
export type BuiltinBackendName = BuiltinBuildServiceName | BuiltinImageRegistryName;

/** The package a built-in backend name maps to. */
export function builtinPackageName(name: BuiltinBackendName): string {
  return `@prebuilt/${name}`;
}

/** The kind of a built-in backend name, or undefined when the name is not built in. */
export function builtinKind(name: string): BackendKind | undefined {
  for (const kind of Object.keys(BUILTIN_BACKENDS) as BackendKind[]) {
    if ((BUILTIN_BACKENDS[kind] as readonly string[]).includes(name)) return kind;
  }
  return undefined;
}

/** How the user calls a kind, in messages and tables. */
export function kindLabel(kind: BackendKind): string {
  return kind === 'build-service' ? 'build service' : 'image registry';
}

/** `a build service`, `an image registry`. */
export function withArticle(label: string): string {
  return /^[aeiou]/.test(label) ? `an ${label}` : `a ${label}`;
}

/** The env var that selects a backend of this kind. */
export function selectionEnvVar(kind: BackendKind): string {
  return kind === 'build-service' ? BUILD_SERVICE_ENV_VAR : IMAGE_REGISTRY_ENV_VAR;
}

/** A sentence naming every built-in backend, for error messages. */
export function describeBuiltins(): string {
  return (
    `Built-in build services: ${BUILTIN_BACKENDS['build-service'].join(', ')}; ` +
    `built-in image registries: ${BUILTIN_BACKENDS['image-registry'].join(', ')}.`
  );
}
