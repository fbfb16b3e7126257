/**
 * Small checks shared by the conformance suites. They throw plain assertion messages so a
 * failing suite says which rule of the contract was broken.
 */
import { randomBytes } from 'node:crypto';
import { inspect } from 'node:util';
import type { BackendKind } from '../contracts.js';
import { PrebuiltError } from '../errors.js';
import { backendDefinitionProblems } from '../backends/validate-definition.js';

/** `sha256:` and 64 lowercase hex digits (the backend kit's IMAGE_DIGEST). */
export { IMAGE_DIGEST as DIGEST_PATTERN } from '../registry/digest.js';

const DOMAIN = '(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?/)?';
const COMPONENT = '[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*';
/** A tagged image reference: `[host[:port]/]repo/path:tag` (Docker's grammar, tag ≤ 128 characters). */
export const TAGGED_REFERENCE_PATTERN = new RegExp(`^${DOMAIN}${COMPONENT}(?:/${COMPONENT})*:[\\w][\\w.-]{0,127}$`);

/** A fresh env id per run, so suites can run again and again against one persistent registry. */
export function randomEnvId(): string {
  return randomBytes(32).toString('hex');
}

export function randomLabel(): string {
  return randomBytes(6).toString('hex');
}

/** The contract's problems with a definition, as one message (empty when there are none). */
export function definitionProblems(value: unknown, kind: BackendKind): string {
  return backendDefinitionProblems(value, kind).join('; ');
}

/** True for a CancelledError from any copy of @prebuilt/core. */
export function isCancelledError(error: unknown): boolean {
  return PrebuiltError.isInstance(error) && error.code === 'cancelled';
}

export function describeError(error: unknown): string {
  if (error === undefined) return 'it resolved instead of rejecting';
  if (PrebuiltError.isInstance(error)) return `${error.name} (code ${error.code}): ${error.message}`;
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

/** Awaits a promise that must reject; returns the rejection (or undefined if it resolved). */
export async function rejectionOf(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
    return undefined;
  } catch (error) {
    return error;
  }
}

/** A value that behaves like @prebuilt/core's Secret (works across copies of core). */
export function isSecretLike(value: unknown): value is { reveal(): string } {
  return typeof value === 'object' && value !== null && typeof (value as { reveal?: unknown }).reveal === 'function';
}

/** Every way a value gets printed or serialised: JSON, util.inspect, string templates. */
export function renderings(value: unknown): string[] {
  const out = [JSON.stringify(value) ?? 'undefined', inspect(value, { depth: 10, showHidden: false })];
  if (typeof value === 'object' && value !== null) {
    for (const field of Object.values(value)) out.push(`${String(field)}`);
  }
  return out;
}
