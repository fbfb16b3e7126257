import { decompress as nativeDecompress } from '@mongodb-js/zstd';
import { Decompress } from 'fzstd';
import { errorMessage } from '@prebuilt/core/extraction';
import { ArchiveError } from './errors.js';
import type { ExpansionBudget } from './expansion-budget.js';

/** zstd's own default limit for a decompression window (ZSTD_WINDOWLOG_LIMIT_DEFAULT: 2^27). */
const MAX_ZSTD_WINDOW = 1 << 27;
const MAX_BLOCK = 128 * 1024;
const ZSTD_MAGIC = 0xfd2fb528;
/** Largest compressed stream decompressed natively in one call (read whole into memory first). */
export const NATIVE_MAX_INPUT = 64 * 1024 * 1024;
/** Largest output (bounded from the block headers before decompressing) decompressed natively in one call. */
const NATIVE_MAX_OUTPUT = 256 * 1024 * 1024;
/**
 * Size of the slices the natively decompressed output is handed on in, each counted against the
 * budget as it is handed on: the block size of the streaming decoder, so a consumer that checks
 * the budget as it reads (a tar member's announced size) sees the same counts either way.
 */
const NATIVE_SLICE = MAX_BLOCK;

const corruptError = (label: string, why: string): ArchiveError => new ArchiveError(`${label} is corrupt or truncated: zstd decompression failed (${why}).`, label);

/** A zstd frame header: its length and the window it asks for (refused above {@link MAX_ZSTD_WINDOW}). */
interface FrameHeader {
  length: number;
  window: number;
  hasChecksum: boolean;
}

/** The header length a frame descriptor byte announces (magic included). */
function frameHeaderLength(descriptor: number): number {
  const singleSegment = (descriptor >> 5) & 1;
  const dictBytes = [0, 1, 2, 4][descriptor & 3]!;
  const fcsField = descriptor >> 6;
  const fcsBytes = fcsField === 0 ? singleSegment : 1 << fcsField;
  return 5 + (singleSegment ? 0 : 1) + dictBytes + fcsBytes;
}

/** Reads the frame header at the start of `data` (which holds at least frameHeaderLength bytes). */
function frameHeader(data: Buffer, label: string): FrameHeader {
  const descriptor = data[4]!;
  const length = frameHeaderLength(descriptor);
  const singleSegment = (descriptor >> 5) & 1;
  const dictBytes = [0, 1, 2, 4][descriptor & 3]!;
  let window: number;
  if (singleSegment) {
    const at = 5 + dictBytes;
    const fcsBytes = length - at;
    window = fcsBytes === 1 ? data[at]! : fcsBytes === 2 ? data.readUInt16LE(at) + 256 : fcsBytes === 4 ? data.readUInt32LE(at) : Number(data.readBigUInt64LE(at));
  } else {
    const base = 2 ** (10 + (data[5]! >> 3));
    window = base + (base / 8) * (data[5]! & 7);
  }
  if (window > MAX_ZSTD_WINDOW) {
    throw new ArchiveError(`${label} asks for a zstd window of ${window} bytes, more than the ${MAX_ZSTD_WINDOW} zstd itself accepts; refusing to decompress it.`, label);
  }
  return { length, window, hasChecksum: ((descriptor >> 2) & 1) === 1 };
}

/** A block header: whether it is the frame's last, its type, the size field and the bytes it takes (header included). */
function blockHeader(data: Buffer, at: number, label: string): { last: boolean; type: number; size: number; length: number } {
  const header = data[at]! | (data[at + 1]! << 8) | (data[at + 2]! << 16);
  const type = (header >> 1) & 3;
  const size = header >>> 3;
  if (type === 3) throw corruptError(label, 'a reserved block type');
  if (size > MAX_BLOCK) throw corruptError(label, `a block of ${size} bytes, more than zstd allows`);
  return { last: (header & 1) === 1, type, size, length: 3 + (type === 1 ? 1 : size) };
}

/**
 * The most bytes a whole zstd stream can decompress to, read from its frame and block headers
 * alone (raw and RLE blocks give their size, a compressed block at most min(window, 128 KiB)).
 * Throws on a malformed or truncated stream and on a window above the limit.
 */
