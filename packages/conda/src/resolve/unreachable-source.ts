import { ResolutionError, UnreachableError, errorMessage, isNothingThere } from '@prebuilt/core';

/** What failed to be fetched from a package source (a conda channel, a PyPI index) and what to check. */
export interface SourceFailure {
  /** The source in the user's words, e.g. `conda channel http://127.0.0.1:8000/main`. */
  service: string;
  /** The request that failed, e.g. `GET http://…/repodata.json`. */
  request: string;
  hint: string;
  steps?: readonly string[];
}

/**
 * The error for a request to a package source that got no answer: nothing listening or no such
 * host is an UnreachableError (code `unreachable`, exit 2 — the same fault as an unreachable
 * registry or Docker daemon); any other failure (reset, TLS, timeout) a ResolutionError.
 */
export function sourceFetchError(error: unknown, failure: SourceFailure): Error {
  const cause = (error as { cause?: unknown }).cause ?? error;
  const message = `Cannot reach ${failure.service}: ${failure.request} failed: ${errorMessage(cause)}.`;
  if (isNothingThere(error)) return new UnreachableError(message, { service: failure.service }, { cause: error, hint: failure.hint });
  return new ResolutionError(message, { cause: error, hint: failure.hint, ...(failure.steps ? { steps: failure.steps } : {}) });
}
