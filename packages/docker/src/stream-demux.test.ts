import { EventEmitter } from 'node:events';
import { Writable, type Readable } from 'node:stream';
import Docker from 'dockerode';
import { describe, expect, it } from 'vitest';
import { demuxStream } from './stream-demux.js';

/** A frame of the Engine API's multiplexed stream: `[stream, 0, 0, 0, size]` then the bytes. */
function frame(stream: number, payload: Buffer | string): Buffer {
  const bytes = Buffer.from(payload);
  const header = Buffer.alloc(8);
  header[0] = stream;
  header.writeUInt32BE(bytes.length, 4);
  return Buffer.concat([header, bytes]);
}

class Collect extends Writable {
  readonly chunks: Buffer[] = [];
  override _write(chunk: Buffer, _encoding: BufferEncoding, done: () => void): void {
    this.chunks.push(chunk);
    done();
  }
  text(): string {
    return Buffer.concat(this.chunks).toString('latin1');
  }
}

/** A source whose 'data' events are emitted at once (synchronously) by `write`. */
function source(): Readable & { write(chunk: Buffer): void } {
  const emitter = new EventEmitter() as unknown as Readable & { write(chunk: Buffer): void };
  emitter.write = (chunk: Buffer) => void emitter.emit('data', chunk);
  return emitter;
}

/** Feeds `bytes` in the given chunk sizes (the rest in one) and returns what reached stdout and stderr. */
function demux(bytes: Buffer, sizes: number[], split = demuxStream): { stdout: string; stderr: string } {
  const input = source();
  const stdout = new Collect();
  const stderr = new Collect();
  split(input, stdout, stderr);
  let offset = 0;
  for (const size of sizes) {
    input.write(bytes.subarray(offset, offset + size));
    offset += size;
  }
  input.write(bytes.subarray(offset));
  return { stdout: stdout.text(), stderr: stderr.text() };
}

/** A deterministic pseudo-random sequence (no flaky test). */
function random(seed: number): () => number {
  let state = seed;
  return () => ((state = (state * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
}

describe('demuxStream (the multiplexed stdout/stderr of an attach)', () => {
  const stream = Buffer.concat([frame(1, 'hello '), frame(2, 'oops\n'), frame(1, ''), frame(0, 'echo '), frame(1, 'world\n'), frame(2, 'bye\n')]);

  it('sorts frames to stdout (1, and 0) and stderr (2), several in one chunk', () => {
    expect(demux(stream, [])).toEqual({ stdout: 'hello echo world\n', stderr: 'oops\nbye\n' });
  });

  it('gives the same output however the frames are split, down to one byte at a time and inside a header', () => {
    const expected = demux(stream, []);
    expect(demux(stream, Array(stream.length).fill(1))).toEqual(expected);
    for (let cut = 1; cut < stream.length; cut++) expect(demux(stream, [cut])).toEqual(expected);
  });

  it('passes a frame\'s bytes on as they arrive: a frame announced as 1 GiB buffers nothing', () => {
    const input = source();
    const stdout = new Collect();
    demuxStream(input, stdout, new Collect());
    const header = Buffer.alloc(8);
    header[0] = 1;
    header.writeUInt32BE(1 << 30, 4);
    input.write(header);
    input.write(Buffer.from('first bytes'));
    expect(stdout.text()).toBe('first bytes');
  });

  it('a stream that is not multiplexed (a TTY) goes to stdout as it is', () => {
    expect(demux(Buffer.from('plain output of a tty\n'), [3])).toEqual({ stdout: 'plain output of a tty\n', stderr: '' });
  });

  it('agrees with dockerode\'s demuxStream (a devDependency, for this cross-check) on random frames split at random', () => {
    const modem = new Docker({ socketPath: '/nonexistent.sock' }).modem as unknown as { demuxStream: typeof demuxStream };
    const next = random(19);
    for (let round = 0; round < 50; round++) {
      const frames = Array.from({ length: 1 + Math.floor(next() * 20) }, () => {
        const size = Math.floor(next() * 300);
        return frame(next() < 0.5 ? 1 : 2, Buffer.from(Array.from({ length: size }, () => Math.floor(next() * 256))));
      });
      const bytes = Buffer.concat(frames);
      const sizes = Array.from({ length: 10 }, () => 1 + Math.floor(next() * 64));
      expect(demux(bytes, sizes)).toEqual(demux(bytes, sizes, (s, o, e) => modem.demuxStream(s, o, e)));
    }
  });
});
