import type { BuildRequest } from '../contracts.js';
import { InputError } from '../errors.js';
import { parseImageRef, type ImageRef } from '../registry/image-ref.js';

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
