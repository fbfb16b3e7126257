/**
 * Reading a tar held whole in memory (a package body zstd decompressed natively in one call:
 * zstd-stream.ts), without streams: each member's content is handed on as a view of the buffer —
 * no per-member stream, promise chain or copy, which on a package of thousands of small files cost
 * more than writing them. It reads what readTarStream (archive.ts) reads, with the same strict
 * decoder of core (decodeTarHeader, TarExtendedHeaders; shared with the oci service's base-layer
 * converter) — ustar and GNU headers, checksums, base-256 sizes, pax (per-file and global) and GNU
 * long names — and gives `onEntry` the same headers (packageEntryHeader). A header that does not
 * check out, a member that runs past the end, an entry type a package may not contain, all fail
 * naming the package, as they do on the streaming path.
 */
import { TAR_BLOCK, TarExtendedHeaders, TarFormatError, afterZeroBlock, decodeTarHeader, isExtendedHeader, tarPadding } from '@prebuilt/core/extraction';
import { packageEntryHeader, tarReadError, type TarEntryHeader } from './archive.js';


/**
 * Reads the tar in `data`, calling `onEntry` for each entry, one at a time, with its content (the
 * member's bytes as one view of `data`; nothing for non-files). Returns the number of entries.
 * Errors of `onEntry` that are typed or the file system's pass unchanged; any other becomes an
 * ArchiveError naming the package, as readTarStream does.
 */
export async function readTarBuffer(
  data: Buffer,
  label: string,
  onEntry: (header: TarEntryHeader, content: Iterable<Buffer>) => Promise<void>,
  count: (bytes: number) => void = () => undefined,
): Promise<number> {
  // `count` is told the bytes read as a stream reader would have read them: an entry's headers
  // before it is handed on, its content once the handler is done with it (so a handler that checks
  // what is left of a budget against the size a header announces sees the same figures).
  let counted = 0;
  const countTo = (offset: number): void => {
    if (offset > counted) count(offset - counted);
    counted = Math.max(counted, offset);
  };
  let at = 0;
  let entries = 0;
  const extended = new TarExtendedHeaders(label, { mergeGlobal: true });
  let zeroBlock = false;
  try {
    while (at + TAR_BLOCK <= data.length) {
      const header = decodeTarHeader(data.subarray(at, at + TAR_BLOCK), label, at);
      at += TAR_BLOCK;
      if (!header) {
        extended.checkNonePending();
        zeroBlock = true;
        continue;
      }
      if (zeroBlock) throw afterZeroBlock(label, at - TAR_BLOCK);
      const type = header.typeflag;
      const long = isExtendedHeader(type);
      // A pax path, link path or size replaces the header's (a size: files over 8 GiB; the member's data is that long).
      if (long) extended.checkSize(header.size);
      else extended.apply(header);
      const size = header.size;
      const end = at + size;
      if (end > data.length) throw new TarFormatError(label, `'${header.name}' runs past the end of the archive`);
      const body = data.subarray(at, end);
      const start = at;
      at += size + tarPadding(size);
      if (long) {
        extended.read(type, body);
        continue;
      }
      const entry = packageEntryHeader(header, label);
      entries += 1;
      countTo(start);
      await onEntry(entry, entry.type === 'file' && body.length > 0 ? [body] : []);
      countTo(Math.min(at, data.length));
    }
    countTo(data.length);
    if (at !== data.length) throw new TarFormatError(label, 'it ends inside a header block');
    extended.checkNonePending();
  } catch (error) {
    throw tarReadError(error, label);
  }
  return entries;
}
