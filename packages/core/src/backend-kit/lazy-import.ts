import { EnvironmentError, errorMessage } from '../errors.js';

export interface LazyImportFailure {
  /** What cannot be loaded, e.g. `The kaniko build service cannot load @kubernetes/client-node`; the cause follows it. */
  message: string;
  /** How to fix it, e.g. `Install it beside prebuilt: npm i …`. */
  hint: string;
}

/**
 * Loads a heavy SDK only when a backend needs it (`() => import('…')`); a module that cannot be
 * loaded is an EnvironmentError saying what, why and the install line that fixes it.
 */
export async function importLazily<T>(load: () => Promise<T>, failure: LazyImportFailure): Promise<T> {
  try {
    return await load();
  } catch (error) {
    throw new EnvironmentError(`${failure.message}: ${errorMessage(error)}.`, { cause: error, hint: failure.hint });
  }
}
