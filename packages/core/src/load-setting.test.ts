import { describe, expect, it } from 'vitest';
import { ConfigError, ExitCode } from './errors.js';
import { loadBooleanSetting, loadOptionalSetting, loadSetting, orOption, SETTING_OFF, SETTING_ON, withoutOptionNames } from './load-setting.js';

const thrown = (work: () => unknown): ConfigError => {
  try {
    work();
  } catch (error) {
    return error as ConfigError;
  }
  throw new Error('it did not throw');
};

describe('loadSetting / loadOptionalSetting', () => {
  it('the option, else the env variable; empty strings are unset; a missing required one names both', () => {
    expect(loadOptionalSetting({ value: 'a', envVar: 'X', option: 'x', description: 'X', env: { X: 'b' } })).toBe('a');
    expect(loadOptionalSetting({ value: '', envVar: 'X', option: 'x', description: 'X', env: { X: 'b' } })).toBe('b');
    expect(loadOptionalSetting({ value: undefined, envVar: 'X', option: 'x', description: 'X', env: { X: '' } })).toBeUndefined();
    const error = thrown(() => loadSetting({ value: undefined, envVar: 'X', option: 'x', description: 'The x', env: {} }));
    expect(error).toBeInstanceOf(ConfigError);
    expect(error.hint).toMatch(/X.*'x'/);
  });
});

describe('orOption / withoutOptionNames: a library message names the option, the CLI leaves it out', () => {
  it('one form for one option or two, and the text without it still reads whole', () => {
    expect(`Set X${orOption('namespace')} to your user.`).toBe("Set X (or the option 'namespace') to your user.");
    expect(`Set A and B${orOption('username', 'password')}.`).toBe("Set A and B (or the options 'username' and 'password').");
    expect(withoutOptionNames(`Set X${orOption('namespace')} to your user; set A and B${orOption('username', 'password')}.`)).toBe('Set X to your user; set A and B.');
    const error = thrown(() => loadSetting({ value: undefined, envVar: 'METAFLOW_PREBUILT_X', option: 'x', description: 'The x', env: {} }));
    expect(error.hint).toBe("Set the environment variable METAFLOW_PREBUILT_X (or the option 'x').");
    expect(withoutOptionNames(error.hint!)).toBe('Set the environment variable METAFLOW_PREBUILT_X.');
    // Other words about options (a CLI flag's, a source's) are not its to drop.
    expect(withoutOptionNames("repeat the option for more labels (the option 'x' = 'y')")).toBe("repeat the option for more labels (the option 'x' = 'y')");
  });
});

describe('loadBooleanSetting: one on/off vocabulary for every setting', () => {
  const read = (raw: string | undefined, fallback = false) => loadBooleanSetting({ envVar: 'F', default: fallback, env: { F: raw } });

  it('1/true/yes/on are on and 0/false/no/off are off, in any case and with spaces around', () => {
    for (const word of SETTING_ON) for (const form of [word, word.toUpperCase(), ` ${word[0]!.toUpperCase()}${word.slice(1)} `]) expect(read(form), form).toBe(true);
    for (const word of SETTING_OFF) for (const form of [word, word.toUpperCase(), ` ${word} `]) expect(read(form, true), form).toBe(false);
  });

  it('unset or empty (or only spaces) is the default; an explicit option wins over the env variable, a boolean as it is, a string read as the variable is', () => {
    expect(read(undefined, true)).toBe(true);
    expect(read('', true)).toBe(true);
    expect(read('  ', false)).toBe(false);
    expect(loadBooleanSetting({ value: false, envVar: 'F', default: true, env: { F: '1' } })).toBe(false);
    expect(loadBooleanSetting({ value: true, envVar: 'F', default: false, env: { F: 'maybe' } })).toBe(true);
    expect(loadBooleanSetting({ value: 'Off', envVar: 'F', default: true, env: { F: '1' } })).toBe(false);
  });

  it('anything else is a ConfigError (exit 2) naming the variable and value, what it switches, and every word it takes', () => {
    const error = thrown(() =>
      loadBooleanSetting({ envVar: 'METAFLOW_PREBUILT_X', option: 'x', description: 'the x step', default: true, meaning: { on: 'do x', off: 'skip x' }, env: { METAFLOW_PREBUILT_X: 'sometimes' } }),
    );
    expect(error).toBeInstanceOf(ConfigError);
    expect(error.exitCode).toBe(ExitCode.usage);
    expect(error.setting).toBe('METAFLOW_PREBUILT_X');
    expect(error.message).toBe("METAFLOW_PREBUILT_X='sometimes' (the x step) is neither on nor off.");
    expect(error.hint).toBe("Set METAFLOW_PREBUILT_X (or the option 'x') to 1, true, yes, on (do x) or 0, false, no, off (skip x), in any case; unset, it is on.");
    // A bad option value names the option, not the variable.
    expect(thrown(() => loadBooleanSetting({ value: 'maybe', envVar: 'F', option: 'f', default: false, env: {} })).message).toBe("The option 'f' = 'maybe' is neither on nor off.");
    for (const bad of ['2', 'y', 'enabled', 'true!']) expect(() => read(bad), bad).toThrow(ConfigError);
  });

  it("never quotes a URL's credentials in the value it refuses (a registry URL with its token put in METAFLOW_PREBUILT_REGISTRY_CACHE), and cuts a long value", () => {
    const error = thrown(() => loadBooleanSetting({ envVar: 'METAFLOW_PREBUILT_REGISTRY_CACHE', description: 'the registry cache', default: true, env: { METAFLOW_PREBUILT_REGISTRY_CACHE: 'https://ci:glpat-s3cr3t@cache.example/v2' } }));
    expect(error.message).toBe("METAFLOW_PREBUILT_REGISTRY_CACHE='https://***@cache.example/v2' (the registry cache) is neither on nor off.");
    const long = thrown(() => loadBooleanSetting({ envVar: 'F', default: true, env: { F: 'x'.repeat(100_000) } }));
    expect(long.message).toBe(`F='${'x'.repeat(200)}…' is neither on nor off.`);
  });
});
