import type { ImageRegistry } from '../contracts.js';
import { ManifestCache, manifestCacheDir } from './manifest-cache.js';
import { RegistryClient } from './registry-client.js';

/**
 * A registry client for the application's own reads and pushes beside a deploy (SBOMs, reports):
 * the selected registry's push credentials for its host, the user's Docker config for any other;
 * manifests kept in the cache directory's manifest cache, as the registry's own checks keep them.
 */
export async function registryClientFor(registry: ImageRegistry, options: { env: Record<string, string | undefined>; signal?: AbortSignal }): Promise<RegistryClient> {
  const credentials = await registry.pushCredentials(options.signal ? { signal: options.signal } : {});
  return new RegistryClient({ ...(credentials ? { credentials: [credentials] } : {}), dockerConfig: { env: options.env }, manifestCache: new ManifestCache(manifestCacheDir(options.env)) });
}
