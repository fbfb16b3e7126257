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
    const input = fileInput(fd, label);
    const output = chunkedOutput(budget);
    let bz: BunzipInstance;
    try {
      bz = new Bunzip(input, output.stream);
    } catch (error) {
      throw wrap(error, label);
    }
    while (!input.eof()) {
      let decoded: boolean;
      try {
        decoded = decodeBlock(bz, input, output.stream);
      } catch (error) {
        throw wrap(error, label);
      }
      if (decoded) yield* output.flush();
    }
    yield* output.flush();
  } finally {
    closeSync(fd);
  }
}

/**
 * Decodes the next block into `output` and says so (true); at the end of a bzip2 stream, checks
 * its CRC and starts the next stream concatenated after it, if any (false: nothing decoded).
 */
function decodeBlock(bz: BunzipInstance, input: ByteStream, output: ByteStream): boolean {
  if (bz._init_block()) {
    bz._read_bunzip();
    return true;
  }
  const expected = bz.reader.read(32) >>> 0;
  if (expected !== bz.streamCRC) throw new Error('bad stream CRC');
  if (!input.eof()) bz._start_bunzip(input, output);
  return false;
}

/** seek-bzip's input stream over the open file `fd`, read 64 KiB at a time; reading past its end is an ArchiveError. */
function fileInput(fd: number, label: string): ByteStream {
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
  return input;
}

/**
 * seek-bzip's output stream into 64 KiB buffers, each counted against `budget` as it fills;
 * `flush()` hands over the buffers filled so far and the part-filled one.
 */
function chunkedOutput(budget: ExpansionBudget): { stream: ByteStream; flush: () => Buffer[] } {
  const stream = new Bunzip.Stream();
  let chunks: Buffer[] = [];
  let out = Buffer.allocUnsafe(OUT_CHUNK);
  let outPos = 0;
  const finishChunk = (): void => {
    budget.add(outPos);
    chunks.push(outPos === OUT_CHUNK ? out : out.subarray(0, outPos));
    out = Buffer.allocUnsafe(OUT_CHUNK);
    outPos = 0;
  };
  stream.writeByte = (byte: number) => {
    out[outPos++] = byte;
    if (outPos === OUT_CHUNK) finishChunk();
  };
  const flush = (): Buffer[] => {
    if (outPos > 0) finishChunk();
    const done = chunks;
    chunks = [];
    return done;
  };
  return { stream, flush };
}

function wrap(error: unknown, label: string): unknown {
  if (error instanceof ArchiveError) return error;
  return new ArchiveError(`${label} is corrupt or truncated: bzip2 decompression failed (${errorMessage(error)}).`, label, { cause: error });
}
