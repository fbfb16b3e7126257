import { ConfigError } from './errors.js';

/** glibc assumed for the target when METAFLOW_PREBUILT_GLIBC_VERSION is not set. */
export const DEFAULT_GLIBC = '2.28';

/**
 * The glibc of the target images, which the resolver assumes (`__glibc`, manylinux tags) and the
 * lock records in every entry: `glibc` when given, else METAFLOW_PREBUILT_GLIBC_VERSION, else
 * {@link DEFAULT_GLIBC}. Not a version → ConfigError (exit 2).
 */
export function targetGlibc(env: Record<string, string | undefined>, glibc?: string): string {
  const value = glibc ?? (env.METAFLOW_PREBUILT_GLIBC_VERSION?.trim() || DEFAULT_GLIBC);
  if (!/^\d+\.\d+(\.\d+)?$/.test(value)) {
    throw new ConfigError(`METAFLOW_PREBUILT_GLIBC_VERSION is '${value}', not a glibc version like 2.28.`, {
      setting: 'METAFLOW_PREBUILT_GLIBC_VERSION',
      hint: 'Set METAFLOW_PREBUILT_GLIBC_VERSION to the glibc of the target images, e.g. 2.28, or unset it.',
    });
  }
  return value;
}
