import type { OciDescriptor } from '../registry/platform.js';

export type LayerFormat = 'gzip' | 'zstd' | 'estargz' | 'zstd:chunked' | 'erofs' | 'uncompressed' | 'unknown';

/** eStargz: the TOC digest containerd's stargz snapshotter reads, and the uncompressed size it records. */
export const ESTARGZ_TOC_ANNOTATION = 'containerd.io/snapshot/stargz/toc.digest';
export const ESTARGZ_UNCOMPRESSED_ANNOTATION = 'io.containers.estargz.uncompressed-size';
/** zstd:chunked: the TOC checksum under the name the stargz snapshotter (and prebuilt's oci service) writes. */
export const ZSTD_CHUNKED_CHECKSUM_ANNOTATION = 'io.containers.zstd-chunked.manifest-checksum';
/** zstd:chunked: containers/storage's name for the checksum, and the snapshotter's. */
const ZSTD_CHUNKED_ANNOTATIONS = ['io.github.containers.zstd-chunked.manifest-checksum', ZSTD_CHUNKED_CHECKSUM_ANNOTATION];

/** How a layer is compressed, from its media type and annotations. */
export function layerFormat(layer: Pick<OciDescriptor, 'mediaType' | 'annotations'>): LayerFormat {
  const type = layer.mediaType;
  const annotations = layer.annotations ?? {};
  if (/(\+|\.)gzip$/.test(type)) return annotations[ESTARGZ_TOC_ANNOTATION] || annotations[ESTARGZ_UNCOMPRESSED_ANNOTATION] ? 'estargz' : 'gzip';
  if (/\+zstd$/.test(type)) return ZSTD_CHUNKED_ANNOTATIONS.some((a) => annotations[a]) || annotations[ESTARGZ_TOC_ANNOTATION] ? 'zstd:chunked' : 'zstd';
  // A native EROFS layer: containerd 2.1/2.2's type (`application/vnd.oci.image.layer.v1.erofs`) or 2.3's (`application/vnd.erofs.layer.v1`).
  if (/^application\/vnd\.oci\.image\.layer\.[^+]*\.erofs$/.test(type) || type.startsWith('application/vnd.erofs.layer')) return 'erofs';
  if (/(\.tar|\.diff\.tar)$/.test(type) || type === 'application/vnd.oci.image.layer.v1.tar') return 'uncompressed';
  return 'unknown';
}

/** An uncompressed size a layer's annotations state (eStargz writes one), or undefined. */
export function annotatedUncompressedSize(layer: Pick<OciDescriptor, 'annotations'>): number | undefined {
  const raw = layer.annotations?.[ESTARGZ_UNCOMPRESSED_ANNOTATION];
  if (raw === undefined || !/^\d+$/.test(raw)) return undefined;
  return Number(raw);
}

/**
 * The uncompressed size a single-member gzip stream records in its last 4 bytes (ISIZE, the size
 * modulo 2^32): trusted only when the compressed layer is under 4 GiB and ISIZE is not below it
 * (a real layer's tar never shrinks below its gzip).
 */
export function gzipTrailerSize(trailer: Uint8Array, compressedSize: number): number | undefined {
  if (trailer.length !== 4 || compressedSize >= 2 ** 32) return undefined;
  const size = Buffer.from(trailer).readUInt32LE(0);
  // Deflate adds at most ~0.03% (stored blocks) plus the header and trailer to what it cannot shrink.
  return size >= compressedSize * 0.999 - 1024 ? size : undefined;
}
