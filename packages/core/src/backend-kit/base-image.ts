import type { BaseImageIdentity } from '../contracts.js';
import { CancelledError, RegistryError } from '../errors.js';
import { formatImageRef, parseImageRef } from '../registry/image-ref.js';
import { isIndexMediaType } from '../registry/media-types.js';
import type { RegistryClient } from '../registry/registry-client.js';

/** Throws a CancelledError when the registry request's signal is aborted. */
export function checkSignal(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new CancelledError('The registry request was cancelled.', { cause: signal.reason });
}

export interface ResolveBaseImageOptions {
  /** The hint of the error for a base image that does not exist (a registry may know a better one). */
  missingHint?: string;
}

const MISSING_HINT = 'Check the base image name and tag (and that it was pushed), or set the base image to one that exists.';

/**
 * Resolves a (mutable) base image reference to the digest it names now, with a manifest HEAD (free
 * of Docker Hub's pull-rate cost), and pins it: `<registry>/<repository>@sha256:…`. A multi-platform
 * base must offer `platform`, and is pinned by that platform's manifest (its digest, the identity,
 * stays the index's); a base image that does not exist is a RegistryError naming it.
 */
export async function resolveBaseImage(
  client: RegistryClient,
  ref: string,
  platform: string,
  signal: AbortSignal | undefined,
  options: ResolveBaseImageOptions = {},
): Promise<BaseImageIdentity> {
  checkSignal(signal);
  const signalOption = signal ? { signal } : {};
  const image = parseImageRef(ref);
  // A HEAD (no pull-rate cost): the digest is only claimed here, and checked where it is used —
  // the build pulls the base by this digest, which verifies the bytes against it.
  const head = await client.headManifest(image, { ...signalOption, verify: false });
  if (!head.exists) {
    throw new RegistryError(`The base image ${ref} does not exist in the registry ${image.registry}.`, { registry: image.registry, status: 404 }, {
      hint: options.missingHint ?? MISSING_HINT,
    });
  }
  if (image.digest !== undefined && image.digest !== head.digest) {
    throw new RegistryError(`The registry ${image.registry} answered ${head.digest} for ${ref}.`, { registry: image.registry });
  }
  let pinned = formatImageRef({ registry: image.registry, repository: image.repository, tag: undefined, digest: head.digest });
  if (isIndexMediaType(head.mediaType)) {
    // The identity stays the index digest; FROM names the platform's own manifest, so a builder that
    // keeps one image per name (Docker's classic store) cannot take another platform's image for it.
    // The recipe versions were deliberately not bumped for this: the image content is the same, and
    // an existing envId's tag is never rebuilt, so no envId needed to change.
    const own = await client.getManifest(pinned, { ...signalOption, platform });
    pinned = formatImageRef({ registry: image.registry, repository: image.repository, tag: undefined, digest: own.digest });
  }
  return { ref, digest: head.digest, pinned };
}
