// Reads a lazy layer's table of contents the way the stargz snapshotter does: eStargz, footer →
// TOC offset → the TOC's gzip member → stargz.index.json; zstd:chunked, footer → the TOC's zstd
// frame → its JSON.
import { gunzipSync } from 'node:zlib';
import { decompress } from '@mongodb-js/zstd';
import { FOOTER_SIZE } from '../estargz.js';
import { parseZstdChunkedFooter, ZSTD_CHUNKED_FOOTER_SIZE } from '../zstd-chunked.js';

export interface TocEntry {
  name: string;
  type: string;
  size?: number;
  offset?: number;
  digest?: string;
  chunkOffset?: number;
  chunkSize?: number;
  chunkDigest?: string;
}

export function readToc(blob: Buffer): { tocOffset: number; entries: TocEntry[] } {
  const footer = blob.subarray(blob.length - FOOTER_SIZE);
  const tocOffset = parseInt(footer.subarray(16, 32).toString('latin1'), 16);
  const tocTar = gunzipSync(blob.subarray(tocOffset, blob.length - FOOTER_SIZE));
  const size = parseInt(tocTar.subarray(124, 136).toString('latin1'), 8);
  const toc = JSON.parse(tocTar.subarray(512, 512 + size).toString()) as { entries: TocEntry[] };
  return { tocOffset, entries: toc.entries };
}

/** A zstd:chunked blob's TOC: its JSON bytes (whose sha256 is the TOC digest), entries, and where its compressed frame is. */
export async function readZstdChunkedToc(blob: Buffer): Promise<{ tocOffset: number; compressed: Buffer; json: Buffer; entries: TocEntry[] }> {
  const footer = parseZstdChunkedFooter(blob.subarray(blob.length - ZSTD_CHUNKED_FOOTER_SIZE));
  if (!footer) throw new Error('not a zstd:chunked blob: the footer magic is missing');
  const compressed = blob.subarray(footer.tocOffset, footer.tocOffset + footer.tocCompressedSize);
  const json = await decompress(compressed);
  if (json.length !== footer.tocSize) throw new Error(`the TOC is ${json.length} bytes, the footer says ${footer.tocSize}`);
  return { tocOffset: footer.tocOffset, compressed, json, entries: (JSON.parse(json.toString()) as { entries: TocEntry[] }).entries };
}

/** The landmark's offset: the end of the range the snapshotter prefetches (undefined without one). */
export function landmarkOffset(entries: readonly TocEntry[]): number | undefined {
  return entries.find((e) => e.name === '.prefetch.landmark')?.offset;
}