export function zstdOutputBound(data: Buffer, label: string): number {
  let at = 0;
  let bound = 0;
  while (at < data.length) {
    if (data.length - at < 4) throw corruptError(label, 'the stream ends inside a frame header');
    const magic = data.readUInt32LE(at);
    if ((magic & 0xfffffff0) === 0x184d2a50) {
      if (data.length - at < 8) throw corruptError(label, 'a skippable frame ends early');
      at += 8 + data.readUInt32LE(at + 4);
      if (at > data.length) throw corruptError(label, 'a skippable frame ends early');
      continue;
    }
    if (magic !== ZSTD_MAGIC) throw corruptError(label, 'not a zstd frame');
    if (data.length - at < 5 || data.length - at < frameHeaderLength(data[at + 4]!)) throw corruptError(label, 'the stream ends inside a frame header');
    const header = frameHeader(data.subarray(at), label);
    at += header.length;
    for (;;) {
      if (data.length - at < 3) throw corruptError(label, 'the stream ends inside a block header');
      const block = blockHeader(data, at, label);
      bound += block.type === 2 ? Math.min(header.window, MAX_BLOCK) : block.size;
      at += block.length + (block.last && header.hasChecksum ? 4 : 0);
      if (at > data.length) throw corruptError(label, 'the stream ends inside a block');
      if (block.last) break;
    }
  }
  return bound;
}

/**
 * Decompresses a zstd stream, counting every byte against `budget`. A stream of at most
 * {@link NATIVE_MAX_INPUT} bytes whose output bound (from its headers, {@link zstdOutputBound})
 * fits both the budget and {@link NATIVE_MAX_OUTPUT} is decompressed natively in one call on the
 * thread pool (libzstd, checksums verified); any other goes through the bounded streaming decoder
 * ({@link zstdStreamChunks}). Either way no byte beyond the budget is ever produced.
 */
export async function* zstdChunks(source: AsyncIterable<Uint8Array>, label: string, budget: ExpansionBudget): AsyncGenerator<Buffer> {
  const decoded = await zstdDecoded(source, label, budget);
  if (!Buffer.isBuffer(decoded)) {
    yield* decoded;
    return;
  }
  for (let at = 0; at < decoded.length; at += NATIVE_SLICE) {
    const slice = decoded.subarray(at, at + NATIVE_SLICE);
    budget.add(slice.length);
    yield slice;
  }
}

/**
 * The same decompression, whole where it is native: the output in one buffer — which fits what is
 * left of `budget` (checked before decompressing) and which the caller counts against it as it reads
 * it — else the bounded streaming decoder's chunks (counted as they come). For a reader that parses
 * a tar held in memory (tar-buffer.ts) instead of a stream.
 */
export async function zstdDecoded(source: AsyncIterable<Uint8Array>, label: string, budget: ExpansionBudget): Promise<Buffer | AsyncIterable<Buffer>> {
  const iterator = source[Symbol.asyncIterator]();
  let handedOn = false;
  try {
    const head: Buffer[] = [];
    let size = 0;
    let complete = false;
    while (size <= NATIVE_MAX_INPUT) {
      const next = await iterator.next();
      if (next.done) {
        complete = true;
        break;
      }
      head.push(Buffer.from(next.value.buffer, next.value.byteOffset, next.value.byteLength));
      size += next.value.byteLength;
    }
    // One read (a stored zip member read whole, zip-file.ts) is used as it is: no copy.
    const data = head.length === 1 ? head[0]! : Buffer.concat(head);
    if (complete && zstdOutputBound(data, label) <= Math.min(NATIVE_MAX_OUTPUT, budget.bound - budget.used)) {
      let out: Buffer;
      try {
        out = await nativeDecompress(data);
      } catch (error) {
        throw corruptError(label, errorMessage(error));
      }
      return out;
    }
    const rest = { [Symbol.asyncIterator]: () => ({ next: () => iterator.next() }) } as AsyncIterable<Uint8Array>;
    handedOn = true;
    return streamed(zstdStreamChunks(prepend(data, rest), label, budget), iterator);
  } finally {
    // Stop reading the source on an error here (a bound passed, a corrupt stream); once the
    // streamed chunks are handed on, when their consumer stops.
    if (!handedOn) await iterator.return?.();
  }
}

