/**
 * One entry of a deterministic tar (tar-stream's `pack`): the header every machine writes alike —
 * uid/gid 0 with no user names, the normalised mode, one mtime — and the entry's content, read from
 * its source file (or given). Shared by the materializer's deterministic tar (`@prebuilt/conda`)
 * and the daemonless image layers (`@prebuilt/oci`). Resolves once tar-stream has taken the entry,
 * so a producer that awaits it follows the reader's pace.
 */
import { readFileSync } from 'node:fs';
import { readFile, readlink } from 'node:fs/promises';
import { normalisedMode, type TreeEntryKind } from './file-tree.js';

export interface TarTreeEntry {
  /** Path in the tar, without a trailing slash. */
  name: string;
  kind: TreeEntryKind;
  /** Mode on disk; normalised to 0755/0644 (directories 0755, symlinks 0777). */
  mode?: number | undefined;
  /** Host path of a file's content or a symlink. */
  source?: string | undefined;
  /** A file's content, instead of `source`. */
  content?: Uint8Array | string | undefined;
  /**
   * The file's size when listed, a hint: a file known to be small is read synchronously (see
   * {@link SYNC_READ_MAX}); the header takes the size of what was read.
   */
  size?: number | undefined;
}

/**
 * Files up to this size are read with one synchronous call: open, fstat, read and close are short
 * system calls, where the promise version costs four thread-pool round trips — most of the CPU of
 * tarring an env of many small files (the realistic env: 17,000 files, most under 64 KiB). Bigger
 * files are read on the thread pool, so the event loop keeps feeding the compressors.
 */
export const SYNC_READ_MAX = 256 << 10;

/** A tar entry's header as tar-stream's `pack().entry` takes it: the fields core writes. */
export interface TarPackHeader {
  name: string;
  type: 'file' | 'directory' | 'symlink';
  mode?: number;
  mtime?: Date;
  uid?: number;
  gid?: number;
  uname?: string;
  gname?: string;
  size?: number;
  linkname?: string;
}

type EntryCallback = (error?: Error | null) => void;

/**
 * What core needs of a tar-stream pack (`pack()` of tar-stream 3), said here so core's published
 * types name no package: a library user needs no tar-stream types to compile against core.
 */
export interface TarPack {
  entry(header: TarPackHeader, content: Buffer, callback: EntryCallback): { on(event: 'error', listener: (error: Error) => void): unknown };
  entry(header: TarPackHeader, callback: EntryCallback): { on(event: 'error', listener: (error: Error) => void): unknown };
}

export async function addTarTreeEntry(tar: TarPack, item: TarTreeEntry, mtime: Date): Promise<void> {
  const header = {
    name: item.kind === 'directory' ? `${item.name}/` : item.name,
    mode: normalisedMode(item.kind, item.mode),
    uid: 0,
    gid: 0,
    uname: '',
    gname: '',
    mtime,
  };
  if (item.kind === 'directory') return writeTarEntry(tar, { ...header, type: 'directory' });
  if (item.kind === 'symlink') return writeTarEntry(tar, { ...header, type: 'symlink', linkname: await readlink(item.source!) });
  const content = item.content !== undefined ? Buffer.from(item.content) : item.size !== undefined && item.size <= SYNC_READ_MAX ? readFileSync(item.source!) : await readFile(item.source!);
  return writeTarEntry(tar, { ...header, type: 'file', size: content.length }, content);
}

/**
 * Adds one entry with the header as given (and its content, for a file) to a tar-stream pack;
 * resolves once the pack has taken it. The one tar entry writer of core: the deterministic tree
 * entries above and the build context archives (`backend-kit/context-archive.ts`) both use it.
 *
 * A pack destroyed meanwhile (an interrupted layer) destroys the entry too: the callback rejects
 * with the error, and the entry also emits it as an 'error' event, which nobody else listens to —
 * unheard, Node would end the process with it. The rejection is the one report.
 */
export function writeTarEntry(tar: TarPack, header: TarPackHeader, content?: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const callback = (error?: Error | null): void => (error ? reject(error) : resolve());
    const entry = content ? tar.entry(header, content, callback) : tar.entry(header, callback);
    entry.on('error', () => {});
  });
}
