import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { createInflateRaw } from 'node:zlib';
import { errorMessage } from '@prebuilt/core/extraction';
import { crc32Update } from './archive.js';
import { ArchiveError } from './errors.js';
import { expansionError, type ExpansionBudget } from './expansion-budget.js';

/** One member of a zip file, located but not read. */
export interface ZipMember {
  name: string;
  type: 'file' | 'directory' | 'symlink';
  /** Permission bits (0o7777). */
  mode: number;
  method: number;
  crc: number;
  compressedSize: number;
  /** Uncompressed size as the central directory declares it. */
  size: number;
  /** Offset of the member's data in the file. */
  start: number;
}

/**
 * Bytes 0x80–0xff in IBM code page 437, the encoding of a zip member name without the UTF-8 flag
 * (general-purpose bit 11) as Python's zipfile — hence pip — decodes it; 0x00–0x7f are ASCII.
 */
const CP437_HIGH =
  '\u00c7\u00fc\u00e9\u00e2\u00e4\u00e0\u00e5\u00e7\u00ea\u00eb\u00e8\u00ef\u00ee\u00ec\u00c4\u00c5' +
  '\u00c9\u00e6\u00c6\u00f4\u00f6\u00f2\u00fb\u00f9\u00ff\u00d6\u00dc\u00a2\u00a3\u00a5\u20a7\u0192' +
  '\u00e1\u00ed\u00f3\u00fa\u00f1\u00d1\u00aa\u00ba\u00bf\u2310\u00ac\u00bd\u00bc\u00a1\u00ab\u00bb' +
  '\u2591\u2592\u2593\u2502\u2524\u2561\u2562\u2556\u2555\u2563\u2551\u2557\u255d\u255c\u255b\u2510' +
  '\u2514\u2534\u252c\u251c\u2500\u253c\u255e\u255f\u255a\u2554\u2569\u2566\u2560\u2550\u256c\u2567' +
  '\u2568\u2564\u2565\u2559\u2558\u2552\u2553\u256b\u256a\u2518\u250c\u2588\u2584\u258c\u2590\u2580' +
  '\u03b1\u00df\u0393\u03c0\u03a3\u03c3\u00b5\u03c4\u03a6\u0398\u03a9\u03b4\u221e\u03c6\u03b5\u2229' +
  '\u2261\u00b1\u2265\u2264\u2320\u2321\u00f7\u2248\u00b0\u2219\u00b7\u221a\u207f\u00b2\u25a0\u00a0';

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * A member name as Python's zipfile reads it: UTF-8 when flag bit 11 says so, else code page 437.
 * Undefined for a name flagged UTF-8 that is not (Python's zipfile refuses to open such a zip).
 */
function zipMemberName(bytes: Buffer, utf8: boolean): string | undefined {
  if (utf8) {
    try {
      return strictUtf8.decode(bytes);
    } catch {
      return undefined;
    }
  }
  let name = '';
  for (const byte of bytes) name += byte < 0x80 ? String.fromCharCode(byte) : CP437_HIGH[byte - 0x80]!;
  return name;
}

const EOCD = 0x06054b50;
const CENTRAL = 0x02014b50;
const LOCAL = 0x04034b50;

/**
 * The members of a zip file (wheels and `.conda` files), from its central directory, without
 * reading their data. Refused: encryption, zip64, methods other than stored and deflate, a stored
 * member whose sizes differ, data outside the file, members whose data overlap (the trick of
 * "overlapping" zip bombs, where every member re-reads the same compressed bytes), and a name
 * marked UTF-8 that is not. Names are read as pip reads them (see {@link zipMemberName}).
 */
export async function readZipDirectory(file: string, label: string): Promise<ZipMember[]> {
  const fail = (why: string): never => {
    throw new ArchiveError(`${label} is corrupt or truncated: ${why}.`, label);
  };
  const handle = await open(file, 'r');
  try {
    const fileSize = (await handle.stat()).size;
    const tailLength = Math.min(fileSize, 22 + 0xffff);
    const tail = Buffer.alloc(tailLength);
    await handle.read(tail, 0, tailLength, fileSize - tailLength);
    let eocd = -1;
    for (let i = tail.length - 22; i >= 0; i--) {
      if (tail.readUInt32LE(i) === EOCD) {
        eocd = i;
        break;
      }
    }
    if (eocd < 0) fail('no zip end-of-central-directory record');
    const count = tail.readUInt16LE(eocd + 10);
    const cdSize = tail.readUInt32LE(eocd + 12);
    const cdOffset = tail.readUInt32LE(eocd + 16);
    if (count === 0xffff || cdOffset === 0xffffffff) fail('zip64 archives are not supported');
    if (cdOffset + cdSize > fileSize - tailLength + eocd) fail('the central directory lies outside the file');
    const cd = Buffer.alloc(cdSize);
    await handle.read(cd, 0, cdSize, cdOffset);

    const members: ZipMember[] = [];
    const local = Buffer.alloc(30);
    let p = 0;
    for (let n = 0; n < count; n++) {
      if (p + 46 > cd.length || cd.readUInt32LE(p) !== CENTRAL) fail(`central directory entry ${n} is damaged`);
      const flags = cd.readUInt16LE(p + 8);
      const method = cd.readUInt16LE(p + 10);
      const crc = cd.readUInt32LE(p + 16);
      const compressedSize = cd.readUInt32LE(p + 20);
      const size = cd.readUInt32LE(p + 24);
      const nameLength = cd.readUInt16LE(p + 28);
      const extraLength = cd.readUInt16LE(p + 30);
      const commentLength = cd.readUInt16LE(p + 32);
      const madeBy = cd.readUInt16LE(p + 4) >> 8;
      const external = cd.readUInt32LE(p + 38);
      const localOffset = cd.readUInt32LE(p + 42);
      if (p + 46 + nameLength > cd.length) fail(`central directory entry ${n} is damaged`);
      const name = zipMemberName(cd.subarray(p + 46, p + 46 + nameLength), (flags & 0x800) !== 0) ?? fail(`central directory entry ${n} has a name marked UTF-8 that is not valid UTF-8`);
      p += 46 + nameLength + extraLength + commentLength;
      if (flags & 0x1) fail(`'${name}' is encrypted`);
      if (method !== 0 && method !== 8) fail(`'${name}' uses compression method ${method}; only stored and deflate are supported`);
      if (method === 0 && compressedSize !== size) fail(`'${name}' is stored but declares ${size} bytes for ${compressedSize} stored ones`);
      if (localOffset + 30 > cdOffset) fail(`the local header of '${name}' is missing`);
      await handle.read(local, 0, 30, localOffset);
      if (local.readUInt32LE(0) !== LOCAL) fail(`the local header of '${name}' is missing`);
      const start = localOffset + 30 + local.readUInt16LE(26) + local.readUInt16LE(28);
      if (start + compressedSize > cdOffset) fail(`'${name}' extends past the end of its data`);
      const unixMode = madeBy === 3 ? (external >>> 16) & 0xffff : 0;
      const isDir = name.endsWith('/');
      const type = isDir ? 'directory' : (unixMode & 0o170000) === 0o120000 ? 'symlink' : 'file';
      members.push({ name, type, mode: type === 'symlink' ? 0o777 : unixMode & 0o7777 || (isDir ? 0o755 : 0o644), method, crc, compressedSize, size, start });
    }
    const byStart = [...members].filter((m) => m.compressedSize > 0).sort((a, b) => a.start - b.start);
    for (let i = 1; i < byStart.length; i++) {
      const before = byStart[i - 1]!;
      if (before.start + before.compressedSize > byStart[i]!.start) fail(`the data of '${before.name}' and '${byStart[i]!.name}' overlap`);
    }
    return members;
  } finally {
    await handle.close();
  }
}

/** How much of a stored member one read takes, by default. */
const STORED_READ = 1024 * 1024;

/**
 * Streams one member's content: inflated as it is read (16 KiB at a time), or a stored one
 * `storedRead` bytes at a time, never more than its declared size (`limit`, at most the central
 * directory's), counted against `budget`, CRC-checked at the end.
 */
export async function* zipMemberChunks(file: string, member: ZipMember, label: string, budget: ExpansionBudget, limit: number = member.size, storedRead: number = STORED_READ): AsyncGenerator<Buffer> {
  budget.member = member.name;
  if (member.compressedSize === 0) {
    if (member.size !== 0) throw new ArchiveError(`${label} is corrupt or truncated: '${member.name}' has no data for its ${member.size} bytes.`, label);
    return;
  }
  // A stored member is read `storedRead` bytes at a time (its size is its declared size); a deflated
  // one 16 KiB at a time, so the inflater's output per read stays small.
  const highWaterMark = member.method === 8 ? 16 * 1024 : Math.max(1, Math.min(storedRead, member.compressedSize));
  const raw = createReadStream(file, { start: member.start, end: member.start + member.compressedSize - 1, highWaterMark });
  const inflate = member.method === 8 ? createInflateRaw({ chunkSize: 16 * 1024 }) : undefined;
  // pipe() does not forward errors: a read error ends the inflater with it (never an unhandled 'error').
  if (inflate) raw.on('error', (error) => inflate.destroy(error));
  const source = inflate ? raw.pipe(inflate) : raw;
  let total = 0;
  let crc = 0;
  try {
    for await (const chunk of source as AsyncIterable<Buffer>) {
      total += chunk.length;
      if (total > limit) throw expansionError(label, member.name, `'${member.name}' declares ${limit} bytes`);
      budget.add(chunk.length);
      crc = crc32Update(crc, chunk);
      yield chunk;
    }
  } catch (error) {
    if (error instanceof ArchiveError) throw error;
    throw new ArchiveError(`${label} is corrupt or truncated: '${member.name}' cannot be inflated (${errorMessage(error)}).`, label, { cause: error });
  } finally {
    raw.destroy();
    if (source !== raw) (source as NodeJS.ReadableStream & { destroy(): void }).destroy();
  }
  if (total !== member.size || crc !== member.crc) throw new ArchiveError(`${label} is corrupt or truncated: '${member.name}' fails its CRC check.`, label);
}

/** A member read whole, for small metadata (RECORD, WHEEL, entry points, a symlink's target): at most `max` bytes. */
export async function readZipMember(file: string, member: ZipMember, label: string, budget: ExpansionBudget, max: number): Promise<Buffer> {
  if (member.size > max) throw new ArchiveError(`${label} has '${member.name}' of ${member.size} bytes, more than the ${max} such a member may have; refusing to read it.`, label);
  const chunks: Buffer[] = [];
  for await (const chunk of zipMemberChunks(file, member, label, budget)) chunks.push(chunk);
  return Buffer.concat(chunks);
}
