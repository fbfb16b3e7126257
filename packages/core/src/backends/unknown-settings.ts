import { knownBackends, type BackendCatalogue } from './backend-catalogue.js';
import { closestName } from './closest-name.js';
import { backendSettingsPrefix } from './ignored-settings.js';
import { selectedBackendNames } from './select-backends.js';

const PREFIX = 'METAFLOW_PREBUILT_';

/** A set `METAFLOW_PREBUILT_*` variable that no part of prebuilt reads, and the known setting it most likely misspells. */
export interface UnknownSetting {
  setting: string;
  /** The known setting at most two edits away (a letter missed, doubled, swapped…), when there is one. */
  suggestion?: string;
}

/**
 * The `METAFLOW_PREBUILT_*` variables set (non-empty) in `env` that are not in `known` (every setting
 * the run's parts read; the CLI holds the list): a misspelt `METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION`
 * (one letter left out) had the oci service build gzip images without a word. One a known setting
 * is two edits or fewer from comes with it as `suggestion`. A backend of another package (one of
 * `selected`, the selected build service and registry names, not in `firstParty`) may read settings
 * of its own, which `known` cannot hold: then only a likely misspelling of a known setting, or a
 * name under a first-party backend's prefix ({@link backendSettingsPrefix}), is listed.
 */
export function unknownSettings(
  env: Record<string, string | undefined>,
  input: { known: readonly string[]; firstParty: readonly string[]; selected: readonly string[] },
): UnknownSetting[] {
  const known = new Set(input.known);
  const thirdParty = input.selected.some((name) => !input.firstParty.includes(name));
  const firstPartyPrefixes = input.firstParty.map(backendSettingsPrefix);
  return Object.keys(env)
    .filter((key) => key.startsWith(PREFIX) && env[key]?.trim() && !known.has(key))
    .sort()
    .flatMap((setting) => {
      const suggestion = closestName(setting, input.known);
      if (suggestion !== undefined) return [{ setting, suggestion }];
      if (!thirdParty || firstPartyPrefixes.some((prefix) => setting.startsWith(prefix))) return [{ setting }];
      return [];
    });
}

/**
 * {@link unknownSettings} for the selected build service and registry and the first-party backends
 * this run knows: `backends` when the caller has looked them up already ({@link knownBackends}),
 * else the CLI's catalogue at `cliDir` and those installed from `cwd`.
 */
export function unknownRunSettings(options: {
  env: Record<string, string | undefined>;
  cwd: string;
  cliDir?: string | undefined;
  known: readonly string[];
  backends?: BackendCatalogue;
}): UnknownSetting[] {
  const backends = options.backends ?? knownBackends({ dirs: [options.cwd], cliDir: options.cliDir });
  const firstParty = [...new Set(backends.map((backend) => backend.name))];
  const selected = selectedBackendNames(options.env);
  return unknownSettings(options.env, { known: options.known, firstParty, selected: [selected.buildService.name, selected.imageRegistry.name] });
}
