import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { gzip as zlibGzip, constants as zlibConstants, type ZlibOptions } from 'node:zlib';
import { promisify } from 'node:util';
import {
  ESTARGZ_TOC_ANNOTATION,
  ESTARGZ_UNCOMPRESSED_ANNOTATION,
  InputError,
  TAR_BLOCK,
  TAR_FIELDS,
  TarEndBlocks,
  TarExtendedHeaders,
  TarFormatError,
  decodeTarHeader,
  formatBytes,
  isExtendedHeader,
  sealTarHeader,
  paxInteger,
  paxSeconds,
  tarNumber,
  tarPadding,
  tarText,
  type TarHeader,
} from '@prebuilt/core/backend';

/**
 * eStargz (seekable tar.gz, https://github.com/containerd/stargz-snapshotter/blob/main/docs/stargz-estargz.md):
 * a tar.gz whose gzip members start at the top of the archive, at the payload of every non-empty
 * regular file (and every {@link ESTARGZ_CHUNK} bytes within a big one), at the TOC and at the
 * footer. Still one valid gzip stream (members concatenate), so every runtime pulls it as an
 * ordinary tar+gzip layer; a lazy-pulling runtime (containerd + the stargz snapshotter) reads the
 * footer, then the TOC, and fetches each file's member with an HTTP range request when it is read.
 */

/** The last tar entry: the table of contents. */
export const TOC_NAME = 'stargz.index.json';
/** Layer annotation: sha256 of the TOC JSON (the stargz snapshotter verifies the TOC against it); core's, which reads it back. */
export const TOC_DIGEST_ANNOTATION = ESTARGZ_TOC_ANNOTATION;
/** Layer annotation: size of the uncompressed tar (the layer's diff_id is its sha256); core's, which reads it back. */
export const UNCOMPRESSED_SIZE_ANNOTATION = ESTARGZ_UNCOMPRESSED_ANNOTATION;
/** Big files are cut into chunks of this many bytes, each its own gzip member and TOC entry. */
export const ESTARGZ_CHUNK = 4 << 20;
/**
 * The largest table of contents written (448 MiB of JSON, as counted by {@link tocEntryBytes}): it
 * is held until the tar has been read, and JSON.stringify fails past 512 Mi characters. A real
 * layer's is far smaller (some 450 bytes an entry: 300 000 files take 130 MiB); a tar of long names
 * (a pax path is up to 1 MiB) held one copy of each, a few gigabytes from a small gzip stream.
 */
export const MAX_TOC_BYTES = 448 * 1024 * 1024;
/** Size of the footer: an empty gzip member whose extra field holds the TOC's offset. */
export const FOOTER_SIZE = 51;

const gzipAsync = promisify(zlibGzip) as (data: Buffer, options: ZlibOptions) => Promise<Buffer>;
/** Members use the parameters of the gzip layers (level 6, 32 KiB window, memLevel 8). */
const GZIP_OPTIONS: ZlibOptions = { level: 6, windowBits: 15, memLevel: 8, strategy: zlibConstants.Z_DEFAULT_STRATEGY };

/** What the writer made: the TOC digest, the uncompressed tar's sha256 (diff_id) and size, and the layer descriptor's annotations. */
export interface EstargzResult {
  tocDigest: string;
  diffId: string;
  uncompressedSize: number;
  /** The TOC digest, the uncompressed size, and what the format adds (zstd:chunked: the TOC's position and checksum). */
  annotations: Record<string, string>;
}

/**
 * What differs between the seekable formats the writer makes: eStargz (gzip members, the TOC as the
 * tar's last entry, a gzip footer) and zstd:chunked (zstd frames, the tar ending as it came, the TOC
 * and the footer in zstd skippable frames; zstd-chunked.ts). Both put every non-empty file's payload
 * (and each chunk of a big one) at the start of its own member, described by the same TOC.
 */
