/**
 * The packages Metaflow adds to every env (metaflow_config.get_pinned_conda_libs and
 * conda_environment.get_environment). They are added at resolution, never shown as user packages.
 */
import { statSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { ConfigError, errorMessage, isDirectory, readRegularFileSync } from '@prebuilt/core';
import type { StepEnv } from './merge.js';

export type MetaflowDatastore = 'local' | 's3' | 'azure' | 'gs';

const PINS: Record<MetaflowDatastore, Record<string, string>> = {
  local: {},
  s3: { boto3: '>=1.14.0' },
  azure: {
    'azure-identity': '>=1.10.0',
    'azure-storage-blob': '>=12.12.0',
    'azure-keyvault-secrets': '>=4.7.0',
    'simple-azure-blob-downloader': '>=0.1.0',
  },
  gs: {
    'google-cloud-storage': '>=2.5.0',
    'google-auth': '>=2.11.0',
    'google-cloud-secret-manager': '>=2.10.0',
    'simple-gcp-object-downloader': '>=0.1.0',
    packaging: '>=24.0',
  },
};

export interface MetaflowPinsOptions {
  /** The datastore the flow runs with (`--datastore`). Default: Metaflow's own setting. */
  datastore?: string;
  env?: Record<string, string | undefined>;
  /** Where the project's `.metaflow/config.json` is looked for from (Metaflow: its working directory). Default: this process's. */
  cwd?: string;
}

/** A Metaflow configuration file larger than this is refused (`metaflow configure` writes a few KiB). */
const MAX_CONFIG_BYTES = 1024 * 1024;

/** What a broken configuration file's error says to do: the global file's, or the project's. */
interface ConfigHint {
  setting?: string;
  hint: string;
}

const GLOBAL_CONFIG_HINT: ConfigHint = {
  setting: 'METAFLOW_HOME',
  hint: 'Fix or remove the file (`metaflow configure` rewrites it), or point METAFLOW_HOME at the directory of your Metaflow configuration.',
};

const LOCAL_CONFIG_HINT: ConfigHint = {
  hint: "Fix or remove the project's Metaflow configuration file (Metaflow reads it too, from the nearest .metaflow directory up from where you run the flow).",
};

function tooLarge(file: string, size: number, fix: ConfigHint): ConfigError {
  return new ConfigError(`Metaflow configuration ${file} is ${size} bytes; prebuilt reads one of at most ${MAX_CONFIG_BYTES} bytes.`, fix);
}

/** Metaflow configuration files read by this process, by path: the file's identity (device, inode, size, mtime) when read, and its JSON. */
const configs = new Map<string, { version: string; config: unknown }>();

/**
 * The JSON of Metaflow's configuration file `file` (undefined when it is missing and no profile is
 * named), read and parsed once while the file stays the same: a setting read again (one per step
 * and placement) costs a stat, not a read.
 */
function metaflowConfig(file: string, profile: string | undefined, fix: ConfigHint): unknown {
  let version: string;
  let text: string;
  try {
    const stats = statSync(file);
    version = `${stats.dev}:${stats.ino}:${stats.size}:${stats.mtimeMs}`;
    const known = configs.get(file);
    if (known?.version === version) return known.config;
    // Not read unless a regular file: a FIFO would hang the command, a device fill its memory.
    text = readRegularFileSync(file, MAX_CONFIG_BYTES, {
      notAFile: (kind) => new Error(`it is ${kind}, not a file`),
      tooLarge: (size) => tooLarge(file, size, fix),
    }).toString('utf8');
  } catch (error) {
    if (error instanceof ConfigError) throw error;
    if (!profile) return undefined;
    throw new ConfigError(`Metaflow profile '${profile}' has no configuration file ${file}: ${errorMessage(error)}.`, {
      setting: 'METAFLOW_PROFILE',
      cause: error,
      hint: 'Unset METAFLOW_PROFILE or create the profile with `metaflow configure`.',
    });
  }
  let config: unknown;
  try {
    config = JSON.parse(text);
  } catch (error) {
    throw new ConfigError(`Metaflow configuration ${file} is not valid JSON: ${errorMessage(error)}.`, { ...fix, cause: error });
  }
  configs.set(file, { version, config });
  return config;
}

/**
 * The project's Metaflow configuration file, as Metaflow's `init_local_config` finds it: the first
 * `.metaflow` directory from `cwd` up to the root (the local datastore's directory, which a local run
 * creates), then `config.json` in it — undefined when there is no such directory.
 */
function localConfigFile(cwd: string): string | undefined {
  for (let dir = resolve(cwd); ; dir = dirname(dir)) {
    const candidate = join(dir, '.metaflow');
    if (isDirectory(candidate)) return join(candidate, 'config.json');
    if (dirname(dir) === dir) return undefined;
  }
}

/**
 * A Metaflow setting read as Metaflow's `from_conf` does: the environment variable `name`, else the
 * key of that name in the project's configuration (`.metaflow/config.json` in `cwd` or the nearest
 * parent that has a `.metaflow` directory), else in $METAFLOW_HOME/config[_$METAFLOW_PROFILE].json
 * (home ~/.metaflowconfig). A value set empty is a value, as in Metaflow (`os.environ.get(name,
 * <file's>)`): an empty variable turns the files' value off, an empty key the global file's; what
 * an empty value means is the caller's (Metaflow's `if not value` where it reads it). `source` names
 * where it came from. A missing profile file, or a configuration that is not JSON, is a ConfigError.
 */
export function metaflowSetting(name: string, env: Record<string, string | undefined>, cwd: string = process.cwd()): { value: string; source: string } | undefined {
  const fromEnv = env[name];
  if (fromEnv !== undefined) return { value: fromEnv, source: name };
  const home = (env.METAFLOW_HOME || join(homedir(), '.metaflowconfig')).replace(/^~(?=\/|$)/, homedir());
  const profile = env.METAFLOW_PROFILE;
  const global = join(home, profile ? `config_${profile}.json` : 'config.json');
  const local = localConfigFile(cwd);
  // Both read, as Metaflow reads both before its first setting: a broken one is an error either way.
  const fromLocal = local === undefined ? undefined : settingIn(metaflowConfig(local, undefined, LOCAL_CONFIG_HINT), name, local);
  const fromGlobal = settingIn(metaflowConfig(global, profile, GLOBAL_CONFIG_HINT), name, global);
  return fromLocal ?? fromGlobal;
}

/** The string `name` holds in a configuration file's JSON (empty too), with the file as its source. */
function settingIn(config: unknown, name: string, file: string): { value: string; source: string } | undefined {
  const value = (config as Record<string, unknown> | null | undefined)?.[name];
  return typeof value === 'string' ? { value, source: file } : undefined;
}

/**
 * The datastore the flow runs with: the command line's `--datastore` (`options.datastore`), else
 * Metaflow's datastore setting, read as Metaflow does ({@link metaflowSetting}): METAFLOW_DEFAULT_DATASTORE,
 * else the key of that name in the project's `.metaflow/config.json`, else in
 * $METAFLOW_HOME/config[_$METAFLOW_PROFILE].json (home ~/.metaflowconfig), else `local`.
 */
export function metaflowDatastore(options: MetaflowPinsOptions = {}): MetaflowDatastore {
  const setting = options.datastore !== undefined ? { value: options.datastore, source: '--datastore' } : metaflowSetting('METAFLOW_DEFAULT_DATASTORE', options.env ?? process.env, options.cwd);
  const value = setting?.value;
  const source = setting?.source ?? 'METAFLOW_DEFAULT_DATASTORE';
  const datastore = value ?? 'local';
  if (!(datastore in PINS)) {
    throw new ConfigError(`Metaflow datastore '${datastore}' (from ${source}) is not one of ${Object.keys(PINS).join(', ')}.`, {
      setting: 'METAFLOW_DEFAULT_DATASTORE',
      hint: 'Set METAFLOW_DEFAULT_DATASTORE to local, s3, azure or gs.',
    });
  }
  return datastore as MetaflowDatastore;
}

/** Pins for the resolver, split as Metaflow places them. The user's own specs win over these. */
export interface MetaflowPins {
  conda: Record<string, string>;
  pypi: Record<string, string>;
}

/**
 * What Metaflow adds to a step's env: `requests>=2.21.0` plus the datastore's client libraries,
 * under PyPI when @pypi applies to the step, else under conda; and, for @pypi steps when
 * GOOGLE_APPLICATION_CREDENTIALS is set, `keyrings.google-artifactregistry-auth>=1.1.1` under conda.
 * A disabled step gets none.
 */
export function metaflowPins(env: Pick<StepEnv, 'usesPypi' | 'disabled'>, options: MetaflowPinsOptions = {}): MetaflowPins {
  if (env.disabled) return { conda: {}, pypi: {} };
  const packages = { requests: '>=2.21.0', ...PINS[metaflowDatastore(options)] };
  if (!env.usesPypi) return { conda: packages, pypi: {} };
  const conda: Record<string, string> = {};
  if ((options.env ?? process.env).GOOGLE_APPLICATION_CREDENTIALS) conda['keyrings.google-artifactregistry-auth'] = '>=1.1.1';
  return { conda, pypi: packages };
}
