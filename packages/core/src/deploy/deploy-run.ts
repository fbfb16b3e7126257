import type { BuildService, DeployEvent, DeployOptions } from '../contracts.js';

/**
 * What every stage of one deploy shares: the caller's options, where events go, the signal the
 * stage runs under and the build service (created on first use).
 */
export interface DeployRun {
  readonly options: DeployOptions;
  readonly emit: (event: DeployEvent) => void;
  /** The caller's signal; in the build pool, also aborted by a registry or build service failure. */
  readonly signal: AbortSignal | undefined;
  /** Check the registry before building (`registryCache`, default true). */
  readonly useCache: boolean;
  readonly buildService: () => Promise<BuildService>;
}
