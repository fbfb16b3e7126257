import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { prebuiltCacheDir, readCacheFile, writeFileAtomic } from '@prebuilt/core/backend';

/** What a layer's tar compresses to: the blob digest and size. */
export interface CompressedLayer {
  digest: string;
  size: number;
  /** The layer's diff_id when it is not the plain tar's sha256 (eStargz adds the TOC to the tar). */
  diffId?: string;
  /** Annotations of the layer's descriptor (eStargz). */
  annotations?: Record<string, string>;
}

/**
 * Remembers, by the sha256 of the layer's plain tar (its diff_id, except for eStargz), the digest and size of the layer's
 * deterministic compression in one format (one cache per format: the service gives each its own
 * directory). Compression is a pure function of the tar, so an entry never goes stale; it
 * lets a rebuild ask the registry for a layer without compressing it again. On disk under
 * `<dir>/<diff_id hex>` (written atomically); also kept in memory.
 */
export class LayerCache {
  readonly dir: string | undefined;
  readonly #memory = new Map<string, CompressedLayer>();

  constructor(dir: string | undefined) {
    this.dir = dir;
  }

  #file(diffId: string): string | undefined {
    const hex = /^sha256:([0-9a-f]{64})$/.exec(diffId)?.[1];
    return this.dir && hex ? join(this.dir, hex) : undefined;
  }

  /**
   * Whether the cache may know any layer. False for an empty cache: then a build compresses every
   * layer in one pass instead of hashing the tar first to look it up.
   */
  async mayHaveAny(): Promise<boolean> {
    if (this.#memory.size > 0) return true;
    if (!this.dir) return false;
    this.#listed ??= readdir(this.dir).then((names) => names.some((n) => /^[0-9a-f]{64}$/.test(n)), () => false);
    return this.#listed;
  }

  #listed: Promise<boolean> | undefined;

  async get(diffId: string): Promise<CompressedLayer | undefined> {
    const known = this.#memory.get(diffId);
    if (known) return known;
    const entry = await readEntry(this.#file(diffId));
    if (entry) this.#memory.set(diffId, entry);
    return entry;
  }

  async set(diffId: string, entry: CompressedLayer): Promise<void> {
    this.#memory.set(diffId, entry);
    await writeEntry(this.#file(diffId), entry);
  }

  /**
   * The layer built last time from content of this content key (see PlannedLayer.contentKey) —
   * its digest, size and diff_id — without reading the files; undefined when unknown or when the
   * record does not parse (then the layer is built and the record written again). Kept under
   * `<dir>/content/<key hex>`; the caller still asks the registry for the blob. A converted base
   * layer's record is kept under such a key too (estargz-base.ts's convertedBaseKey), which names
   * the conversion's version: a record an older conversion wrote is not found.
   */
  async getByContent(contentKey: string): Promise<(CompressedLayer & { diffId: string }) | undefined> {
    const entry = await readEntry(this.#contentFile(contentKey));
    return entry?.diffId ? (entry as CompressedLayer & { diffId: string }) : undefined;
  }

  async setByContent(contentKey: string, entry: CompressedLayer & { diffId: string }): Promise<void> {
    await writeEntry(this.#contentFile(contentKey), { annotations: {}, ...entry });
  }

  #contentFile(contentKey: string): string | undefined {
    const hex = /^sha256:([0-9a-f]{64})$/.exec(contentKey)?.[1];
    return this.dir && hex ? join(this.dir, 'content', hex) : undefined;
  }
}

/** The most a record may take (a digest, a size, a diff_id and the annotations): a larger file reads as no record. */
const MAX_RECORD_BYTES = 1024 * 1024;

/**
 * Reads a record (`<digest> <size>`, then optionally the diff_id and the annotations); undefined when
 * absent or malformed — or when a FIFO, symlink or directory was put at its name (only a regular file
 * is read, see core's cache-file.ts): then the layer is compressed and the record written anew.
 */
async function readEntry(file: string | undefined): Promise<CompressedLayer | undefined> {
  if (!file) return undefined;
  const text = (await readCacheFile(file, MAX_RECORD_BYTES))?.toString('utf8');
  const match = text === undefined ? null : /^(sha256:[0-9a-f]{64}) (\d+)\n?(?:(sha256:[0-9a-f]{64})\n(\{.*\})\n)?$/.exec(text);
  if (!match) return undefined;
  const entry: CompressedLayer = { digest: match[1]!, size: Number(match[2]) };
  if (match[3]) {
    const annotations = parseAnnotations(match[4]!);
    if (!annotations) return undefined;
    Object.assign(entry, { diffId: match[3] }, Object.keys(annotations).length > 0 ? { annotations } : {});
  }
  return entry;
}

async function writeEntry(file: string | undefined, entry: CompressedLayer): Promise<void> {
  // A cache that cannot be written only costs a recompression next time.
  const extra = entry.diffId ? `${entry.diffId}\n${JSON.stringify(entry.annotations ?? {})}\n` : '';
  if (file) await writeFileAtomic(file, `${entry.digest} ${entry.size}\n${extra}`).catch(() => undefined);
}

function parseAnnotations(text: string): Record<string, string> | undefined {
  try {
    const value = JSON.parse(text) as unknown;
    if (typeof value !== 'object' || value === null || Object.values(value).some((v) => typeof v !== 'string')) return undefined;
    return value as Record<string, string>;
  } catch {
    return undefined;
  }
}

/** The oci layer cache directory: `<prebuilt cache>/oci-layers` (METAFLOW_PREBUILT_CACHE_DIR, else $XDG_CACHE_HOME/prebuilt, else ~/.cache/prebuilt). */
export function defaultLayerCacheDir(env: Record<string, string | undefined>): string {
  return join(prebuiltCacheDir(env), 'oci-layers');
}

/**
 * Where the oci service spools a build's big files (base layers copied or converted, new layers
 * before their push): `<prebuilt cache>/oci-work`, on the disk beside the layer cache — not TMPDIR,
 * which is often a tmpfs, i.e. RAM (a CUDA base's 3 GB layer spooled there is an OOM).
 */
export function defaultWorkDir(env: Record<string, string | undefined>): string {
  return join(prebuiltCacheDir(env), 'oci-work');
}
