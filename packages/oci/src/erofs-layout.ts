import type { ImageLayout } from '@prebuilt/core/backend';

/**
 * The image manifest annotation recording that an image's env layers are EROFS, and their media
 * type (`application/vnd.oci.image.layer.v1.erofs` for containerd 2.1–2.2,
 * `application/vnd.erofs.layer.v1` from 2.3). Only EROFS images carry it. The tag does not name the
 * layer format, so a build reads it where it checks the registry for the tag: an erofs build
 * rebuilds an image without it or with the other media type (the runners it names could not mount
 * it), and a tar build (gzip, zstd) rebuilds an EROFS image (runners that pull tar layers cannot
 * mount it), while tar images stay whatever their compression. (`dev.prebuilt`: the prefix of
 * prebuilt's image labels.)
 */
export const EROFS_LAYOUT_ANNOTATION = 'dev.prebuilt.erofs';

/**
 * The layout an image built with these layers records and expects: `mediaType` the EROFS media
 * type of an erofs build, undefined for a tar one. Not reported with the image (that is the
 * prefetch order's place).
 */
export function erofsLayout(mediaType: string | undefined): ImageLayout {
  return mediaType === undefined
    ? { annotation: EROFS_LAYOUT_ANNOTATION, change: 'the image has EROFS layers, this build writes tar layers', reported: false }
    : { annotation: EROFS_LAYOUT_ANNOTATION, value: mediaType, change: `this build writes EROFS layers of type ${mediaType}`, reported: false };
}
