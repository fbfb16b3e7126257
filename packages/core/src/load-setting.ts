import { ConfigError } from './errors.js';
import { redactUrls } from './net/url-credentials.js';
import { oneLineText } from './terminal-text.js';

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

/**
 * How a library message names a setting's option beside its environment variable, after the
 * variable: ` (or the option 'namespace')`, ` (or the options 'username' and 'password')`. One
 * form, so that the CLI, which passes backends no options (its users set the variable),
 * can leave it out ({@link withoutOptionNames}) and the message still reads whole.
 */
export function orOption(option: string, other?: string): string {
  return other === undefined ? ` (or the option '${option}')` : ` (or the options '${option}' and '${other}')`;
}

const OR_OPTION = / \(or the options? '[A-Za-z]+'(?: and '[A-Za-z]+')?\)/g;

/** `text` without its {@link orOption} asides: a message as a CLI user, who has only the environment variables, reads it. */
export function withoutOptionNames(text: string): string {
  return text.replace(OR_OPTION, '');
}

/** A setting: explicit option → environment variable → an error naming both. */
export function loadSetting(options: LoadSettingOptions<string>): string {
  const value = loadOptionalSetting(options);
  if (value === undefined) {
    throw new ConfigError(`${options.description} is not set.`, {
      setting: options.envVar,
      hint: `Set the environment variable ${options.envVar}${orOption(options.option)}.`,
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

/** The words an on/off setting accepts (any case, spaces around ignored). */
export const SETTING_ON: readonly string[] = ['1', 'true', 'yes', 'on'];
export const SETTING_OFF: readonly string[] = ['0', 'false', 'no', 'off'];

export interface LoadBooleanSettingOptions {
  /** The explicit option value, if given (a string is read as the env variable is). */
  value?: boolean | string | undefined;
  /** The environment variable to fall back to. */
  envVar: string;
  /** The option's name in code, when there is one, for the error's hint. */
  option?: string;
  /** What the setting switches, in the user's words, e.g. `the registry cache`. */
  description?: string;
  /** The value when neither the option nor the variable is set (an empty string counts as unset). */
  default: boolean;
  /** What on and off do, for the error's hint, e.g. `check the registry before building`. */
  meaning?: { on: string; off: string };
  env?: Record<string, string | undefined>;
}

/**
 * An on/off setting: explicit option → environment variable → the default. On is `1`, `true`,
 * `yes` or `on`, off is `0`, `false`, `no` or `off` (any case); anything else is a ConfigError
 * (exit 2) naming where the value came from, the value and the words the setting takes.
 */
export function loadBooleanSetting(options: LoadBooleanSettingOptions): boolean {
  const { value, envVar, option } = options;
  if (typeof value === 'boolean') return value;
  const raw = loadOptionalSetting({ value, envVar, option: option ?? envVar, description: options.description ?? envVar, ...(options.env ? { env: options.env } : {}) });
  const word = raw?.trim().toLowerCase() ?? '';
  if (word === '') return options.default;
  if (SETTING_ON.includes(word)) return true;
  if (SETTING_OFF.includes(word)) return false;
  // As text: a URL's credentials hidden (a URL put in the wrong setting), a long value cut.
  const shown = oneLineText(redactUrls(raw ?? ''), 200);
  const from = value !== undefined && value !== '' ? `The option '${option ?? envVar}' = '${shown}'` : `${envVar}='${shown}'`;
  const [on, off] = options.meaning ? [` (${options.meaning.on})`, ` (${options.meaning.off})`] : ['', ''];
  throw new ConfigError(`${from}${options.description ? ` (${options.description})` : ''} is neither on nor off.`, {
    setting: envVar,
    hint:
      `Set ${envVar}${option ? orOption(option) : ''} to ${SETTING_ON.join(', ')}${on} or ${SETTING_OFF.join(', ')}${off}, ` +
      `in any case; unset, it is ${options.default ? 'on' : 'off'}.`,
  });
}
