/**
 * One error base class for everything prebuilt throws on purpose.
 *
 * `PrebuiltError.isInstance` works across two copies of @prebuilt/core (a backend may bring its
 * own), because it checks a global Symbol marker rather than the prototype chain.
 * Every message says what failed, why, and what to do; `cause` is kept.
 */
const MARKER = Symbol.for('prebuilt.error');

/**
 * Exit codes the CLI maps errors to — the one table (README "Exit codes" repeats it). A kind of
 * fault has one code whichever component it hits:
 *
 * | code | fault kinds (error `code`) |
 * |---|---|
 * | 0 | — |
 * | 1 | a build or push failed (`build-failed`); a package or layer's tar is corrupt (`archive`); a service answered with an error or stalled (`registry`, `network`); credentials refused (`auth`); an unexpected error (`unexpected`) |
 * | 2 | bad input (`input`, `resolution`, `usage`); bad configuration (`config`, `backend-not-found`, `backend-invalid`), no credentials for a registry or cloud that needs a login (`login-required`); a tool or service missing (`environment`) or not reachable at its address (`unreachable`); a full disk (`disk-full`) |
 * | 130 / 143 | interrupted by SIGINT / SIGTERM (`cancelled`) |
 */
export const ExitCode = {
  ok: 0,
  /** A build or push failed, or a service answered with an error or stalled. */
  failure: 1,
  /** Bad input or configuration (a login missing too), or a service that cannot be reached at its configured address. */
  usage: 2,
  /** Interrupted by SIGINT. */
  interrupted: 130,
  /** Terminated by SIGTERM. */
  terminated: 143,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** What each exit code means, in the user's words: the CLI's --help and the README's table say this. */
export const EXIT_CODE_MEANINGS: Readonly<Record<ExitCode, string>> = {
  [ExitCode.ok]: 'ok',
  [ExitCode.failure]: 'a build or push failed, or a service answered with an error, stalled or refused the credentials',
  [ExitCode.usage]: 'bad input or configuration (no login for a registry that needs one), a tool it needs missing (Metaflow not importable: metaflow status, metaflow install), or a service (Docker daemon, registry, Kubernetes API, conda channel, PyPI index) not reachable at its address',
  [ExitCode.interrupted]: 'interrupted (SIGINT)',
  [ExitCode.terminated]: 'terminated (SIGTERM)',
};

export interface PrebuiltErrorOptions {
  cause?: unknown;
  /** What the user can do about it; rendered on its own line by the CLI. */
  hint?: string;
}

export class PrebuiltError extends Error {
  readonly [MARKER] = true;
  /** Stable machine-readable code, e.g. `backend-not-found`. */
  readonly code: string;
  /** The CLI exits with this code when the error reaches the top. */
  readonly exitCode: ExitCode;
  readonly hint: string | undefined;

  constructor(code: string, message: string, exitCode: ExitCode, options: PrebuiltErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'PrebuiltError';
    this.code = code;
    this.exitCode = exitCode;
    this.hint = options.hint;
  }

  static isInstance(error: unknown): error is PrebuiltError {
    return typeof error === 'object' && error !== null && (error as Record<symbol, unknown>)[MARKER] === true;
  }

  /** A JSON-safe view: what `--json` prints for an error. */
  toJSON(): Record<string, unknown> {
    return { name: this.name, code: this.code, message: this.message, ...(this.hint ? { hint: this.hint } : {}) };
  }
}

/** Bad configuration: a missing or invalid setting, env var or option. Exit 2. */
export class ConfigError extends PrebuiltError {
  readonly setting: string | undefined;
  constructor(message: string, options: PrebuiltErrorOptions & { setting?: string } = {}) {
    super('config', message, ExitCode.usage, options);
    this.name = 'ConfigError';
    this.setting = options.setting;
  }
}

/** Bad input: a flow file, a lock file, a decorator value. Exit 2. */
export class InputError extends PrebuiltError {
  /** The file (and line) the problem is in, when known. */
  readonly file: string | undefined;
  readonly line: number | undefined;
  constructor(message: string, options: PrebuiltErrorOptions & { file?: string; line?: number } = {}) {
    super('input', message, ExitCode.usage, options);
    this.name = 'InputError';
    this.file = options.file;
    this.line = options.line;
  }
}

/** A backend name could not be resolved to an installed package. Exit 2. */
export class BackendNotFoundError extends PrebuiltError {
  readonly backend: string;
  readonly kind: string;
  /** Every candidate package or path that was tried, with the directory it was resolved from. */
  readonly tried: readonly { candidate: string; from: string; reason: string }[];
  constructor(
    message: string,
    fields: { backend: string; kind: string; tried: readonly { candidate: string; from: string; reason: string }[] },
    options: PrebuiltErrorOptions = {},
  ) {
    super('backend-not-found', message, ExitCode.usage, options);
    this.name = 'BackendNotFoundError';
    this.backend = fields.backend;
    this.kind = fields.kind;
    this.tried = fields.tried;
  }
}

/** A backend package was found but its default export is not a valid backend definition. Exit 2. */
export class BackendInvalidError extends PrebuiltError {
  readonly backend: string;
  readonly packageName: string;
  constructor(message: string, fields: { backend: string; packageName: string }, options: PrebuiltErrorOptions = {}) {
    super('backend-invalid', message, ExitCode.usage, options);
    this.name = 'BackendInvalidError';
    this.backend = fields.backend;
    this.packageName = fields.packageName;
  }
}

/** Environment resolution failed: unsatisfiable request, unknown package, unreachable channel. Exit 2. */
export class ResolutionError extends PrebuiltError {
  readonly steps: readonly string[];
  constructor(message: string, options: PrebuiltErrorOptions & { steps?: readonly string[] } = {}) {
    super('resolution', message, ExitCode.usage, options);
    this.name = 'ResolutionError';
    this.steps = options.steps ?? [];
  }
}

/** A registry answered with an error or could not be reached. Exit 1. */
export class RegistryError extends PrebuiltError {
  readonly registry: string;
  readonly status: number | undefined;
  constructor(message: string, fields: { registry: string; status?: number }, options: PrebuiltErrorOptions = {}) {
    super('registry', message, ExitCode.failure, options);
    this.name = 'RegistryError';
    this.registry = fields.registry;
    this.status = fields.status;
  }
}

/** Credentials were missing, rejected or expired. Names the source, never the secret. Exit 1. */
export class AuthError extends PrebuiltError {
  readonly registry: string;
  /** Where the credentials came from, e.g. `~/.docker/config.json (credsStore: pass)`. */
  readonly source: string;
  constructor(message: string, fields: { registry: string; source: string }, options: PrebuiltErrorOptions = {}) {
    super('auth', message, ExitCode.failure, options);
    this.name = 'AuthError';
    this.registry = fields.registry;
    this.source = fields.source;
  }
}

/**
 * A registry (or the cloud behind it) needs credentials and none were found: no login in the Docker
 * config, no backend setting, no cloud credentials. A login to make — configuration, exit 2 — where
 * credentials that were sent and refused are an {@link AuthError} (exit 1). Names where it looked.
 */
export class LoginRequiredError extends PrebuiltError {
  readonly registry: string;
  /** Where credentials were looked for, e.g. `no credentials (looked in ~/.docker/config.json)`. */
  readonly source: string;
  constructor(message: string, fields: { registry: string; source: string }, options: PrebuiltErrorOptions = {}) {
    super('login-required', message, ExitCode.usage, options);
    this.name = 'LoginRequiredError';
    this.registry = fields.registry;
    this.source = fields.source;
  }
}

/**
 * A network read failed in a way no retry of the same request fixes by itself being patient: the
 * peer sent nothing for the idle timeout, the overall deadline passed, an answer was larger than
 * its bound, or a redirect could not be followed. Names the peer (`host:port`) and what was read. Exit 1.
 */
export class NetworkError extends PrebuiltError {
  /** `host:port` the read waited on. */
  readonly target: string;
  /** What was being read, in the user's words (`blob upload`, `repodata`, `package download`). */
  readonly what: string;
  readonly reason: 'idle' | 'deadline' | 'too-large' | 'redirect';
  constructor(message: string, fields: { target: string; what: string; reason: NetworkError['reason'] }, options: PrebuiltErrorOptions = {}) {
    super('network', message, ExitCode.failure, options);
    this.name = 'NetworkError';
    this.target = fields.target;
    this.what = fields.what;
    this.reason = fields.reason;
  }
}

/** One or more images failed to build or push. Exit 1. */
export class BuildFailedError extends PrebuiltError {
  readonly failures: readonly { imageTag: string; reason: string; logTail: readonly string[] }[];
  constructor(
    message: string,
    failures: readonly { imageTag: string; reason: string; logTail: readonly string[] }[],
    options: PrebuiltErrorOptions = {},
  ) {
    super('build-failed', message, ExitCode.failure, options);
    this.name = 'BuildFailedError';
    this.failures = failures;
  }
}

/** A service the tool needs (Docker daemon, host python3) is missing or unreachable. Exit 2. */
export class EnvironmentError extends PrebuiltError {
  constructor(message: string, options: PrebuiltErrorOptions = {}) {
    super('environment', message, ExitCode.usage, options);
    this.name = 'EnvironmentError';
  }
}

/**
 * A service prebuilt needs could not be reached at all: nothing answers at its address (connection
 * refused, unknown host) — a Docker daemon, a registry, a Kubernetes API, a conda channel, a PyPI
 * index. The same kind of fault whichever service it is, so the same code (`unreachable`) and exit
 * code (2: start the service or point the setting at a running one). A service that answered and then failed is not this, but
 * that service's own error (exit 1).
 */
export class UnreachableError extends PrebuiltError {
  /** The service in the user's words, e.g. `registry 127.0.0.1:5000`, `Docker daemon unix:///var/run/docker.sock`. */
  readonly service: string;
  constructor(message: string, fields: { service: string }, options: PrebuiltErrorOptions = {}) {
    super('unreachable', message, ExitCode.usage, options);
    this.name = 'UnreachableError';
    this.service = fields.service;
  }
}

/**
 * A disk filled up (ENOSPC, or a quota: EDQUOT) while prebuilt wrote into `dir`. Exit 2: the
 * machine needs room, or the setting named in the hint pointed at a disk with room.
 */
export class DiskFullError extends PrebuiltError {
  readonly dir: string;
  readonly setting: string | undefined;
  constructor(message: string, fields: { dir: string; setting?: string }, options: PrebuiltErrorOptions = {}) {
    super('disk-full', message, ExitCode.usage, options);
    this.name = 'DiskFullError';
    this.dir = fields.dir;
    this.setting = fields.setting;
  }
}

/**
 * A tar that does not check out (`@prebuilt/core`'s strict tar reader: a malformed number, a bad
 * checksum, a malformed pax record, a member running past the end …), in an archive that may be
 * hostile: a conda package, a base image's layer. Names the archive (`archive`, in the user's words)
 * and says what is wrong (`reason`). Exit 1.
 */
export class TarFormatError extends PrebuiltError {
  /** The archive in the user's words, e.g. `numpy-1.26.4-py311h0.conda`, `the base layer sha256:… of python:3.11`. */
  readonly archive: string;
  /** What does not check out, e.g. `a header checksum does not match at byte 1024`. */
  readonly reason: string;
  constructor(archive: string, reason: string, options: PrebuiltErrorOptions = {}) {
    super('archive', `${archive} is corrupt or truncated: reading its tar failed (${reason}).`, ExitCode.failure, options);
    this.name = 'TarFormatError';
    this.archive = archive;
    this.reason = reason;
  }
}

/** The work was cancelled (Ctrl-C, SIGTERM, an AbortSignal). */
export class CancelledError extends PrebuiltError {
  constructor(message = 'cancelled', options: PrebuiltErrorOptions & { signal?: 'SIGINT' | 'SIGTERM' } = {}) {
    super('cancelled', message, options.signal === 'SIGTERM' ? ExitCode.terminated : ExitCode.interrupted, options);
    this.name = 'CancelledError';
  }
}

/** The message of anything thrown, for wrapping foreign errors. */
export function errorMessage(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as NodeJS.ErrnoException).code;
    return code && !error.message.includes(code) ? `${error.message} (${code})` : error.message;
  }
  return String(error);
}
