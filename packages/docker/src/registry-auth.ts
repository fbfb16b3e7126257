import type { RegistryCredentials } from '@prebuilt/core/backend';

/** The X-Registry-Auth payload for a push or pull, built from the credentials at the moment it is sent. */
export function authConfig(credentials: RegistryCredentials | undefined): Record<string, string> | undefined {
  if (!credentials) return undefined;
  const serveraddress = credentials.registry === 'docker.io' ? 'https://index.docker.io/v1/' : credentials.registry;
  if (credentials.registryToken) return { registrytoken: credentials.registryToken.reveal() };
  if (credentials.identityToken) return { identitytoken: credentials.identityToken.reveal(), serveraddress };
  if (credentials.username !== undefined || credentials.password !== undefined) {
    return { username: credentials.username ?? '', password: credentials.password?.reveal() ?? '', serveraddress };
  }
  return undefined;
}
