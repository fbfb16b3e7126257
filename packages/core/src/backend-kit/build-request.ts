import type { BuildRequest } from '../contracts.js';
import { InputError } from '../errors.js';
import { parseImageRef, type ImageRef } from '../registry/image-ref.js';
import { cancelledError } from './build-log.js';
import { checkPushCredentials } from './push-credentials.js';

/** One Docker platform, e.g. `linux/amd64` or `linux/arm/v7`. */
export const DOCKER_PLATFORM = /^[a-z0-9]+\/[a-z0-9_]+(?:\/[a-z0-9]+)?$/;

/**
 * The registry reference a build pushes to: the request's image tag, parsed. A reference without a
 * tag, or with a digest, is an InputError whose hint shows `example`.
 */
export function pushTarget(request: Pick<BuildRequest, 'imageTag'>, example: string): ImageRef {
  const target = parseImageRef(request.imageTag);
  if (target.tag === undefined || target.digest !== undefined) {
    throw new InputError(`The image tag '${request.imageTag}' must be a tagged reference without a digest.`, {
      hint: `Pass a reference such as ${example}`,
    });
  }
  return target;
}

export interface BuildRequestRules {
  /** The build, as the cancellation message names it: `<what> was cancelled.` */
  what: string;
  /** An image tag this service pushes to, shown when the request's is not a tag. */
  example: string;
  /**
   * The platforms one build may have: `{ one: service }` — a single Docker platform (the error
   * names the service, e.g. `kaniko`) — or `'several'`, a comma-separated list of them.
   */
  platforms: { one: string } | 'several';
}

export interface CheckedBuildRequest {
  /** Where the image goes (the parsed image tag). */
  target: ImageRef;
  /** The request's Docker platforms (one unless the rules allow several). */
  platforms: string[];
}

/**
 * What every build service checks before any work: the signal is not aborted (CancelledError),
 * the image tag is a tag (InputError), the platform is one it builds (InputError) and the push
 * credentials belong to the tag's registry (ConfigError).
 */
export function checkBuildRequest(request: BuildRequest, rules: BuildRequestRules): CheckedBuildRequest {
  if (request.signal?.aborted) throw cancelledError(request.signal, rules.what);
  const target = pushTarget(request, rules.example);
  const platforms = rules.platforms === 'several' ? request.platform.split(',').map((p) => p.trim()) : [request.platform];
  for (const platform of platforms) {
    if (DOCKER_PLATFORM.test(platform)) continue;
    if (rules.platforms === 'several') {
      throw new InputError(`The platform '${platform}' is not a Docker platform such as linux/amd64.`, {
        hint: 'Give one platform (linux/amd64) or several separated by commas (linux/amd64,linux/arm64).',
      });
    }
    throw new InputError(`${rules.platforms.one} builds one platform per image; '${platform}' is not a single Docker platform such as linux/amd64.`, {
      hint: 'prebuilt builds one image per platform (METAFLOW_PREBUILT_PLATFORM=linux-64,linux-aarch64) and publishes an image index over them.',
    });
  }
  checkPushCredentials(request, target.registry);
  return { target, platforms };
}
