import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { RegistryCredentials } from '../contracts.js';
import { ConfigError } from '../errors.js';
import { createLogger } from '../logger.js';
import { Secret } from '../secret.js';
import { runCredentialHelper } from './credential-helper.js';
import { DOCKER_HUB } from './image-ref.js';

const log = createLogger('registry');

/** The key Docker's config and credential helpers use for Docker Hub. */
export const DOCKER_HUB_CONFIG_KEY = 'https://index.docker.io/v1/';

/** One entry of `auths` in Docker's config.json. */
export interface DockerConfigAuth {
  auth?: string;
  username?: string;
  password?: string;
  identitytoken?: string;
  registrytoken?: string;
}

/** The parts of Docker's config.json that hold credentials. */
export interface DockerConfig {
  auths: Record<string, DockerConfigAuth>;
  credsStore: string | undefined;
  credHelpers: Record<string, string>;
}

export interface DockerConfigOptions {
  /** Environment to read DOCKER_CONFIG and HOME from, and to run credential helpers with. Defaults to process.env. */
  env?: Record<string, string | undefined>;
  /** An explicit config.json path (otherwise `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`). */
  configPath?: string;
  /** Time a credential helper may take, in ms. */
  helperTimeoutMs?: number;
  signal?: AbortSignal;
}

/** `$DOCKER_CONFIG/config.json`, else `$HOME/.docker/config.json`. */
export function dockerConfigPath(env: Record<string, string | undefined> = process.env): string {
  const dir = env['DOCKER_CONFIG'] || join(env['HOME'] || homedir(), '.docker');
  return join(dir, 'config.json');
}

/**
 * The registry a config key names: scheme and path stripped, lower-cased, and Docker Hub's
 * aliases (`https://index.docker.io/v1/`, `registry-1.docker.io`, …) mapped to `docker.io`.
 */
export function normalizeDockerConfigKey(key: string): string {
  let host = key.trim().replace(/^[a-z][a-z0-9+.-]*:\/\//i, '');
  const slash = host.indexOf('/');
  if (slash !== -1) host = host.slice(0, slash);
  host = host.toLowerCase();
  if (host === 'index.docker.io' || host === 'registry-1.docker.io' || host === 'registry.hub.docker.com') return DOCKER_HUB;
  return host;
}

/** The server URL to look a registry up under and to give a credential helper. */
export function dockerConfigKey(registry: string): string {
  return normalizeDockerConfigKey(registry) === DOCKER_HUB ? DOCKER_HUB_CONFIG_KEY : registry;
}

function malformed(path: string, why: string, cause?: unknown): ConfigError {
  return new ConfigError(`Docker config ${path} is malformed: ${why}`, {
    cause,
    setting: path,
    hint: `Fix or remove ${path} (or set DOCKER_CONFIG to another directory), then log in again with 'docker login'.`,
  });
}

function stringField(path: string, where: string, value: unknown): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') throw malformed(path, `${where} must be a string`);
  return value;
}

/** Validates parsed config.json content. Throws ConfigError naming the file. */
export function parseDockerConfig(text: string, path: string): DockerConfig {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (error) {
    throw malformed(path, `it is not valid JSON (${(error as Error).message})`, error);
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) throw malformed(path, 'the top level must be a JSON object');
  const record = data as Record<string, unknown>;

  const auths: Record<string, DockerConfigAuth> = {};
  if (record['auths'] !== undefined && record['auths'] !== null) {
    if (typeof record['auths'] !== 'object' || Array.isArray(record['auths'])) throw malformed(path, '"auths" must be an object');
    for (const [key, value] of Object.entries(record['auths'] as Record<string, unknown>)) {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) throw malformed(path, `auths["${key}"] must be an object`);
      const entry = value as Record<string, unknown>;
      const auth: DockerConfigAuth = {};
      for (const field of ['auth', 'username', 'password', 'identitytoken', 'registrytoken'] as const) {
        const v = stringField(path, `auths["${key}"].${field}`, entry[field]);
        if (v !== undefined && v !== '') auth[field] = v;
      }
      auths[key] = auth;
    }
  }

  const credsStore = stringField(path, '"credsStore"', record['credsStore']) || undefined;

  const credHelpers: Record<string, string> = {};
  if (record['credHelpers'] !== undefined && record['credHelpers'] !== null) {
    if (typeof record['credHelpers'] !== 'object' || Array.isArray(record['credHelpers'])) throw malformed(path, '"credHelpers" must be an object');
    for (const [key, value] of Object.entries(record['credHelpers'] as Record<string, unknown>)) {
      const helper = stringField(path, `credHelpers["${key}"]`, value);
      if (helper) credHelpers[key] = helper;
    }
  }
  return { auths, credsStore, credHelpers };
}

