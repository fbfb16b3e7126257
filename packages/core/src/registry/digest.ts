import { RegistryError } from '../errors.js';
import { sha256Hex } from '../identity.js';

/** An image digest as registries and builders report it: `sha256:` and 64 lowercase hex digits. */
export const IMAGE_DIGEST = /^sha256:[a-f0-9]{64}$/;

/** The {@link IMAGE_DIGEST} of `bytes` (a string: its UTF-8) — `sha256:` and their sha256 in hex, as a registry names a manifest or blob. */
export function sha256Digest(bytes: string | Uint8Array): string {
  return `sha256:${sha256Hex(bytes)}`;
}

/** True when `text` is a whole {@link IMAGE_DIGEST}. */
export function isImageDigest(text: string | undefined): boolean {
  return text !== undefined && IMAGE_DIGEST.test(text);
}

/**
 * `digest` when it is a sha256 digest — the only kind whose bytes prebuilt checks — else a
 * RegistryError saying `what` is named by a digest prebuilt cannot check. For a digest from a
 * registry's answer (an index's entry, a manifest's layer): anything else there (another algorithm,
 * a tag, a path, no string at all) would be fetched unverified, or not be a name at all.
 */
export function checkableDigest(digest: unknown, what: string, registry: string): string {
  if (typeof digest === 'string' && isImageDigest(digest)) return digest;
  throw new RegistryError(`${what} is named by a digest prebuilt cannot check ('${String(digest).slice(0, 80)}'): only sha256 digests are verified`, { registry }, {
    hint: 'The image, or the index or manifest naming it, names it by something other than a sha256 digest (another algorithm, a tag); push it with sha256 digests.',
  });
}
