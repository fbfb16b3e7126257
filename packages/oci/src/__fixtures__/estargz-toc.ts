// Reads an eStargz blob's table of contents the way the stargz snapshotter does: footer → TOC
// offset → the TOC's gzip member → stargz.index.json.
import { gunzipSync } from 'node:zlib';
import { FOOTER_SIZE } from '../estargz.js';

export interface TocEntry {
  name: string;
  type: string;
  size?: number;
  offset?: number;
  digest?: string;
  chunkOffset?: number;
  chunkSize?: number;
}

export function readToc(blob: Buffer): { tocOffset: number; entries: TocEntry[] } {
  const footer = blob.subarray(blob.length - FOOTER_SIZE);
  const tocOffset = parseInt(footer.subarray(16, 32).toString('latin1'), 16);
  const tocTar = gunzipSync(blob.subarray(tocOffset, blob.length - FOOTER_SIZE));
  const size = parseInt(tocTar.subarray(124, 136).toString('latin1'), 8);
  const toc = JSON.parse(tocTar.subarray(512, 512 + size).toString()) as { entries: TocEntry[] };
  return { tocOffset, entries: toc.entries };
}

/** The landmark's offset: the end of the range the snapshotter prefetches (undefined without one). */
export function landmarkOffset(entries: readonly TocEntry[]): number | undefined {
  return entries.find((e) => e.name === '.prefetch.landmark')?.offset;
}
