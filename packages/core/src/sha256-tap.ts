import { createHash } from 'node:crypto';
import { Transform } from 'node:stream';

/** A pass-through stream stage that hashes (sha256) and counts the bytes flowing through it. */
export interface Sha256Tap {
  stream: Transform;
  /** Hex sha256 of everything that went through; call once, after the stream finished. */
  hex: () => string;
  size: () => number;
}

export function sha256Tap(): Sha256Tap {
  const hash = createHash('sha256');
  let size = 0;
  const stream = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      hash.update(chunk);
      size += chunk.length;
      callback(null, chunk);
    },
  });
  return { stream, hex: () => hash.digest('hex'), size: () => size };
}
