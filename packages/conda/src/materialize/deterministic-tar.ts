import { randomBytes } from 'node:crypto';
import { chmodSync, createWriteStream, lstatSync, lutimesSync, readdirSync } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { basename, dirname, join, posix } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { pack } from 'tar-stream';
import { addTarTreeEntry, compareBytes, InputError, listTree, normalisedMode, sha256Tap, sourceDateEpoch, type TreeEntryKind } from '@prebuilt/core';

// Where this package's callers and tests import it from.
export { sourceDateEpoch };

/**
 * Sets every entry under `dir` to its normalised mode and the given mtime, so that any tool that
 * tars the directory (a build service's own context upload) sees the same metadata. `done`: files
 * (relative) that already have them — hard links to extraction-cache files, which must not be
 * touched (their inode is shared with the cache) and are not even looked at. Synchronous calls:
 * one short system call per entry, where the promise versions cost a thread-pool round trip each.
 */
export async function normaliseTree(dir: string, mtime: number = sourceDateEpoch(), done: ReadonlySet<string> = new Set()): Promise<void> {
  const time = new Date(mtime * 1000);
  const fix = (path: string, kind: TreeEntryKind, mode: number): void => {
    const wanted = normalisedMode(kind, mode);
    if (kind !== 'symlink' && (mode & 0o7777) !== wanted) chmodSync(path, wanted);
    lutimesSync(path, time, time);
  };
  // Depth first, a directory after its content, so setting its mtime is not undone by changes inside it.
  const walk = (rel: string): void => {
    for (const entry of readdirSync(rel === '' ? dir : join(dir, rel), { withFileTypes: true })) {
      const child = rel === '' ? entry.name : `${rel}/${entry.name}`;
      if (entry.isFile() && done.has(child)) continue;
      const path = join(dir, child);
      if (entry.isDirectory()) walk(child);
      const kind: TreeEntryKind | undefined = entry.isDirectory() ? 'directory' : entry.isSymbolicLink() ? 'symlink' : entry.isFile() ? 'file' : undefined;
      if (!kind) throw new InputError(`'${path}' is neither a file, a directory nor a symlink; it cannot go into an image context.`);
      fix(path, kind, kind === 'symlink' ? 0o777 : lstatSync(path).mode);
    }
  };
  walk('');
  fix(dir, 'directory', lstatSync(dir).mode);
}

export interface DeterministicTarOptions {
  /** Directory inside the tar that holds `dir`'s content, e.g. `prefix` (default: the tar's root). */
  root?: string;
  /** Seconds since 1970 for every mtime (default: SOURCE_DATE_EPOCH, else 0). */
  mtime?: number;
  /** Files to add besides the tree, e.g. the Dockerfile: `{ path: 'Dockerfile', content }`. */
  extraFiles?: { path: string; content: string | Uint8Array; mode?: number }[];
}

export interface DeterministicTarResult {
  /** Hex sha256 of the tar. */
  sha256: string;
  size: number;
  entries: number;
}

/**
 * Writes a tar of `dir` to `outFile` (atomically) that depends only on the tree's content:
 * entries sorted bytewise, one mtime, uid/gid 0 with no user names, modes 0755/0644.
 * The same tree always gives the same bytes.
 */
export async function writeDeterministicTar(
  dir: string,
  outFile: string,
  options: DeterministicTarOptions = {},
): Promise<DeterministicTarResult> {
  const mtime = new Date((options.mtime ?? sourceDateEpoch()) * 1000);
  const root = options.root ? posix.normalize(options.root).replace(/\/+$/, '') : '';
  const items: { name: string; kind: 'file' | 'directory' | 'symlink'; mode: number; source?: string; content?: Uint8Array | string; size?: number }[] = [];
  if (root !== '') {
    const parts = root.split('/');
    for (let i = 1; i <= parts.length; i++) items.push({ name: parts.slice(0, i).join('/'), kind: 'directory', mode: 0o755 });
  }
  for (const entry of await listTree(dir, 'an image context')) {
    items.push({ name: root === '' ? entry.rel : `${root}/${entry.rel}`, kind: entry.kind, mode: entry.mode, source: join(dir, entry.rel), size: entry.size });
  }
  for (const extra of options.extraFiles ?? []) {
    items.push({ name: posix.normalize(extra.path), kind: 'file', mode: extra.mode ?? 0o644, content: extra.content });
  }
  items.sort((a, b) => compareBytes(a.name, b.name));

  const tar = pack();
  const counter = sha256Tap();
  const temp = join(dirname(outFile), `.${basename(outFile)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const written = pipeline(tar, counter.stream, createWriteStream(temp));
  try {
    for (const item of items) await addTarTreeEntry(tar, item, mtime);
    tar.finalize();
    await written;
    await rename(temp, outFile);
  } catch (error) {
    tar.destroy();
    await written.catch(() => undefined);
    await rm(temp, { force: true });
    throw error;
  }
  return { sha256: counter.hex(), size: counter.size(), entries: items.length };
}
