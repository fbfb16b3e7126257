/** The settings of a deploy that the CLI reads from the environment (base images, registry cache, workers, prune presets). */
import { ConfigError, credentialsHidden, loadBooleanSetting, loadOptionalSetting, parseImageRef, pruneSetting, schemeAndRest, selectPrunePresets, type PrunePreset } from '@prebuilt/core';

export const DEFAULT_BASE_IMAGE = 'python:3.11-slim-bookworm';

export interface DeploySettings {
  baseImage: string;
  gpuBaseImage: string;
  registryCache: boolean;
  workers: number | undefined;
  /** What the images leave out (METAFLOW_PREBUILT_PRUNE or --prune), sorted; [] for nothing. */
  prune: PrunePreset[];
  /** Where `prune` came from, for messages: `--prune` or METAFLOW_PREBUILT_PRUNE. */
  pruneSetting: string;
}

function registryCache(env: Record<string, string | undefined>): boolean {
  return loadBooleanSetting({
    envVar: 'METAFLOW_PREBUILT_REGISTRY_CACHE',
    description: 'the registry cache',
    default: true,
    meaning: { on: 'check the registry before building, the default', off: 'always build' },
    env,
  });
}

function workers(env: Record<string, string | undefined>, override: string | undefined): number | undefined {
  const raw = override ?? env.METAFLOW_PREBUILT_BUILD_WORKERS;
  if (raw === undefined || raw.trim() === '') return undefined;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1 || value > 64) {
    const from = override !== undefined ? '--workers' : 'METAFLOW_PREBUILT_BUILD_WORKERS';
    throw new ConfigError(`${from} is '${raw}', not a whole number from 1 to 64.`, {
      setting: from,
      hint: `Set ${from} to the number of images to build at once (default: min(images, 8)).`,
    });
  }
  return value;
}

/** What follows a digest reference's `@`: `algorithm:encoded` up to the end, no `/` (`sha256:…`, even a malformed one). */
const DIGEST_AFTER_AT = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[^/@]*$/i;

/** What follows the `@` of a digest reference, named by a digest algorithm OCI registers or reserves (`sha256:`, `sha384:`, `sha512:`, `blake3:`). */
const DIGEST_ALGORITHM = /^(?:sha256|sha384|sha512|blake3):/i;

/**
 * A registry host and nothing after it (`ghcr.io`, `registry.example.com:5000`, `localhost:5000`,
 * `10.0.0.7`, `registry:5000`, `[::1]:5000`): a name with a dot and a last label starting with a
 * letter, `localhost`, an IPv4 or bracketed IPv6 address, with an optional port; or a one-label name
 * with a port (a compose service's). A tag typed after `@` (`python@3.11`, `ubuntu@22.04`,
 * `ubuntu@latest`) is none of these, nor is a digest (`sha256:123`, however short).
 */
const BARE_HOST = /^(?:(?:(?:[a-z0-9-]+\.)+[a-z][a-z0-9-]*|localhost|\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-f:.]+\])(?::\d+)?|[a-z][a-z0-9-]*:\d+)$/i;
const isBareHost = (text: string): boolean => BARE_HOST.test(text) && !DIGEST_ALGORITHM.test(text);

/**
 * Credentials written before the image, as in a URL: `user:password@host/…` or
 * `https://token@host/…`. They end at the last `@` that does not start a digest, so a password
 * holding `@` or `/` (`user:p@ss/w@host/x`) is hidden whole; a scheme, a `:` before that `@`, or a
 * `/` after it (a host and repository) tells them from `name@sha256:…` and from `name@tag` typos.
 * `user:password@host:port`, where every `@` looks like a digest's, is taken as credentials too
 * when a `:` comes before the first `@` with no `/` (`host:5000/repo@sha256:…` has one), or after a
 * scheme — unless a digest algorithm follows that `@` (`docker://name@sha256:…`, `name:tag@sha256:…`).
 *
 * A lone word before a host and nothing after it (`ghp_token@github.com`, `token@registry:5000`, `token@[::1]`,
 * no scheme, no `:` before the `@`, no path) is taken as a token, and hidden: echoing it would print
 * the token, and nobody writes an image as `name@host`. A lone word before something that is no host
 * (`python@3.11`, `ubuntu@latest`) is a tag typed after `@` instead of `:`, named as it is: hiding it
 * would hide the typo from the one who made it, and no host follows for a token to be sent to.
 */
