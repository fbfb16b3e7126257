import { availableParallelism } from 'node:os';
import { Transform, type TransformCallback } from 'node:stream';
import { constants as zlibConstants, createGzip } from 'node:zlib';
import { MKFS_EROFS_OPTIONS } from './erofs.js';
import { ESTARGZ_CHUNK, ESTARGZ_FORMAT, estargzStream, type ChunkedFormat } from './estargz.js';
import { ZSTD_CHUNKED_FORMAT, ZSTD_CHUNKED_LEVEL, zstdCompress } from './zstd-chunked.js';

/**
 * How the oci service compresses the layers it builds: `gzip`, `zstd`, or one of the formats for
 * lazy pulling, with per-file members and a table of contents: `estargz` (gzip; see estargz.ts) and
 * `zstd:chunked` (zstd; see zstd-chunked.ts); or `erofs`: not a compressed tar but an EROFS image
 * made from it by mkfs.erofs (see erofs.ts), which containerd ≥ 2.1's erofs snapshotter mounts as
 * it is.
 */
export type LayerCompression = TarCompression | 'erofs';

/** The layer formats that are a compressed tar. */
export type TarCompression = 'gzip' | 'zstd' | 'estargz' | 'zstd:chunked';

export const LAYER_COMPRESSIONS: readonly LayerCompression[] = ['gzip', 'zstd', 'estargz', 'zstd:chunked', 'erofs'];

/** The compressions the stargz snapshotter pulls lazily (a TOC and per-file members). */
export type LazyCompression = 'estargz' | 'zstd:chunked';

/** The seekable writer's format of each lazy compression. */
const LAZY_FORMATS: Record<LazyCompression, ChunkedFormat> = { estargz: ESTARGZ_FORMAT, 'zstd:chunked': ZSTD_CHUNKED_FORMAT };

export function isLazyCompression(compression: LayerCompression): compression is LazyCompression {
  return Object.hasOwn(LAZY_FORMATS, compression);
}

/**
 * The seekable writer of a lazy compression, on all cores: its stream, and once it ends the TOC
 * digest, diff_id and annotations; `label` names the tar in errors; a TOC over `maxTocBytes`
 * (default MAX_TOC_BYTES) fails it.
 */
export function lazyLayerWriter(compression: LazyCompression, label?: string, maxTocBytes?: number): ReturnType<typeof estargzStream> {
  return estargzStream(availableParallelism(), LAZY_FORMATS[compression], label, maxTocBytes);
}

/** Whether a compression's layers are zstd (pulled only by containerd ≥ 1.5 and Docker Engine ≥ 23.0). */
export function isZstdCompression(compression: LayerCompression): boolean {
  return compression === 'zstd' || compression === 'zstd:chunked';
}

/**
 * The OCI layer media type of each compression (zstd exists only in the OCI format, not Docker v2;
 * eStargz is tar+gzip, zstd:chunked tar+zstd). An EROFS layer's depends on the containerd that
 * pulls it (runners.ts, EROFS_MEDIA_TYPES).
 */
export const OCI_LAYER_MEDIA_TYPE: Record<TarCompression, string> = {
  gzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  zstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  estargz: 'application/vnd.oci.image.layer.v1.tar+gzip',
  'zstd:chunked': 'application/vnd.oci.image.layer.v1.tar+zstd',
};

/** Fixed parameters of the gzip layers: zlib level 6, 32 KiB window, memLevel 8, default strategy. */
const GZIP_LEVEL = 6;
/** zstd level of the zstd layers (the `zstd` CLI's default). */
export const ZSTD_LEVEL = 3;
/** The tar is cut into blocks of this size, each compressed to one zstd frame (frames concatenate). */
export const ZSTD_BLOCK = 4 << 20;

/**
 * Names the exact byte format of each compression, so what is remembered about a compressed layer
 * (see LayerCache) is never taken for another format's: a change of codec, level or framing must
 * change this id. gzip bytes are those of the zlib bundled with Node, so its version is part of
 * the id; the zstd binding is pinned in the lockfile (bump the id with it).
 */
