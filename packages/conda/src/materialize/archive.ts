import { createRequire } from 'node:module';
import { inflateRawSync } from 'node:zlib';
import { decompress as zstdDecompress } from 'fzstd';
import { extract } from 'tar-stream';
import { errorMessage } from '@prebuilt/core';
import { ArchiveError } from './errors.js';

/**
 * Readers for the archive formats of conda packages and wheels, all working on whole buffers
 * (package files are read from the cache into memory). Every failure is an ArchiveError naming
 * the package.
 */

export interface ArchiveEntry {
  /** The entry's path as stored (not yet checked: see safe-path.ts). */
  path: string;
  type: 'file' | 'directory' | 'symlink' | 'hardlink';
  /** Permission bits (0o7777). */
  mode: number;
  /** Content of a file; empty for the other types. */
  data: Buffer;
  /** Target of a symlink or hardlink. */
  linkTarget?: string;
}

const require = createRequire(import.meta.url);
const bunzip = require('seek-bzip') as { decode(input: Buffer, output?: number, multistream?: boolean): Buffer };

/** Decompresses a bzip2 stream (pure JS). */
export function decompressBzip2(data: Buffer, label: string): Buffer {
  try {
    return bunzip.decode(data, undefined, true);
  } catch (error) {
    throw new ArchiveError(`${label} is corrupt or truncated: bzip2 decompression failed (${errorMessage(error)}).`, label, { cause: error });
  }
}

/** Decompresses a zstd stream (pure JS). */
export function decompressZstd(data: Uint8Array, label: string): Buffer {
  try {
    const out = zstdDecompress(data);
    return Buffer.from(out.buffer, out.byteOffset, out.byteLength);
  } catch (error) {
    throw new ArchiveError(`${label} is corrupt or truncated: zstd decompression failed (${errorMessage(error)}).`, label, { cause: error });
  }
}

/** All entries of a tar archive. Character/block devices and FIFOs are refused. */
export async function readTar(data: Buffer, label: string): Promise<ArchiveEntry[]> {
  const entries: ArchiveEntry[] = [];
  const reader = extract();
  const done = (async () => {
    for await (const entry of reader) {
      const chunks: Buffer[] = [];
      for await (const chunk of entry) chunks.push(chunk as Buffer);
      const { header } = entry;
      const mode = (header.mode ?? 0o644) & 0o7777;
      switch (header.type) {
        case 'file':
        case 'contiguous-file':
          entries.push({ path: header.name, type: 'file', mode, data: Buffer.concat(chunks) });
          break;
        case 'directory':
          entries.push({ path: header.name, type: 'directory', mode, data: Buffer.alloc(0) });
          break;
        case 'symlink':
          entries.push({ path: header.name, type: 'symlink', mode, data: Buffer.alloc(0), linkTarget: header.linkname ?? '' });
          break;
        case 'link':
          entries.push({ path: header.name, type: 'hardlink', mode, data: Buffer.alloc(0), linkTarget: header.linkname ?? '' });
          break;
        default:
          throw new ArchiveError(`${label} contains '${header.name}' of type ${header.type ?? 'unknown'}, which a package may not contain.`, label);
      }
    }
  })();
  reader.end(data);
  try {
    await done;
  } catch (error) {
    if (error instanceof ArchiveError) throw error;
    throw new ArchiveError(`${label} is corrupt or truncated: reading its tar failed (${errorMessage(error)}).`, label, { cause: error });
  }
  if (data.length > 0 && entries.length === 0) {
    throw new ArchiveError(`${label} is corrupt: its tar has no entries.`, label);
  }
  return entries;
}

// ---------------------------------------------------------------------------------------------
// zip (wheels and .conda files)

const EOCD = 0x06054b50;
const CENTRAL = 0x02014b50;
const LOCAL = 0x04034b50;

/** All entries of a zip archive, CRC-checked. Directories are returned with type `directory`. */
export function readZip(data: Buffer, label: string): ArchiveEntry[] {
  const fail = (why: string): never => {
    throw new ArchiveError(`${label} is corrupt or truncated: ${why}.`, label);
  };
  let eocd = -1;
  for (let i = data.length - 22; i >= Math.max(0, data.length - 22 - 0xffff); i--) {
    if (data.readUInt32LE(i) === EOCD) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) fail('no zip end-of-central-directory record');
  const count = data.readUInt16LE(eocd + 10);
  const cdSize = data.readUInt32LE(eocd + 12);
  const cdOffset = data.readUInt32LE(eocd + 16);
  if (count === 0xffff || cdOffset === 0xffffffff) fail('zip64 archives are not supported');
  if (cdOffset + cdSize > eocd) fail('the central directory lies outside the file');

  const entries: ArchiveEntry[] = [];
  let p = cdOffset;
  for (let n = 0; n < count; n++) {
    if (p + 46 > data.length || data.readUInt32LE(p) !== CENTRAL) fail(`central directory entry ${n} is damaged`);
    const flags = data.readUInt16LE(p + 8);
    const method = data.readUInt16LE(p + 10);
    const crc = data.readUInt32LE(p + 16);
    const compressedSize = data.readUInt32LE(p + 20);
    const size = data.readUInt32LE(p + 24);
    const nameLength = data.readUInt16LE(p + 28);
    const extraLength = data.readUInt16LE(p + 30);
    const commentLength = data.readUInt16LE(p + 32);
    const madeBy = data.readUInt16LE(p + 4) >> 8;
    const external = data.readUInt32LE(p + 38);
    const localOffset = data.readUInt32LE(p + 42);
    const name = data.toString(flags & 0x800 ? 'utf8' : 'latin1', p + 46, p + 46 + nameLength);
    p += 46 + nameLength + extraLength + commentLength;
    if (flags & 0x1) fail(`'${name}' is encrypted`);

    const unixMode = madeBy === 3 ? (external >>> 16) & 0xffff : 0;
    const isDir = name.endsWith('/');
    const isSymlink = (unixMode & 0o170000) === 0o120000;
    if (localOffset + 30 > data.length || data.readUInt32LE(localOffset) !== LOCAL) fail(`the local header of '${name}' is missing`);
    const start = localOffset + 30 + data.readUInt16LE(localOffset + 26) + data.readUInt16LE(localOffset + 28);
    if (start + compressedSize > data.length) fail(`'${name}' extends past the end of the file`);
    const raw = data.subarray(start, start + compressedSize);
    let content: Buffer;
    if (method === 0) content = Buffer.from(raw);
    else if (method === 8) {
      try {
        content = inflateRawSync(raw);
      } catch (error) {
        return fail(`'${name}' cannot be inflated (${errorMessage(error)})`);
      }
    } else return fail(`'${name}' uses compression method ${method}; only stored and deflate are supported`);
    if (content.length !== size || crc32(content) !== crc) fail(`'${name}' fails its CRC check`);

    const mode = unixMode & 0o7777 || (isDir ? 0o755 : 0o644);
    if (isDir) entries.push({ path: name, type: 'directory', mode, data: Buffer.alloc(0) });
    else if (isSymlink) entries.push({ path: name, type: 'symlink', mode: 0o777, data: Buffer.alloc(0), linkTarget: content.toString('utf8') });
    else entries.push({ path: name, type: 'file', mode, data: content });
  }
  return entries;
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

/** CRC-32 (IEEE), as zip uses. */
export function crc32(data: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < data.length; i++) c = CRC_TABLE[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
