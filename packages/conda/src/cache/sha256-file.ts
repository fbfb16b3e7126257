import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';

/** Hex digest of a file, read as a stream. */
export async function hashFile(path: string, algorithm: 'sha256' | 'md5'): Promise<string> {
  const hash = createHash(algorithm);
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Hex sha256 of a file. */
export function sha256File(path: string): Promise<string> {
  return hashFile(path, 'sha256');
}
