import { EROFS_LAYOUT_ANNOTATION, tarLayersLayout, type ImageLayout } from '@prebuilt/core/backend';

/**
 * The layout an image built with these layers records and expects, in core's EROFS record
 * (`EROFS_LAYOUT_ANNOTATION`, `dev.prebuilt.erofs`): `mediaType` the EROFS media type of an erofs
 * build, which rebuilds an image without it or with the other media type (the runners it names
 * could not mount it); undefined for a tar one (gzip, zstd), which records none and rebuilds an
 * EROFS image, as every build service making tar layers does (core's `tarLayersLayout`), while tar
 * images stay whatever their compression. Not reported with the image (that is the prefetch
 * order's place).
 */
export function erofsLayout(mediaType: string | undefined): ImageLayout {
  return mediaType === undefined
    ? tarLayersLayout('this build')
    : { annotation: EROFS_LAYOUT_ANNOTATION, value: mediaType, change: `this build writes EROFS layers of type ${mediaType}`, reported: false };
}