export interface ChunkedFormat {
  /** Compresses one member (deterministically). */
  compress(data: Buffer): Promise<Buffer>;
  /** true: the TOC is the tar's last entry, before a new end-of-archive (eStargz); false: the tar keeps its own end. */
  tocInTar: boolean;
  /** What follows the last member (the footer, and the TOC unless it is in the tar), and the annotations it adds; `end` is the compressed size so far. */
  trailer(tocJson: Buffer, end: number): Promise<{ bytes: Buffer; annotations: Record<string, string> }>;
}

/** One entry of the TOC (field names and order as the stargz snapshotter writes them). */
interface TocEntry {
  name: string;
  type: 'dir' | 'reg' | 'symlink' | 'hardlink' | 'char' | 'block' | 'fifo' | 'chunk';
  size?: number;
  /** RFC 3339, seconds: the snapshotter shows a file without one as of year 1 (not 1970), which no pyc header matches. */
  modtime?: string;
  linkName?: string;
  mode?: number;
  uid?: number;
  gid?: number;
  userName?: string;
  groupName?: string;
  devMajor?: number;
  devMinor?: number;
  /** Extended attributes (pax `SCHILY.xattr.*`), base64 as Go encodes bytes. */
  xattrs?: Record<string, string>;
  offset?: number;
  digest?: string;
  chunkOffset?: number;
  chunkSize?: number;
  chunkDigest?: string;
  /** Index of the gzip member the entry's payload starts (resolved to `offset` at the end). */
  member?: number;
}

/** A gzip member of fixed parameters, with the OS byte set to Unix (as the plain gzip layers). */
async function gzipMember(data: Buffer): Promise<Buffer> {
  const out = await gzipAsync(data, GZIP_OPTIONS);
  out[9] = 3;
  return out;
}

/** eStargz: gzip members, the TOC in the tar's last member (at `end`), then the 51-byte footer pointing at it. */
export const ESTARGZ_FORMAT: ChunkedFormat = {
  compress: gzipMember,
  tocInTar: true,
  trailer: async (_tocJson, end) => ({ bytes: estargzFooter(end), annotations: {} }),
};

/** The 51-byte footer: an empty gzip member, extra field `SG` + `%016xSTARGZ` of the TOC offset. */
export function estargzFooter(tocOffset: number): Buffer {
  const subfield = Buffer.from(`${tocOffset.toString(16).padStart(16, '0')}STARGZ`, 'latin1');
  const header = Buffer.from([0x1f, 0x8b, 8, 4, 0, 0, 0, 0, 0, 255]);
  const xlen = Buffer.alloc(2);
  xlen.writeUInt16LE(4 + subfield.length);
  const sub = Buffer.from([0x53, 0x47, subfield.length & 0xff, subfield.length >> 8]);
  // A final stored block of length 0, then CRC32 and ISIZE of nothing.
  const body = Buffer.from([1, 0, 0, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0]);
  return Buffer.concat([header, xlen, sub, subfield, body]);
}

/** A ustar header of a regular file (mode 0644, uid/gid 0, mtime 0). */
export function tarFileHeader(name: string, size: number): Buffer {
  const h = Buffer.alloc(TAR_BLOCK);
  h.write(name, 0, 100, 'utf8');
  h.write('0000644\0', 100, 'latin1');
  h.write('0000000\0', 108, 'latin1');
  h.write('0000000\0', 116, 'latin1');
  h.write(`${size.toString(8).padStart(11, '0')}\0`, 124, 'latin1');
  h.write('00000000000\0', 136, 'latin1');
  h.write('0', 156, 'latin1');
  h.write('ustar\x0000', 257, 'latin1');
  return sealTarHeader(h);
}

const TYPES: Record<string, TocEntry['type']> = { '0': 'reg', '\0': 'reg', '1': 'hardlink', '2': 'symlink', '3': 'char', '4': 'block', '5': 'dir', '6': 'fifo' };
const MODE_BITS: Record<string, number> = { dir: 0o40000, reg: 0o100000, symlink: 0o120000, hardlink: 0o100000, char: 0o20000, block: 0o60000, fifo: 0o10000 };

