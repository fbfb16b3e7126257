import type { BuildService, ImageLayout } from './contracts.js';

/**
 * The image manifest annotation recording that an image's env layers are EROFS, and their media
 * type (`application/vnd.oci.image.layer.v1.erofs` for containerd 2.1–2.2,
 * `application/vnd.erofs.layer.v1` from 2.3): the oci service writes it on its erofs builds, and
 * only EROFS images carry it. The tag does not name the layer format, so a build reads it where it
 * checks the registry for the tag: a build that makes tar layers (every build service but an erofs
 * build of the oci service) rebuilds an image carrying it, since runners that pull tar layers
 * cannot mount it. (`dev.prebuilt`: the prefix of prebuilt's image labels.)
 */
export const EROFS_LAYOUT_ANNOTATION = 'dev.prebuilt.erofs';

/**
 * The layout of an image with tar layers (gzip, zstd, eStargz, …) made by `builder` (e.g. `the
 * docker build service`): no EROFS record, so a present image carrying one is rebuilt, and the
 * reason (what `prebuilt plan` shows) says so. Not reported as the image's `layout`. It refuses no
 * layer media type: a gzip builder keeps a zstd image the oci service pushed, as that service does
 * with no runners named — it names none, and a switch of build service does not change the nodes
 * (ARCHITECTURE.md, the layout record).
 */
export function tarLayersLayout(builder: string): ImageLayout {
  return { annotation: EROFS_LAYOUT_ANNOTATION, change: `built with EROFS layers; ${builder} makes tar layers`, reported: false };
}

/**
 * The layout a build service gives an env's image: its own (`imageLayout`, which may record none),
 * else tar layers — a service that does not say how it lays images out makes tar layers, as
 * Dockerfile builders do, and rebuilds an image another service built with EROFS layers.
 */
export function buildServiceLayout(service: Pick<BuildService, 'name' | 'imageLayout'>, envId: string): ImageLayout | undefined {
  return service.imageLayout ? service.imageLayout(envId) : tarLayersLayout(`the ${service.name} build service`);
}

/** The most of a recorded media type a reason quotes (it is read from the registry). */
const FOUND_SHOWN_CHARS = 100;

/**
 * Why an image whose manifest holds `found` in the layout's annotation (undefined: none) is rebuilt:
 * the layout's `change`, after what the image was built with when the annotation is the EROFS
 * record and this build writes EROFS layers — `built with tar layers; this build writes EROFS
 * layers of type …`, or `built with EROFS layers of type <the other one>; …` —, so a plan says both
 * sides. Any other layout's change is its own (a tar build's already names the EROFS layers found).
 */
export function layoutChange(layout: ImageLayout, found: string | undefined): string {
  if (layout.annotation !== EROFS_LAYOUT_ANNOTATION || layout.value === undefined) return layout.change;
  if (found === undefined) return `built with tar layers; ${layout.change}`;
  const shown = found.length > FOUND_SHOWN_CHARS ? `${found.slice(0, FOUND_SHOWN_CHARS)}…` : found;
  return `built with EROFS layers of type ${shown}; ${layout.change}`;
}
