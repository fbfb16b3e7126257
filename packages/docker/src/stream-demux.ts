import type { Readable, Writable } from 'node:stream';

const HEADER = 8;

/**
 * Splits the multiplexed output of an attached container without a TTY into stdout and stderr.
 * The Engine API frames it as `[stream, 0, 0, 0, size (uint32 big-endian)]` then `size` bytes;
 * stream 1 is stdout, 2 stderr (0, stdin echoed back, goes to stdout). A header that is none of
 * these means the stream is not multiplexed (a TTY): the rest is passed to stdout as it is.
 * Frames may arrive split across chunks or several in one chunk; payloads are passed on as they
 * arrive (a frame's size buffers nothing), only an unfinished 8-byte header is kept.
 */
export function demuxStream(source: Readable, stdout: Writable, stderr: Writable): void {
  let header = Buffer.alloc(0); // an unfinished frame header (fewer than 8 bytes)
  let target: Writable = stdout; // where the current frame's payload goes
  let remaining = 0; // payload bytes of the current frame still to come
  let raw = false;
  source.on('data', (chunk: Buffer) => {
    let offset = 0;
    while (offset < chunk.length) {
      if (raw) return void stdout.write(chunk.subarray(offset));
      if (remaining > 0) {
        const take = Math.min(remaining, chunk.length - offset);
        target.write(chunk.subarray(offset, offset + take));
        remaining -= take;
        offset += take;
        continue;
      }
      const need = HEADER - header.length;
      header = Buffer.concat([header, chunk.subarray(offset, offset + need)]);
      offset += Math.min(need, chunk.length - offset);
      if (header.length < HEADER) return;
      if (header[0]! > 2) {
        raw = true;
        stdout.write(header);
      } else {
        target = header[0] === 2 ? stderr : stdout;
        remaining = header.readUInt32BE(4);
      }
      header = Buffer.alloc(0);
    }
  });
}
