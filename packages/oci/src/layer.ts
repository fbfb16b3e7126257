import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { posix } from 'node:path';
import { Readable, Transform, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { pack } from 'tar-stream';
import { addTarTreeEntry, CancelledError, compareBytes, sha256Digest, sha256Tap } from '@prebuilt/core/backend';
import { prefetchOrder, type EstargzPrefetch } from './estargz-prefetch.js';
import { startMkfsErofs, type MkfsErofs } from './erofs.js';
import { deterministicGzipStream, isLazyCompression, layerCompressor, lazyLayerWriter, type LayerCompression } from './layer-codec.js';

/** One entry of a layer: where it goes in the image and where its content comes from. */
export interface LayerEntry {
  /** Path in the image, relative to `/` (no leading slash), e.g. `opt/prebuilt/envs/x/bin/python`. */
  path: string;
  kind: 'file' | 'directory' | 'symlink';
  /** Host path of a file or symlink. */
  source?: string;
  /** Permission bits on the host; normalised to 0755/0644 (directories 0755). */
  mode?: number;
  /** A file's content, instead of `source` (the eStargz prefetch landmark). */
  content?: Uint8Array;
  /** A file's size when listed: a small file is read in one synchronous call (core's addTarTreeEntry). */
  size?: number;
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

/** How a layer's tar is written: the mtime of every entry, cancellation, and (eStargz layers) the prefetch order. */
export interface TarOptions {
  mtime?: number;
  signal?: AbortSignal;
  /** Entries in eStargz prefetch order (prioritized files, landmark, rest); default bytewise. */
  prefetch?: EstargzPrefetch;
}

/**
 * Deterministic gzip of a buffer with Node's native zlib (see {@link deterministicGzipStream}): the
 * same bytes give the same gzip. For whole layers use {@link writeLayer}, which streams.
 */
export async function deterministicGzip(data: Uint8Array, signal?: AbortSignal): Promise<Uint8Array> {
  if (signal?.aborted) throw new CancelledError('Building the image layers was cancelled.', { cause: signal.reason });
  const chunks: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      chunks.push(chunk);
      callback();
    },
  });
  const streams: unknown[] = [Readable.from([Buffer.from(data.buffer, data.byteOffset, data.byteLength)]), ...deterministicGzipStream(), sink];
  await pipeline(streams as NodeJS.ReadWriteStream[], signal ? { signal } : {}).catch((error: unknown) => {
    throw cancelledOr(error, signal);
  });
  return Buffer.concat(chunks);
}

function cancelledOr(error: unknown, signal: AbortSignal | undefined): unknown {
  return signal?.aborted ? new CancelledError('Building the image layers was cancelled.', { cause: signal.reason }) : error;
}

/**
 * Builds one layer: a tar of `entries` (parents added, sorted bytewise, one mtime, uid/gid 0 with
 * no names, normalised modes), then its deterministic gzip. The same entries give the same bytes.
 */
export async function buildLayer(entries: readonly LayerEntry[], options: { mtime?: number; signal?: AbortSignal } = {}): Promise<BuiltLayer> {
  const tar = await tarLayer(entries, options);
  const blob = await deterministicGzip(tar.tar, options.signal);
  return { digest: sha256Digest(blob), diffId: tar.diffId, blob, tarSize: tar.tar.length, entries: tar.entries };
}

/** The uncompressed tar of a layer and its diff_id (see {@link buildLayer}), in memory. */
export async function tarLayer(entries: readonly LayerEntry[], options: TarOptions = {}): Promise<{ tar: Buffer; diffId: string; entries: number }> {
  const parts: Buffer[] = [];
  const hash = createHash('sha256');
  const tap = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      parts.push(chunk);
      hash.update(chunk);
      callback();
    },
  });
  const { entries: count } = await streamTar(entries, [tap], options);
  return { tar: Buffer.concat(parts), diffId: `sha256:${hash.digest('hex')}`, entries: count };
}

/** sha256 of the uncompressed tar only (reads the files, compresses nothing): a layer's diff_id. */
export async function layerDiffId(entries: readonly LayerEntry[], options: TarOptions = {}): Promise<{ diffId: string; tarSize: number; entries: number }> {
  const tap = hashTap();
  const { entries: count } = await streamTar(entries, [tap.stream, discard()], options);
  return { diffId: tap.digest(), tarSize: tap.size(), entries: count };
}

/** A layer compressed to a file: digests, sizes and where the blob is. */
export interface WrittenLayer {
  /** sha256 of the compressed blob. */
  digest: string;
  /** Size of the compressed blob. */
  size: number;
  /** sha256 of the uncompressed tar: the diff_id (an EROFS layer's is its digest: it has no uncompressed form). */
  diffId: string;
  /** sha256 of the plain tar of the entries (what the layer cache is keyed by): the diff_id, except for eStargz, whose tar adds the TOC (zstd:chunked's does not), and EROFS. */
  tarDigest: string;
  tarSize: number;
  entries: number;
  /** The compressed blob on disk. */
  file: string;
  /** Annotations of the layer's descriptor (eStargz, zstd:chunked: the TOC digest and the uncompressed size; zstd:chunked also the TOC's position and checksum). */
  annotations?: Record<string, string>;
}

