// The image index push is service-agnostic (any build service's per-platform images can be
// combined), so it lives in @prebuilt/core; @prebuilt/oci re-exports it for convenience.
export { pushImageIndex, type ImageIndexEntry, type PushImageIndexOptions, type PushedIndex } from '@prebuilt/core/backend';
