/**
 * Reading a tar as it arrives (a decompressor's output), with the strict decoder: headers by
 * decodeTarHeader, pax records and GNU long names by TarExtendedHeaders. Each entry's body is
 * handed on as the source's own chunks (views, no copy), pulled as the consumer reads them, one
 * chunk ahead at most (asked for while the consumer writes the last one, so a decompressor works
 * during its I/O): a slow consumer slows the source (backpressure), and nothing is held but two
 * source chunks and at most one extended header ({@link MAX_EXTENDED_HEADER}). The archive is read as the in-memory
 * readers read it: zero blocks are skipped, but no header may follow one, every entry's body (`size` bytes, padded to a block)
 * follows its header whatever its type, and the stream must end at a block boundary.
 */
import { TarFormatError } from '../errors.js';
import { TAR_BLOCK, decodeTarHeader, tarPadding, type TarHeader } from './tar-header.js';
import { TarExtendedHeaders, isExtendedHeader, type TarExtendedHeadersOptions } from './tar-extended-headers.js';

/** One entry of a streamed tar. */
export interface TarStreamEntry {
  /** The entry's header, its extended headers applied (name, link name and size). */
  header: TarHeader;
  /** The pax records that applied to it (undefined when none). */
  pax: ReadonlyMap<string, string> | undefined;
  /** The archive byte where its header (not its extended headers) starts. */
  offset: number;
  /**
   * Its `header.size` bytes, in the source's chunks. Read it (or not) before asking for the next
   * entry: what is left unread is skipped then, and reading it later fails.
   */
  body: AsyncIterable<Buffer>;
}

const EMPTY = Buffer.alloc(0);

/** Pulls bytes from a source of chunks, only when asked. */
class ChunkReader {
  readonly #source: AsyncIterator<Uint8Array>;
  #chunk: Buffer = EMPTY;
  #at = 0;
  /** The next chunk, asked for once the consumer has had its turn with the current one. */
  #ahead: Promise<IteratorResult<Uint8Array>> | undefined;
  #closed = false;
  /** Bytes of the archive consumed so far. */
  offset = 0;

  constructor(chunks: AsyncIterable<Uint8Array>) {
    this.#source = chunks[Symbol.asyncIterator]();
  }

  /** Whether bytes are at hand (pulling the next non-empty chunk if needed); false at the end of the source. */
  async #fill(): Promise<boolean> {
    while (this.#at >= this.#chunk.length) {
      const ahead = this.#ahead;
      this.#ahead = undefined;
      const next = await (ahead ?? this.#source.next());
      if (next.done) return false;
      this.#readAhead();
      const value = next.value;
      this.#chunk = Buffer.isBuffer(value) ? value : Buffer.from(value.buffer, value.byteOffset, value.byteLength);
      this.#at = 0;
    }
    return true;
  }

  /** Up to `max` bytes (`max` > 0), as they come: a view of one source chunk; empty at the end of the source. */
  async some(max: number): Promise<Buffer> {
    if (!(await this.#fill())) return EMPTY;
    const piece = this.#chunk.subarray(this.#at, this.#at + max);
    this.#at += piece.length;
    this.offset += piece.length;
    return piece;
  }

  /** Exactly `n` bytes (a view when one chunk holds them, else a copy), or fewer at the end of the source. */
  async take(n: number): Promise<Buffer> {
    if (this.#chunk.length - this.#at >= n) {
      const out = this.#chunk.subarray(this.#at, this.#at + n);
      this.#at += n;
      this.offset += n;
      return out;
    }
    const parts: Buffer[] = [];
    let got = 0;
    while (got < n) {
      const piece = await this.some(n - got);
      if (piece.length === 0) break;
      parts.push(piece);
      got += piece.length;
    }
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts, got);
  }

  /** Skips `n` bytes; the number that were missing at the end of the source (0 when all were there). */
  async skip(n: number): Promise<number> {
    let left = n;
    while (left > 0) {
      const piece = await this.some(left);
      if (piece.length === 0) break;
      left -= piece.length;
    }
    return left;
  }

  /**
   * Asks for the next chunk after the consumer has started on this one (setImmediate: after its
   * promise callbacks, e.g. a write handed to the thread pool), so decompressing overlaps its I/O;
   * never more than one chunk ahead.
   */
  #readAhead(): void {
    setImmediate(() => {
      if (this.#closed || this.#ahead) return;
      this.#ahead = this.#source.next();
      // Looked at when awaited (#fill) or dropped (close): never an unhandled rejection.
      this.#ahead.catch(() => undefined);
    });
  }

  /** Ends the source early (closes its file, stops its decompressor). */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#ahead?.catch(() => undefined);
    await this.#source.return?.();
  }
}

/** The body of an entry: its bytes left, and whether it is still the current entry's (not once the reader has moved on). */
interface BodyState {
  live: boolean;
  left: number;
  readonly name: string;
}

const runsPast = (label: string, name: string): TarFormatError => new TarFormatError(label, `'${name}' runs past the end of the archive`);

