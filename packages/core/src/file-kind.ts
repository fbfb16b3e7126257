import type { BigIntStats, Stats } from 'node:fs';

/**
 * What a file that is not a regular file is, in the user's words, for a message that refuses it
 * (`… is a FIFO, not a regular file`): a directory, a FIFO, a socket, a device, a symbolic link (from
 * an lstat), else `something else`.
 */
export function fileKind(stats: Stats | BigIntStats): string {
  if (stats.isDirectory()) return 'a directory';
  if (stats.isFIFO()) return 'a FIFO';
  if (stats.isSocket()) return 'a socket';
  if (stats.isCharacterDevice() || stats.isBlockDevice()) return 'a device';
  if (stats.isSymbolicLink()) return 'a symbolic link';
  return 'something else';
}
