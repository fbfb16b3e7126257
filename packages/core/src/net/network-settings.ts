/**
 * How long a network read may take: an idle timeout (no byte for N seconds: the peer stalled) and
 * an overall deadline per request, both settable; and the bounds of what is read into memory.
 */
import { secondsSetting } from '../backend-kit/settings.js';

export const NETWORK_ENV = {
  /** Seconds a read may go without a byte (headers or body) before it fails. */
  idleTimeout: 'METAFLOW_PREBUILT_NETWORK_IDLE_TIMEOUT',
  /** Seconds one request (headers and the whole body) may take at most. */
  deadline: 'METAFLOW_PREBUILT_NETWORK_DEADLINE',
} as const;

const DEFAULT_IDLE_TIMEOUT_SECONDS = 60;
const DEFAULT_DEADLINE_SECONDS = 1800;

const MiB = 1024 * 1024;

/** Bounds of bodies read into memory. */
export const BODY_LIMITS = {
  /** An image manifest or index (the OCI distribution spec's recommended bound). */
  manifest: 4 * MiB,
  /** A JSON blob read whole (an image config), a token answer, an index page. */
  json: 4 * MiB,
  /** An error answer: read only as far as the message needs. */
  error: 64 * 1024,
} as const;

export interface NetworkTimeouts {
  idleMs: number;
  deadlineMs: number;
}

export interface NetworkTimeoutOptions {
  /** Default METAFLOW_PREBUILT_NETWORK_IDLE_TIMEOUT, else 60. */
  idleTimeoutSeconds?: number;
  /** Default METAFLOW_PREBUILT_NETWORK_DEADLINE, else 1800. */
  deadlineSeconds?: number;
  env?: Record<string, string | undefined>;
}

/** The idle timeout and the deadline: option → environment variable → default. */
export function networkTimeouts(options: NetworkTimeoutOptions = {}): NetworkTimeouts {
  const env = options.env ?? process.env;
  const idle = secondsSetting({ value: options.idleTimeoutSeconds, envVar: NETWORK_ENV.idleTimeout, option: 'idleTimeoutSeconds', fallback: DEFAULT_IDLE_TIMEOUT_SECONDS, env });
  const deadline = secondsSetting({ value: options.deadlineSeconds, envVar: NETWORK_ENV.deadline, option: 'deadlineSeconds', fallback: DEFAULT_DEADLINE_SECONDS, env });
  return { idleMs: Math.round(idle * 1000), deadlineMs: Math.round(deadline * 1000) };
}
