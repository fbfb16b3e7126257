import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';

/** 1 MiB reads: a package archive is hashed in a tenth of the reads of the default 64 KiB. */
const READ_CHUNK = 1024 * 1024;

/** Feeds every byte of a file to `update`, in {@link READ_CHUNK} reads. */
async function readInto(path: string, update: (chunk: Uint8Array) => void): Promise<void> {
  for await (const chunk of createReadStream(path, { highWaterMark: READ_CHUNK })) update(chunk as Buffer);
}

/** Hex digest of a file, read as a stream. */
export async function hashFile(path: string, algorithm: 'sha256' | 'md5'): Promise<string> {
  const hash = createHash(algorithm);
  await readInto(path, (chunk) => hash.update(chunk));
  return hash.digest('hex');
}

/** Hex sha256 of a file. */
export function sha256File(path: string): Promise<string> {
  return hashFile(path, 'sha256');
}

/** A package archive's two digests: the sha256 the lock pins and the md5 its conda-meta record names. */
export interface ArchiveDigests {
  sha256: string;
  md5: string;
}

/** Both digests of a package archive, fed the same bytes (one pass over them). */
export function archiveHasher(): { update: (chunk: Uint8Array) => void; digest: () => ArchiveDigests } {
  const sha256 = createHash('sha256');
  const md5 = createHash('md5');
  return {
    update: (chunk) => {
      sha256.update(chunk);
      md5.update(chunk);
    },
    digest: () => ({ sha256: sha256.digest('hex'), md5: md5.digest('hex') }),
  };
}

/** Both digests of a file, read once. */
export async function archiveDigests(path: string): Promise<ArchiveDigests> {
  const hasher = archiveHasher();
  await readInto(path, hasher.update);
  return hasher.digest();
}
