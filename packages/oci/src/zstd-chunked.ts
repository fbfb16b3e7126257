import { createHash } from 'node:crypto';
import { ZSTD_CHUNKED_CHECKSUM_ANNOTATION } from '@prebuilt/core/backend';
import type { ChunkedFormat } from './estargz.js';

/**
 * zstd:chunked, as the stargz snapshotter reads it (estargz/zstdchunked in
 * github.com/containerd/stargz-snapshotter, 0.12 in Debian bookworm): the eStargz layout with zstd
 * frames instead of gzip members — every non-empty file's payload (and every 4 MiB chunk of a big
 * one) starts a frame, the tar keeps its own end-of-archive blocks — then the TOC
 * (`stargz.index.json`'s JSON, not a tar entry) compressed as one zstd frame inside a skippable
 * frame, then a 40-byte footer inside another skippable frame. Decompressed as a whole it is the
 * plain tar (decoders skip skippable frames), so any runtime that pulls `tar+zstd` pulls it; the
 * snapshotter reads the footer, the TOC, and each file's frames by HTTP range requests.
 */

/** Layer annotation: sha256 of the compressed TOC (the zstd frame inside the skippable frame); core's, which reads it back. */
export { ZSTD_CHUNKED_CHECKSUM_ANNOTATION };
/** Layer annotation: `offset:compressed size:uncompressed size:1` of the TOC (1: the CRFS TOC the snapshotter reads). */
export const ZSTD_CHUNKED_POSITION_ANNOTATION = 'io.containers.zstd-chunked.manifest-position';
/** The footer the snapshotter reads: the last 40 bytes of the blob (the skippable frame's payload). */
export const ZSTD_CHUNKED_FOOTER_SIZE = 40;
/** zstd level of the frames (the `zstd` CLI's default, as the zstd layers). */
export const ZSTD_CHUNKED_LEVEL = 3;

/**
 * zstd level `level` of `data` by the native binding, loaded on the first call: importing the oci
 * package (as every `prebuilt` command that may build does) does not load the native library.
 */
export async function zstdCompress(data: Buffer, level: number): Promise<Buffer> {
  const { compress } = await import('@mongodb-js/zstd');
  return compress(data, level);
}

/** The skippable frame magic the writer uses (0x184D2A50, little-endian). */
const SKIPPABLE_MAGIC = Buffer.from([0x50, 0x2a, 0x4d, 0x18]);
/** The footer's last 8 bytes: "GnUlInUx". */
const FOOTER_MAGIC = Buffer.from([0x47, 0x6e, 0x55, 0x6c, 0x49, 0x6e, 0x55, 0x78]);
/** The TOC kind the footer and the position annotation state: a CRFS (stargz) TOC. */
const MANIFEST_TYPE_CRFS = 1;

/** `payload` in a zstd skippable frame: magic, payload size (u32 little-endian), payload. */
export function skippableFrame(payload: Buffer): Buffer {
  const size = Buffer.alloc(4);
  size.writeUInt32LE(payload.length);
  return Buffer.concat([SKIPPABLE_MAGIC, size, payload]);
}

/** The 40-byte footer: TOC offset, compressed and uncompressed TOC sizes, TOC kind (u64 little-endian each), magic. */
export function zstdChunkedFooter(tocOffset: number, tocSize: number, tocCompressedSize: number): Buffer {
  const footer = Buffer.alloc(ZSTD_CHUNKED_FOOTER_SIZE);
  footer.writeBigUInt64LE(BigInt(tocOffset), 0);
  footer.writeBigUInt64LE(BigInt(tocCompressedSize), 8);
  footer.writeBigUInt64LE(BigInt(tocSize), 16);
  footer.writeBigUInt64LE(BigInt(MANIFEST_TYPE_CRFS), 24);
  FOOTER_MAGIC.copy(footer, 32);
  return footer;
}

/** What a footer says (the snapshotter's ParseFooter), or undefined when its magic is not zstd:chunked's. */
export function parseZstdChunkedFooter(footer: Buffer): { tocOffset: number; tocCompressedSize: number; tocSize: number } | undefined {
  if (footer.length !== ZSTD_CHUNKED_FOOTER_SIZE || !footer.subarray(32).equals(FOOTER_MAGIC)) return undefined;
  return { tocOffset: Number(footer.readBigUInt64LE(0)), tocCompressedSize: Number(footer.readBigUInt64LE(8)), tocSize: Number(footer.readBigUInt64LE(16)) };
}

/**
 * The frame re-declared as a single segment of `contentSize` bytes, when its window holds all of it
 * (the binding streams without the size, so every frame declares the level's 2 MiB window): the
 * same blocks, a header whose window is the content. The snapshotter opens a decoder for each
 * file it reads, and Go's zstd decoder allocates buffers of the declared window (about 3 MiB a
 * frame for a file of a few kB, which made reading the files' frames 3–4× the CPU of gzip
 * members). Frames of another shape, or bigger than their window, are returned as they are.
 */
export function singleSegmentFrame(frame: Buffer, contentSize: number): Buffer {
  const descriptor = frame[4]!;
  // Only the binding's shape: no content size, not single-segment, no dictionary (the checksum bit is kept).
  if (frame.readUInt32LE(0) !== 0xfd2fb528 || (descriptor & 0b1110_1011) !== 0) return frame;
  const wd = frame[5]!;
  const base = 2 ** (10 + (wd >> 3));
  if (contentSize > base + (base / 8) * (wd & 7)) return frame;
  const [flag, size] = contentSize < 256 ? [0, 1] : contentSize < 65536 + 256 ? [1, 2] : [2, 4];
  const header = Buffer.alloc(5 + size);
  header.writeUInt32LE(0xfd2fb528, 0);
  header[4] = (flag << 6) | 0b0010_0000 | (descriptor & 0b0000_0100);
  if (size === 1) header[5] = contentSize;
  else if (size === 2) header.writeUInt16LE(contentSize - 256, 5);
  else header.writeUInt32LE(contentSize, 5);
  return Buffer.concat([header, frame.subarray(6)]);
}

/** zstd:chunked for the seekable writer (estargz.ts): zstd frames, the TOC and footer in skippable frames after the tar. */
export const ZSTD_CHUNKED_FORMAT: ChunkedFormat = {
  compress: async (data) => singleSegmentFrame(await zstdCompress(data, ZSTD_CHUNKED_LEVEL), data.length),
  tocInTar: false,
  async trailer(tocJson, end) {
    const compressed = await zstdCompress(tocJson, ZSTD_CHUNKED_LEVEL);
    // The TOC's zstd frame starts after the skippable frame's 8-byte header.
    const tocOffset = end + 8;
    return {
      bytes: Buffer.concat([skippableFrame(compressed), skippableFrame(zstdChunkedFooter(tocOffset, tocJson.length, compressed.length))]),
      annotations: {
        [ZSTD_CHUNKED_CHECKSUM_ANNOTATION]: `sha256:${createHash('sha256').update(compressed).digest('hex')}`,
        [ZSTD_CHUNKED_POSITION_ANNOTATION]: `${tocOffset}:${compressed.length}:${tocJson.length}:${MANIFEST_TYPE_CRFS}`,
      },
    };
  },
};
