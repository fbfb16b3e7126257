import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';

/** Hex digest of a file, read as a stream. */
export async function hashFile(path: string, algorithm: 'sha256' | 'md5'): Promise<string> {
  const hash = createHash(algorithm);
  // 1 MiB reads: a package archive is hashed in a tenth of the reads of the default 64 KiB.
  for await (const chunk of createReadStream(path, { highWaterMark: 1024 * 1024 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Hex sha256 of a file. */
export function sha256File(path: string): Promise<string> {
  return hashFile(path, 'sha256');
}
