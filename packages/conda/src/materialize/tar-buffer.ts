/**
 * Reading a tar held whole in memory (a package body zstd decompressed natively in one call:
 * zstd-stream.ts), without streams: each member's content is handed on as a view of the buffer —
 * no per-member stream, promise chain or copy, which on a package of thousands of small files cost
 * more than writing them. The format read is the one readTarStream (archive.ts, tar-stream) reads —
 * ustar and GNU headers, checksums, base-256 sizes, pax (per-file and global) and GNU long names —
 * and it gives `onEntry` the same headers. A header that does not check out, a member that runs past
 * the end, an entry type a package may not contain, all fail naming the package. The headers are
 * decoded by core's strict tar reader (decodeTarHeader, TarExtendedHeaders), shared with the oci
 * service's base-layer converter.
 */
import { PrebuiltError, TAR_BLOCK, TarExtendedHeaders, TarFormatError, decodeTarHeader, errorMessage, isExtendedHeader, type TarHeader } from '@prebuilt/core';
import { tarEntryType, type TarEntryHeader } from './archive.js';
import { ArchiveError } from './errors.js';

const corrupt = (label: string, why: string): ArchiveError => new ArchiveError(`${label} is corrupt or truncated: reading its tar failed (${why}).`, label);

/** The header at `at`, strictly decoded by core (an old tar's directory: a regular entry named with a trailing slash); undefined for a zero block. */
function entryHeader(data: Buffer, at: number, label: string): TarHeader | undefined {
  const header = decodeTarHeader(data.subarray(at, at + TAR_BLOCK), label, at);
  if (header && (header.typeflag === 0x30 || header.typeflag === 0) && header.name.endsWith('/')) header.typeflag = 0x35;
  return header;
}

const TYPE_NAMES: Record<number, string> = {
  0: 'file', 0x30: 'file', 0x31: 'link', 0x32: 'symlink', 0x33: 'character-device', 0x34: 'block-device',
  0x35: 'directory', 0x36: 'fifo', 0x37: 'contiguous-file',
};

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
  try {
    while (at + TAR_BLOCK <= data.length) {
      const header = entryHeader(data, at, label);
      at += TAR_BLOCK;
      if (!header) continue;
      const type = header.typeflag;
      const long = isExtendedHeader(type);
      // A pax path, link path or size replaces the header's (a size: files over 8 GiB; the member's data is that long).
      if (long) extended.checkSize(header.size);
      else extended.apply(header);
      const size = header.size;
      const end = at + size;
      if (end > data.length) throw corrupt(label, `'${header.name}' runs past the end of the archive`);
      const body = data.subarray(at, end);
      const start = at;
      at += Math.ceil(size / TAR_BLOCK) * TAR_BLOCK;
      if (long) {
        extended.read(type, body);
        continue;
      }
      const entryType = tarEntryType(TYPE_NAMES[type] ?? `unknown (${String.fromCharCode(type)})`, header.name, label);
      entries += 1;
      countTo(start);
      await onEntry(
        { path: header.name, type: entryType, mode: header.mode & 0o7777, size: entryType === 'file' ? size : 0, ...(entryType === 'symlink' || entryType === 'hardlink' ? { linkTarget: header.linkname } : {}) },
        entryType === 'file' && body.length > 0 ? [body] : [],
      );
      countTo(Math.min(at, data.length));
    }
    countTo(data.length);
    if (at !== data.length) throw corrupt(label, 'it ends inside a header block');
  } catch (error) {
    // Core's tar reader names the package already; the materializer's callers expect an ArchiveError.
    if (error instanceof TarFormatError) throw new ArchiveError(error.message, label, { cause: error });
    if (PrebuiltError.isInstance(error) || (error as NodeJS.ErrnoException | undefined)?.syscall !== undefined) throw error;
    throw new ArchiveError(`${label} is corrupt or truncated: reading its tar failed (${errorMessage(error)}).`, label, { cause: error });
  }
  return entries;
}
