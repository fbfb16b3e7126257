import { closeSync, openSync, readSync } from 'node:fs';
import { createRequire } from 'node:module';
import { errorMessage } from '@prebuilt/core/extraction';
import { ArchiveError } from './errors.js';
import type { ExpansionBudget } from './expansion-budget.js';

interface ByteStream {
  readByte(): number;
  read(buffer: Uint8Array, offset: number, length: number): number;
  eof(): boolean;
  writeByte(byte: number): void;
}
interface BunzipInstance {
  reader: { read(bits: number): number };
  streamCRC: number;
  _init_block(): boolean;
  _read_bunzip(): number;
  _start_bunzip(input: ByteStream, output: ByteStream): void;
}
interface BunzipModule {
  new (input: ByteStream, output: ByteStream): BunzipInstance;
  Stream: new () => ByteStream;
}

const require = createRequire(import.meta.url);
const Bunzip = require('seek-bzip') as BunzipModule;

const READ_CHUNK = 64 * 1024;
const OUT_CHUNK = 64 * 1024;

/**
 * Decompresses a `.tar.bz2` file block by block (seek-bzip's block decoder driven here, one bzip2
 * block at a time): the compressed file is read in 64 KiB pieces and each block's output (at most
 * what one 900 kB block can expand to) is handed on before the next block is decoded, every byte
 * counted against `budget`, which throws the moment the package expands beyond its bound.
 */
export async function* bzip2Chunks(file: string, label: string, budget: ExpansionBudget): AsyncGenerator<Buffer> {
  const fd = openSync(file, 'r');
  try {
    const input = new Bunzip.Stream();
    const inBuf = Buffer.alloc(READ_CHUNK);
    let inPos = 0;
    let inLen = 0;
    let atEnd = false;
    const fill = (): boolean => {
      if (inPos < inLen) return true;
      if (atEnd) return false;
      inLen = readSync(fd, inBuf, 0, READ_CHUNK, null);
      inPos = 0;
      if (inLen === 0) atEnd = true;
      return inLen > 0;
    };
    input.readByte = () => {
      if (!fill()) throw new ArchiveError(`${label} is corrupt or truncated: its bzip2 stream ends early.`, label);
      return inBuf[inPos++]!;
    };
    input.eof = () => !fill();

    const output = new Bunzip.Stream();
    let chunks: Buffer[] = [];
    let out = Buffer.allocUnsafe(OUT_CHUNK);
    let outPos = 0;
    output.writeByte = (byte: number) => {
      out[outPos++] = byte;
      if (outPos === OUT_CHUNK) {
        budget.add(OUT_CHUNK);
        chunks.push(out);
        out = Buffer.allocUnsafe(OUT_CHUNK);
        outPos = 0;
      }
    };
    const flush = (): Buffer[] => {
      if (outPos > 0) {
        budget.add(outPos);
        chunks.push(out.subarray(0, outPos));
        out = Buffer.allocUnsafe(OUT_CHUNK);
        outPos = 0;
      }
      const done = chunks;
      chunks = [];
      return done;
    };

    let bz: BunzipInstance;
    try {
      bz = new Bunzip(input, output);
    } catch (error) {
      throw wrap(error, label);
    }
    for (;;) {
      if (input.eof()) break;
      try {
        if (bz._init_block()) {
          bz._read_bunzip();
        } else {
          const expected = bz.reader.read(32) >>> 0;
          if (expected !== bz.streamCRC) throw new Error('bad stream CRC');
          if (input.eof()) break;
          bz._start_bunzip(input, output);
          continue;
        }
      } catch (error) {
        throw wrap(error, label);
      }
      for (const chunk of flush()) yield chunk;
    }
    for (const chunk of flush()) yield chunk;
  } finally {
    closeSync(fd);
  }
}

function wrap(error: unknown, label: string): unknown {
  if (error instanceof ArchiveError) return error;
  return new ArchiveError(`${label} is corrupt or truncated: bzip2 decompression failed (${errorMessage(error)}).`, label, { cause: error });
}
