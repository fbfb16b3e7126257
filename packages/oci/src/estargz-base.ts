import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { ConfigError, EnvironmentError, diskFullError, type OciDescriptor } from '@prebuilt/core/backend';
import { MAX_TOC_BYTES, TOC_DIGEST_ANNOTATION } from './estargz.js';
import { hashTap } from './layer.js';
import { lazyLayerWriter, type LazyCompression } from './layer-codec.js';
import { TarRecordIndex, prefetchPlan, type TarPiece } from './tar-prefetch-order.js';

/**
 * The base image re-layered as eStargz: on an empty node, containerd 1.6 unpacks the layers of an
 * image in order, and from the first layer it must unpack (a plain gzip base) on, it fetches every
 * layer after it whole — so the env's eStargz layers are lazily pulled only where the base is
 * cached, or is eStargz too. Each base layer converts to an eStargz layer of the same files in the
 * same order (no prefetch landmark: the node's `prefetch_size` applies) — or, with a recorded
 * prefetch profile, the base files the task read first, then the landmark (tar-prefetch-order.ts) —
 * still one valid gzip stream; its diff_id changes (the tar gains the TOC), so the image's config
 * names the new ones. A layer is read from its file and written to another, never held: a CUDA
 * base's 3 GB layer converts in the memory of a few chunks.
 */

const GZIP_LAYERS = new Set(['application/vnd.oci.image.layer.v1.tar+gzip', 'application/vnd.docker.image.rootfs.diff.tar.gzip']);
const TAR_LAYERS = new Set(['application/vnd.oci.image.layer.v1.tar', 'application/vnd.docker.image.rootfs.diff.tar']);

/**
 * A base layer whose tar is bigger than this unpacked (32 GiB) keeps its own order under a prefetch
 * profile; its files are then fetched as the node's `prefetch_size` and the task's reads ask, as
 * without a profile. Reordering a gzip layer unpacks its tar into a temp file beside the converted
 * one, so this bounds the disk a layer can take (a gzip stream of zeros unpacks a thousandfold);
 * real base layers are far below it (a CUDA base's biggest, 3 GB compressed, is under 10 GiB).
 */
const MAX_REORDERED_TAR = 32 * 1024 ** 3;

/**
 * A base layer with more entries than this (1 Mi) keeps its own order under a prefetch profile:
 * reordering keeps where each entry lies in memory (its path and offsets, about 150 bytes: some
 * 150 MiB at the limit). A real base layer has up to a few hundred thousand.
 */
const MAX_REORDERED_ENTRIES = 1024 * 1024;

/**
 * The version of the base-layer conversion ({@link convertLayerToEstargz}), part of the key the
 * layer cache remembers a converted base layer by ({@link convertedBaseKey}). Bump it with any change
 * that makes the conversion write other bytes for the same blob and options — the prefetch order
 * (tar-prefetch-order.ts: where the profile's files and the landmark go), the reordering limits,
 * what the TOC records or how entries are split into members — so that a converted layer an older
 * prebuilt remembered is converted again, not reused. A change of the writer's byte format (codec,
 * level, chunk size, TOC version) changes LAYER_FORMAT_ID instead, which gives the cache another
 * directory.
 */
export const BASE_CONVERSION_VERSION = 1;

/**
 * The layer cache's content key of a base layer converted by this version of the conversion
 * (`version`, default {@link BASE_CONVERSION_VERSION}): the base layer's digest and the prefetch
 * choice it was converted with (`prefetch`, empty for the base's own order).
 */
export function convertedBaseKey(layerDigest: string, prefetch: string, version: number = BASE_CONVERSION_VERSION): string {
  return `sha256:${createHash('sha256').update(`estargz-base\0v${version}\0${layerDigest}${prefetch}`).digest('hex')}`;
}

/** Files are read in pieces of this size. */
const READ_CHUNK = 1024 * 1024;

/** A tar over the reordering limits: it keeps its own order. */
class OverReorderLimit extends Error {}

/**
 * The tar of a base layer in prefetch order: the file holding it (the blob itself when it is a plain
 * tar, else `spool`, its tar unpacked) and the pieces of it to write in order; undefined when it is
 * over `max` bytes unpacked or `maxEntries` entries, or its paths over `maxHeld` bytes (the TOC's
 * bound: the writer then refuses it). Read once, as it streams by: what is held is each entry's
 * path and offsets.
 */
