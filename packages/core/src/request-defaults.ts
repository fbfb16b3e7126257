/**
 * The parts of an env request that no decorator carries: conda channels, PyPI index, target
 * platform. Each: explicit option → environment variable → default.
 */
import type { CondaPlatform, EnvRequest } from './env-model.js';
import { ConfigError } from './errors.js';
import { loadOptionalSetting } from './load-setting.js';
import { redactUrl, stripChannelToken, stripUrlCredentials } from './net/url-credentials.js';
import { metadataAddress } from './registry/token-realm.js';

export const CONDA_PLATFORMS: readonly CondaPlatform[] = ['linux-64', 'linux-aarch64'];

/** Where conda channel names (`conda-forge`, `bioconda/label/dev`) are served. */
const ANACONDA_CHANNEL_BASE = 'https://conda.anaconda.org';

const DEFAULT_CONDA_CHANNELS: readonly string[] = [`${ANACONDA_CHANNEL_BASE}/conda-forge`];

export interface RequestDefaultsOptions {
  /** Channel URLs or names, in priority order. Env: METAFLOW_PREBUILT_CONDA_CHANNELS (comma-separated). */
  channels?: readonly string[];
  /** PyPI simple index URL. Env: METAFLOW_PREBUILT_PYPI_INDEX_URL, then PIP_INDEX_URL. */
  indexUrl?: string;
  /**
   * Target conda platform(s), comma-separated. Env: METAFLOW_PREBUILT_PLATFORM (default linux-64).
   * The request carries the first; {@link targetPlatforms} gives them all.
   */
  platform?: string;
  env?: Record<string, string | undefined>;
}

export type RequestDefaults = Pick<EnvRequest, 'channels' | 'indexUrl' | 'platform'>;

const CHANNEL_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*(\/[A-Za-z0-9._-]+)*$/;

/**
 * A channel URL as given (without trailing slash and without `user:token@` or a `/t/<token>` path
 * segment: credentials in a channel URL are used from the setting at request time, see
 * `UrlCredentials`, and never kept), or a channel name expanded to its anaconda.org URL.
 */
export function channelUrl(channel: string, setting = 'METAFLOW_PREBUILT_CONDA_CHANNELS'): string {
  const trimmed = stripUrlCredentials(channel.trim());
  if (trimmed.includes('://')) {
    let url: URL;
    try {
      url = new URL(trimmed);
    } catch (cause) {
      throw new ConfigError(`Conda channel '${redactUrl(channel.trim())}' is not a valid URL.`, {
        setting,
        cause,
        hint: 'Give channel URLs like https://conda.anaconda.org/conda-forge, or channel names like conda-forge.',
      });
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:' && url.protocol !== 'file:') {
      throw new ConfigError(`Conda channel '${redactUrl(trimmed)}' uses ${url.protocol}, which is not supported.`, {
        setting,
        hint: 'Use an http://, https:// or file:// channel URL.',
      });
    }
    // A channel can come from a flow's decorator (`<channel>::<package>`): never the cloud metadata service.
    const metadata = metadataAddress(url);
    if (metadata !== undefined) {
      throw new ConfigError(`Conda channel '${redactUrl(trimmed)}' is ${metadata}; prebuilt does not fetch from it.`, {
        setting,
        hint: 'Give channel URLs like https://conda.anaconda.org/conda-forge, or channel names like conda-forge.',
      });
    }
    return stripChannelToken(trimmed).replace(/\/+$/, '');
  }
  if (!CHANNEL_NAME.test(trimmed)) {
    throw new ConfigError(`Conda channel '${trimmed}' is neither a URL nor a channel name.`, {
      setting,
      hint: 'Give channel URLs like https://conda.anaconda.org/conda-forge, or channel names like conda-forge.',
    });
  }
  return `${ANACONDA_CHANNEL_BASE}/${trimmed}`;
}

