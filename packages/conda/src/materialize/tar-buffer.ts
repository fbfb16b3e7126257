/**
 * Reading a tar held whole in memory (a package body zstd decompressed natively in one call:
 * zstd-stream.ts), without streams: each member's content is handed on as a view of the buffer —
 * no per-member stream, promise chain or copy, which on a package of thousands of small files cost
 * more than writing them. The format read is the one readTarStream (archive.ts, tar-stream) reads —
 * ustar and GNU headers, checksums, base-256 sizes, pax (per-file and global) and GNU long names —
 * and it gives `onEntry` the same headers. A header that does not check out, a member that runs past
 * the end, an entry type a package may not contain, all fail naming the package.
 */
import { PrebuiltError, errorMessage } from '@prebuilt/core';
import { tarEntryType, type TarEntryHeader } from './archive.js';
import { ArchiveError } from './errors.js';

const BLOCK = 512;
/** The largest pax or GNU long-name header read (as tar-stream). */
export const MAX_LONG_HEADER = 1024 * 1024;

/** A header's raw fields. */
interface RawHeader {
  name: string;
  mode: number;
  size: number;
  typeflag: number;
  linkname: string;
}

const corrupt = (label: string, why: string): ArchiveError => new ArchiveError(`${label} is corrupt or truncated: reading its tar failed (${why}).`, label);

/** A NUL-terminated string field. */
function text(block: Buffer, at: number, length: number): string {
  const end = block.indexOf(0, at);
  return block.toString('utf8', at, end === -1 || end > at + length ? at + length : end);
}

/** An octal numeric field (spaces and NULs around it ignored), or base-256 when its first byte has the high bit set. */
function numeric(block: Buffer, at: number, length: number, label: string): number {
  if (block[at]! & 0x80) {
    if (block[at] === 0xff) throw corrupt(label, 'a negative base-256 number');
    let value = block[at]! & 0x7f;
    for (let i = at + 1; i < at + length; i++) value = value * 256 + block[i]!;
    if (!Number.isSafeInteger(value)) throw corrupt(label, 'a base-256 number too large');
    return value;
  }
  const field = block.toString('latin1', at, at + length).replace(/\0.*$/s, '').trim();
  if (field === '') return 0;
  if (!/^[0-7]+$/.test(field)) throw corrupt(label, `'${field}' is not an octal number`);
  return Number.parseInt(field, 8);
}

/** The header in `block`; undefined for an all-zero block (end-of-archive padding). */
function decodeHeader(block: Buffer, label: string): RawHeader | undefined {
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const byte = i >= 148 && i < 156 ? 32 : block[i]!;
    unsigned += byte;
    signed += byte > 127 ? byte - 256 : byte;
  }
  if (unsigned === 8 * 32) return undefined;
  const checksum = numeric(block, 148, 8, label);
  if (checksum !== unsigned && checksum !== signed) throw corrupt(label, 'a header checksum does not match');
  const ustar = block.toString('latin1', 257, 263) === 'ustar\0';
  const gnu = block.toString('latin1', 257, 265) === 'ustar  \0';
  if (!ustar && !gnu) throw corrupt(label, 'a header is neither ustar nor GNU');
  let name = text(block, 0, 100);
  if (ustar && block[345] !== 0) name = `${text(block, 345, 155)}/${name}`;
  let typeflag = block[156]!;
  // Old tars mark a directory with a trailing slash on a regular entry.
  if ((typeflag === 0x30 || typeflag === 0) && name.endsWith('/')) typeflag = 0x35;
  return { name, mode: numeric(block, 100, 8, label), size: numeric(block, 124, 12, label), typeflag, linkname: text(block, 157, 100) };
}

/** pax records (`<length> <key>=<value>\n`): what they set, up to the first malformed one. */
function decodePax(data: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  let at = 0;
  while (at < data.length) {
    const space = data.indexOf(0x20, at);
    if (space === -1) break;
    const length = Number.parseInt(data.toString('latin1', at, space), 10);
    if (!(length > 0) || at + length > data.length) break;
    const record = data.toString('utf8', space + 1, at + length - 1);
    const eq = record.indexOf('=');
    if (eq === -1) break;
    out[record.slice(0, eq)] = record.slice(eq + 1);
    at += length;
  }
  return out;
}

function paxSize(value: string, label: string): number {
  if (!/^[0-9]+$/.test(value) || !Number.isSafeInteger(Number(value))) throw corrupt(label, `a pax size '${value.slice(0, 40)}'`);
  return Number(value);
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
  let pax: Record<string, string> | undefined;
  let globalPax: Record<string, string> = {};
  let longPath: string | undefined;
  let longLink: string | undefined;
  try {
    while (at + BLOCK <= data.length) {
      const raw = decodeHeader(data.subarray(at, at + BLOCK), label);
      at += BLOCK;
      if (!raw) continue;
      const type = raw.typeflag;
      const long = type === 0x78 || type === 0x67 || type === 0x4c || type === 0x4b;
      // A pax size replaces the header's (files over 8 GiB): the member's data is that long.
      const size = !long && pax?.size !== undefined ? paxSize(pax.size, label) : raw.size;
      const end = at + size;
      if (end > data.length) throw corrupt(label, `'${raw.name}' runs past the end of the archive`);
      const body = data.subarray(at, end);
      const start = at;
      at += Math.ceil(size / BLOCK) * BLOCK;
      if (long) {
        if (raw.size > MAX_LONG_HEADER) throw corrupt(label, `a ${raw.size}-byte long header`);
        if (type === 0x78) pax = { ...globalPax, ...decodePax(body) };
        else if (type === 0x67) globalPax = decodePax(body);
        else if (type === 0x4c) longPath = text(body, 0, body.length);
        else longLink = text(body, 0, body.length);
        continue;
      }
      let name = longPath ?? raw.name;
      let linkname = longLink ?? raw.linkname;
      if (pax?.path) name = pax.path;
      if (pax?.linkpath) linkname = pax.linkpath;
      pax = undefined;
      longPath = undefined;
      longLink = undefined;
      const entryType = tarEntryType(TYPE_NAMES[type] ?? `unknown (${String.fromCharCode(type)})`, name, label);
      entries += 1;
      countTo(start);
      await onEntry(
        { path: name, type: entryType, mode: raw.mode & 0o7777, size: entryType === 'file' ? size : 0, ...(entryType === 'symlink' || entryType === 'hardlink' ? { linkTarget: linkname } : {}) },
        entryType === 'file' && body.length > 0 ? [body] : [],
      );
      countTo(Math.min(at, data.length));
    }
    countTo(data.length);
    if (at !== data.length) throw corrupt(label, 'it ends inside a header block');
  } catch (error) {
    if (PrebuiltError.isInstance(error) || (error as NodeJS.ErrnoException | undefined)?.syscall !== undefined) throw error;
    throw new ArchiveError(`${label} is corrupt or truncated: reading its tar failed (${errorMessage(error)}).`, label, { cause: error });
  }
  return entries;
}