/** Reads Docker's config.json; undefined when the file does not exist. */
async function readDockerConfig(path: string): Promise<DockerConfig | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw new ConfigError(`cannot read Docker config ${path}: ${(error as Error).message}`, { cause: error, setting: path });
  }
  return parseDockerConfig(text, path);
}

function findEntry<T>(entries: Record<string, T>, registry: string): [string, T] | undefined {
  const wanted = normalizeDockerConfigKey(registry);
  const exact = entries[registry] ?? entries[dockerConfigKey(registry)];
  if (exact !== undefined) return [entries[registry] !== undefined ? registry : dockerConfigKey(registry), exact];
  for (const [key, value] of Object.entries(entries)) {
    if (normalizeDockerConfigKey(key) === wanted) return [key, value];
  }
  return undefined;
}

/** Credentials from one `auths` entry (`auth` is base64 of `user:password`). */
function credentialsFromAuthEntry(registry: string, key: string, entry: DockerConfigAuth, path: string): RegistryCredentials | undefined {
  const source = `${path} (auths["${key}"])`;
  let username = entry.username;
  let password = entry.password;
  if (entry.auth !== undefined) {
    const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon <= 0 || !/^[A-Za-z0-9+/=_-]+$/.test(entry.auth)) throw malformed(path, `auths["${key}"].auth is not base64 of 'user:password'`);
    username = decoded.slice(0, colon);
    password = decoded.slice(colon + 1);
  }
  const creds: RegistryCredentials = { registry, source };
  if (entry.identitytoken) creds.identityToken = new Secret(entry.identitytoken);
  if (entry.registrytoken) creds.registryToken = new Secret(entry.registrytoken);
  if (username) creds.username = username;
  if (password) creds.password = new Secret(password);
  if (!creds.identityToken && !creds.registryToken && !creds.password) return undefined;
  return creds;
}

async function fromHelper(helper: string, registry: string, serverUrl: string, origin: string, options: DockerConfigOptions): Promise<RegistryCredentials | undefined> {
  const result = await runCredentialHelper(helper, serverUrl, {
    origin,
    env: options.env,
    ...(options.helperTimeoutMs === undefined ? {} : { timeoutMs: options.helperTimeoutMs }),
    ...(options.signal === undefined ? {} : { signal: options.signal }),
  });
  if (!result) return undefined;
  const source = `${origin} (docker-credential-${helper})`;
  if (result.username === '<token>') return { registry, identityToken: result.secret, source };
  return { registry, username: result.username, password: result.secret, source };
}

/**
 * Credentials for `registry` from the user's Docker config, looked up as Docker does:
 * `credHelpers[registry]`, else `credsStore`, else the `auths` entry. Undefined when there are none.
 */
export async function dockerConfigCredentials(registry: string, options: DockerConfigOptions = {}): Promise<RegistryCredentials | undefined> {
  const env = options.env ?? process.env;
  const path = options.configPath ?? dockerConfigPath(env);
  const config = await readDockerConfig(path);
  if (!config) {
    log('no Docker config at %s', path);
    return undefined;
  }
  const helperEntry = findEntry(config.credHelpers, registry);
  if (helperEntry) {
    const [key, helper] = helperEntry;
    return fromHelper(helper, registry, dockerConfigKey(registry), `${path} credHelpers["${key}"]`, { ...options, env });
  }
  const authEntry = findEntry(config.auths, registry);
  if (config.credsStore) {
    const creds = await fromHelper(config.credsStore, registry, dockerConfigKey(registry), `${path} credsStore`, { ...options, env });
    if (creds) return creds;
  }
  if (authEntry) return credentialsFromAuthEntry(registry, authEntry[0], authEntry[1], path);
  log('no credentials for %s in %s', registry, path);
  return undefined;
}
