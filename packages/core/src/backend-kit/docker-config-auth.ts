import type { RegistryCredentials } from '../contracts.js';

/**
 * The `auths` entry a Docker config (`config.json`, a `dockerconfigjson` Secret) holds for one
 * registry: `registrytoken`, or `auth` (base64 `user:password`; with an identity token the
 * password is empty and the token goes in `identitytoken`).
 */
export function dockerConfigAuth(credentials: RegistryCredentials): Record<string, string> {
  if (credentials.registryToken) return { registrytoken: credentials.registryToken.reveal() };
  const user = credentials.username ?? '';
  if (credentials.identityToken) {
    return { auth: Buffer.from(`${user}:`).toString('base64'), identitytoken: credentials.identityToken.reveal() };
  }
  return { auth: Buffer.from(`${user}:${credentials.password?.reveal() ?? ''}`).toString('base64') };
}