/**
 * Builds one layer in a single streaming pass: tar → sha256 (diff_id) → compressor → sha256
 * (digest) → `file`. Memory stays bounded (one file's content and the compressor's buffers); the
 * compressors run natively on the libuv thread pool.
 */
export async function writeLayer(
  entries: readonly LayerEntry[],
  file: string,
  options: TarOptions & { compression: LayerCompression; mkfsErofs?: MkfsErofs; label?: string },
): Promise<WrittenLayer> {
  if (options.compression === 'erofs') {
    if (!options.mkfsErofs) throw new TypeError('writeLayer: erofs layers need the mkfs.erofs to run (mkfsErofs).');
    return writeErofsLayer(entries, file, options.mkfsErofs, options.label ?? file, options);
  }
  const tar = hashTap();
  const blob = hashTap();
  const esgz = isLazyCompression(options.compression) ? lazyLayerWriter(options.compression) : undefined;
  const compressor = esgz ? [esgz.stream] : layerCompressor(options.compression);
  // Only a lazy (eStargz, zstd:chunked) layer has a prefetch order; any other keeps the plain one.
  const { prefetch, ...plain } = options;
  const tarOptions = esgz && prefetch ? { ...plain, prefetch } : plain;
  const { entries: count } = await streamTar(entries, [tar.stream, ...compressor, blob.stream, createWriteStream(file)], tarOptions);
  const tarDigest = tar.digest();
  const written = { digest: blob.digest(), size: blob.size(), diffId: tarDigest, tarDigest, tarSize: tar.size(), entries: count, file };
  if (!esgz) return written;
  const { diffId, uncompressedSize, annotations } = esgz.result();
  return { ...written, diffId, tarSize: uncompressedSize, annotations };
}

/**
 * An EROFS layer: the layer's tar (the one the other formats compress) piped into mkfs.erofs,
 * which writes the image to `file`; then the image is hashed. Its digest is also its diff_id.
 */
async function writeErofsLayer(entries: readonly LayerEntry[], file: string, mkfs: MkfsErofs, label: string, options: TarOptions): Promise<WrittenLayer> {
  const tar = hashTap();
  const run = startMkfsErofs(mkfs, file, label, options.signal);
  const streaming = streamTar(entries, [tar.stream, run.stdin], options);
  // A tar that cannot be written (a file unreadable): mkfs.erofs is stopped, the tar's error is the layer's.
  streaming.catch(run.kill);
  const [streamed, made] = await Promise.allSettled([streaming, run.done]);
  if (options.signal?.aborted) throw cancelledOr(undefined, options.signal);
  if (streamed.status === 'rejected') throw streamed.reason;
  if (made.status === 'rejected') throw made.reason;
  const blob = hashTap();
  await pipeline([createReadStream(file), blob.stream, discard()], options.signal ? { signal: options.signal } : {});
  const digest = blob.digest();
  return { digest, size: blob.size(), diffId: digest, tarDigest: tar.digest(), tarSize: tar.size(), entries: streamed.value.entries, file };
}

/** A pass-through stage that hashes and counts what flows through it; digest as `sha256:<hex>`. */
export function hashTap(): { stream: Transform; digest: () => string; size: () => number } {
  const tap = sha256Tap();
  return { stream: tap.stream, digest: () => `sha256:${tap.hex()}`, size: tap.size };
}

function discard(): Writable {
  return new Writable({
    write(_chunk, _encoding, callback) {
      callback();
    },
  });
}

/**
 * Streams the tar of `entries` (parents added, sorted bytewise, one mtime, uid/gid 0 with no
 * names, normalised modes) through `stages`; the tar producer waits for the stages (backpressure).
 */
async function streamTar(
  entries: readonly LayerEntry[],
  stages: (Transform | Writable)[],
  options: TarOptions,
): Promise<{ entries: number }> {
  const { signal } = options;
  const mtime = new Date((options.mtime ?? 0) * 1000);
  const items = options.prefetch ? prefetchOrder(entries, options.prefetch) : completeEntries(entries);
  const tar = pack();
  const produce = async (): Promise<void> => {
    for (const item of items) {
      if (signal?.aborted) throw new CancelledError('Building the image layers was cancelled.', { cause: signal.reason });
      await addTarTreeEntry(tar, { name: item.path, kind: item.kind, mode: item.mode, source: item.source, content: item.content, size: item.size }, mtime);
    }
    tar.finalize();
  };
  const producing = produce().catch((error: unknown) => {
    tar.destroy(error as Error);
    throw error;
  });
  const [, piped] = await Promise.allSettled([
    producing,
    pipeline([tar, ...stages] as unknown as NodeJS.ReadWriteStream[], signal ? { signal } : {}),
  ]);
  const produced = await producing.then(() => undefined, (error: unknown) => error);
  if (produced !== undefined) throw cancelledOr(produced, signal);
  if (piped.status === 'rejected') throw cancelledOr(piped.reason, signal);
  return { entries: items.length };
}

/** Joins an image directory (absolute) and a relative path into a layer path (no leading slash). */
export function imagePath(dir: string, rel: string): string {
  const joined = posix.normalize(posix.join('/', dir, rel));
  return joined.replace(/^\/+/, '').replace(/\/+$/, '');
}
