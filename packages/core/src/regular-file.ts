/**
 * Reading a file the user or their repository gives (a lock file, Metaflow's configuration, an
 * image map, a prefetch profile). It may be a FIFO, a device, or a symlink to one or to /dev/zero:
 * reading it would hang the command or fill its memory. So it is opened without blocking (a symlink
 * is followed: such a file may be one on purpose) and read only when the open descriptor is a
 * regular file of at most `maxBytes`; otherwise the caller's own error, from `refuse`, is thrown.
 * Errors of the open itself (ENOENT, EACCES) are thrown as the file system gives them.
 * (A file prebuilt wrote into its cache is read by cache-file.ts instead: no symlink followed.)
 */
import { closeSync, constants, fstatSync, openSync, readFileSync, type Stats } from 'node:fs';
import { open } from 'node:fs/promises';
import { fileKind } from './file-kind.js';

/** How a caller refuses a file it will not read. */
export interface RegularFileRefusals {
  /** The file is not a regular file: `kind` says what it is (`a FIFO`, `a directory`, …). */
  notAFile(kind: string): Error;
  /** The file holds `size` bytes, more than the bound. */
  tooLarge(size: number): Error;
}

const FLAGS = constants.O_RDONLY | constants.O_NONBLOCK;

function check(stats: Stats, maxBytes: number, refuse: RegularFileRefusals): void {
  if (!stats.isFile()) throw refuse.notAFile(fileKind(stats));
  if (stats.size > maxBytes) throw refuse.tooLarge(stats.size);
}

/** The bytes of `path`, a regular file of at most `maxBytes` (see {@link RegularFileRefusals}). */
export async function readRegularFile(path: string, maxBytes: number, refuse: RegularFileRefusals): Promise<Buffer> {
  const handle = await open(path, FLAGS);
  try {
    check(await handle.stat(), maxBytes, refuse);
    return await handle.readFile();
  } finally {
    await handle.close();
  }
}

/** {@link readRegularFile}, synchronously. */
export function readRegularFileSync(path: string, maxBytes: number, refuse: RegularFileRefusals): Buffer {
  const fd = openSync(path, FLAGS);
  try {
    check(fstatSync(fd), maxBytes, refuse);
    return readFileSync(fd);
  } finally {
    closeSync(fd);
  }
}
