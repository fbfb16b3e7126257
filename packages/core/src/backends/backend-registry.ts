import type { BackendDefinition, BackendKind } from '../contracts.js';
import { createLogger } from '../logger.js';
import { validateBackendDefinition } from './validate-definition.js';

const log = createLogger('core:backends');

/**
 * The in-code registry. It lives on globalThis under a Symbol.for key so that two copies of
 * @prebuilt/core (a backend may bring its own) share one registry.
 */
const REGISTRY_KEY = Symbol.for('prebuilt.backend-registry');

type Registry = Map<string, BackendDefinition>;

function registry(): Registry {
  const holder = globalThis as unknown as Record<symbol, Registry | undefined>;
  let map = holder[REGISTRY_KEY];
  if (map === undefined) {
    map = new Map();
    holder[REGISTRY_KEY] = map;
  }
  return map;
}

function key(kind: BackendKind, name: string): string {
  return `${kind}\u0000${name}`;
}

/**
 * Registers a backend definition in code, so it is selectable by its name without a package
 * (tests, embedding, bundlers). It takes precedence over installed packages of the same name.
 * Returns a function that removes it again. The definition is checked like a loaded one.
 */
export function registerBackend(definition: BackendDefinition): () => void {
  const valid = validateBackendDefinition(
    definition,
    { backend: (definition as { name?: unknown }).name === undefined ? '(unnamed)' : String(definition.name), packageName: '(registered in code)' },
  );
  const k = key(valid.kind, valid.name);
  const map = registry();
  if (map.has(k) && map.get(k) !== valid) log('replacing registered %s %s', valid.kind, valid.name);
  map.set(k, valid);
  log('registered %s %s', valid.kind, valid.name);
  return () => {
    if (map.get(k) === valid) map.delete(k);
  };
}

/** The definition registered in code for this kind and name, if any. */
export function registeredBackend(kind: BackendKind, name: string): BackendDefinition | undefined {
  return registry().get(key(kind, name));
}

/** Every definition registered in code. */
export function registeredBackends(): BackendDefinition[] {
  return [...registry().values()];
}
