import { createHash } from 'node:crypto';
import type { ImageLayout } from '@prebuilt/core/backend';
import type { EstargzPrefetch } from './estargz-prefetch.js';

/**
 * The image manifest annotation recording which prefetch order an image's eStargz or zstd:chunked
 * layers were written in: `static`, `off`, or `profile sha256:<hex>` (the digest of the env's
 * profile paths, one per line, in order). The tag does not name the layout (the same env, laid
 * out for another profile, is the same env); a build reads this annotation where it checks the
 * registry for the tag and rebuilds an image whose layout is not the one it would write — on any
 * machine, since the record travels with the image. (`dev.prebuilt`: the prefix of prebuilt's image labels.)
 */
export const PREFETCH_LAYOUT_ANNOTATION = 'dev.prebuilt.prefetch';

/** Why an image laid out otherwise is rebuilt (and what `prebuilt plan` says of it). */
export const PREFETCH_CHANGE = 'prefetch profile changed';

/** The layout record of a prefetch choice (see {@link PREFETCH_LAYOUT_ANNOTATION}). */
export function prefetchLayoutValue(prefetch: EstargzPrefetch): string {
  if (prefetch.mode !== 'profile') return prefetch.mode;
  return `profile sha256:${createHash('sha256').update(prefetch.paths.join('\n')).digest('hex')}`;
}

/** The layout an image laid out in this prefetch order records, as the build service reports it to core. */
export function prefetchLayout(prefetch: EstargzPrefetch): ImageLayout {
  return { annotation: PREFETCH_LAYOUT_ANNOTATION, value: prefetchLayoutValue(prefetch), change: PREFETCH_CHANGE };
}
