import { PrebuiltError, errorMessage } from '../errors.js';

/**
 * An error of the registry or the build service themselves (unreachable, misconfigured, refusing
 * the credentials), as opposed to one env failing: it would fail every image, so the deploy
 * stops, cancels the builds in flight and rethrows it (with its own exit code and hint).
 */
export class ServiceFailure {
  constructor(readonly error: unknown) {}
}

/** Runs a call to the registry or the build service; what it throws becomes a ServiceFailure. */
export async function service<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    throw new ServiceFailure(error);
  }
}

/** Reason and hint of an error that failed one image. A PrebuiltError's message is complete (errorMessage would append its code like an errno). */
export function describeFailure(error: unknown): { reason: string; hint?: string } {
  if (!PrebuiltError.isInstance(error)) return { reason: errorMessage(error) };
  return { reason: error.message, ...(error.hint ? { hint: error.hint } : {}) };
}
