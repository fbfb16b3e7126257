/**
 * Writing a cache file and sealing it in one go: created with O_EXCL, written, given the
 * normalised mode and the build's mtime and stamped (extraction-cache.ts's FileStamp) through the
 * open descriptor — `futimens`, one `fstat` (and `fchmod` where the umask narrowed the mode)
 * instead of `chmod`, `utimes` and two `lstat` by path afterwards, which each walk the path again. The extraction cache and its derived sets
 * keep tens of thousands of files per env; the per-file calls are most of what they cost beyond
 * creating the files.
 */
import { closeSync, fchmodSync, fstatSync, futimesSync, openSync, writeSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import type { BigIntStats } from 'node:fs';
import { normalisedMode } from '@prebuilt/core/extraction';
import type { FileStamp } from './extraction-cache.js';

/** The stamp of a file from its stats (bigint: the mtime in nanoseconds). */
export function stampFromStats(stats: BigIntStats): FileStamp {
  return { size: Number(stats.size), ino: String(stats.ino), mode: Number(stats.mode) & 0o7777, mtimeNs: String(stats.mtimeNs) };
}

/** What sealing needs: the executable bits of the file's mode, and the mtime (seconds since 1970). */
export interface Seal {
  /** The file's mode before normalisation (only its executable bits count). */
  mode: number;
  mtime: number;
}

const modeOf = (seal: Seal): number => normalisedMode('file', seal.mode);

/** Writes `data` to a new file `path` (O_EXCL) and seals it: normalised mode, `mtime`; returns its stamp. Synchronous: for small files. */
export function writeSealedFileSync(path: string, data: Uint8Array, seal: Seal): FileStamp {
  const mode = modeOf(seal);
  const fd = openSync(path, 'wx', mode);
  try {
    for (let at = 0; at < data.length; ) at += writeSync(fd, data, at, data.length - at);
    return sealFd(fd, mode, seal.mtime);
  } finally {
    closeSync(fd);
  }
}

function sealFd(fd: number, mode: number, mtime: number): FileStamp {
  futimesSync(fd, mtime, mtime);
  // One fstat gives the stamp; fchmod (where the umask narrowed the mode the file was created
  // with) changes neither the size, the inode nor the mtime, so the stamp only takes the new mode.
  const stamp = stampFromStats(fstatSync(fd, { bigint: true }));
  if (stamp.mode === mode) return stamp;
  fchmodSync(fd, mode);
  return { ...stamp, mode };
}

/** Opens a new file `path` (O_EXCL) for a streamed write; `seal()` then seals it as {@link writeSealedFileSync} does, before it is closed. */
export async function openSealedFile(path: string, seal: Seal): Promise<{ handle: FileHandle; seal: () => Promise<FileStamp> }> {
  const mode = modeOf(seal);
  const handle = await open(path, 'wx', mode);
  return {
    handle,
    seal: async () => {
      await handle.utimes(seal.mtime, seal.mtime);
      const stamp = stampFromStats(await handle.stat({ bigint: true }));
      if (stamp.mode === mode) return stamp;
      await handle.chmod(mode);
      return { ...stamp, mode };
    },
  };
}