function withCredentials(value: string): { shown: string } | undefined {
  const parts = schemeAndRest(value);
  const { scheme, rest } = parts;
  const last = rest.lastIndexOf('@');
  if (last === -1) return undefined;
  let end = -1;
  for (let at = rest.indexOf('@'); at !== -1; at = rest.indexOf('@', at + 1)) {
    if (!DIGEST_AFTER_AT.test(rest.slice(at + 1))) end = at;
  }
  // Every `@` starts what looks like a digest: `user:password@host:port` (no repository) still is credentials,
  // unless what follows the last `@` names a digest algorithm (`https://host/repo@sha256:…`, `docker://name@sha256:…`,
  // `name:tag@sha256:<cut short>`): a host is never called that.
  if (end === -1 && (scheme || /^[^/@]*:[^/]*@/.test(rest)) && !DIGEST_ALGORITHM.test(rest.slice(last + 1))) end = last;
  // `token@host:5000`: the port made the host look like a digest.
  if (end === -1 && isBareHost(rest.slice(last + 1))) end = last;
  if (end === -1) return undefined;
  if (!scheme && !rest.slice(0, end).includes(':') && !rest.slice(end + 1).includes('/') && !isBareHost(rest.slice(end + 1))) return undefined;
  return { shown: credentialsHidden(parts, end) };
}

/** `value` when it is an image reference; else a ConfigError naming the variable it came from (exit 2), never the credentials a mistaken URL carries. */
function imageSetting(value: string, envVar: string, example = `${DEFAULT_BASE_IMAGE} or 127.0.0.1:5000/team/base:1.0`): string {
  try {
    parseImageRef(value);
  } catch (error) {
    const hint = `Set ${envVar} to [host[:port]/]repository[:tag][@sha256:<64 hex>], e.g. ${example}.`;
    const secret = withCredentials(value);
    if (secret) {
      // Not quoted, nor parseImageRef's message (which quotes the value).
      throw new ConfigError(`${envVar}='${secret.shown}' is not an image reference: it starts with credentials (user:password@ or token@), which an image reference cannot carry.`, {
        setting: envVar,
        hint: `${hint} Give the registry's credentials with 'docker login <host>' instead, and change that password or token: it was in the environment in plain text.`,
      });
    }
    // parseImageRef says `invalid image reference '<value>': <why>`; the value is named here with its variable.
    const why = (error instanceof Error ? error.message : String(error)).replace(/^invalid image reference '.*?': /s, '');
    throw new ConfigError(`${envVar}='${value}' is not an image reference: ${why}.`, { setting: envVar, hint, cause: error });
  }
  return value;
}

/** The deploy settings from the environment; a bad value is a ConfigError naming the variable. */
export function deploySettings(env: Record<string, string | undefined>, overrides: { workers?: string; prune?: string } = {}): DeploySettings {
  const base = loadOptionalSetting({ value: undefined, envVar: 'METAFLOW_PREBUILT_BASE_IMAGE', option: 'baseImage', description: 'The base image', env });
  const baseImage = base === undefined ? DEFAULT_BASE_IMAGE : imageSetting(base, 'METAFLOW_PREBUILT_BASE_IMAGE');
  const gpu = loadOptionalSetting({ value: undefined, envVar: 'METAFLOW_PREBUILT_GPU_BASE_IMAGE', option: 'gpuBaseImage', description: 'The GPU base image', env });
  const gpuBaseImage = gpu === undefined ? baseImage : imageSetting(gpu, 'METAFLOW_PREBUILT_GPU_BASE_IMAGE');
  const pruneOptions = { env, ...(overrides.prune !== undefined ? { value: overrides.prune } : {}) };
  const prune = selectPrunePresets(pruneOptions);
  return { baseImage, gpuBaseImage, registryCache: registryCache(env), workers: workers(env, overrides.workers), prune, pruneSetting: pruneSetting(pruneOptions) };
}

/** The micromamba recipe's image setting (core's `MICROMAMBA_IMAGE_ENV`). */
const MICROMAMBA_IMAGE_ENV = 'METAFLOW_PREBUILT_MICROMAMBA_IMAGE';

/**
 * METAFLOW_PREBUILT_MICROMAMBA_IMAGE, when the micromamba recipe is selected and it is set: an image
 * reference, else a ConfigError naming it (exit 2) before anything is locked, its credentials
 * hidden as the base images' are. (The recipe's own check let `user:password@host/…` through to the
 * Dockerfile: the build failed after materializing, printing the password in its FROM line.)
 */
export function checkMicromambaImageSetting(env: Record<string, string | undefined>): void {
  const value = loadOptionalSetting({ value: undefined, envVar: MICROMAMBA_IMAGE_ENV, option: 'micromambaImage', description: 'The micromamba image', env });
  if (value !== undefined) imageSetting(value, MICROMAMBA_IMAGE_ENV, 'mambaorg/micromamba:1.5.10@sha256:<digest>');
}
