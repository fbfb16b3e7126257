/**
 * The environment model: what a step asks for (EnvRequest) and what it resolved to (LockedEnv).
 */

/** A conda subdir prebuilt can target. */
export type CondaPlatform = 'linux-64' | 'linux-aarch64';

/** The effective, merged request of one step (Metaflow's pins not included). */
export interface EnvRequest {
  /** Python version, e.g. `3.11` or `3.11.9`. Always from conda. */
  python: string;
  /** conda package name → version spec (`""` for any); a name may carry `channel::`. */
  conda: Record<string, string>;
  /** PyPI package name → version spec (`""` for any). */
  pypi: Record<string, string>;
  /** Conda channel URLs, in priority order. */
  channels: string[];
  /** PyPI index URL (simple API), or null for the user's pip configuration. */
  indexUrl: string | null;
  platform: CondaPlatform;
}

/** One file of a locked env: a conda package or a wheel. */
export interface LockedPackage {
  kind: 'conda' | 'pypi';
  name: string;
  version: string;
  /** Conda build string; empty for wheels. */
  build: string;
  url: string;
  /** Hex sha256 of the file. */
  sha256: string;
  size: number;
  /** File name as it appears at the end of `url`. */
  filename: string;
  /** Conda subdir (`noarch`, `linux-64`) for conda packages. */
  subdir?: string;
  /**
   * Set for a wheel pip took at a direct URL — a dependency's `Requires-Dist: bar @ https://host/…`,
   * possibly on a host no setting names — rather than from the index's files: the packages whose
   * metadata required it (normalized names; empty when pip's report does not say).
   */
  directUrl?: { requiredBy: string[] };
}

/** An env resolved to exact files. */
export interface LockedEnv {
  /** specHash of the request this lock answers. */
  specHash: string;
  request: EnvRequest;
  platform: CondaPlatform;
  /** The exact python version installed (from the conda `python` package). */
  pythonVersion: string;
  /** Conda packages first, then wheels; each group sorted by name. */
  packages: LockedPackage[];
}

/** Packages Metaflow adds to an env at resolution (`requests`, `boto3`, …), name → spec, per part. */
export interface EnvPins {
  conda: Record<string, string>;
  pypi: Record<string, string>;
}

/**
 * What the resolver used besides the request, recorded so that a lock made with other inputs is
 * not reused: Metaflow's pins and the glibc version assumed for the target.
 */
export interface ResolvedWith {
  pins: EnvPins;
  /** glibc version the target is assumed to have (`__glibc`, manylinux tags). */
  glibc: string;
}

/** An env to resolve: its request and specHash, what to resolve it with, the steps that use it. */
export interface EnvToResolve {
  specHash: string;
  request: EnvRequest;
  resolvedWith: ResolvedWith;
  steps: string[];
}

/** Docker's name for a conda platform. */
export function dockerPlatform(platform: CondaPlatform): string {
  return platform === 'linux-aarch64' ? 'linux/arm64' : 'linux/amd64';
}