/** Channels, index URL and platform for every env request of this run. */
export function requestDefaults(options: RequestDefaultsOptions = {}): RequestDefaults {
  const env = options.env ?? process.env;

  let channels: string[];
  if (options.channels !== undefined && options.channels.length > 0) {
    channels = options.channels.map((c) => channelUrl(c, 'channels'));
  } else {
    const raw = env.METAFLOW_PREBUILT_CONDA_CHANNELS ?? '';
    const names = raw.split(',').map((c) => c.trim()).filter((c) => c !== '');
    channels = names.length > 0 ? names.map((c) => channelUrl(c)) : [...DEFAULT_CONDA_CHANNELS];
  }
  channels = [...new Set(channels)];

  const indexSetting = loadOptionalSetting({
    value: options.indexUrl,
    envVar: 'METAFLOW_PREBUILT_PYPI_INDEX_URL',
    option: 'indexUrl',
    description: 'The PyPI index URL',
    env,
  });
  const indexFrom = options.indexUrl ? 'indexUrl' : env.METAFLOW_PREBUILT_PYPI_INDEX_URL ? 'METAFLOW_PREBUILT_PYPI_INDEX_URL' : 'PIP_INDEX_URL';
  const rawIndex = indexSetting ?? (env.PIP_INDEX_URL || undefined);
  let indexUrl: string | null = null;
  if (rawIndex !== undefined) {
    const trimmed = stripUrlCredentials(rawIndex.trim());
    let url: URL | undefined;
    try {
      url = new URL(trimmed);
    } catch {
      url = undefined;
    }
    if (url === undefined || (url.protocol !== 'http:' && url.protocol !== 'https:' && url.protocol !== 'file:')) {
      throw new ConfigError(`The PyPI index URL '${redactUrl(rawIndex.trim())}' (from ${indexFrom}) is not an http(s) or file URL.`, {
        setting: indexFrom,
        hint: `Set ${indexFrom} to a PEP 503 simple index, e.g. https://pypi.org/simple.`,
      });
    }
    indexUrl = trimmed.replace(/\/+$/, '');
  }

  const platform = targetPlatforms(options)[0]!;
  return { channels, indexUrl, platform };
}

/**
 * The platforms every env is built for, in the order given: `linux-64` (default), `linux-aarch64`,
 * or both (`linux-64,linux-aarch64`: one image per platform under one multi-platform image index).
 * Option → METAFLOW_PREBUILT_PLATFORM → `linux-64`. Duplicates are dropped.
 */
export function targetPlatforms(options: Pick<RequestDefaultsOptions, 'platform' | 'env'> = {}): CondaPlatform[] {
  return platformsSetting(options) ?? ['linux-64'];
}

/**
 * The platforms the option or METAFLOW_PREBUILT_PLATFORM names, checked as {@link targetPlatforms}
 * checks them; undefined when neither is set (an empty value counts as unset), where a lock keeps
 * the platforms it was made for. A value naming no platform or an unknown one is a ConfigError (exit 2).
 */
export function platformsSetting(options: Pick<RequestDefaultsOptions, 'platform' | 'env'> = {}): CondaPlatform[] | undefined {
  const env = options.env ?? process.env;
  const rawPlatform = loadOptionalSetting({
    value: options.platform,
    envVar: 'METAFLOW_PREBUILT_PLATFORM',
    option: 'platform',
    description: 'The target platform',
    env,
  });
  if (rawPlatform === undefined) return undefined;
  const setting = options.platform ? 'platform' : 'METAFLOW_PREBUILT_PLATFORM';
  const names = rawPlatform.split(',').map((p) => p.trim()).filter((p) => p !== '');
  if (names.length === 0) {
    throw new ConfigError(`No target platform is given in '${rawPlatform}'.`, {
      setting,
      hint: `Set METAFLOW_PREBUILT_PLATFORM to one or more of ${CONDA_PLATFORMS.join(', ')}, comma-separated, or unset it for linux-64.`,
    });
  }
  for (const platform of names) {
    if (!(CONDA_PLATFORMS as readonly string[]).includes(platform)) {
      throw new ConfigError(`Target platform '${platform}' is not supported.`, {
        setting,
        hint: `Set METAFLOW_PREBUILT_PLATFORM to one or more of: ${CONDA_PLATFORMS.join(', ')} (comma-separated for a multi-platform image).`,
      });
    }
  }
  return [...new Set(names)] as CondaPlatform[];
}
