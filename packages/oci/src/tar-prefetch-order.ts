import { TAR_BLOCK, TarExtendedHeaders, TarFormatError, decodeTarHeader, isExtendedHeader, tarPadding } from '@prebuilt/core/backend';
import { tarFileHeader } from './estargz.js';
import { NO_PREFETCH_LANDMARK, PREFETCH_LANDMARK } from './estargz-prefetch.js';
import { parentDirs } from './layer.js';

/**
 * An existing layer's tar (a base image's) put in eStargz prefetch order: the entries a recorded
 * profile names first (each after its parent directories, a hard link after its target), then the
 * prefetch landmark, then every other entry in its original order. Entries move whole, with their
 * pax and GNU long-name headers, so each keeps its bytes; the tar stays a valid layer of the same
 * files. The eStargz writer then compresses it (estargz-base.ts).
 */

/** One entry of a tar as it lies in the archive: its meta headers, header, payload and padding. */
export interface TarRecord {
  /** The entry's path, without a leading `./` or `/` or a trailing `/`. */
  path: string;
  /** The ustar type flag (`0` file, `1` hard link, `5` directory, `g` a pax global header …). */
  type: string;
  /** A link's target, cleaned like `path`. */
  linkPath: string;
  bytes: Buffer;
}

const clean = (name: string): string => name.replace(/^(\.?\/)+/, '').replace(/\/+$/, '');

/**
 * The records of an uncompressed tar, up to its end-of-archive blocks, read by core's strict tar
 * reader: a header, number or pax record that does not check out, a member running past the end,
 * a tar without its end-of-archive blocks, fail with a TarFormatError naming `label`.
 */
export function tarRecords(tar: Buffer, label = 'the layer'): TarRecord[] {
  const records: TarRecord[] = [];
  const extended = new TarExtendedHeaders(label);
  let at = 0;
  let start = 0;
  while (at + TAR_BLOCK <= tar.length) {
    const header = decodeTarHeader(tar.subarray(at, at + TAR_BLOCK), label, at);
    if (!header) return records;
    const type = String.fromCharCode(header.typeflag);
    const isMeta = isExtendedHeader(header.typeflag) && type !== 'g';
    const ownSize = header.size; // its own body's, before apply() puts a pending pax size in
    if (isMeta) extended.checkSize(ownSize);
    else extended.apply(header);
    // A pax global header is a record of its own; it takes the extended headers before it (as Go's archive/tar), not their size.
    const bodySize = type === 'g' ? ownSize : header.size;
    const end = at + TAR_BLOCK + bodySize + tarPadding(bodySize);
    if (end > tar.length) throw new TarFormatError(label, `'${header.name}' runs past the end of the archive`);
    if (isMeta || type === 'g') extended.read(header.typeflag, tar.subarray(at + TAR_BLOCK, at + TAR_BLOCK + bodySize));
    at = end;
    if (isMeta) continue;
    records.push({ path: clean(header.name), type, linkPath: clean(header.linkname), bytes: tar.subarray(start, at) });
    start = at;
  }
  throw new TarFormatError(label, at === tar.length ? 'it ends without its end-of-archive blocks' : 'it ends inside a header block');
}

/** The 1-byte landmark file's record (mode 0644, owner root, mtime 0). */
function landmarkRecord(name: string): Buffer {
  const payload = Buffer.alloc(TAR_BLOCK);
  payload[0] = 0x0f;
  return Buffer.concat([tarFileHeader(name, 1), payload]);
}

/**
 * The tar's bytes in prefetch order for the profile's `paths` (image paths, with or without the
 * leading `/`; paths the tar lacks are ignored): pax global headers, the named entries, the
 * landmark (`.no.prefetch.landmark` when the tar has none of them), the rest, the end-of-archive
 * blocks. The same tar and paths give the same bytes.
 */
export function prefetchTarOrder(tar: Buffer, paths: readonly string[], label = 'the layer'): Buffer[] {
  const records = tarRecords(tar, label);
  // A path the tar holds more than once moves with every occurrence, in order (the last one wins on extraction).
  const byPath = new Map<string, number[]>();
  records.forEach((r, i) => byPath.set(r.path, [...(byPath.get(r.path) ?? []), i]));
  const moved = new Set<number>();
  const first: number[] = [];
  const move = (i: number): void => {
    if (moved.has(i) || records[i]!.type === 'g') return;
    const record = records[i]!;
    moved.add(i);
    for (const dir of parentDirs(record.path)) for (const d of byPath.get(dir) ?? []) if (records[d]!.type === '5') move(d);
    if (record.type === '1') for (const t of byPath.get(record.linkPath) ?? []) if (t < i) move(t);
    first.push(i);
  };
  for (const path of paths) for (const i of byPath.get(clean(path)) ?? []) move(i);
  const landmark = first.some((i) => records[i]!.type !== '5') ? PREFETCH_LANDMARK : NO_PREFETCH_LANDMARK;
  const globals = records.filter((r) => r.type === 'g').map((r) => r.bytes);
  const rest = records.filter((r, i) => r.type !== 'g' && !moved.has(i)).map((r) => r.bytes);
  return [...globals, ...first.map((i) => records[i]!.bytes), landmarkRecord(landmark), ...rest, Buffer.alloc(1024)];
}