async function* streamed(chunks: AsyncIterable<Buffer>, source: AsyncIterator<Uint8Array>): AsyncGenerator<Buffer> {
  try {
    yield* chunks;
  } finally {
    await source.return?.();
  }
}

async function* prepend(first: Buffer, rest: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  if (first.length > 0) yield first;
  yield* rest;
}

/** A byte queue over an async source: `need(n)` makes n bytes available, `take(n)` removes them. */
class Pending {
  data = Buffer.alloc(0);
  readonly #iterator: AsyncIterator<Uint8Array>;

  constructor(iterator: AsyncIterator<Uint8Array>) {
    this.#iterator = iterator;
  }

  /** Makes at least `n` bytes available; false at the end of the input. */
  async need(n: number): Promise<boolean> {
    while (this.data.length < n) {
      const next = await this.#iterator.next();
      if (next.done) return false;
      this.data = this.data.length === 0 ? Buffer.from(next.value) : Buffer.concat([this.data, next.value]);
    }
    return true;
  }

  take(n: number): Buffer {
    const head = this.data.subarray(0, n);
    this.data = this.data.subarray(n);
    return head;
  }
}

/**
 * Decompresses a zstd stream with fzstd's streaming decoder, fed one zstd block at a time: the
 * frames and block headers are read here, so each push into the decoder yields at most one block
 * (128 KiB) before it is handed on, and every byte is counted against `budget`. A frame that asks
 * for a window above zstd's own default limit (128 MiB) is refused, as zstd itself does.
 */
export async function* zstdStreamChunks(source: AsyncIterable<Uint8Array>, label: string, budget: ExpansionBudget): AsyncGenerator<Buffer> {
  const iterator = source[Symbol.asyncIterator]();
  const pending = new Pending(iterator);
  try {
    for (;;) {
      if (!(await pending.need(4))) {
        if (pending.data.length === 0) return;
        throw corruptError(label, 'the stream ends inside a frame header');
      }
      const magic = pending.data.readUInt32LE(0);
      if ((magic & 0xfffffff0) === 0x184d2a50) {
        await skipFrame(pending, label);
        continue;
      }
      if (magic !== ZSTD_MAGIC) throw corruptError(label, 'not a zstd frame');
      if (!(await pending.need(5)) || !(await pending.need(frameHeaderLength(pending.data[4]!)))) throw corruptError(label, 'the stream ends inside a frame header');
      yield* decodeFrame(pending, label, budget);
    }
  } finally {
    await iterator.return?.();
  }
}

async function skipFrame(pending: Pending, label: string): Promise<void> {
  if (!(await pending.need(8))) throw corruptError(label, 'a skippable frame ends early');
  let left = pending.data.readUInt32LE(4);
  pending.take(8);
  while (left > 0) {
    if (pending.data.length === 0 && !(await pending.need(1))) throw corruptError(label, 'a skippable frame ends early');
    const step = Math.min(left, pending.data.length);
    pending.take(step);
    left -= step;
  }
}

/** Feeds one frame (its header available in `pending`) to fzstd block by block, yielding what each block gives. */
async function* decodeFrame(pending: Pending, label: string, budget: ExpansionBudget): AsyncGenerator<Buffer> {
  const header = frameHeader(pending.data, label);
  let out: Buffer[] = [];
  const decoder = new Decompress((chunk) => {
    budget.add(chunk.length);
    out.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length));
  });
  let unit = pending.take(header.length);
  for (;;) {
    if (!(await pending.need(3))) throw corruptError(label, 'the stream ends inside a block header');
    const block = blockHeader(pending.data, 0, label);
    if (!(await pending.need(block.length))) throw corruptError(label, 'the stream ends inside a block');
    // The last block goes in with the frame's checksum and `final`, so the decoder ends the frame.
    const total = block.last && header.hasChecksum ? block.length + 4 : block.length;
    if (!(await pending.need(total))) throw corruptError(label, 'the stream ends inside a frame checksum');
    unit = unit.length === 0 ? pending.take(total) : Buffer.concat([unit, pending.take(total)]);
    try {
      decoder.push(unit, block.last);
    } catch (error) {
      if (error instanceof ArchiveError) throw error;
      throw corruptError(label, errorMessage(error));
    }
    unit = Buffer.alloc(0);
    const ready = out;
    out = [];
    for (const chunk of ready) yield chunk;
    if (block.last) return;
  }
}
