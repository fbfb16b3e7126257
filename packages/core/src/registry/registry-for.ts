import type { ImageRegistry } from '../contracts.js';
import { RegistryClient } from './registry-client.js';

/**
 * A registry client for the application's own reads and pushes beside a deploy (SBOMs, reports):
 * the selected registry's push credentials for its host, the user's Docker config for any other.
 */
export async function registryClientFor(registry: ImageRegistry, options: { env: Record<string, string | undefined>; signal?: AbortSignal }): Promise<RegistryClient> {
  const credentials = await registry.pushCredentials(options.signal ? { signal: options.signal } : {});
  return new RegistryClient({ ...(credentials ? { credentials: [credentials] } : {}), dockerConfig: { env: options.env } });
}
