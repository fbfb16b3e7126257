import { createHash } from 'node:crypto';
import { readFile, readlink } from 'node:fs/promises';
import { posix } from 'node:path';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { Gzip } from 'fflate';
import { pack, type Header as TarHeaders } from 'tar-stream';
import { CancelledError, compareBytes, normalisedMode } from '@prebuilt/core';

/** One entry of a layer: where it goes in the image and where its content comes from. */
export interface LayerEntry {
  /** Path in the image, relative to `/` (no leading slash), e.g. `opt/prebuilt/envs/x/bin/python`. */
  path: string;
  kind: 'file' | 'directory' | 'symlink';
  /** Host path of a file or symlink. */
  source?: string;
  /** Permission bits on the host; normalised to 0755/0644 (directories 0755). */
  mode?: number;
}

export interface BuiltLayer {
  /** sha256 of the gzip blob: the layer's digest in the manifest. */
  digest: string;
  /** sha256 of the uncompressed tar: the layer's diff_id in the image config. */
  diffId: string;
  /** The gzip-compressed tar. */
  blob: Uint8Array;
  /** Size of the uncompressed tar. */
  tarSize: number;
  entries: number;
}

/** `a/b/c` → [`a`, `a/b`]: the directories leading to a path. */
export function parentDirs(path: string): string[] {
  const parts = path.split('/');
  const out: string[] = [];
  for (let i = 1; i < parts.length; i++) out.push(parts.slice(0, i).join('/'));
  return out;
}

/** Adds the missing parent directories of every entry and sorts bytewise; duplicate paths keep the last entry. */
export function completeEntries(entries: readonly LayerEntry[]): LayerEntry[] {
  const byPath = new Map<string, LayerEntry>();
  for (const entry of entries) {
    for (const dir of parentDirs(entry.path)) if (!byPath.has(dir)) byPath.set(dir, { path: dir, kind: 'directory' });
    byPath.set(entry.path, entry);
  }
  return [...byPath.values()].sort((a, b) => compareBytes(a.path, b.path));
}

const GZIP_CHUNK = 1 << 20;

/**
 * Deterministic gzip: a fixed header (mtime 0, no file name) and level 6 of a pure-JS deflate, fed
 * in fixed 1 MiB chunks — the same tar gives the same bytes on every machine and Node version
 * that uses the same fflate version. Yields to the event loop between chunks.
 */
export async function deterministicGzip(data: Uint8Array, signal?: AbortSignal): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  const gzip = new Gzip({ level: 6, mtime: 0 }, (chunk) => {
    chunks.push(chunk);
  });
  if (data.length === 0) gzip.push(new Uint8Array(), true);
  for (let offset = 0; offset < data.length; offset += GZIP_CHUNK) {
    if (signal?.aborted) throw new CancelledError('Building the image layers was cancelled.', { cause: signal.reason });
    const end = Math.min(offset + GZIP_CHUNK, data.length);
    gzip.push(data.subarray(offset, end), end === data.length);
    if (end < data.length) await yieldToLoop();
  }
  return Buffer.concat(chunks);
}

function sha256(bytes: Uint8Array): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/**
 * Builds one layer: a tar of `entries` (parents added, sorted bytewise, one mtime, uid/gid 0 with
 * no names, normalised modes), then its deterministic gzip. The same entries give the same bytes.
 */
export async function buildLayer(entries: readonly LayerEntry[], options: { mtime?: number; signal?: AbortSignal } = {}): Promise<BuiltLayer> {
  const tar = await tarLayer(entries, options);
  const blob = await deterministicGzip(tar.tar, options.signal);
  return { digest: sha256(blob), diffId: tar.diffId, blob, tarSize: tar.tar.length, entries: tar.entries };
}

/** The uncompressed tar of a layer and its diff_id (see {@link buildLayer}). */
export async function tarLayer(entries: readonly LayerEntry[], options: { mtime?: number; signal?: AbortSignal } = {}): Promise<{ tar: Buffer; diffId: string; entries: number }> {
  const { signal } = options;
  const mtime = new Date((options.mtime ?? 0) * 1000);
  const items = completeEntries(entries);
  const tar = pack();
  const parts: Buffer[] = [];
  tar.on('data', (chunk: unknown) => {
    parts.push(chunk as Buffer);
  });
  const finished = new Promise<void>((resolve, reject) => {
    tar.on('end', resolve);
    tar.on('error', reject);
  });
  for (const item of items) {
    if (signal?.aborted) {
      tar.destroy();
      throw new CancelledError('Building the image layers was cancelled.', { cause: signal.reason });
    }
    const header: Partial<TarHeaders> & { name: string } = {
      name: item.kind === 'directory' ? `${item.path}/` : item.path,
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
      const content = await readFile(item.source!);
      await addEntry(tar, { ...header, type: 'file', size: content.length }, content);
    }
  }
  tar.finalize();
  await finished;
  const tarBytes = Buffer.concat(parts);
  return { tar: tarBytes, diffId: sha256(tarBytes), entries: items.length };
}

function addEntry(tar: ReturnType<typeof pack>, header: Partial<TarHeaders> & { name: string }, content?: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const callback = (error?: Error | null): void => (error ? reject(error) : resolve());
    if (content) tar.entry(header, content, callback);
    else tar.entry(header, callback);
  });
}

/** Joins an image directory (absolute) and a relative path into a layer path (no leading slash). */
export function imagePath(dir: string, rel: string): string {
  const joined = posix.normalize(posix.join('/', dir, rel));
  return joined.replace(/^\/+/, '').replace(/\/+$/, '');
}
