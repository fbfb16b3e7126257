import { ConfigError } from './errors.js';

export interface LoadSettingOptions<T> {
  /** The explicit option value, if given. */
  value: T | undefined;
  /** The environment variable to fall back to. */
  envVar: string;
  /** The option's name in code, for the error message. */
  option: string;
  /** What the setting is, in the user's words. */
  description: string;
  env?: Record<string, string | undefined>;
}

/** A setting: explicit option → environment variable → an error naming both. */
export function loadSetting(options: LoadSettingOptions<string>): string {
  const value = loadOptionalSetting(options);
  if (value === undefined) {
    throw new ConfigError(`${options.description} is not set.`, {
      setting: options.envVar,
      hint: `Set the environment variable ${options.envVar}, or pass the option '${options.option}'.`,
    });
  }
  return value;
}

/** Like loadSetting, but undefined when neither is given. Empty strings count as unset. */
export function loadOptionalSetting(options: LoadSettingOptions<string>): string | undefined {
  if (options.value !== undefined && options.value !== '') return options.value;
  const fromEnv = (options.env ?? process.env)[options.envVar];
  return fromEnv === undefined || fromEnv === '' ? undefined : fromEnv;
}
