import type { BuildRequest } from '../contracts.js';
import { ConfigError } from '../errors.js';
import { normalizeDockerConfigKey } from '../registry/docker-config.js';

/**
 * Throws a ConfigError when the request's push credentials are for another registry than the one
 * its image tag goes to (`registry`): sending them would hand one registry's secret to another.
 */
export function checkPushCredentials(request: Pick<BuildRequest, 'imageTag' | 'pushCredentials'>, registry: string): void {
  if (request.pushCredentials && normalizeDockerConfigKey(request.pushCredentials.registry) !== normalizeDockerConfigKey(registry)) {
    throw new ConfigError(
      `The push credentials are for ${request.pushCredentials.registry} (${request.pushCredentials.source}), but ${request.imageTag} goes to ${registry}.`,
      { hint: 'The image registry backend must give credentials for the registry of its own tags; check its configuration.' },
    );
  }
}
