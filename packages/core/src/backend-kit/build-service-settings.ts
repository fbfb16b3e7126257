import { loadOptionalSetting, loadSetting } from '../load-setting.js';
import { secondsSetting } from './settings.js';

/** The options every build service takes besides its own. */
export interface BuildServiceOptions {
  /** How many log lines a failed result carries. Default 30. */
  logTailLines?: number;
  /** Environment to read settings from. Default `process.env`. */
  env?: Record<string, string | undefined>;
}

export const DEFAULT_LOG_TAIL_LINES = 30;

/** Reads a build service's settings from one environment: option → env var → default or error. */
export interface SettingsReader {
  readonly env: Record<string, string | undefined>;
  /** A setting that must be given; a ConfigError naming the env var and the option when it is not. */
  required(value: string | undefined, envVar: string, option: string, description: string): string;
  /** A setting that may be left out (empty counts as unset). */
  optional(value: string | undefined, envVar: string, option: string, description: string): string | undefined;
  /** A positive number of seconds (a timeout), `fallback` when unset. */
  seconds(value: number | undefined, envVar: string, option: string, fallback: number): number;
}

export function settingsReader(env: Record<string, string | undefined>): SettingsReader {
  return {
    env,
    required: (value, envVar, option, description) => loadSetting({ value, envVar, option, description, env }),
    optional: (value, envVar, option, description) => loadOptionalSetting({ value, envVar, option, description, env }),
    seconds: (value, envVar, option, fallback) => secondsSetting({ value, envVar, option, fallback, env }),
  };
}
