/**
 * Strict decoding of tar header blocks, for archives that may be hostile: a conda package (the
 * materializer, `@prebuilt/conda`), a base image's layer pulled from a registry (the eStargz and
 * zstd:chunked converter, `@prebuilt/oci`). ustar and GNU headers, octal or base-256 numbers,
 * the header checksum; a field that does not check out is a {@link TarFormatError} naming the
 * archive, never NaN or a guess. GNU long names and pax records: tar-extended-headers.ts.
 *
 * On the materializer's hot path (every file of every package): numbers and the magic are read
 * byte by byte, with no string made unless a field is wrong.
 */
import { TarFormatError } from '../errors.js';

/** A tar block: every header, and the padding of every member. */
export const TAR_BLOCK = 512;

/** The zero bytes after a body of `size` bytes, up to the next block: a header or the end-of-archive blocks start there. */
export function tarPadding(size: number): number {
  return (TAR_BLOCK - (size % TAR_BLOCK)) % TAR_BLOCK;
}

/** A header block's fields as the block states them (the extended headers before it not applied). */
export interface TarHeader {
  /** The entry's name, a ustar header's prefix joined to it. */
  name: string;
  mode: number;
  /** The member's size (a pax `size` replaces it: TarExtendedHeaders.apply). */
  size: number;
  /** The type flag's byte (`0x30` '0' a file, `0x35` '5' a directory, `0x78` 'x' a pax header …; 0 an old file). */
  typeflag: number;
  linkname: string;
}

/** Byte offsets and lengths of the header fields a reader may decode beyond {@link TarHeader}'s. */
export const TAR_FIELDS = {
  uid: [108, 8],
  gid: [116, 8],
  mtime: [136, 12],
  uname: [265, 32],
  gname: [297, 32],
  devmajor: [329, 8],
  devminor: [337, 8],
} as const satisfies Record<string, readonly [number, number]>;

/** Whitespace String.prototype.trim removes, in latin1: tab to carriage return, space, no-break space. */
const isBlank = (byte: number): boolean => byte === 0x20 || (byte >= 0x09 && byte <= 0x0d) || byte === 0xa0;

/** A base-256 number (GNU, for values octal cannot hold): the high bit of the first byte set. */
function base256(block: Buffer, at: number, length: number, label: string): number {
  if (block[at] === 0xff) throw new TarFormatError(label, 'a negative base-256 number');
  let value = block[at]! & 0x7f;
  for (let i = at + 1; i < at + length; i++) value = value * 256 + block[i]!;
  if (!Number.isSafeInteger(value)) throw new TarFormatError(label, 'a base-256 number too large');
  return value;
}

/**
 * A numeric header field: octal digits (up to the first NUL, blanks around them ignored; an empty
 * field is 0), or base-256 when its first byte has the high bit set. Anything else fails.
 */
export function tarNumber(block: Buffer, at: number, length: number, label: string): number {
  if (block[at]! & 0x80) return base256(block, at, length, label);
  let end = at;
  while (end < at + length && block[end] !== 0) end++;
  let start = at;
  while (start < end && isBlank(block[start]!)) start++;
  while (end > start && isBlank(block[end - 1]!)) end--;
  let value = 0;
  for (let i = start; i < end; i++) {
    const digit = block[i]! - 0x30;
    if (digit < 0 || digit > 7) throw new TarFormatError(label, `'${block.toString('latin1', start, end)}' is not an octal number`);
    value = value * 8 + digit;
  }
  return value;
}

/** A NUL-terminated text field (UTF-8), `length` bytes at most. */
export function tarText(block: Buffer, at: number, length: number): string {
  if (block[at] === 0) return '';
  const end = block.indexOf(0, at);
  return block.toString('utf8', at, end === -1 || end > at + length ? at + length : end);
}

/** The checksum field's bytes count as spaces. */
const CHECKSUM_AT = 148;
const CHECKSUM_END = 156;

/** The block's byte sums, unsigned and signed (old tars), its checksum field counted as spaces. */
function blockSums(block: Uint8Array): { unsigned: number; signed: number } {
  let unsigned = 8 * 0x20;
  let high = 0;
  for (let i = 0; i < CHECKSUM_AT; i++) {
    const byte = block[i]!;
    unsigned += byte;
    high += byte >> 7;
  }
  for (let i = CHECKSUM_END; i < TAR_BLOCK; i++) {
    const byte = block[i]!;
    unsigned += byte;
    high += byte >> 7;
  }
  return { unsigned, signed: unsigned - 256 * high };
}

/** Sets a header block's checksum field (six octal digits, NUL, space) from its bytes: for a writer, or after an edit. */
export function sealTarHeader(block: Buffer): Buffer {
  block.write(`${blockSums(block).unsigned.toString(8).padStart(6, '0')}\0 `, CHECKSUM_AT, 'latin1');
  return block;
}

/** `ustar\0` (POSIX) or `ustar  \0` (GNU) at 257; neither is undefined. */
function magic(block: Uint8Array): 'ustar' | 'gnu' | undefined {
  if (block[257] !== 0x75 || block[258] !== 0x73 || block[259] !== 0x74 || block[260] !== 0x61 || block[261] !== 0x72) return undefined;
  if (block[262] === 0) return 'ustar';
  return block[262] === 0x20 && block[263] === 0x20 && block[264] === 0 ? 'gnu' : undefined;
}

/**
 * The header in a 512-byte `block` (at byte `offset` of the archive, for messages), or undefined
 * for a block of zeros (end-of-archive). Checks the checksum (unsigned or signed sum) and the
 * ustar/GNU magic; a ustar header's prefix is joined to its name.
 */
export function decodeTarHeader(block: Buffer, label: string, offset: number): TarHeader | undefined {
  const { unsigned, signed } = blockSums(block);
  if (unsigned === 8 * 0x20) return undefined;
  const checksum = tarNumber(block, CHECKSUM_AT, 8, label);
  if (checksum !== unsigned && checksum !== signed) throw new TarFormatError(label, `a header checksum does not match at byte ${offset}`);
  const format = magic(block);
  if (!format) throw new TarFormatError(label, `a header is neither ustar nor GNU at byte ${offset}`);
  let name = tarText(block, 0, 100);
  if (format === 'ustar' && block[345] !== 0) name = `${tarText(block, 345, 155)}/${name}`;
  return { name, mode: tarNumber(block, 100, 8, label), size: tarNumber(block, 124, 12, label), typeflag: block[156]!, linkname: tarText(block, 157, 100) };
}