async function prefetchOrderedTar(blob: string, gzipped: boolean, prefetch: readonly string[], spool: string, options: { max: number; maxEntries: number; maxHeld: number; label: string; signal: AbortSignal | undefined }): Promise<{ tar: string; pieces: TarPiece[] } | undefined> {
  if (!gzipped && (await stat(blob)).size > options.max) return undefined;
  const index = new TarRecordIndex(options.label);
  const out = gzipped ? await open(spool, 'w') : undefined;
  const read = async (chunk: Buffer): Promise<void> => {
    index.write(chunk);
    if (index.size > options.max || index.records.length > options.maxEntries || index.heldBytes > options.maxHeld) throw new OverReorderLimit();
    // Unpacked to the spool up to the tar's end-of-archive blocks (what follows is counted, not kept).
    const kept = index.ended ? Math.max(0, Math.min(chunk.length, index.recordsEnd - (index.size - chunk.length))) : chunk.length;
    if (out && kept > 0) await writeAll(out, chunk.subarray(0, kept));
  };
  let over = false;
  try {
    await pipeInto([createReadStream(blob, { highWaterMark: READ_CHUNK }), ...(gzipped ? [createGunzip()] : [])], read, options.signal);
  } catch (error) {
    if (!(error instanceof OverReorderLimit)) throw error;
    over = true;
  } finally {
    await out?.close();
  }
  if (over) {
    // Its disk freed before the layer is converted in its own order.
    await rm(spool, { force: true });
    return undefined;
  }
  return { tar: gzipped ? spool : blob, pieces: prefetchPlan(index.end(), prefetch) };
}

/** Writes all of `bytes` at the file's position (a write may take fewer). */
async function writeAll(handle: FileHandle, bytes: Buffer): Promise<void> {
  for (let at = 0; at < bytes.length; ) at += (await handle.write(bytes, at, bytes.length - at)).bytesWritten;
}

/**
 * Pipes `stages` into `each` (called with every chunk, in order, awaited). A failure of `each` is
 * the pipeline's (its source would otherwise report the AbortError of being stopped).
 */
async function pipeInto(stages: NodeJS.ReadableStream[], each: (chunk: Buffer) => Promise<void>, signal: AbortSignal | undefined): Promise<void> {
  let failure: { error: unknown } | undefined;
  const sink = async (chunks: AsyncIterable<Buffer>): Promise<void> => {
    try {
      for await (const chunk of chunks) await each(chunk);
    } catch (error) {
      failure ??= { error };
      throw error;
    }
  };
  try {
    await pipeline([...stages, sink] as unknown as NodeJS.ReadWriteStream[], signal ? { signal } : {});
  } catch (error) {
    throw failure ? failure.error : error;
  }
}

/** The pieces of a tar read from `file`: a range in chunks of {@link READ_CHUNK}, a piece of its own as it is. */
async function* readPieces(file: string, pieces: readonly TarPiece[]): AsyncGenerator<Buffer> {
  const handle = await open(file, 'r');
  try {
    for (const piece of pieces) {
      if (Buffer.isBuffer(piece)) {
        yield piece;
        continue;
      }
      for (let at = piece.start; at < piece.end; ) {
        const want = Math.min(READ_CHUNK, piece.end - at);
        // A new buffer each time: the eStargz writer keeps the bytes of its open member.
        const { bytesRead, buffer } = await handle.read(Buffer.allocUnsafe(want), 0, want, at);
        if (bytesRead === 0) throw new EnvironmentError(`${file} ends at byte ${at}, but its tar was read up to byte ${piece.end}: something else changed the file during the conversion.`);
        at += bytesRead;
        yield buffer.subarray(0, bytesRead);
      }
    }
  } finally {
    await handle.close();
  }
}

/** Whether a layer descriptor is eStargz or zstd:chunked already (it carries the TOC digest annotation the snapshotter verifies). */
export function isEstargzLayer(layer: OciDescriptor): boolean {
  return typeof layer.annotations?.[TOC_DIGEST_ANNOTATION] === 'string';
}

/** A base layer converted: the eStargz blob's digest and size, its diff_id and its descriptor annotations. */
export interface ConvertedLayer {
  digest: string;
  size: number;
  diffId: string;
  annotations: Record<string, string>;
}

