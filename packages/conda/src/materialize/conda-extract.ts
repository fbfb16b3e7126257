import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { mkdir, open, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { tarPadding } from '@prebuilt/core/extraction';
import type { FileStamp } from '../cache/extraction-cache.js';
import { openSealedFile, writeSealedFileSync } from '../cache/sealed-file.js';
import { readTarStream, type TarEntryHeader } from './archive.js';
import { bzip2Chunks } from './bzip2-stream.js';
import { ArchiveError } from './errors.js';
import { ExpansionBudget, expansionError, TAR_ENTRY_OVERHEAD } from './expansion-budget.js';
import { safeRelativePath } from './prefix-writer.js';
import { pycSourceOf, stampPycHeader } from './pyc-header.js';
import { readZipDirectory, zipMemberChunks } from './zip-file.js';
import { readTarBuffer } from './tar-buffer.js';
import { NATIVE_MAX_INPUT, zstdDecoded } from './zstd-stream.js';

/** One entry of a conda package's body (everything but `info/`), extracted to scratch. */
export type ExtractedEntry =
  | {
      path: string;
      type: 'file';
      mode: number;
      size: number;
      /** Scratch file holding the content. */
      file: string;
      /** With `options.mtime`: the file's stamp once given its normalised mode and that mtime. */
      stamp?: FileStamp;
      /**
       * The sha256 of the bytes written, when they are not the archive's (a shipped pyc stamped as it
       * was written): what the extraction cache checks the file against in a later boot, where it
       * checks the others against paths.json.
       */
      sha256?: string;
    }
  | { path: string; type: 'directory'; mode: number }
  | { path: string; type: 'symlink'; mode: number; linkTarget: string }
  | { path: string; type: 'hardlink'; mode: number; linkTarget: string };

export interface ExtractedCondaPackage {
  /** The `info/` files prebuilt reads (index.json, paths.json, link.json, files, has_prefix). */
  info: Map<string, Buffer>;
  /** The body's entries in archive order (a path given twice appears twice; the later wins). */
  entries: ExtractedEntry[];
}

/** What reads a tar entry: its header and its content (chunks of a stream, or one view of a tar held in memory). */
type EntryHandler = (header: TarEntryHeader, content: AsyncIterable<Buffer> | Iterable<Buffer>) => Promise<void>;

/** The `info/` files the installer reads; the others (recipes, tests, licenses) are skipped. */
const INFO_KEPT = new Set(['info/index.json', 'info/paths.json', 'info/link.json', 'info/files', 'info/has_prefix']);
/** No kept `info/` file may be larger (paths.json of the largest packages is a few MiB). */
const MAX_INFO_FILE = 64 * 1024 * 1024;

interface DeclaredPaths {
  sizes: Map<string, number>;
  /** Whether paths.json lists the package's files (then unlisted ones are not extracted). */
  complete: boolean;
}

/** The file sizes `info/paths.json` declares, and the tar bytes they allow. */
function declaredPaths(raw: Buffer, label: string): { declared: DeclaredPaths; tarBytes: number } {
  let parsed: { paths?: { _path?: unknown; path_type?: unknown; size_in_bytes?: unknown }[] };
  try {
    parsed = JSON.parse(raw.toString('utf8')) as typeof parsed;
  } catch (error) {
    throw new ArchiveError(`${label} has an unreadable info/paths.json: ${(error as Error).message}.`, label, { cause: error });
  }
  const sizes = new Map<string, number>();
  let tarBytes = 0;
  let unknownSizes = false;
  for (const entry of parsed.paths ?? []) {
    if (typeof entry._path !== 'string') continue;
    const known = typeof entry.size_in_bytes === 'number' && entry.size_in_bytes >= 0;
    const size = known ? (entry.size_in_bytes as number) : 0;
    const path = safeRelativePath(entry._path, label);
    if (entry.path_type !== 'softlink' && entry.path_type !== 'directory') sizes.set(path, known ? size : Number.POSITIVE_INFINITY);
    if (!known) unknownSizes = true;
    tarBytes += size + tarPadding(size) + TAR_ENTRY_OVERHEAD;
  }
  // Without a size for every file, paths.json bounds nothing: the undeclared bound stays.
  return { declared: { sizes, complete: Array.isArray(parsed.paths) }, tarBytes: unknownSizes ? Number.POSITIVE_INFINITY : tarBytes };
}

export interface ExtractOptions {
  /**
   * Seconds since 1970: each body file is given its normalised mode and this mtime as it is
   * written, through its open descriptor, and its stamp recorded (what the extraction cache keeps).
   * A shipped timestamp pyc (`__pycache__/<name>.cpython-XY.pyc`) whose source paths.json sizes
   * is written already stamped with this mtime and that size, as the bytecode pass would re-stamp
   * it (bytecode.ts checks every header in the prefix all the same): a copy the prefix would
   * otherwise get is not made.
   */
  mtime?: number;
}

/**
 * Extracts a `.tar.bz2` or `.conda` package, streaming: `info/` files are kept in memory (only
 * those the installer reads, each bounded), body files are written to numbered files in `scratch`
 * (names this code makes, so no archive path is interpreted on disk before the installer links it
 * into the prefix through the jail), links are only recorded. Every byte is counted against the
 * package's bound (see expansion-budget.ts) and each file against its declared size.
 */
export async function extractCondaPackage(file: string, label: string, scratch: string, options: ExtractOptions = {}): Promise<ExtractedCondaPackage> {
  await mkdir(scratch, { recursive: true });
  const fileSize = (await stat(file)).size;
  const info = new Map<string, Buffer>();
  const entries: ExtractedEntry[] = [];
  let declared: DeclaredPaths | undefined;
  let declaredTarBytes = 0;
  let serial = 0;

  const onEntry = (budget: ExpansionBudget): EntryHandler => async (header, content) => {
    const rel = safeRelativePath(header.path, label);
    budget.member = rel;
    if (rel === 'info' || rel.startsWith('info/')) {
      if (header.type !== 'file' || !INFO_KEPT.has(rel)) return;
      if (header.size > MAX_INFO_FILE) throw new ArchiveError(`${label} has '${rel}' of ${header.size} bytes, more than ${MAX_INFO_FILE}; refusing to read it.`, label);
      const chunks: Buffer[] = [];
      for await (const chunk of content) chunks.push(chunk);
      const data = Buffer.concat(chunks);
      info.set(rel, data);
      if (rel === 'info/paths.json') {
        const { declared: paths, tarBytes } = declaredPaths(data, label);
        declared = paths;
        declaredTarBytes = tarBytes;
        // A .tar.bz2 may have put files before info/: check what is already out.
        for (const entry of entries) {
          if (entry.type !== 'file') continue;
          const limit = paths.sizes.get(entry.path);
          if (limit !== undefined && entry.size > limit) throw expansionError(label, entry.path, `'${entry.path}' has ${entry.size} bytes, paths.json declares ${limit}`);
        }
        budget.declare(budget.used + tarBytes + 1024 * 1024);
      }
      return;
    }
    if (rel === '') return;
    if (header.type !== 'file') {
      const linkTarget = header.linkTarget ?? '';
      if (header.type === 'directory') entries.push({ path: rel, type: 'directory', mode: header.mode });
      else if (header.type === 'symlink') entries.push({ path: rel, type: 'symlink', mode: header.mode, linkTarget });
      else entries.push({ path: rel, type: 'hardlink', mode: header.mode, linkTarget });
      return;
    }
    const limit = declared?.sizes.get(rel);
    if (declared?.complete && limit === undefined) return; // conda links only the declared paths: skipped unread
    if (limit !== undefined && header.size > limit) throw expansionError(label, rel, `the tar announces ${header.size} bytes, paths.json declares ${limit}`);
    budget.reserve(header.size, rel);
    serial += 1;
    const scratchFile = join(scratch, String(serial));
    const { size, stamp, sha256 } = await writeScratchFile(scratchFile, header, content, options.mtime, pycStamp(rel, declared, options.mtime), (bytes) => {
      if (limit !== undefined && bytes > limit) throw expansionError(label, rel, `paths.json declares ${limit} bytes`);
    });
    entries.push({ path: rel, type: 'file', mode: header.mode, size, file: scratchFile, ...(stamp ? { stamp } : {}), ...(sha256 ? { sha256 } : {}) });
  };

  if (label.endsWith('.tar.bz2')) {
    const budget = new ExpansionBudget(label, fileSize);
    await readTarStream(bzip2Chunks(file, label, budget), label, onEntry(budget));
  } else if (label.endsWith('.conda')) {
    await readCondaMembers(file, label, onEntry, () => (declared ? declaredTarBytes : undefined));
  } else {
    throw new ArchiveError(`${label} is neither a .tar.bz2 nor a .conda package.`, label);
  }
  if (!info.has('info/index.json')) throw new ArchiveError(`${label} is not a valid conda package: it has no info/index.json.`, label);
  return { info, entries };
}

/** For a shipped pyc whose source paths.json sizes (when sealing at `mtime`): stamps its header in memory before it is written. */
function pycStamp(rel: string, declared: DeclaredPaths | undefined, mtime: number | undefined): ((data: Buffer) => boolean) | undefined {
  const source = mtime === undefined ? undefined : pycSourceOf(rel);
  const size = source === undefined ? undefined : declared?.sizes.get(source);
  if (size === undefined || !Number.isFinite(size)) return undefined;
  return (data) => stampPycHeader(data.subarray(0, 16), mtime!, size).patched;
}

/** Files the tar announces up to this size are gathered in memory and written with one synchronous call. */
const SYNC_FILE_MAX = 256 * 1024;

/**
 * Writes one tar member to a new scratch file; `check(bytes so far)` throws to stop. A small
 * member (most of a package's files) is written with one synchronous call — open, write and close
 * take microseconds, their promise versions three thread-pool round trips each. With `mtime`, the
 * file is sealed before it is closed (sealed-file.ts) and its stamp returned; `patch` changes a
 * small member's bytes before they are written (a larger one is written as it comes), and says
 * whether it changed them: then their sha256 is returned.
 */
async function writeScratchFile(
  file: string,
  header: TarEntryHeader,
  content: AsyncIterable<Buffer> | Iterable<Buffer>,
  mtime: number | undefined,
  patch: ((data: Buffer) => boolean) | undefined,
  check: (bytes: number) => void,
): Promise<{ size: number; stamp?: FileStamp; sha256?: string }> {
  const mode = header.mode & 0o111 ? 0o755 : 0o644;
  let size = 0;
  if (header.size <= SYNC_FILE_MAX) {
    const chunks: Buffer[] = [];
    for await (const chunk of content) {
      size += chunk.length;
      check(size);
      chunks.push(chunk); // the tar reader gives a member exactly the bytes its header announces
    }
    // One chunk is written as it is (a view of the decompressed stream), unless patched: then a copy.
    const data = chunks.length === 1 && !patch ? chunks[0]! : Buffer.concat(chunks, size);
    // A patched member's bytes are no longer the archive's: their own sha256 is kept (a small pyc, in memory).
    const sha256 = patch?.(data) ? createHash('sha256').update(data).digest('hex') : undefined;
    if (mtime !== undefined) return { size, stamp: writeSealedFileSync(file, data, { mode, mtime }), ...(sha256 ? { sha256 } : {}) };
    writeFileSync(file, data, { flag: 'wx', mode });
    return { size };
  }
  const sealed = mtime !== undefined ? await openSealedFile(file, { mode, mtime }) : undefined;
  const handle = sealed?.handle ?? (await open(file, 'wx', mode));
  try {
    for await (const chunk of content) {
      size += chunk.length;
      check(size);
      await handle.write(chunk);
    }
    return { size, ...(sealed ? { stamp: await sealed.seal() } : {}) };
  } finally {
    await handle.close();
  }
}

/**
 * Reads a `.conda` package's two tars, info first whatever the zip's order: then paths.json
 * (`declaredTarBytes()` once read) bounds the body before it is read. The zip members themselves
 * are bounded by their declared sizes; the tars inside by the budgets.
 */
async function readCondaMembers(
  file: string,
  label: string,
  onEntry: (budget: ExpansionBudget) => EntryHandler,
  declaredTarBytes: () => number | undefined,
): Promise<void> {
  const members = await readZipDirectory(file, label);
  const infoTar = members.find((m) => m.type === 'file' && /^info-.*\.tar\.zst$/.test(m.name));
  const pkgTar = members.find((m) => m.type === 'file' && /^pkg-.*\.tar\.zst$/.test(m.name));
  if (!infoTar || !pkgTar) {
    throw new ArchiveError(`${label} is not a valid .conda package: it lacks its info-*.tar.zst or pkg-*.tar.zst member.`, label);
  }
  const infoBudget = new ExpansionBudget(label, infoTar.compressedSize);
  const infoRaw = zipMemberChunks(file, infoTar, label, new ExpansionBudget(label, infoTar.size));
  await readZstdTar(infoRaw, label, infoBudget, onEntry(infoBudget));
  const budget = new ExpansionBudget(label, pkgTar.compressedSize);
  const declared = declaredTarBytes();
  if (declared !== undefined) budget.declare(declared + 1024 * 1024);
  // Read in one piece when it is decompressed natively in one call (zstd-stream.ts): no copy to join the reads.
  const pkgRaw = zipMemberChunks(file, pkgTar, label, new ExpansionBudget(label, pkgTar.size), pkgTar.size, NATIVE_MAX_INPUT);
  await readZstdTar(pkgRaw, label, budget, onEntry(budget));
}

/** A zstd-compressed tar: parsed in memory when decompressed natively in one call (tar-buffer.ts), else as a stream. */
async function readZstdTar(raw: AsyncIterable<Buffer>, label: string, budget: ExpansionBudget, onEntry: EntryHandler): Promise<void> {
  // Counted against the budget as the tar is read, as the streamed chunks are (its whole output fit the bound).
  const decoded = await zstdDecoded(raw, label, budget);
  if (Buffer.isBuffer(decoded)) await readTarBuffer(decoded, label, onEntry, (bytes) => budget.add(bytes));
  else await readTarStream(decoded, label, onEntry);
}

/** Removes a package's scratch directory. */
export function removeScratch(scratch: string): Promise<void> {
  return rm(scratch, { recursive: true, force: true });
}
