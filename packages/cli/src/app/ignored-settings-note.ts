import { ignoredBuildServiceSettings, selectedBackendNames } from '@prebuilt/core';
import type { AppScope } from './app-scope.js';

/**
 * One note per other build service whose own settings are set: they do nothing under the selected
 * service (METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION=zstd with the default docker service builds gzip
 * images), which would otherwise pass without a word.
 */
export function ignoredSettingsNotes(scope: AppScope): string[] {
  const selection = selectedBackendNames(scope.env).buildService;
  const how = selection.from === 'env' ? `${selection.envVar}=${selection.name}` : `the default; ${selection.envVar} is not set`;
  return ignoredBuildServiceSettings(scope).map(
    ({ service, settings }) =>
      `${settings.join(', ')} ${settings.length === 1 ? 'is a setting' : 'are settings'} of the ${service} build service, ` +
      `ignored: the build service is ${selection.name} (${how}). Set ${selection.envVar}=${service} to use ${settings.length === 1 ? 'it' : 'them'}, or unset ${settings.length === 1 ? 'it' : 'them'}.`,
  );
}
