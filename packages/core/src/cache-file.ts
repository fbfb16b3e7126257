import { closeSync, constants, fstatSync, openSync, readSync, type Stats } from 'node:fs';
import { lutimes, open } from 'node:fs/promises';

/**
 * Reading a file prebuilt itself wrote into its cache (a verified record, cached repodata, a cached
 * solve, an extraction entry's or derived set's manifest, cached bytecode, a layer-cache record), at a name anyone who knows the lock or the channel URL can work out. Another user of a
 * shared cache directory may have put a FIFO there, or a symlink to one or to /dev/zero: reading it
 * hung the build (or the whole process, for a synchronous read) or filled memory. So the file is
 * opened without following a symlink and without blocking, and read only when it is a regular file
 * of at most `maxBytes`; anything else reads as undefined — as a missing entry, which the caller
 * writes anew (atomically, replacing the name).
 */
const FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;

export interface ReadCacheFileOptions {
  /**
   * Throw when the process is out of descriptors (EMFILE, ENFILE) instead of reading as missing: for a
   * caller that would otherwise take a good entry for a damaged one and remove it.
   */
  throwIfOutOfDescriptors?: boolean;
}

function outOfDescriptors(error: unknown, options: ReadCacheFileOptions): boolean {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return options.throwIfOutOfDescriptors === true && (code === 'EMFILE' || code === 'ENFILE');
}

/** The file's bytes, or undefined when it is missing, not a regular file, or larger than `maxBytes`. */
export function readCacheFileSync(path: string, maxBytes: number, options: ReadCacheFileOptions = {}): Buffer | undefined {
  let fd: number;
  try {
    fd = openSync(path, FLAGS);
  } catch (error) {
    if (outOfDescriptors(error, options)) throw error;
    return undefined;
  }
  try {
    const stats = fstatSync(fd);
    if (!stats.isFile() || stats.size > maxBytes) return undefined;
    const buffer = Buffer.alloc(stats.size);
    let at = 0;
    for (let n = -1; at < buffer.length && n !== 0; at += n) n = readSync(fd, buffer, at, buffer.length - at, at);
    return buffer.subarray(0, at);
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
}

/** {@link readCacheFileSync}, asynchronously. */
export async function readCacheFile(path: string, maxBytes: number, options: ReadCacheFileOptions = {}): Promise<Buffer | undefined> {
  const read = await readCacheEntry(path, maxBytes, options);
  return typeof read === 'object' ? read.bytes : undefined;
}

/**
 * {@link readCacheFile} for a caller that tells a missing file from an unusable one (a FIFO, a
 * symlink, a directory, one over `maxBytes`, or one that cannot be read: a damaged entry), and wants
 * the open file's stats with its bytes.
 */
export async function readCacheEntry(path: string, maxBytes: number, options: ReadCacheFileOptions = {}): Promise<{ bytes: Buffer; stats: Stats } | 'missing' | 'unusable'> {
  let handle;
  try {
    handle = await open(path, FLAGS);
  } catch (error) {
    if (outOfDescriptors(error, options)) throw error;
    return (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'missing' : 'unusable';
  }
  try {
    const stats = await handle.stat();
    if (!stats.isFile() || stats.size > maxBytes) return 'unusable';
    const buffer = Buffer.alloc(stats.size);
    let at = 0;
    for (let n = -1; at < buffer.length && n !== 0; at += n) ({ bytesRead: n } = await handle.read(buffer, at, buffer.length - at, at));
    return { bytes: buffer.subarray(0, at), stats };
  } catch {
    return 'unusable';
  } finally {
    await handle.close();
  }
}

/**
 * Marks a cache file as used now (its mtime, which the cache's clean-up reads for age), never
 * through a symlink: one swapped in at the name after the file was read gets its own times changed,
 * not those of the file it points at. Best effort: a failure is ignored (the entry just looks older).
 */
export async function markCacheFileUsed(path: string): Promise<void> {
  const now = new Date();
  await lutimes(path, now, now).catch(() => undefined);
}