/**
 * Converts a tar stream (as `tar-stream` writes it, end-of-archive blocks included) into eStargz
 * bytes, or those of another seekable `format` (zstd:chunked). Members are compressed on the libuv
 * thread pool, up to `parallel` at once, and written in order. `result()` is valid once the stream
 * has finished. The same tar gives the same bytes. The tar is read by core's strict tar reader (it
 * may be a base image's layer, pulled from a registry): a header, number or pax record that does
 * not check out, or a tar cut short, fails the stream with a TarFormatError naming `label`; one
 * whose TOC would be over `maxTocBytes` ({@link MAX_TOC_BYTES}) with an InputError, as it is read.
 */
export function estargzStream(parallel = 4, format: ChunkedFormat = ESTARGZ_FORMAT, label = 'the layer', maxTocBytes = MAX_TOC_BYTES): { stream: Transform; result: () => EstargzResult } {
  const writer = new EstargzWriter(parallel, format, label, maxTocBytes);
  return { stream: writer.stream, result: () => writer.result() };
}

/** The regular file whose payload is streaming: hashes of the file and of its current chunk. */
interface FileState {
  entry: TocEntry;
  size: number;
  done: number;
  fileHash: Hash;
  chunkHash: Hash;
  chunkStart: number;
}

class EstargzWriter {
  readonly stream: Transform;
  readonly #parallel: number;
  readonly #format: ChunkedFormat;
  readonly #toc: TocEntry[] = [];
  /** The TOC's JSON so far, about ({@link tocEntryBytes}), and its bound. */
  #tocBytes = 0;
  readonly #maxTocBytes: number;
  readonly #diff: Hash = createHash('sha256');
  #uncompressed = 0;
  /** Compressed sizes of the members written so far, in order. */
  readonly #sizes: number[] = [];
  readonly #pending: Promise<Buffer>[] = [];
  #member: Buffer[] = [];
  #memberBytes = 0;
  #members = 0;
  /** Bytes after the end-of-archive block in the open member. */
  #tail = 0;
  // Tar parsing state.
  readonly #label: string;
  #header = Buffer.alloc(0);
  #state: 'header' | 'meta' | 'payload' | 'pad' | 'end' = 'header';
  #remaining = 0;
  #pad = 0;
  #meta: Buffer[] = [];
  #metaType = 0;
  readonly #extended: TarExtendedHeaders;
  /** The check of the block after the tar's first zero block (Go's reading of the end), once it has been read. */
  #endBlocks: TarEndBlocks | undefined;
  /** The entry whose payload (or extended header's body) is being read, for messages. */
  #entryName = '';
  #file: FileState | undefined;
  #result: EstargzResult | undefined;

  constructor(parallel: number, format: ChunkedFormat, label: string, maxTocBytes: number) {
    this.#parallel = Math.max(1, parallel);
    this.#maxTocBytes = maxTocBytes;
    this.#format = format;
    this.#label = label;
    this.#extended = new TarExtendedHeaders(label);
    const self = this;
    this.stream = new Transform({
      transform(chunk: Buffer, _encoding, callback: TransformCallback) {
        self.#consume(chunk, this).then(() => callback(), (error: unknown) => callback(error as Error));
      },
      flush(callback: TransformCallback) {
        self.#finish(this).then(() => callback(), (error: unknown) => callback(error as Error));
      },
    });
  }

  result(): EstargzResult {
    if (!this.#result) throw new Error('the eStargz stream has not finished');
    return this.#result;
  }

  #append(bytes: Buffer): void {
    if (bytes.length === 0) return;
    this.#member.push(bytes);
    this.#memberBytes += bytes.length;
    this.#diff.update(bytes);
    this.#uncompressed += bytes.length;
  }

  /**
   * Bytes after the end-of-archive block, kept in the tar (zstd:chunked): in members of their own
   * every {@link ESTARGZ_CHUNK} bytes, so a layer with gigabytes there (a hostile one: zeros after
   * the end unpack from a small gzip stream) is held a member at a time. A tar's own padding (a
   * few KiB) stays in the last member.
   */
  async #appendTail(bytes: Buffer, out: Transform): Promise<void> {
    for (let at = 0; at < bytes.length; ) {
      const take = Math.min(bytes.length - at, ESTARGZ_CHUNK - this.#tail);
      this.#append(bytes.subarray(at, at + take));
      this.#tail += take;
      at += take;
      if (this.#tail === ESTARGZ_CHUNK) {
        await this.#closeMember(out);
        this.#tail = 0;
      }
    }
  }

