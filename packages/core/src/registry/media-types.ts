/** Manifest media types of the Docker v2 and OCI image formats. */
export const MediaType = {
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
} as const;

/**
 * The Accept list sent with every manifest request. Without the Docker v2 type, registry 2.8
 * converts a manifest to the old schema 1 and answers with another digest.
 */
export const MANIFEST_ACCEPT: readonly string[] = [
  MediaType.dockerManifest,
  MediaType.dockerManifestList,
  MediaType.ociManifest,
  MediaType.ociIndex,
];

/** True for a manifest list (Docker) or an image index (OCI): a manifest that points to per-platform manifests. */
export function isIndexMediaType(mediaType: string | undefined): boolean {
  return mediaType === MediaType.dockerManifestList || mediaType === MediaType.ociIndex;
}
