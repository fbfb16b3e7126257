import { createWriteStream } from 'node:fs';
import { Readable, type Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { createGunzip, gunzip } from 'node:zlib';
import { ConfigError, type OciDescriptor } from '@prebuilt/core/backend';
import { TOC_DIGEST_ANNOTATION } from './estargz.js';
import { hashTap } from './layer.js';
import { lazyLayerWriter, type LazyCompression } from './layer-codec.js';
import { prefetchTarOrder } from './tar-prefetch-order.js';

const gunzipAsync = promisify(gunzip);

/**
 * The base image re-layered as eStargz: on an empty node, containerd 1.6 unpacks the layers of an
 * image in order, and from the first layer it must unpack (a plain gzip base) on, it fetches every
 * layer after it whole — so the env's eStargz layers are lazily pulled only where the base is
 * cached, or is eStargz too. Each base layer converts to an eStargz layer of the same files in the
 * same order (no prefetch landmark: the node's `prefetch_size` applies) — or, with a recorded
 * prefetch profile, the base files the task read first, then the landmark (tar-prefetch-order.ts) —
 * still one valid gzip stream; its diff_id changes (the tar gains the TOC), so the image's config
 * names the new ones.
 */

const GZIP_LAYERS = new Set(['application/vnd.oci.image.layer.v1.tar+gzip', 'application/vnd.docker.image.rootfs.diff.tar.gzip']);
const TAR_LAYERS = new Set(['application/vnd.oci.image.layer.v1.tar', 'application/vnd.docker.image.rootfs.diff.tar']);

/**
 * A base layer whose tar is bigger than this (2 GiB; a CUDA base can hold one) keeps its own order
 * under a prefetch profile: reordering holds the whole tar in memory. Its files are then fetched
 * as the node's `prefetch_size` and the task's reads ask, as without a profile.
 */
export const MAX_REORDERED_TAR = 2 * 1024 ** 3;

/** The tar of a base layer in prefetch order, or undefined when it is over `max` bytes unpacked. */
async function prefetchOrderedTar(bytes: Buffer, gzipped: boolean, prefetch: readonly string[], max: number, label: string): Promise<Buffer[] | undefined> {
  let tar: Buffer;
  try {
    tar = gzipped ? await gunzipAsync(bytes, { maxOutputLength: max }) : bytes;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') return undefined;
    throw error;
  }
  return tar.length > max ? undefined : prefetchTarOrder(tar, prefetch, label);
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
  /** The lazy format written (default `estargz`). */
  format?: LazyCompression;
  /** The layer in the user's words, for errors (default `the base layer`): its tar is read strictly, a corrupt one fails naming it. */
  label?: string;
}

/**
 * Converts one base layer blob (gzip or plain tar) into an eStargz blob (or, `format`
 * `zstd:chunked`, a zstd:chunked one) written to `file`, in one streaming pass (gunzip → seekable
 * writer → sha256 → file). With `prefetch` (a recorded profile's image paths), the tar is unpacked
 * in memory first and put in prefetch order — unless it is over `maxReordered` bytes
 * (MAX_REORDERED_TAR), then it keeps its own order. The same blob (and paths) give the same bytes.
 * The blob comes from a registry: its tar is read strictly (core's tar reader), and one that does
 * not check out (a bad checksum, a malformed number or pax record, a member cut short) fails with
 * a TarFormatError naming `label`.
 */
export async function convertLayerToEstargz(blob: Uint8Array, mediaType: string, file: string, options: ConvertLayerOptions = {}): Promise<ConvertedLayer> {
  const { signal, prefetch, maxReordered = MAX_REORDERED_TAR, format = 'estargz', label = 'the base layer' } = options;
  const esgz = lazyLayerWriter(format, label);
  const out = hashTap();
  const bytes = Buffer.from(blob.buffer, blob.byteOffset, blob.byteLength);
  const gzipped = GZIP_LAYERS.has(mediaType);
  let source: Buffer[] = [bytes];
  let unpack: Transform[] = gzipped ? [createGunzip()] : [];
  const ordered = prefetch && prefetch.length > 0 ? await prefetchOrderedTar(bytes, gzipped, prefetch, maxReordered, label) : undefined;
  if (ordered) {
    source = ordered;
    unpack = [];
  }
  const stages = [Readable.from(source), ...unpack, esgz.stream, out.stream, createWriteStream(file)];
  await pipeline(stages as unknown as NodeJS.ReadWriteStream[], signal ? { signal } : {});
  const { diffId, annotations } = esgz.result();
  return { digest: out.digest(), size: out.size(), diffId, annotations };
}
