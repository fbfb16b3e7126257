import { TAR_BLOCK, TarEndBlocks, TarExtendedHeaders, TarFormatError, decodeTarHeader, isExtendedHeader, tarPadding } from '@prebuilt/core/backend';
import { tarFileHeader } from './estargz.js';
import { NO_PREFETCH_LANDMARK, PREFETCH_LANDMARK } from './estargz-prefetch.js';
import { parentDirs } from './layer.js';

/**
 * An existing layer's tar (a base image's) put in eStargz prefetch order: the entries a recorded
 * profile names first (each after its parent directories, a hard link after its target, and after
 * the whiteouts that came before it of its path or a parent's), then the prefetch landmark, then every other entry in its original order. Entries move whole, with their
 * pax and GNU long-name headers, so each keeps its bytes; the tar stays a valid layer of the same
 * files. The tar is never held: {@link TarRecordIndex} reads it as it streams by and keeps where
 * each entry lies, {@link prefetchPlan} says which byte ranges to write in which order, and the
 * eStargz writer compresses them as they are read back from the file (estargz-base.ts).
 */

/** Where one entry of a tar lies in the archive: its meta headers, header, payload and padding are bytes [start, end). */
export interface TarRecordSpan {
  /** The entry's path, without a leading `./` or `/` or a trailing `/`. */
  path: string;
  /** The ustar type flag (`0` file, `1` hard link, `5` directory, `g` a pax global header …). */
  type: string;
  /** A link's target, cleaned like `path`. */
  linkPath: string;
  start: number;
  end: number;
}

/** One entry of an in-memory tar: its span and its bytes. */
export interface TarRecord extends TarRecordSpan {
  bytes: Buffer;
}

/** A piece of the reordered tar: a byte range of the original (`start` to `end`), or bytes of its own (the landmark, the end-of-archive blocks). */
export type TarPiece = { start: number; end: number } | Buffer;

const clean = (name: string): string => name.replace(/^(\.?\/)+/, '').replace(/\/+$/, '');

/** The entry whose body is being read: what it is, how many body and padding bytes are left, and an extended header's body. */
interface PendingBody {
  type: string;
  typeflag: number;
  name: string;
  linkname: string;
  /** A pax or GNU long-name header (not a record of its own: it belongs to the next entry). */
  meta: boolean;
  left: number;
  pad: number;
  /** The body of an extended header (pax `x`/`g`, GNU `L`/`K`), at most MAX_EXTENDED_HEADER bytes (checked before it is gathered). */
  parts: Buffer[] | undefined;
}

/**
 * The records of an uncompressed tar, read as it streams by (`write` each chunk, then `end`), by
 * core's strict tar reader: a header, number or pax record that does not check out, a member
 * running past the end, a tar without its end-of-archive blocks, fail with a TarFormatError naming
 * `label`. Holds one header, at most one extended header's body and one span per entry. The tar
 * ends at its first zero block; the block after it must be zero too or absent, as Go's archive/tar
 * (a runtime's unpack) reads it ({@link TarEndBlocks}); bytes after that are counted, not read.
 */
export class TarRecordIndex {
  readonly records: TarRecordSpan[] = [];
  readonly #label: string;
  readonly #extended: TarExtendedHeaders;
  /** Bytes written so far. */
  #offset = 0;
  /** What the records hold, about: their paths and link paths, and 64 bytes each. */
  #heldBytes = 0;
  /** Where the record being read starts (its first meta header). */
  #start = 0;
  #header: Buffer[] = [];
  #headerBytes = 0;
  #body: PendingBody | undefined;
  #ended = false;
  /** The check of the block after the first zero block, once it has been read. */
  #endBlocks: TarEndBlocks | undefined;

  constructor(label = 'the layer') {
    this.#label = label;
    this.#extended = new TarExtendedHeaders(label);
  }

  /** Whether the end-of-archive block has been read (what follows it is not part of the tar). */
  get ended(): boolean {
    return this.#ended;
  }

  /** Where the records end: the first end-of-archive block's offset, once {@link ended}. */
  get recordsEnd(): number {
    return this.#start;
  }

  /** Bytes written so far (the tar's size, once all of it has been written). */
  get size(): number {
    return this.#offset;
  }

