import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { open } from 'node:fs/promises';

/**
 * Reading a file prebuilt itself wrote into its cache (a verified record, cached repodata, a cached
 * solve), at a name anyone who knows the lock or the channel URL can work out. Another user of a
 * shared cache directory may have put a FIFO there, or a symlink to one or to /dev/zero: reading it
 * hung the build (or the whole process, for a synchronous read) or filled memory. So the file is
 * opened without following a symlink and without blocking, and read only when it is a regular file
 * of at most `maxBytes`; anything else reads as undefined — as a missing entry, which the caller
 * writes anew (atomically, replacing the name).
 */
const FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;

/** The file's bytes, or undefined when it is missing, not a regular file, or larger than `maxBytes`. */
export function readCacheFileSync(path: string, maxBytes: number): Buffer | undefined {
  let fd: number;
  try {
    fd = openSync(path, FLAGS);
  } catch {
    return undefined;
  }
  try {
    const stats = fstatSync(fd);
    if (!stats.isFile() || stats.size > maxBytes) return undefined;
    const buffer = Buffer.alloc(stats.size);
    const read = readSync(fd, buffer, 0, buffer.length, 0);
    return buffer.subarray(0, read);
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
}

/** {@link readCacheFileSync}, asynchronously. */
export async function readCacheFile(path: string, maxBytes: number): Promise<Buffer | undefined> {
  let handle;
  try {
    handle = await open(path, FLAGS);
  } catch {
    return undefined;
  }
  try {
    const stats = await handle.stat();
    if (!stats.isFile() || stats.size > maxBytes) return undefined;
    const buffer = Buffer.alloc(stats.size);
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
    return buffer.subarray(0, bytesRead);
  } catch {
    return undefined;
  } finally {
    await handle.close();
  }
}
