import type { BackendKind } from '../contracts.js';

/** The environment variable that selects the build service, and its default. */
export const BUILD_SERVICE_ENV_VAR = 'METAFLOW_PREBUILT_BUILD_SERVICE';
export const DEFAULT_BUILD_SERVICE = 'docker';
/** The environment variable that selects the image registry, and its default. */
export const IMAGE_REGISTRY_ENV_VAR = 'METAFLOW_PREBUILT_IMAGE_REGISTRY';
export const DEFAULT_IMAGE_REGISTRY = 'dockerhub';

/** How the user calls a kind, in messages and tables. */
export function kindLabel(kind: BackendKind): string {
  return kind === 'build-service' ? 'build service' : 'image registry';
}

/** `a build service`, `an image registry`. */
export function withArticle(label: string): string {
  return /^[aeiou]/.test(label) ? `an ${label}` : `a ${label}`;
}