/** Throws unless every layer of the base can be converted (gzip or plain tar, or eStargz already). */
export function checkConvertibleBase(ref: string, layers: readonly OciDescriptor[]): void {
  const bad = layers.find((l) => !isEstargzLayer(l) && !GZIP_LAYERS.has(l.mediaType) && !TAR_LAYERS.has(l.mediaType));
  if (!bad) return;
  throw new ConfigError(`The base image ${ref} has a layer of type ${bad.mediaType}, which cannot be re-layered as eStargz (gzip and plain tar layers can).`, {
    setting: 'METAFLOW_PREBUILT_OCI_ESTARGZ_BASE',
    hint: 'Use a base image with gzip layers, or turn the eStargz base off (METAFLOW_PREBUILT_OCI_ESTARGZ_BASE=0).',
  });
}

/** How convertLayerToEstargz converts a layer; every field is optional. */
export interface ConvertLayerOptions {
  /** Aborts the conversion. */
  signal?: AbortSignal;
  /** A recorded prefetch profile's image paths: the layer's files in that order first. */
  prefetch?: readonly string[];
  /** A tar over this many bytes unpacked keeps its own order under a profile (default MAX_REORDERED_TAR). */
  maxReordered?: number;
  /** A tar with more entries than this keeps its own order under a profile (default MAX_REORDERED_ENTRIES). */
  maxReorderedEntries?: number;
  /** The lazy format written (default `estargz`). */
  format?: LazyCompression;
  /** A layer whose table of contents would be over this many bytes is refused, an InputError (default MAX_TOC_BYTES). */
  maxTocBytes?: number;
  /** The layer in the user's words, for errors (default `the base layer`): its tar is read strictly, a corrupt one fails naming it. */
  label?: string;
}

/**
 * Converts one base layer blob (gzip or plain tar), read from the file `blob`, into an eStargz blob
 * (or, `format` `zstd:chunked`, a zstd:chunked one) written to `file`, in one streaming pass (file →
 * gunzip → seekable writer → sha256 → file), so memory stays a few chunks whatever the layer's size.
 * With `prefetch` (a recorded profile's image paths), a first pass reads the tar (a gzip layer's
 * unpacked into a temp file beside `file`, `file` + `.tar`) and notes where each entry lies; the
 * second writes the entries in prefetch order from there — unless the tar is over `maxReordered`
 * bytes (MAX_REORDERED_TAR) or `maxReorderedEntries` entries (MAX_REORDERED_ENTRIES): then it keeps
 * its own order. The same blob (and paths) give the same bytes. `file` appears only when the
 * conversion succeeded; the temp files are removed whatever happens (a failure, a cancel). A full
 * disk is a DiskFullError naming the directory. The blob comes from a registry: its tar is read strictly (core's tar reader), and
 * one that does not check out (a bad checksum, a malformed number or pax record, a member cut short)
 * fails with a TarFormatError naming `label`; one whose table of contents would be over `maxTocBytes`
 * (MAX_TOC_BYTES: entries so many, or names so long) with an InputError, as it is read.
 */
export async function convertLayerToEstargz(blob: string, mediaType: string, file: string, options: ConvertLayerOptions = {}): Promise<ConvertedLayer> {
  const { signal, prefetch, maxReordered = MAX_REORDERED_TAR, maxReorderedEntries = MAX_REORDERED_ENTRIES, maxTocBytes = MAX_TOC_BYTES, format = 'estargz', label = 'the base layer' } = options;
  const gzipped = GZIP_LAYERS.has(mediaType);
  const partial = `${file}.partial`;
  const spool = `${file}.tar`;
  try {
    const ordered = prefetch && prefetch.length > 0 ? await prefetchOrderedTar(blob, gzipped, prefetch, spool, { max: maxReordered, maxEntries: maxReorderedEntries, maxHeld: maxTocBytes, label, signal }) : undefined;
    // The output first: a read stream opens its file at once, and one never piped would keep it open.
    const handle = await open(partial, 'w');
    const esgz = lazyLayerWriter(format, label, maxTocBytes);
    const out = hashTap();
    try {
      const tar = ordered ? [Readable.from(readPieces(ordered.tar, ordered.pieces))] : [createReadStream(blob, { highWaterMark: READ_CHUNK }), ...(gzipped ? [createGunzip()] : [])];
      await pipeInto([...tar, esgz.stream, out.stream], (chunk) => writeAll(handle, chunk), signal);
    } finally {
      await handle.close();
    }
    await rename(partial, file);
    const { diffId, annotations } = esgz.result();
    return { digest: out.digest(), size: out.size(), diffId, annotations };
  } catch (error) {
    throw diskFullError(error, { dir: dirname(file), doing: `converting ${label}` }) ?? error;
  } finally {
    await rm(partial, { force: true });
    await rm(spool, { force: true });
  }
}
