import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import { extract, type Header } from 'tar-stream';
import { PrebuiltError, errorMessage } from '@prebuilt/core';
import { ArchiveError } from './errors.js';

/**
 * Streaming reading of the tar archives inside conda packages. Nothing is held whole in memory:
 * the decompressed stream is parsed as it arrives and each entry's content is handed to the
 * caller as a stream, which must consume it before the next entry comes.
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

function entryType(header: Header, label: string): TarEntryType {
  return tarEntryType(header.type ?? 'unknown', header.name, label);
}

/** The kind of an entry from its type's name (tar-stream's names); any other kind a package may not contain fails. */
export function tarEntryType(type: string, name: string, label: string): TarEntryType {
  switch (type) {
    case 'file':
    case 'contiguous-file':
      return 'file';
    case 'directory':
      return 'directory';
    case 'symlink':
      return 'symlink';
    case 'link':
      return 'hardlink';
    default:
      throw new ArchiveError(`${label} contains '${name}' of type ${type}, which a package may not contain.`, label);
  }
}

/**
 * Reads a tar from a stream of decompressed chunks, calling `onEntry` for each entry with its
 * content stream (empty for non-files), one entry at a time. Errors of the source (a bound passed,
 * a corrupt stream) and of `onEntry` end the reading; anything that is not already an ArchiveError
 * becomes one naming the package.
 */
export async function readTarStream(
  chunks: AsyncIterable<Buffer>,
  label: string,
  onEntry: (header: TarEntryHeader, content: AsyncIterable<Buffer>) => Promise<void>,
): Promise<number> {
  const reader = extract();
  // Settled at once (never an unhandled rejection): its error is looked at after the entries.
  const feeding = pipeline(Readable.from(chunks, { objectMode: false }), reader).then(
    () => undefined,
    (error: unknown) => error,
  );
  let count = 0;
  let failure: unknown;
  try {
    for await (const entry of reader) {
      const { header } = entry;
      const type = entryType(header, label);
      count += 1;
      await onEntry(
        {
          path: header.name,
          type,
          mode: (header.mode ?? 0o644) & 0o7777,
          size: type === 'file' ? header.size ?? 0 : 0,
          ...(type === 'symlink' || type === 'hardlink' ? { linkTarget: header.linkname ?? '' } : {}),
        },
        entry as AsyncIterable<Buffer>,
      );
      // Whatever onEntry left unread is skipped.
      entry.resume();
    }
  } catch (error) {
    failure = error;
    reader.destroy();
  }
  const fed = await feeding;
  // The source's own error (a bound passed) is the cause of everything else: report it first.
  const first = fed instanceof ArchiveError ? fed : failure ?? fed;
  if (first !== undefined) {
    // Typed errors, and the file system's own (a full disk while writing an entry), pass unchanged.
    if (PrebuiltError.isInstance(first) || (first as NodeJS.ErrnoException | undefined)?.syscall !== undefined) throw first;
    throw new ArchiveError(`${label} is corrupt or truncated: reading its tar failed (${errorMessage(first)}).`, label, { cause: first });
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