  /** Closes the open member (if it holds anything) and starts its compression; waits if too many are in flight. */
  async #closeMember(out: Transform): Promise<void> {
    if (this.#memberBytes === 0 && this.#members > 0) return;
    const data = Buffer.concat(this.#member, this.#memberBytes);
    this.#member = [];
    this.#memberBytes = 0;
    this.#members++;
    const compressed = this.#format.compress(data);
    compressed.catch(() => undefined);
    this.#pending.push(compressed);
    while (this.#pending.length >= this.#parallel) this.#emit(out, await this.#pending.shift()!);
  }

  #emit(out: Transform, bytes: Buffer): void {
    this.#sizes.push(bytes.length);
    out.push(bytes);
  }

  async #consume(chunk: Buffer, out: Transform): Promise<void> {
    let at = 0;
    while (at < chunk.length) {
      if (this.#state === 'end') {
        this.#endBlocks?.feed(chunk.subarray(at));
        // A format whose TOC is not in the tar keeps the tar's own end-of-archive blocks (and what follows them).
        if (!this.#format.tocInTar) await this.#appendTail(chunk.subarray(at), out);
        return;
      }
      if (this.#state === 'header') {
        const take = Math.min(TAR_BLOCK - this.#header.length, chunk.length - at);
        this.#header = Buffer.concat([this.#header, chunk.subarray(at, at + take)]);
        at += take;
        if (this.#header.length === TAR_BLOCK) await this.#onHeader(out);
        continue;
      }
      const take = Math.min(this.#state === 'pad' ? this.#pad : this.#remaining, chunk.length - at);
      const part = chunk.subarray(at, at + take);
      at += take;
      if (this.#state === 'pad') {
        this.#append(part);
        this.#pad -= take;
        if (this.#pad === 0) this.#state = 'header';
      } else if (this.#state === 'meta') {
        this.#append(part);
        this.#meta.push(part);
        this.#remaining -= take;
        if (this.#remaining === 0) this.#onMetaDone();
      } else {
        await this.#payload(part, out);
      }
    }
  }

  async #onHeader(out: Transform): Promise<void> {
    const h = this.#header;
    this.#header = Buffer.alloc(0);
    const header = decodeTarHeader(h, this.#label, this.#uncompressed);
    if (!header) {
      this.#extended.checkNonePending();
      this.#endBlocks = new TarEndBlocks(this.#label, this.#uncompressed);
      // End of archive: for eStargz, the TOC entry and a new end-of-archive are written by #finish.
      if (!this.#format.tocInTar) this.#append(h);
      this.#state = 'end';
      return;
    }
    this.#append(h);
    if (isExtendedHeader(header.typeflag)) return this.#onExtendedHeader(header);
    const pax = this.#extended.apply(header);
    const tocType = TYPES[String.fromCharCode(header.typeflag)] ?? 'reg';
    const entry: TocEntry = { name: header.name, type: tocType, ...this.#attributes(h, pax) };
    if (tocType === 'reg') entry.size = header.size;
    if (tocType === 'symlink' || tocType === 'hardlink') entry.linkName = header.linkname;
    entry.mode = (header.mode & 0o7777) | (MODE_BITS[tocType] ?? 0);
    this.#entryName = header.name;
    this.#addToc(entry);
    this.#pad = tarPadding(header.size);
    if (header.size === 0) {
      this.#state = 'header';
      return;
    }
    this.#remaining = header.size;
    this.#state = 'payload';
    if (tocType === 'reg') {
      await this.#closeMember(out);
      entry.member = this.#members;
      this.#file = { entry, size: header.size, done: 0, fileHash: createHash('sha256'), chunkHash: createHash('sha256'), chunkStart: 0 };
    }
  }

  /** A pax or GNU long-name header: its body is gathered (up to core's bound) and read when complete. */
  #onExtendedHeader(header: TarHeader): void {
    this.#extended.checkSize(header.size);
    this.#metaType = header.typeflag;
    this.#entryName = header.name;
    this.#meta = [];
    this.#remaining = header.size;
    this.#pad = tarPadding(header.size);
    this.#state = header.size > 0 ? 'meta' : 'header';
    if (header.size === 0) this.#onMetaDone();
  }

  /** Owner, times, device numbers and xattrs of a header (and its pax records), as the TOC states them. */
  #attributes(h: Buffer, pax: ReadonlyMap<string, string> | undefined): Partial<TocEntry> {
    const label = this.#label;
    const num = (key: 'uid' | 'gid' | 'mtime'): number => {
      const value = pax?.get(key);
      if (value === undefined) return tarNumber(h, TAR_FIELDS[key][0], TAR_FIELDS[key][1], label);
      return key === 'mtime' ? paxSeconds(value, key, label) : paxInteger(value, key, label);
    };
    const mtime = num('mtime');
    const out: Partial<TocEntry> = {
      modtime: new Date(mtime * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z'),
      uid: num('uid'),
      gid: num('gid'),
      userName: pax?.get('uname') ?? tarText(h, ...TAR_FIELDS.uname),
      groupName: pax?.get('gname') ?? tarText(h, ...TAR_FIELDS.gname),
      devMajor: tarNumber(h, ...TAR_FIELDS.devmajor, label),
      devMinor: tarNumber(h, ...TAR_FIELDS.devminor, label),
    };
    const xattrs = [...(pax ?? [])].filter(([k]) => k.startsWith('SCHILY.xattr.'));
    if (xattrs.length > 0) out.xattrs = Object.fromEntries(xattrs.map(([k, v]) => [k.slice('SCHILY.xattr.'.length), Buffer.from(v, 'utf8').toString('base64')]));
    return out;
  }

  #onMetaDone(): void {
    this.#extended.read(this.#metaType, Buffer.concat(this.#meta));
    this.#state = this.#pad > 0 ? 'pad' : 'header';
  }

  /** Payload bytes: a regular file's are hashed and cut into chunks at {@link ESTARGZ_CHUNK}. */
  async #payload(part: Buffer, out: Transform): Promise<void> {
    const file = this.#file;
    let at = 0;
    while (at < part.length) {
      let take = part.length - at;
      if (file) take = Math.min(take, file.chunkStart + ESTARGZ_CHUNK - file.done);
      const piece = part.subarray(at, at + take);
      at += take;
      this.#append(piece);
      this.#remaining -= take;
      if (file) {
        file.fileHash.update(piece);
        file.chunkHash.update(piece);
        file.done += take;
        if (file.done === file.size) this.#endFile(file);
        else if (file.done === file.chunkStart + ESTARGZ_CHUNK) await this.#nextChunk(file, out);
      }
    }
    if (this.#remaining === 0) {
      this.#file = undefined;
      this.#state = this.#pad > 0 ? 'pad' : 'header';
    }
  }

  #current(file: FileState): TocEntry {
    return file.chunkStart === 0 ? file.entry : this.#toc[this.#toc.length - 1]!;
  }

  async #nextChunk(file: FileState, out: Transform): Promise<void> {
    const current = this.#current(file);
    current.chunkSize = ESTARGZ_CHUNK;
    current.chunkDigest = `sha256:${file.chunkHash.digest('hex')}`;
    await this.#closeMember(out);
    file.chunkStart = file.done;
    file.chunkHash = createHash('sha256');
    this.#addToc({ name: file.entry.name, type: 'chunk', member: this.#members, chunkOffset: file.chunkStart });
  }

  /** Adds an entry to the TOC, failing once the TOC would be over its bound (before the tar's other entries are read). */
  #addToc(entry: TocEntry): void {
    this.#tocBytes += tocEntryBytes(entry);
    if (this.#tocBytes > this.#maxTocBytes) {
      throw new InputError(`${this.#label} would have a table of contents of over ${formatBytes(this.#maxTocBytes)} (${this.#toc.length + 1} entries read: their names, link names and attributes); it is not converted.`, {
        hint: 'A real layer\'s table of contents is a few MiB (some 450 bytes a file): this one has too many entries, or names far too long, to be pulled lazily. For a base image, turn the eStargz base off (METAFLOW_PREBUILT_OCI_ESTARGZ_BASE=0) or use another one.',
      });
    }
    this.#toc.push(entry);
  }

  #endFile(file: FileState): void {
    const current = this.#current(file);
    current.chunkDigest = `sha256:${file.chunkHash.digest('hex')}`;
    file.entry.digest = `sha256:${file.fileHash.digest('hex')}`;
  }

  /** Why a tar that ended before its end-of-archive blocks is refused. */
  #cutShort(): string {
    if (this.#state !== 'header') return `'${this.#entryName}' runs past the end of the archive`;
    return this.#header.length > 0 ? 'it ends inside a header block' : 'it ends without its end-of-archive blocks';
  }

  async #finish(out: Transform): Promise<void> {
    if (this.#state !== 'end') throw new TarFormatError(this.#label, this.#cutShort());
    this.#endBlocks?.end();
    await this.#closeMember(out);
    while (this.#pending.length > 0) this.#emit(out, await this.#pending.shift()!);
    // Member i starts where members 0 … i-1 end.
    const starts = [0];
    for (const size of this.#sizes) starts.push(starts[starts.length - 1]! + size);
    const tocJson = Buffer.from(JSON.stringify({ version: 1, entries: this.#toc.map((e) => tocJsonEntry(e, starts)) }, null, '\t'));
    const end = starts[starts.length - 1]!;
    if (this.#format.tocInTar) {
      this.#append(Buffer.concat([tarFileHeader(TOC_NAME, tocJson.length), tocJson, Buffer.alloc(tarPadding(tocJson.length) + 2 * TAR_BLOCK)]));
      out.push(await this.#format.compress(Buffer.concat(this.#member, this.#memberBytes)));
    }
    const trailer = await this.#format.trailer(tocJson, end);
    out.push(trailer.bytes);
    const tocDigest = `sha256:${createHash('sha256').update(tocJson).digest('hex')}`;
    this.#result = {
      tocDigest,
      diffId: `sha256:${this.#diff.digest('hex')}`,
      uncompressedSize: this.#uncompressed,
      annotations: { [TOC_DIGEST_ANNOTATION]: tocDigest, [UNCOMPRESSED_SIZE_ANNOTATION]: String(this.#uncompressed), ...trailer.annotations },
    };
  }
}

/**
 * About how many bytes an entry takes in the TOC's JSON, never fewer: 512 for its keys, numbers,
 * dates and digests (a regular file's take some 400), and its texts as JSON writes them.
 */
function tocEntryBytes(entry: TocEntry): number {
  let bytes = 512;
  for (const text of [entry.name, entry.linkName, entry.userName, entry.groupName]) if (text) bytes += JSON.stringify(text).length;
  for (const [key, value] of Object.entries(entry.xattrs ?? {})) bytes += JSON.stringify(key).length + value.length + 8;
  return bytes;
}

function tocJsonEntry(entry: TocEntry, starts: number[]): Record<string, unknown> {
  const { member, ...rest } = entry;
  const offset = member === undefined ? undefined : starts[member];
  // Key order of the snapshotter's own writer; absent fields are left out.
  const ordered: Record<string, unknown> = {
    name: rest.name,
    type: rest.type,
    size: rest.size,
    modtime: rest.modtime,
    linkName: rest.linkName,
    mode: rest.mode,
    uid: rest.uid,
    gid: rest.gid,
    userName: rest.userName || undefined,
    groupName: rest.groupName || undefined,
    offset,
    devMajor: rest.devMajor,
    devMinor: rest.devMinor,
    xattrs: rest.xattrs,
    digest: rest.digest,
    chunkOffset: rest.chunkOffset,
    chunkSize: rest.chunkSize,
    chunkDigest: rest.chunkDigest,
  };
  for (const key of Object.keys(ordered)) if (ordered[key] === undefined || ordered[key] === 0 && key !== 'mode') delete ordered[key];
  return ordered;
}
