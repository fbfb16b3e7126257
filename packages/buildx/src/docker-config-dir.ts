import { lstat, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import {
  createRunTempDir,
  dockerConfigAuth,
  dockerConfigPath,
  dockerConfigKey,
  normalizeDockerConfigKey,
  type RegistryCredentials,
} from '@prebuilt/core/backend';

/** Entries of the user's Docker config directory that buildx needs besides config.json. */
const SHARED_ENTRIES = ['buildx', 'contexts', 'cli-plugins'];

export interface TemporaryDockerConfig {
  /** The directory to pass as DOCKER_CONFIG. */
  dir: string;
  /** Removes the directory and the credentials in it. */
  remove(): Promise<void>;
}

/**
 * A private DOCKER_CONFIG directory for one build: a config.json (mode 0600, in a 0700 directory)
 * with the push credentials, so they never appear on a command line or in the environment.
 *
 * The user's own settings are kept: the rest of their config.json (contexts, proxies, credential
 * helpers and inline logins of other registries, for base images), and links to their buildx
 * builders, Docker contexts and CLI plugins. Only the push registry's entry is replaced, and a
 * global `credsStore` is dropped, because it would take precedence over the inline entry.
 */
export async function createTemporaryDockerConfig(
  credentials: RegistryCredentials,
  env: Record<string, string | undefined>,
): Promise<TemporaryDockerConfig> {
  // The user's Docker config directory, as core reads it: $DOCKER_CONFIG, else $HOME/.docker.
  const userDir = dirname(dockerConfigPath(env));
  let userConfig: Record<string, unknown> = {};
  try {
    const parsed: unknown = JSON.parse(await readFile(join(userDir, 'config.json'), 'utf8'));
    if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) userConfig = parsed as Record<string, unknown>;
  } catch {
    // No readable user config: start from an empty one.
  }
  const pushRegistry = normalizeDockerConfigKey(credentials.registry);
  const otherEntries = <T>(value: unknown): Record<string, T> => {
    if (typeof value !== 'object' || value === null) return {};
    return Object.fromEntries(Object.entries(value as Record<string, T>).filter(([key]) => normalizeDockerConfigKey(key) !== pushRegistry));
  };
  const { auths, credHelpers, credsStore: _credsStore, ...rest } = userConfig;
  const config = {
    ...rest,
    auths: { ...otherEntries(auths), [dockerConfigKey(credentials.registry)]: dockerConfigAuth(credentials) },
    ...(credHelpers === undefined ? {} : { credHelpers: otherEntries<string>(credHelpers) }),
  };

  const dir = await createRunTempDir('prebuilt-buildx-config-');
  const remove = () => rm(dir, { recursive: true, force: true });
  try {
    await writeFile(join(dir, 'config.json'), `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
    for (const entry of SHARED_ENTRIES) {
      const source = join(userDir, entry);
      const exists = await lstat(source).then(
        () => true,
        () => false,
      );
      if (exists) await symlink(source, join(dir, entry));
    }
  } catch (error) {
    await remove();
    throw error;
  }
  return { dir, remove };
}
