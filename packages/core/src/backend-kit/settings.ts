import type { ImageTagInput, PullConfig } from '../contracts.js';
import { ConfigError } from '../errors.js';
import { loadBooleanSetting, orOption } from '../load-setting.js';
import { registryHostProblem, repositoryComponentProblem } from '../registry/image-ref.js';

/** Settings every hosted registry (dockerhub, ecr, gcr) reads for the runner's pull configuration. */
export const PULL_ENV = {
  pullSecret: 'METAFLOW_PREBUILT_PULL_SECRET',
  batchRepositoryCredentials: 'METAFLOW_PREBUILT_BATCH_REPOSITORY_CREDENTIALS',
} as const;

export const DEFAULT_REPOSITORY = 'metaflow-prebuilt';

/** One path component of a repository name (OCI distribution grammar). */
export const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const SECRET_NAME = /^[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?$/;
const SECRETS_MANAGER_ARN = /^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:.+$/;

const ARCH: Record<ImageTagInput['platform'], string> = { 'linux-64': 'amd64', 'linux-aarch64': 'arm64' };

/**
 * `<repository>:env-<envId>-<arch>`: the content-addressed tag every prebuilt registry uses; a
 * multi-platform image index (more than one of `platforms`) is `<repository>:env-<indexId>`.
 */
export function envTag(repository: string, { envId, platform, platforms }: ImageTagInput): string {
  if (!/^[a-z0-9][a-z0-9_.-]{0,100}$/i.test(envId)) {
    throw new ConfigError(`The env id '${envId}' cannot be part of an image tag.`, { hint: 'Env ids are lowercase hex; this is a bug in the caller.' });
  }
  const arch = ARCH[platform];
  if (arch === undefined) {
    throw new ConfigError(`The platform '${String(platform)}' is not one prebuilt builds for.`, { hint: 'Use linux-64 or linux-aarch64.' });
  }
  if (platforms !== undefined && platforms.length > 1) {
    const unknown = platforms.find((p) => ARCH[p] === undefined);
    if (unknown !== undefined) {
      throw new ConfigError(`The platform '${String(unknown)}' is not one prebuilt builds for.`, { hint: 'Use linux-64 or linux-aarch64.' });
    }
    return `${repository}:env-${envId}`;
  }
  return `${repository}:env-${envId}-${arch}`;
}

/**
 * The longest time a timer holds, in seconds (2^31-1 ms, 24 days): a longer timeout would fire at
 * once (Node's TimeoutOverflowWarning sets it to 1 ms).
 */
const MAX_TIMEOUT_SECONDS = 2_147_483;

/**
 * A positive number of seconds (a build service's timeout, a network bound), at most
 * {@link MAX_TIMEOUT_SECONDS}: the option when given, else the env var, else `fallback`. Any other
 * value is a ConfigError naming the setting and the range.
 */
export function secondsSetting(input: {
  value: number | undefined;
  envVar: string;
  option: string;
  fallback: number;
  env: Record<string, string | undefined>;
}): number {
  return positiveSetting({ ...input, unit: 'seconds', max: MAX_TIMEOUT_SECONDS, range: `above 0, at most ${MAX_TIMEOUT_SECONDS} (24 days)` });
}

/**
 * Like {@link secondsSetting}, for any positive quantity in `unit` (`seconds`, `MiB`): above 0 (or
 * at least `min`) and at most `max` when given. Out of that range or not a number, a ConfigError
 * that names the setting and says the range (`range`, by default made from `max`) and `why` it is one.
 */
export function positiveSetting(input: {
  value: number | undefined;
  envVar: string;
  option: string;
  fallback: number;
  unit: string;
  env: Record<string, string | undefined>;
  /** Least value, inclusive; default: anything above 0. */
  min?: number;
  /** Largest value, inclusive. */
  max?: number;
  /** The accepted values as messages say them after `a number of <unit>`; default `above 0[, at most <max>]`. */
  range?: string;
  /** Why the range is what it is, added to the message. */
  why?: string;
}): number {
  const { value, envVar, option, fallback, unit, env, min, max } = input;
  const range = input.range ?? (max === undefined ? 'above 0' : `above 0, at most ${max}`);
  const why = input.why ? `: ${input.why}` : '';
  const fits = (n: number): boolean => Number.isFinite(n) && (min === undefined ? n > 0 : n >= min) && (max === undefined || n <= max);
  const hint = `Set ${envVar}${orOption(option)} to a number of ${unit} ${range}, e.g. ${fallback} (the default).`;
  if (value !== undefined) {
    if (!fits(value)) throw new ConfigError(`The option '${option}' must be a number of ${unit} ${range}, not ${value}${why}.`, { setting: envVar, hint });
    return value;
  }
  const raw = env[envVar];
  if (raw === undefined || raw.trim() === '') return fallback;
  const parsed = Number(raw);
  if (!fits(parsed)) throw new ConfigError(`${envVar}='${raw}' is not a number of ${unit} ${range}${why}.`, { setting: envVar, hint });
  return parsed;
}

/** A setting's value split after its URL scheme (`https://`, `docker://`; empty when it has none). */
export function schemeAndRest(value: string): { scheme: string; rest: string } {
  const scheme = /^[a-z][a-z0-9+.-]*:\/\//i.exec(value)?.[0] ?? '';
  return { scheme, rest: value.slice(scheme.length) };
}

/**
 * A setting's value with the credentials before `rest`'s `@` at `end` hidden whole, as messages
 * show it: `***@…` (as {@link redactUrls} shows a URL's). The user part is hidden too: it may be the
 * token (`<token>:x-oauth-basic@github.com`, `<token>@gitlab.com`). Where the credentials end is
 * the caller's to say.
 */
export function credentialsHidden({ scheme, rest }: { scheme: string; rest: string }, end: number): string {
  return `${scheme}***@${rest.slice(end + 1)}`;
}

/**
 * A registry setting written with credentials, as in a URL (`user:password@host`,
 * `https://token@host/path`): a ConfigError naming `envVar`, the value shown with them hidden
 * (`***@host`, everything up to the last `@`), never echoed as given;
 * `hint` says what the setting takes. Nothing when the value has no `@` before its path.
 */
export function refuseHostCredentials(value: string, envVar: string, hint: string): void {
  const parts = schemeAndRest(value);
  // No '@' belongs in a host or its path: the credentials end at the last one (a password may hold '@' or '/').
  const end = parts.rest.lastIndexOf('@');
  if (end === -1) return;
  throw new ConfigError(`${envVar}='${credentialsHidden(parts, end)}' is not a registry host: it starts with credentials (user:password@ or token@), which a host cannot carry.`, {
    setting: envVar,
    hint: `${hint} Give the registry's credentials with 'docker login <host>' or the registry's own credential settings instead, and change that password or token: it was in the environment in plain text.`,
  });
}

/** A registry host (`host[:port]`, no scheme, no path). */
export function parseHost(value: string, envVar: string, option: string): string {
  const hint = `Set ${envVar}${orOption(option)} to a registry host such as docker.io or 127.0.0.1:5000, without https://.`;
  refuseHostCredentials(value, envVar, hint);
  if (/^[a-z]+:\/\//i.test(value)) throw new ConfigError(`${envVar}='${value}' must be a registry host, not a URL.`, { setting: envVar, hint });
  const problem = registryHostProblem(value);
  if (problem !== undefined) throw new ConfigError(`${envVar}='${value}' is not a registry host: ${problem}.`, { setting: envVar, hint });
  return value;
}

/** A repository path (`a/b/c`), each part valid; the error says which part is wrong and why. */
export function checkRepository(value: string, envVar: string, option: string, maxParts = Infinity): string {
  const parts = value.split('/');
  const problem = parts.length > maxParts ? "it has a '/'" : parts.map(repositoryComponentProblem).find((p) => p !== undefined);
  if (problem !== undefined) {
    throw new ConfigError(`The ${option} '${value}' in ${envVar}${orOption(option)} is not a valid repository name${maxParts === 1 ? ' part' : ''}: ${problem}.`, {
      setting: envVar,
      hint:
        `Use lowercase letters, digits, '.', '_' and '-'${maxParts === 1 ? ' (no /)' : " and '/'"} in ${envVar}${orOption(option)}, ` +
        `e.g. ${DEFAULT_REPOSITORY}.`,
    });
  }
  return value;
}

export interface PullSettings {
  /** Kubernetes secret (type kubernetes.io/dockerconfigjson) the runner's pods name in imagePullSecrets. */
  pullSecret?: string;
  /** AWS Batch: the Secrets Manager ARN holding the registry credentials (repositoryCredentials). */
  batchRepositoryCredentials?: string;
}

function pick(value: string | undefined, env: Record<string, string | undefined>, envVar: string): string | undefined {
  if (value !== undefined && value !== '') return value;
  const fromEnv = env[envVar];
  return fromEnv === undefined || fromEnv === '' ? undefined : fromEnv;
}

/**
 * The pull configuration from `pullSecret` (METAFLOW_PREBUILT_PULL_SECRET) and
 * `batchRepositoryCredentials` (METAFLOW_PREBUILT_BATCH_REPOSITORY_CREDENTIALS); empty when neither is set.
 */
export function pullConfigFromSettings(options: PullSettings, env: Record<string, string | undefined>): PullConfig {
  const config: PullConfig = {};
  const secret = pick(options.pullSecret, env, PULL_ENV.pullSecret);
  if (secret !== undefined) {
    if (!SECRET_NAME.test(secret)) {
      throw new ConfigError(`The pull secret name '${secret}' is not a valid Kubernetes object name.`, {
        setting: PULL_ENV.pullSecret,
        hint: `Set ${PULL_ENV.pullSecret}${orOption('pullSecret')} to the secret \`prebuilt pull-secret --name\` created, e.g. prebuilt-pull.`,
      });
    }
    config.kubernetes = { imagePullSecrets: [secret] };
  }
  const arn = pick(options.batchRepositoryCredentials, env, PULL_ENV.batchRepositoryCredentials);
  if (arn !== undefined) {
    if (!SECRETS_MANAGER_ARN.test(arn)) {
      throw new ConfigError(`${PULL_ENV.batchRepositoryCredentials}='${arn}' is not a Secrets Manager secret ARN.`, {
        setting: PULL_ENV.batchRepositoryCredentials,
        hint:
          `Set ${PULL_ENV.batchRepositoryCredentials}${orOption('batchRepositoryCredentials')} to the ARN of a secret holding ` +
          '{"username": …, "password": …}, e.g. arn:aws:secretsmanager:us-east-1:123456789012:secret:dockerhub-AbCdEf.',
      });
    }
    config.batch = { repositoryCredentials: { credentialsParameter: arn } };
  }
  return config;
}

/**
 * A yes/no setting: the option when given, else the env var, else `fallback` — the older name of
 * {@link loadBooleanSetting}, which it calls (same words, same ConfigError).
 * @deprecated Use loadBooleanSetting.
 */
export function flagSetting(input: { value: boolean | undefined; envVar: string; option: string; fallback: boolean; env: Record<string, string | undefined> }): boolean {
  return loadBooleanSetting({ value: input.value, envVar: input.envVar, option: input.option, default: input.fallback, env: input.env });
}
