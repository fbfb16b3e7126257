/** An image digest as registries and builders report it: `sha256:` and 64 lowercase hex digits. */
export const IMAGE_DIGEST = /^sha256:[a-f0-9]{64}$/;

/** True when `text` is a whole {@link IMAGE_DIGEST}. */
export function isImageDigest(text: string | undefined): boolean {
  return text !== undefined && IMAGE_DIGEST.test(text);
}
