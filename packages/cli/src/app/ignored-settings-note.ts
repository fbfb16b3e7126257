import { ignoredBuildServiceSettings, knownBackends, selectedBackendNames, unknownRunSettings, type BackendCatalogue } from '@prebuilt/core';
import type { AppScope } from './app-scope.js';
import { KNOWN_SETTINGS } from './known-settings.js';

/**
 * One note per other build service whose own settings are set: they do nothing under the selected
 * service (METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION=zstd with the default docker service builds gzip
 * images), which would otherwise pass without a word.
 */
function ignoredSettingsNotes(scope: AppScope, backends: BackendCatalogue): string[] {
  const selection = selectedBackendNames(scope.env).buildService;
  const how = selection.from === 'env' ? `${selection.envVar}=${selection.name}` : `the default; ${selection.envVar} is not set`;
  return ignoredBuildServiceSettings({ ...scope, backends }).map(
    ({ service, settings }) =>
      `${settings.join(', ')} ${settings.length === 1 ? 'is a setting' : 'are settings'} of the ${service} build service, ` +
      `ignored: the build service is ${selection.name} (${how}). Set ${selection.envVar}=${service} to use ${settings.length === 1 ? 'it' : 'them'}, or unset ${settings.length === 1 ? 'it' : 'them'}.`,
  );
}

/**
 * One note per set METAFLOW_PREBUILT_* variable that no part of prebuilt reads (core's
 * unknownSettings), with the setting it most likely misspells: a typo otherwise does nothing, and
 * the run goes on with the default (a misspelt METAFLOW_PREBUILT_CONDA_CHANNELS locks from conda-forge).
 */
export function unknownSettingsNotes(scope: Pick<AppScope, 'env' | 'cwd'> & { cliDir?: string | undefined }, backends?: BackendCatalogue): string[] {
  return unknownRunSettings({ ...scope, known: KNOWN_SETTINGS, ...(backends ? { backends } : {}) }).map(({ setting, suggestion }) =>
    suggestion
      ? `${setting} is not a setting prebuilt knows, ignored: did you mean ${suggestion}?`
      : `${setting} is not a setting prebuilt knows, ignored (the README's Configuration table and each backend's README list the settings).`,
  );
}

/**
 * The notes a deploy (plan, build, run) gives before its work: the settings no part of prebuilt
 * reads, then those of the build services it does not use — from one look at the backends the
 * run knows.
 */
export function deploySettingsNotes(scope: AppScope): string[] {
  const backends = knownBackends({ dirs: [scope.cwd], cliDir: scope.cliDir });
  return [...unknownSettingsNotes(scope, backends), ...ignoredSettingsNotes(scope, backends)];
}
