import { knownBackends, knownNames, type BackendCatalogue } from './backend-catalogue.js';
import { selectedBackendNames } from './select-backends.js';

/** The settings a first-party backend alone reads start with `METAFLOW_PREBUILT_<NAME>_` (oci: METAFLOW_PREBUILT_OCI_). */
export function backendSettingsPrefix(name: string): string {
  return `METAFLOW_PREBUILT_${name.toUpperCase().replace(/[^A-Z0-9]/g, '_')}_`;
}

/** Settings of a build service that is not the selected one: the run ignores them. */
export interface IgnoredSettings {
  /** The build service they belong to. */
  service: string;
  settings: string[];
}

/**
 * The settings set (non-empty) in `env` that belong to a known first-party build service other than
 * `selected`, by each service's prefix ({@link backendSettingsPrefix}): a user who set
 * METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION but selected docker gets docker's images. Settings several
 * services read (METAFLOW_PREBUILT_PLATFORM, …) carry no service's prefix and are never listed.
 */
export function ignoredServiceSettings(env: Record<string, string | undefined>, selected: string, services: readonly string[]): IgnoredSettings[] {
  const own = backendSettingsPrefix(selected);
  const set = Object.keys(env)
    .filter((key) => env[key]?.trim() && !key.startsWith(own))
    .sort();
  return services
    .filter((service) => service !== selected)
    .map((service) => ({ service, settings: set.filter((key) => key.startsWith(backendSettingsPrefix(service))) }))
    .filter((ignored) => ignored.settings.length > 0);
}

/**
 * {@link ignoredServiceSettings} for the selected build service and the first-party build services
 * this run knows: of `backends` when the caller has looked them up already ({@link knownBackends}),
 * else of the CLI's catalogue at `cliDir` and those installed from `cwd`.
 */
export function ignoredBuildServiceSettings(options: { env: Record<string, string | undefined>; cwd: string; cliDir?: string | undefined; backends?: BackendCatalogue }): IgnoredSettings[] {
  const services = knownNames(options.backends ?? knownBackends({ dirs: [options.cwd], cliDir: options.cliDir }), 'build-service');
  return ignoredServiceSettings(options.env, selectedBackendNames(options.env).buildService.name, services);
}