async function* bodyChunks(reader: ChunkReader, state: BodyState, label: string): AsyncGenerator<Buffer> {
  // Checked on every pull: a body started during its entry and resumed after the next one fails too.
  for (;;) {
    if (!state.live) throw new TarFormatError(label, `the body of '${state.name}' was read after the next entry`);
    if (state.left === 0) return;
    const piece = await reader.some(state.left);
    if (piece.length === 0) throw runsPast(label, state.name);
    state.left -= piece.length;
    yield piece;
  }
}

/**
 * Why a header after a zero block is refused: Python's tarfile (conda) ends the archive at the first
 * zero block, Go's archive/tar refuses a lone one, GNU tar warns and reads on — the entries after it
 * are there for some readers and not for others. Zero blocks to the end (a tar's padding) are read.
 */
export function afterZeroBlock(label: string, offset: number): TarFormatError {
  return new TarFormatError(label, `a header at byte ${offset} after a zero block (tar readers differ on whether the archive ends there)`);
}

/**
 * The end of a tar as Go's archive/tar reads it (a runtime unpacking a base layer): after the first
 * zero block, the next block must be zero too (two end the archive; what follows them is not read)
 * or absent (the tar ends at one). A header there, or any block that is not zero, is refused — Go
 * refuses it, while a reader that took the first zero block for the end dropped the entries after it.
 * Given the bytes after the first zero block as they come ({@link feed}), then {@link end}.
 */
export class TarEndBlocks {
  readonly #label: string;
  /** Where the block after the first zero block starts. */
  readonly #offset: number;
  #parts: Buffer[] = [];
  #bytes = 0;
  #checked = false;

  /** `offset`: where the first zero block starts; `label` names the archive in errors. */
  constructor(label: string, offset: number) {
    this.#label = label;
    this.#offset = offset + TAR_BLOCK;
  }

  /** Bytes after the first zero block (a copy of what is looked at is kept until the block is whole). */
  feed(bytes: Buffer): void {
    if (this.#checked || bytes.length === 0) return;
    const take = Math.min(TAR_BLOCK - this.#bytes, bytes.length);
    this.#parts.push(Buffer.from(bytes.subarray(0, take)));
    this.#bytes += take;
    if (this.#bytes === TAR_BLOCK) this.#check();
  }

  /** The end of the input: a part of a block there must be zeros. */
  end(): void {
    if (!this.#checked) this.#check();
  }

  #check(): void {
    this.#checked = true;
    const block = Buffer.concat(this.#parts, this.#bytes);
    this.#parts = [];
    if (block.every((byte) => byte === 0)) return;
    if (block.length < TAR_BLOCK) throw new TarFormatError(this.#label, 'it ends inside a header block');
    // A block that is no header fails as such (its checksum); a header after the zero block is refused.
    decodeTarHeader(block, this.#label, this.#offset);
    throw afterZeroBlock(this.#label, this.#offset);
  }
}

/** An extended header's body, read whole (its size checked first) and given to `extended`; then its padding. */
async function readExtended(reader: ChunkReader, header: TarHeader, extended: TarExtendedHeaders, label: string): Promise<void> {
  extended.checkSize(header.size);
  const body = await reader.take(header.size);
  if (body.length < header.size) throw runsPast(label, header.name);
  extended.read(header.typeflag, body);
  if ((await reader.skip(tarPadding(header.size))) > 0) throw new TarFormatError(label, 'it ends inside a header block');
}

/**
 * The entries of the tar in `chunks`, one at a time (see {@link TarStreamEntry}); `label` names the
 * archive in errors ({@link TarFormatError}). Stopping early (a `break`, a throw) ends the source.
 * The source's own errors pass unchanged.
 */
export async function* tarStreamEntries(
  chunks: AsyncIterable<Uint8Array>,
  label: string,
  options: TarExtendedHeadersOptions = {},
): AsyncGenerator<TarStreamEntry, void, undefined> {
  const reader = new ChunkReader(chunks);
  const extended = new TarExtendedHeaders(label, options);
  let zeroBlock = false;
  try {
    for (;;) {
      const offset = reader.offset;
      const block = await reader.take(TAR_BLOCK);
      if (block.length === 0) {
        extended.checkNonePending();
        return;
      }
      if (block.length < TAR_BLOCK) throw new TarFormatError(label, 'it ends inside a header block');
      const header = decodeTarHeader(block, label, offset);
      if (!header) {
        extended.checkNonePending();
        zeroBlock = true;
        continue;
      }
      if (zeroBlock) throw afterZeroBlock(label, offset);
      if (isExtendedHeader(header.typeflag)) {
        await readExtended(reader, header, extended, label);
        continue;
      }
      const pax = extended.apply(header);
      const state: BodyState = { live: true, left: header.size, name: header.name };
      yield { header, pax, offset, body: { [Symbol.asyncIterator]: () => bodyChunks(reader, state, label) } };
      state.live = false;
      if ((await reader.skip(state.left)) > 0) throw runsPast(label, header.name);
      if ((await reader.skip(tarPadding(header.size))) > 0) throw new TarFormatError(label, 'it ends inside a header block');
    }
  } finally {
    await reader.close();
  }
}
