import { EnvironmentError, errorMessage } from '@prebuilt/core';

export type Rattler = typeof import('@conda-org/rattler');

let loading: Promise<Rattler> | undefined;

/** The rattler solver (WASM, ~7 MB), loaded on first use. */
export function loadRattler(): Promise<Rattler> {
  loading ??= import('@conda-org/rattler').catch((error: unknown) => {
    loading = undefined;
    throw new EnvironmentError(`Cannot load the conda solver @conda-org/rattler: ${errorMessage(error)}.`, {
      cause: error,
      hint: 'Reinstall prebuilt the way it was installed (npm i -g metaflow-prebuilt, or npm i -D metaflow-prebuilt in its project) so that @conda-org/rattler is installed beside @prebuilt/conda.',
    });
  });
  return loading;
}
