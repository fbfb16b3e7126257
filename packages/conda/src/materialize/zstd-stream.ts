import { Decompress } from 'fzstd';
import { errorMessage } from '@prebuilt/core';
import { ArchiveError } from './errors.js';
import type { ExpansionBudget } from './expansion-budget.js';

/** zstd's own default limit for a decompression window (ZSTD_WINDOWLOG_LIMIT_DEFAULT: 2^27). */
export const MAX_ZSTD_WINDOW = 1 << 27;
const MAX_BLOCK = 128 * 1024;
const ZSTD_MAGIC = 0xfd2fb528;

/**
 * Decompresses a zstd stream with fzstd's streaming decoder, fed one zstd block at a time: the
 * frames and block headers are read here, so each push into the decoder yields at most one block
 * (128 KiB) before it is handed on, and every byte is counted against `budget`. A frame that asks
 * for a window above zstd's own default limit (128 MiB) is refused, as zstd itself does.
 */
export async function* zstdChunks(source: AsyncIterable<Uint8Array>, label: string, budget: ExpansionBudget): AsyncGenerator<Buffer> {
  const iterator = source[Symbol.asyncIterator]();
  let pending = Buffer.alloc(0);
  const corrupt = (why: string): ArchiveError => new ArchiveError(`${label} is corrupt or truncated: zstd decompression failed (${why}).`, label);
  /** Makes at least `n` bytes available in `pending`; false at the end of the input. */
  const need = async (n: number): Promise<boolean> => {
    while (pending.length < n) {
      const next = await iterator.next();
      if (next.done) return false;
      pending = pending.length === 0 ? Buffer.from(next.value) : Buffer.concat([pending, next.value]);
    }
    return true;
  };
  const take = (n: number): Buffer => {
    const head = pending.subarray(0, n);
    pending = pending.subarray(n);
    return head;
  };
  const skip = async (n: number): Promise<void> => {
    let left = n;
    while (left > 0) {
      if (pending.length === 0 && !(await need(1))) throw corrupt('a skippable frame ends early');
      const step = Math.min(left, pending.length);
      take(step);
      left -= step;
    }
  };

  try {
    yield* frames();
  } finally {
    // Stop reading the source when the consumer stops (an error, a bound passed).
    await iterator.return?.();
  }

  async function* frames(): AsyncGenerator<Buffer> {
    for (;;) {
      if (!(await need(4))) {
        if (pending.length === 0) return;
        throw corrupt('the stream ends inside a frame header');
      }
      const magic = pending.readUInt32LE(0);
      if ((magic & 0xfffffff0) === 0x184d2a50) {
        if (!(await need(8))) throw corrupt('a skippable frame ends early');
        const size = pending.readUInt32LE(4);
        take(8);
        await skip(size);
        continue;
      }
      if (magic !== ZSTD_MAGIC) throw corrupt('not a zstd frame');
      if (!(await need(5))) throw corrupt('the stream ends inside a frame header');
      const descriptor = pending[4]!;
      const singleSegment = (descriptor >> 5) & 1;
      const hasChecksum = (descriptor >> 2) & 1;
      const dictBytes = [0, 1, 2, 4][descriptor & 3]!;
      const fcsField = descriptor >> 6;
      const fcsBytes = fcsField === 0 ? singleSegment : 1 << fcsField;
      const headerLength = 5 + (singleSegment ? 0 : 1) + dictBytes + fcsBytes;
      if (!(await need(headerLength))) throw corrupt('the stream ends inside a frame header');
      let window: number;
      if (singleSegment) {
        const at = 5 + dictBytes;
        window = fcsBytes === 1 ? pending[at]! : fcsBytes === 2 ? pending.readUInt16LE(at) + 256 : fcsBytes === 4 ? pending.readUInt32LE(at) : Number(pending.readBigUInt64LE(at));
      } else {
        const exponent = pending[5]! >> 3;
        const base = 2 ** (10 + exponent);
        window = base + (base / 8) * (pending[5]! & 7);
      }
      if (window > MAX_ZSTD_WINDOW) {
        throw new ArchiveError(`${label} asks for a zstd window of ${window} bytes, more than the ${MAX_ZSTD_WINDOW} zstd itself accepts; refusing to decompress it.`, label);
      }
      let out: Buffer[] = [];
      const decoder = new Decompress((chunk) => {
        budget.add(chunk.length);
        out.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length));
      });
      let unit = take(headerLength);
      for (;;) {
        if (!(await need(3))) throw corrupt('the stream ends inside a block header');
        const header = pending[0]! | (pending[1]! << 8) | (pending[2]! << 16);
        const last = header & 1;
        const type = (header >> 1) & 3;
        const size = header >>> 3;
        if (type === 3) throw corrupt('a reserved block type');
        if (size > MAX_BLOCK) throw corrupt(`a block of ${size} bytes, more than zstd allows`);
        const length = 3 + (type === 1 ? 1 : size);
        if (!(await need(length))) throw corrupt('the stream ends inside a block');
        // The last block goes in with the frame's checksum and `final`, so the decoder ends the frame.
        const total = last && hasChecksum ? length + 4 : length;
        if (!(await need(total))) throw corrupt('the stream ends inside a frame checksum');
        unit = unit.length === 0 ? take(total) : Buffer.concat([unit, take(total)]);
        try {
          decoder.push(unit, last === 1);
        } catch (error) {
          if (error instanceof ArchiveError) throw error;
          throw corrupt(errorMessage(error));
        }
        unit = Buffer.alloc(0);
        const ready = out;
        out = [];
        for (const chunk of ready) yield chunk;
        if (last) break;
      }
    }
  }
}