  /** About how many bytes the records hold (their paths and link paths, and 64 bytes each): a tar of long names holds more than its count says. */
  get heldBytes(): number {
    return this.#heldBytes;
  }

  write(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length && !this.#ended) at += this.#body ? this.#readBody(chunk.subarray(at)) : this.#readHeader(chunk.subarray(at));
    // Bytes after the end-of-archive block: the next block checked, the rest counted, not read.
    this.#endBlocks?.feed(chunk.subarray(at));
    this.#offset += chunk.length - at;
  }

  /** Checks that the tar is whole (its end-of-archive block read); the records. */
  end(): TarRecordSpan[] {
    if (this.#ended) {
      this.#endBlocks!.end();
      return this.records;
    }
    if (this.#body) throw new TarFormatError(this.#label, `'${this.#body.name}' runs past the end of the archive`);
    throw new TarFormatError(this.#label, this.#headerBytes === 0 ? 'it ends without its end-of-archive blocks' : 'it ends inside a header block');
  }

  #onHeader(offset: number): void {
    const block = this.#header.length === 1 ? this.#header[0]! : Buffer.concat(this.#header, TAR_BLOCK);
    this.#header = [];
    this.#headerBytes = 0;
    const header = decodeTarHeader(block, this.#label, offset);
    if (!header) {
      this.#extended.checkNonePending();
      this.#ended = true;
      this.#endBlocks = new TarEndBlocks(this.#label, offset);
      return;
    }
    const type = String.fromCharCode(header.typeflag);
    const extended = isExtendedHeader(header.typeflag);
    // A pax global header is a record of its own (moved to the front of a reordered tar); the
    // others are its entry's. Core refuses a global header while an entry's are pending.
    const meta = extended && type !== 'g';
    if (extended) this.#extended.checkSize(header.size);
    else this.#extended.apply(header);
    const size = header.size;
    this.#body = { type, typeflag: header.typeflag, name: header.name, linkname: header.linkname, meta, left: size, pad: tarPadding(size), parts: extended ? [] : undefined };
    if (size === 0) this.#endBody(this.#offset);
  }

  /** Reads what `bytes` hold of the next header block; the bytes it took. */
  #readHeader(bytes: Buffer): number {
    const take = Math.min(TAR_BLOCK - this.#headerBytes, bytes.length);
    this.#header.push(bytes.subarray(0, take));
    this.#headerBytes += take;
    this.#offset += take;
    if (this.#headerBytes === TAR_BLOCK) this.#onHeader(this.#offset - TAR_BLOCK);
    return take;
  }

  /** Reads what `bytes` hold of the pending body and its padding; the bytes it took. */
  #readBody(bytes: Buffer): number {
    const body = this.#body!;
    const data = Math.min(body.left, bytes.length);
    if (data > 0) {
      body.parts?.push(bytes.subarray(0, data));
      body.left -= data;
    }
    const pad = Math.min(body.pad, bytes.length - data);
    body.pad -= pad;
    this.#offset += data + pad;
    if (body.left === 0 && body.pad === 0) this.#endBody(this.#offset);
    return data + pad;
  }

  /** The pending body read whole (it ends at `end`): an extended header's is read, an entry's record kept. */
  #endBody(end: number): void {
    const body = this.#body!;
    this.#body = undefined;
    if (body.parts) this.#extended.read(body.typeflag, Buffer.concat(body.parts));
    if (body.meta) return;
    const record = { path: clean(body.name), type: body.type, linkPath: clean(body.linkname), start: this.#start, end };
    this.#heldBytes += 64 + record.path.length + record.linkPath.length;
    this.records.push(record);
    this.#start = end;
  }
}

/**
 * The records of an in-memory uncompressed tar, up to its end-of-archive blocks, with their bytes
 * (views of `tar`); strict as {@link TarRecordIndex}.
 */
export function tarRecords(tar: Buffer, label = 'the layer'): TarRecord[] {
  const index = new TarRecordIndex(label);
  index.write(tar);
  return index.end().map((r) => ({ ...r, bytes: tar.subarray(r.start, r.end) }));
}

/** The 1-byte landmark file's record (mode 0644, owner root, mtime 0). */
function landmarkRecord(name: string): Buffer {
  const payload = Buffer.alloc(TAR_BLOCK);
  payload[0] = 0x0f;
  return Buffer.concat([tarFileHeader(name, 1), payload]);
}

/** The path of the whiteout that deletes `path` (`dir/.wh.name`, as the OCI layer format writes one). */
function whiteoutOf(path: string): string {
  const slash = path.lastIndexOf('/');
  return `${path.slice(0, slash + 1)}.wh.${path.slice(slash + 1)}`;
}

/**
 * The pieces of the tar in prefetch order for the profile's `paths` (image paths, with or without
 * the leading `/`; paths the tar lacks are ignored): pax global headers, the named entries, the
 * landmark (`.no.prefetch.landmark` when the tar has none of them), the rest, the end-of-archive
 * blocks. Adjacent ranges are joined (the rest is mostly one run of the archive). The same records
 * and paths give the same pieces.
 */
export function prefetchPlan(records: readonly TarRecordSpan[], paths: readonly string[]): TarPiece[] {
  // A path the tar holds more than once moves with every occurrence, in order (the last one wins on extraction).
  const byPath = new Map<string, number[]>();
  records.forEach((r, i) => {
    const same = byPath.get(r.path);
    if (same) same.push(i);
    else byPath.set(r.path, [i]);
  });
  const moved = new Set<number>();
  const first: number[] = [];
  /**
   * What must come before entry `i`, in order: a whiteout of it or of a parent that came before it
   * (a runtime unpacking in order, containerd or docker, deletes what the whiteout names when it
   * reaches it), its parent directories, and a hard link's target.
   */
  const needs = (i: number): number[] => {
    const record = records[i]!;
    const out: number[] = [];
    for (const path of [...parentDirs(record.path), record.path]) for (const w of byPath.get(whiteoutOf(path)) ?? []) if (w < i) out.push(w);
    for (const dir of parentDirs(record.path)) for (const d of byPath.get(dir) ?? []) if (records[d]!.type === '5') out.push(d);
    if (record.type === '1') for (const t of byPath.get(record.linkPath) ?? []) if (t < i) out.push(t);
    return out;
  };
  // Depth first with a stack of its own, each entry after what it needs: a chain of hard links
  // (each naming the one before) is as deep as it is long, past what the call stack holds.
  const move = (root: number): void => {
    const stack: { i: number; needs: number[] }[] = [];
    const visit = (i: number): void => {
      if (moved.has(i) || records[i]!.type === 'g') return;
      moved.add(i);
      stack.push({ i, needs: needs(i).reverse() });
    };
    visit(root);
    while (stack.length > 0) {
      const top = stack[stack.length - 1]!;
      const next = top.needs.pop();
      if (next === undefined) {
        stack.pop();
        first.push(top.i);
      } else visit(next);
    }
  };
  for (const path of paths) for (const i of byPath.get(clean(path)) ?? []) move(i);
  const landmark = first.some((i) => records[i]!.type !== '5') ? PREFETCH_LANDMARK : NO_PREFETCH_LANDMARK;
  const globals = records.filter((r) => r.type === 'g');
  const rest = records.filter((r, i) => r.type !== 'g' && !moved.has(i));
  return [...joinRanges([...globals, ...first.map((i) => records[i]!)]), landmarkRecord(landmark), ...joinRanges(rest), Buffer.alloc(2 * TAR_BLOCK)];
}

/** The records' ranges, in their order, each joined to the one before when it starts where that one ends. */
function joinRanges(records: readonly TarRecordSpan[]): { start: number; end: number }[] {
  const out: { start: number; end: number }[] = [];
  for (const { start, end } of records) {
    const last = out.at(-1);
    if (last && last.end === start) last.end = end;
    else out.push({ start, end });
  }
  return out;
}

/**
 * An in-memory tar's bytes in prefetch order for the profile's `paths` ({@link prefetchPlan}).
 * The same tar and paths give the same bytes.
 */
export function prefetchTarOrder(tar: Buffer, paths: readonly string[], label = 'the layer'): Buffer[] {
  const index = new TarRecordIndex(label);
  index.write(tar);
  return prefetchPlan(index.end(), paths).map((piece) => (Buffer.isBuffer(piece) ? piece : tar.subarray(piece.start, piece.end)));
}