export const LAYER_FORMAT_ID: Record<LayerCompression, string> = {
  gzip: `gzip-zlib${GZIP_LEVEL}-${process.versions.zlib ?? 'unknown'}`,
  zstd: `zstd${ZSTD_LEVEL}-frames${ZSTD_BLOCK >> 20}m`,
  estargz: `estargz-zlib${GZIP_LEVEL}-${process.versions.zlib ?? 'unknown'}-chunks${ESTARGZ_CHUNK >> 20}m-toc2`,
  // A directory name: no colon.
  'zstd:chunked': `zstdchunked${ZSTD_CHUNKED_LEVEL}-chunks${ESTARGZ_CHUNK >> 20}m-toc1-single-segment`,
  // mkfs.erofs's options; the service appends the version of the mkfs.erofs it runs (erofsFormatId).
  erofs: `erofs${MKFS_EROFS_OPTIONS.join('').replace(/[^0-9A-Za-z.]+/g, '-')}`,
};

/** gzip's OS byte (offset 9), fixed to 3 (Unix) whatever zlib was built for. */
const GZIP_OS_UNIX = 3;

/**
 * Node's zlib (native, on the libuv thread pool) with fixed parameters. zlib writes a header with
 * mtime 0, no name and an extra-flags byte fixed by the level; only the OS byte depends on the
 * platform zlib was built for, so the second stage sets it to Unix. Pipe both stages in order.
 */
export function deterministicGzipStream(): Transform[] {
  const gzip = createGzip({ level: GZIP_LEVEL, windowBits: 15, memLevel: 8, strategy: zlibConstants.Z_DEFAULT_STRATEGY });
  let position = 0;
  const fixHeader = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      const at = 9 - position;
      position += chunk.length;
      if (at < 0 || at >= chunk.length) {
        callback(null, chunk);
        return;
      }
      const copy = Buffer.from(chunk);
      copy[at] = GZIP_OS_UNIX;
      callback(null, copy);
    },
  });
  return [gzip, fixHeader];
}

/**
 * zstd (level {@link ZSTD_LEVEL}, single-threaded per frame, so deterministic) of fixed
 * {@link ZSTD_BLOCK}-byte blocks of the input, each one frame; frames are compressed in parallel on
 * the libuv thread pool (up to the number of cores at once) and written in order. Any zstd decoder
 * reads concatenated frames as one stream.
 */
function deterministicZstdStream(parallel = availableParallelism()): Transform {
  let block: Buffer[] = [];
  let blockSize = 0;
  const pending: Promise<Buffer>[] = [];
  const startBlock = (): void => {
    const data = Buffer.concat(block, blockSize);
    block = [];
    blockSize = 0;
    const frame = zstdCompress(data, ZSTD_LEVEL);
    // Awaited in order below; a stream destroyed before that must not leave an unhandled rejection.
    frame.catch(() => undefined);
    pending.push(frame);
  };
  return new Transform({
    transform(chunk: Buffer, _encoding, callback: TransformCallback) {
      void (async () => {
        let offset = 0;
        while (offset < chunk.length) {
          const take = Math.min(ZSTD_BLOCK - blockSize, chunk.length - offset);
          block.push(chunk.subarray(offset, offset + take));
          blockSize += take;
          offset += take;
          if (blockSize === ZSTD_BLOCK) {
            startBlock();
            while (pending.length >= parallel) this.push(await pending.shift()!);
          }
        }
      })().then(() => callback(), (error: unknown) => callback(error as Error));
    },
    flush(callback: TransformCallback) {
      void (async () => {
        if (blockSize > 0 || pending.length === 0) startBlock();
        while (pending.length > 0) this.push(await pending.shift()!);
      })().then(() => callback(), (error: unknown) => callback(error as Error));
    },
  });
}

/**
 * The compressing stages (to pipe in order) of a compression. The lazy formats' TOC digest and
 * diff_id are only reported through `writeLayer`, which builds layers with them.
 */
export function layerCompressor(compression: TarCompression): Transform[] {
  if (isLazyCompression(compression)) return [lazyLayerWriter(compression).stream];
  return compression === 'zstd' ? [deterministicZstdStream()] : deterministicGzipStream();
}
