import { BACKEND_API_VERSION, type BackendDefinition, type BackendKind } from '../contracts.js';
import { BackendInvalidError } from '../errors.js';
import { kindLabel, withArticle } from './builtin-backends.js';

const KINDS: readonly BackendKind[] = ['build-service', 'image-registry'];

/** Where a definition came from, for messages. */
export interface DefinitionSource {
  /** The name the user selected, e.g. `acme` or `./my-backend.js`. */
  backend: string;
  /** The package (or file path) it was loaded from; `(registered in code)` for registerBackend. */
  packageName: string;
}

function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'function') return 'a function';
  if (typeof value === 'object') {
    const keys = Object.keys(value);
    return keys.length === 0 ? 'an empty object' : `an object with keys ${keys.map((k) => `'${k}'`).join(', ')}`;
  }
  return `${typeof value} ${JSON.stringify(value)}`;
}

/**
 * The problems that keep `value` from being a backend definition (empty when it is one).
 * Checks the shape (apiVersion, kind, name, create) and, when given, the expected kind.
 */
export function backendDefinitionProblems(value: unknown, expectedKind?: BackendKind): string[] {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return [`expected an object { apiVersion, kind, name, create }, found ${describeValue(value)}`];
  }
  const record = value as Record<string, unknown>;
  const problems: string[] = [];
  if (record.apiVersion !== BACKEND_API_VERSION) {
    problems.push(
      record.apiVersion === undefined
        ? `'apiVersion' is missing (expected ${BACKEND_API_VERSION})`
        : `'apiVersion' is ${JSON.stringify(record.apiVersion)}, this prebuilt supports apiVersion ${BACKEND_API_VERSION}`,
    );
  }
  if (typeof record.kind !== 'string' || !KINDS.includes(record.kind as BackendKind)) {
    problems.push(`'kind' is ${describeValue(record.kind)}, expected 'build-service' or 'image-registry'`);
  } else if (expectedKind !== undefined && record.kind !== expectedKind) {
    problems.push(
      `it is ${withArticle(kindLabel(record.kind as BackendKind))} (kind '${record.kind}'), but ${withArticle(kindLabel(expectedKind))} was asked for`,
    );
  }
  if (typeof record.name !== 'string' || record.name === '') {
    problems.push(`'name' is ${describeValue(record.name)}, expected a non-empty string`);
  }
  if (typeof record.create !== 'function') {
    problems.push(`'create' is ${describeValue(record.create)}, expected a factory function (options, context) => backend`);
  }
  return problems;
}

/**
 * Returns `value` as a backend definition, or throws BackendInvalidError saying what was found and
 * what was expected.
 */
export function validateBackendDefinition(
  value: unknown,
  source: DefinitionSource,
  expectedKind?: BackendKind,
): BackendDefinition {
  const problems = backendDefinitionProblems(value, expectedKind);
  if (problems.length === 0) return value as BackendDefinition;
  const apiProblem =
    typeof value === 'object' && value !== null && typeof (value as { apiVersion?: unknown }).apiVersion === 'number'
      ? (value as { apiVersion: number }).apiVersion
      : undefined;
  let hint: string;
  if (apiProblem !== undefined && apiProblem > BACKEND_API_VERSION) {
    hint = `${source.packageName} needs a newer prebuilt: upgrade prebuilt and @prebuilt/core, or install an older ${source.packageName}.`;
  } else if (apiProblem !== undefined && apiProblem < BACKEND_API_VERSION) {
    hint = `${source.packageName} was made for an older prebuilt: upgrade it, or ask its authors for an apiVersion ${BACKEND_API_VERSION} release.`;
  } else if (problems.some((p) => p.includes('was asked for'))) {
    hint = `Select it with the other setting, or pick ${expectedKind ? withArticle(kindLabel(expectedKind)) : 'a backend'} (see \`prebuilt backends\`).`;
  } else {
    hint = `A backend's default export must be defineBuildService({...}) or defineImageRegistry({...}) from @prebuilt/core (apiVersion ${BACKEND_API_VERSION}).`;
  }
  throw new BackendInvalidError(
    `Backend '${source.backend}' from ${source.packageName} is not a valid prebuilt backend: ${problems.join('; ')}.`,
    { backend: source.backend, packageName: source.packageName },
    { hint },
  );
}
