import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { chmod, lstat, lutimes, readdir, readFile, readlink, rename, rm } from 'node:fs/promises';
import { basename, dirname, join, posix } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { pack } from 'tar-stream';
import { ConfigError } from '@prebuilt/core';
import { compare } from './conda-install.js';

/** `SOURCE_DATE_EPOCH` when set (seconds since 1970), else 0. */
export function sourceDateEpoch(env: Record<string, string | undefined> = process.env): number {
  const raw = env.SOURCE_DATE_EPOCH;
  if (raw === undefined || raw === '') return 0;
  if (!/^\d+$/.test(raw)) {
    throw new ConfigError(`SOURCE_DATE_EPOCH is '${raw}', not a whole number of seconds.`, {
      setting: 'SOURCE_DATE_EPOCH',
      hint: 'Set SOURCE_DATE_EPOCH to a Unix timestamp, e.g. `git log -1 --format=%ct`, or unset it.',
    });
  }
  return Number(raw);
}

/** The mode every entry gets: 0755 for directories and executables, 0644 for other files. */
export function normalisedMode(kind: 'file' | 'directory' | 'symlink', mode: number): number {
  if (kind === 'directory') return 0o755;
  if (kind === 'symlink') return 0o777;
  return mode & 0o111 ? 0o755 : 0o644;
}

interface TreeEntry {
  rel: string;
  kind: 'file' | 'directory' | 'symlink';
  mode: number;
}

/** Every entry under `dir`, relative, sorted bytewise; devices, sockets and FIFOs are refused. */
async function listTree(dir: string): Promise<TreeEntry[]> {
  const out: TreeEntry[] = [];
  const walk = async (rel: string): Promise<void> => {
    const names = (await readdir(rel === '' ? dir : join(dir, rel))).sort(compare);
    for (const name of names) {
      const child = rel === '' ? name : `${rel}/${name}`;
      const info = await lstat(join(dir, child));
      if (info.isDirectory()) {
        out.push({ rel: child, kind: 'directory', mode: info.mode });
        await walk(child);
      } else if (info.isSymbolicLink()) out.push({ rel: child, kind: 'symlink', mode: info.mode });
      else if (info.isFile()) out.push({ rel: child, kind: 'file', mode: info.mode });
      else throw new ConfigError(`'${join(dir, child)}' is neither a file, a directory nor a symlink; it cannot go into an image context.`);
    }
  };
  await walk('');
  return out.sort((a, b) => compare(a.rel, b.rel));
}

/**
 * Sets every entry under `dir` to its normalised mode and the given mtime, so that any tool that
 * tars the directory (a build service's own context upload) sees the same metadata.
 */
export async function normaliseTree(dir: string, mtime: number = sourceDateEpoch()): Promise<void> {
  const entries = await listTree(dir);
  const time = new Date(mtime * 1000);
  // Deepest first, so setting a directory's mtime is not undone by changes inside it.
  for (const entry of entries.reverse()) {
    const path = join(dir, entry.rel);
    const mode = normalisedMode(entry.kind, entry.mode);
    if (entry.kind !== 'symlink' && (entry.mode & 0o7777) !== mode) await chmod(path, mode);
    await lutimes(path, time, time);
  }
  await chmod(dir, 0o755);
  await lutimes(dir, time, time);
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
  const items: { name: string; kind: 'file' | 'directory' | 'symlink'; mode: number; source?: string; content?: Uint8Array | string }[] = [];
  if (root !== '') {
    const parts = root.split('/');
    for (let i = 1; i <= parts.length; i++) items.push({ name: parts.slice(0, i).join('/'), kind: 'directory', mode: 0o755 });
  }
  for (const entry of await listTree(dir)) {
    items.push({ name: root === '' ? entry.rel : `${root}/${entry.rel}`, kind: entry.kind, mode: entry.mode, source: join(dir, entry.rel) });
  }
  for (const extra of options.extraFiles ?? []) {
    items.push({ name: posix.normalize(extra.path), kind: 'file', mode: extra.mode ?? 0o644, content: extra.content });
  }
  items.sort((a, b) => compare(a.name, b.name));

  const tar = pack();
  const hash = createHash('sha256');
  let size = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      hash.update(chunk);
      size += chunk.length;
      callback(null, chunk);
    },
  });
  const temp = join(dirname(outFile), `.${basename(outFile)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const written = pipeline(tar, counter, createWriteStream(temp));
  try {
    for (const item of items) {
      const header = {
        name: item.kind === 'directory' ? `${item.name}/` : item.name,
        mode: normalisedMode(item.kind, item.mode),
        uid: 0,
        gid: 0,
        uname: '',
        gname: '',
        mtime,
      };
      if (item.kind === 'directory') await addEntry(tar, { ...header, type: 'directory' });
      else if (item.kind === 'symlink') await addEntry(tar, { ...header, type: 'symlink', linkname: await readlink(item.source!) });
      else {
        const content = item.content !== undefined ? Buffer.from(item.content) : await readFile(item.source!);
        await addEntry(tar, { ...header, type: 'file', size: content.length }, content);
      }
    }
    tar.finalize();
    await written;
    await rename(temp, outFile);
  } catch (error) {
    tar.destroy();
    await written.catch(() => undefined);
    await rm(temp, { force: true });
    throw error;
  }
  return { sha256: hash.digest('hex'), size, entries: items.length };
}

function addEntry(tar: ReturnType<typeof pack>, header: Parameters<ReturnType<typeof pack>['entry']>[0], content?: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const callback = (error?: Error | null): void => (error ? reject(error) : resolve());
    if (content) tar.entry(header, content, callback);
    else tar.entry(header, callback);
  });
}
