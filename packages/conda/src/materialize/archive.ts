import zlib from 'node:zlib';
import { PrebuiltError, TarFormatError, errorMessage, tarStreamEntries, type TarHeader } from '@prebuilt/core/extraction';
import { ArchiveError } from './errors.js';

/**
 * Streaming reading of the tar archives inside conda packages. Nothing is held whole in memory:
 * the decompressed stream is parsed as it arrives, by core's strict reader (tarStreamEntries: the
 * decoder the in-memory reader, tar-buffer.ts, uses too, so a package gets the same verdict on
 * either path), and each entry's content is handed to the caller as the stream's chunks, which it
 * must consume before the next entry comes.
 */

/** The kind of a tar entry a package may contain. */
export type TarEntryType = 'file' | 'directory' | 'symlink' | 'hardlink';

export interface TarEntryHeader {
  /** The entry's path as stored (not yet checked: see safeRelativePath). */
  path: string;
  type: TarEntryType;
  /** Permission bits (0o7777). */
  mode: number;
  /** Content size as the header declares it (0 for non-files). */
  size: number;
  /** Target of a symlink or hardlink. */
  linkTarget?: string;
}

/** Type flags a package may contain; `0` is an old tar's file. */
const ENTRY_TYPES: Record<number, TarEntryType> = { 0: 'file', 0x30: 'file', 0x37: 'file', 0x31: 'hardlink', 0x32: 'symlink', 0x35: 'directory' };
/** Names of the type flags a package may not contain, for the message. */
const REFUSED_TYPES: Record<number, string> = { 0x33: 'character-device', 0x34: 'block-device', 0x36: 'fifo' };

/**
 * The entry a decoded header (extended headers applied) describes, as the package readers hand it
 * on; an old tar's directory (a file named with a trailing slash) is a directory; any kind a
 * package may not contain fails.
 */
export function packageEntryHeader(header: TarHeader, label: string): TarEntryHeader {
  const flag = header.typeflag;
  const type = (flag === 0 || flag === 0x30) && header.name.endsWith('/') ? 'directory' : ENTRY_TYPES[flag];
  if (type === undefined) {
    const name = REFUSED_TYPES[flag] ?? `unknown (${String.fromCharCode(flag)})`;
    throw new ArchiveError(`${label} contains '${header.name}' of type ${name}, which a package may not contain.`, label);
  }
  return {
    path: header.name,
    type,
    mode: header.mode & 0o7777,
    size: type === 'file' ? header.size : 0,
    ...(type === 'symlink' || type === 'hardlink' ? { linkTarget: header.linkname } : {}),
  };
}

/**
 * What a package reader throws for an error while reading a tar: core's TarFormatError (which names
 * the package already) as an ArchiveError, typed errors and the file system's own (a full disk while
 * writing an entry) unchanged, anything else as an ArchiveError naming the package.
 */
export function tarReadError(error: unknown, label: string): unknown {
  if (error instanceof TarFormatError) return new ArchiveError(error.message, label, { cause: error });
  if (PrebuiltError.isInstance(error) || (error as NodeJS.ErrnoException | undefined)?.syscall !== undefined) return error;
  return new ArchiveError(`${label} is corrupt or truncated: reading its tar failed (${errorMessage(error)}).`, label, { cause: error });
}

const NO_CONTENT: AsyncIterable<Buffer> = { [Symbol.asyncIterator]: async function* () {} };

/**
 * Reads a tar from a stream of decompressed chunks, calling `onEntry` for each entry with its
 * content (the stream's chunks, exactly the bytes its header announces; nothing for non-files), one
 * entry at a time: the source is read only as fast as `onEntry` reads. Whatever `onEntry` leaves
 * unread is skipped. Errors of the source (a bound passed, a corrupt stream) and of `onEntry` end
 * the reading and the source; they are thrown as {@link tarReadError} says.
 */
export async function readTarStream(
  chunks: AsyncIterable<Buffer>,
  label: string,
  onEntry: (header: TarEntryHeader, content: AsyncIterable<Buffer>) => Promise<void>,
): Promise<number> {
  let count = 0;
  try {
    for await (const entry of tarStreamEntries(chunks, label, { mergeGlobal: true })) {
      const header = packageEntryHeader(entry.header, label);
      count += 1;
      await onEntry(header, header.type === 'file' ? entry.body : NO_CONTENT);
    }
  } catch (error) {
    throw tarReadError(error, label);
  }
  return count;
}

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/** Node's native CRC-32 (zlib.crc32, Node ≥ 20.15): ~20× the JS loop below over a package's bytes. */
const nativeCrc32 = (zlib as { crc32?: (data: Uint8Array, value?: number) => number }).crc32;

/** Continues a CRC-32 (IEEE, as zip uses) over `data`; start with 0. */
export function crc32Update(crc: number, data: Uint8Array): number {
  if (nativeCrc32) return nativeCrc32(data, crc);
  return crc32UpdateJs(crc, data);
}

/** The same in JS, for Node versions without zlib.crc32. */
export function crc32UpdateJs(crc: number, data: Uint8Array): number {
  let c = (crc ^ 0xffffffff) >>> 0;
  for (let i = 0; i < data.length; i++) c = CRC_TABLE[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** CRC-32 (IEEE), as zip uses. */
export function crc32(data: Uint8Array): number {
  return crc32Update(0, data);
}
