/**
 * The extraction cache: each conda package extracted once, kept beside the package cache
 * (`<cache dir>/extracted/<sha256>-<mtime>/`), so a rebuild whose lock changed one package
 * extracts only that one and links the others' files into the new prefix (hard links: no byte is
 * copied; a copy where the cache and the prefix are on different file systems).
 *
 * What an entry holds is the archive's content, not the installed bytes: the kept `info/` files,
 * the body's entries in archive order and each file's bytes under a name this code makes
 * (`f/<n>`) — except that a shipped timestamp pyc is kept already stamped with the entry's mtime
 * and its source's size from paths.json, as the bytecode pass would re-stamp it (it still checks
 * every pyc's header in the prefix). Everything else that depends on the env — prefix
 * replacement, the noarch remap, entry points, bytecode — is done at link time by the installer
 * through the prefix jail, as for a fresh extraction, so the key is the archive's sha256 (already verified by the package cache)
 * and the mtime the files are given (they carry the build's normalised mode and mtime, so the
 * prefix's normalisation leaves the shared inodes untouched).
 *
 * Verification, as for downloads (verified-entry.ts): the manifest records every file's size,
 * inode, mode and mtime (nanoseconds); an entry is used only when each file's `lstat` still
 * matches: any write to a file — in the cache or through a hard link in a prefix — moves its
 * mtime. Unlike verified-entry.ts the ctime is not compared: making and removing the hard links
 * moves it on every build. So what is not caught is a change followed by a deliberate reset of
 * the mtime (utimes) — which needs write access to the cache directory or to a prefix
 * materialized from it; keep both private to the building user, as the package cache. An entry
 * that does not match is removed and the package extracted again from its verified archive. An entry unused for {@link PRUNE_AFTER_DAYS}
 * days is removed by the next materialize that uses the cache.
 *
 * Power cuts: nothing of an entry is flushed to disk as it is written (an fsync per file would cost
 * a realistic env's 17,000 files seconds on every cold extraction), so after a power cut an entry
 * may hold files whose stamps (metadata, journaled) match while their bytes (data, not yet written
 * back) are zeros or missing. The manifest records the kernel's boot id (core's `currentBootId`);
 * an entry whose manifest names another boot — or none: one written before this check — is checked
 * once by content before its first use in this boot: every file's sha256 against the package's
 * `info/paths.json` (a pyc stamped at extraction against the sha256 recorded then), the sizes by
 * their stamps. An entry that passes is re-stamped with this boot's id (its manifest rewritten
 * atomically and flushed: what this boot has read back from the disk is on it); one that fails, or
 * that cannot be checked (a file paths.json gives no sha256), is damaged: removed and extracted
 * again. Without /proc (no boot id) entries are never checked this way. The cost falls on the first
 * build after a reboot: each entry it uses is read and hashed once, less than extracting it again
 * (no decompression, no file created).
 *
 * The sha256s checked against come from the entry's own manifest (its copy of the archive's
 * `info/paths.json`). That is sound for what the check is for: a power cut leaves a manifest that
 * does not parse (zeros, a cut) or one written whole from the verified archive — nothing else.
 * It is no defence against whoever may write in the cache, and reading `info/paths.json` from the
 * archive again would not make it one: the boot id is readable by every user
 * (/proc/sys/kernel/random/boot_id), so a planted manifest names this boot and is never checked by
 * content, and its stamps are those of the planted files. The cache's writers are trusted, as the
 * package cache's are (keep it private; prebuilt notes a cache others may write in).
 */
import { chmodSync, existsSync, lstatSync, readFileSync, utimesSync } from 'node:fs';
import { readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { createLogger, currentBootId, errorMessage, normalisedMode, makeDirectory, markCacheFileUsed, readCacheEntry, sha256Hex, writeFileAtomic } from '@prebuilt/core';
import type { ExtractedCondaPackage, ExtractedEntry } from '../materialize/conda-extract.js';
import { hashFile } from './sha256-file.js';
import { discardAside } from './discard-aside.js';
import { stampFromStats } from './sealed-file.js';

const log = createLogger('conda:extraction-cache');

/** Part of every entry's name: bump when what an entry holds changes. */
const FORMAT = 'v3';
/** Entries not used for this many days are removed. */
export const PRUNE_AFTER_DAYS = 14;

/** What the manifest records of a file, to tell it is still the one extracted. */
export interface FileStamp {
  size: number;
  ino: string;
  mode: number;
  mtimeNs: string;
}

type StoredEntry =
  | (Omit<Extract<ExtractedEntry, { type: 'file' }>, 'file'> & { file: string; stamp: FileStamp })
  | Exclude<ExtractedEntry, { type: 'file' }>;

interface Manifest {
  format: typeof FORMAT;
  /** The boot the entry was written or last checked in (absent: unknown — written before boot ids were recorded, or without /proc). */
  boot?: string;
  sha256: string;
  md5: string;
  info: Record<string, string>;
  entries: StoredEntry[];
}

/** A package extracted into the cache: its contents (files inside the entry) and the archive's md5. */
export interface CachedExtraction {
  contents: ExtractedCondaPackage;
  md5: string;
  /** Whether the entry was already there (false: extracted now). */
  hit: boolean;
  /** The entry's directory (where files derived from it are kept: derived-files.ts). */
  dir: string;
  /**
   * Set when the entry is damaged and this user cannot move it aside (another user's, in a shared
   * cache with the sticky bit): the package was extracted into `dir`, a directory of this build
   * alone beside the entry, which the caller removes once it has linked the files (no derived set
   * kept there). Says so, for the user.
   */
  privateNote?: string;
}

export function stampOf(path: string): FileStamp | undefined {
  const stats = lstatSync(path, { bigint: true, throwIfNoEntry: false });
  return stats?.isFile() ? stampFromStats(stats) : undefined;
}

/**
 * Gives a file its normalised mode and `time` by path and returns its stamp (for an extraction
 * not sealed as it was written). Synchronous calls: one short system call each, no thread-pool
 * round trip.
 */
function sealByPath(file: string, mode: number, time: Date): FileStamp {
  const wanted = normalisedMode('file', mode);
  // The file was created with its normalised mode unless the umask narrowed it.
  if ((stampOf(file)?.mode ?? -1) !== wanted) chmodSync(file, wanted);
  utimesSync(file, time, time);
  return stampOf(file)!;
}

export const sameStamp = (a: FileStamp | undefined, b: FileStamp): boolean =>
  a !== undefined && a.size === b.size && a.ino === b.ino && a.mode === b.mode && a.mtimeNs === b.mtimeNs;

/** The most an entry's manifest may take (a package's info files and one stamp per file): a larger one reads as damaged. */
const MAX_MANIFEST_BYTES = 256 * 1024 * 1024;

/**
 * Extractions running in this process, by entry directory — shared by every ExtractionCache of the
 * process: each env's materialize makes its own instance, and a build materializes its envs at once.
 */
const inflight = new Map<string, Promise<CachedExtraction>>();

export class ExtractionCache {
  readonly dir: string;

  /** `dir`: the cache's own directory (`<package cache dir>/extracted`). */
  constructor(dir: string) {
    this.dir = dir;
  }

  #entryDir(sha256: string, mtime: number): string {
    return join(this.dir, `${sha256.toLowerCase()}-${mtime}-${FORMAT}`);
  }

  /**
   * The package's extraction: from the cache when its entry is intact, else extracted now with
   * `extract(scratch)` (into a directory beside the entry, renamed into place once complete; it may
   * return the archive's md5 with the contents, else the archive is hashed here).
   * Concurrent calls for one entry in this process share one extraction; an entry is only ever
   * removed when it is there and damaged (moved aside first), never because it was absent when
   * looked at — another build may have put it in place since and be linking from it.
   */
  obtain(archive: string, sha256: string, mtime: number, extract: (scratch: string) => Promise<ExtractedCondaPackage & { md5?: string }>): Promise<CachedExtraction> {
    const dir = this.#entryDir(sha256, mtime);
    const running = inflight.get(dir);
    // A private extraction (privateNote) is its caller's alone, removed once linked: another caller extracts its own.
    if (running) return running.then((got) => (got.privateNote ? this.#obtain(dir, archive, sha256, mtime, extract) : { ...got, hit: true }));
    const obtained = this.#obtain(dir, archive, sha256, mtime, extract).finally(() => inflight.delete(dir));
    inflight.set(dir, obtained);
    return obtained;
  }

  async #obtain(dir: string, archive: string, sha256: string, mtime: number, extract: (scratch: string) => Promise<ExtractedCondaPackage & { md5?: string }>): Promise<CachedExtraction> {
    const cached = await this.#read(dir, sha256);
    if (cached) return { ...cached, hit: true, dir };
    const stuck = cached === undefined ? await this.#discardDamaged(dir) : undefined;
    await makeDirectory(this.dir);
    const partial = `${dir}.partial-${process.pid}-${randomBytes(4).toString('hex')}`;
    try {
      // The extraction may bring the archive's md5 (hashed by the extraction worker as it extracted).
      const contents = await extract(join(partial, 'f'));
      const manifest = await this.#seal(partial, sha256, contents.md5 ?? (await hashFile(archive, 'md5')), contents, mtime);
      if (stuck) return { contents: this.#contents(partial, manifest), md5: manifest.md5, hit: false, dir: partial, privateNote: stuck };
      try {
        await rename(partial, dir);
      } catch (error) {
        // Another process put the same entry in place first: use it.
        log('entry %s already there (%s)', dir, errorMessage(error));
        await rm(partial, { recursive: true, force: true });
        const theirs = await this.#read(dir, sha256);
        if (theirs) return { ...theirs, hit: true, dir };
        throw error;
      }
      return { contents: this.#contents(dir, manifest), md5: manifest.md5, hit: false, dir };
    } catch (error) {
      await rm(partial, { recursive: true, force: true });
      throw error;
    }
  }

  /**
   * A damaged entry (there, but #read refused it) is renamed aside, then removed: its name is free
   * for a fresh one at once. One this user may not rename (another user's, in a shared cache with
   * the sticky bit) stays: the note returned says so, and the package is extracted for this build alone.
   */
  async #discardDamaged(dir: string): Promise<string | undefined> {
    try {
      if (await discardAside(dir)) log('entry %s damaged: moved aside and removed', dir);
      return undefined;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== 'EPERM' && code !== 'EACCES') throw error;
      const owner = lstatSync(dir, { throwIfNoEntry: false })?.uid;
      log('entry %s damaged, and cannot be moved aside (%s)', dir, errorMessage(error));
      return (
        `The extraction cache entry ${dir} is damaged and belongs to another user${owner === undefined ? '' : ` (uid ${owner})`}, who alone may replace it (the cache directory has the sticky bit): ` +
        `its package was extracted for this build alone. Its owner (or root) can remove it (rm -r ${dir}); the next build then puts a sound one in its place.`
      );
    }
  }

  /** Gives every extracted file the normalised mode and `mtime`, records their stamps and writes the manifest. */
  async #seal(partial: string, sha256: string, md5: string, contents: ExtractedCondaPackage, mtime: number): Promise<Manifest> {
    const time = new Date(mtime * 1000);
    const entries: StoredEntry[] = [];
    for (const entry of contents.entries) {
      if (entry.type !== 'file') {
        entries.push(entry);
        continue;
      }
      // Sealed as it was written (extractCondaPackage's `mtime`): nothing left to do.
      const stamp = entry.stamp ?? sealByPath(entry.file, entry.mode, time);
      const name = entry.file.slice(partial.length + 1);
      entries.push({ ...entry, file: name, stamp });
    }
    const info: Record<string, string> = {};
    for (const [name, data] of contents.info) info[name] = data.toString('base64');
    const boot = currentBootId();
    const manifest: Manifest = { format: FORMAT, ...(boot ? { boot } : {}), sha256: sha256.toLowerCase(), md5, info, entries };
    await writeFile(join(partial, 'manifest.json'), JSON.stringify(manifest));
    return manifest;
  }

  /** The entry's manifest when the entry is intact (every file's stamp unchanged); null when there is none; undefined (and a note in the log) when it is damaged. */
  async #read(dir: string, sha256: string): Promise<{ contents: ExtractedCondaPackage; md5: string } | null | undefined> {
    const raw = await readManifest(dir);
    if (raw === null) return null;
    if (raw === undefined) return undefined;
    let manifest: Manifest;
    try {
      manifest = JSON.parse(raw) as Manifest;
    } catch {
      return undefined;
    }
    if (manifest.format !== FORMAT || manifest.sha256 !== sha256.toLowerCase()) return undefined;
    for (const entry of manifest.entries) {
      if (entry.type === 'file' && !sameStamp(stampOf(join(dir, entry.file)), entry.stamp)) {
        log('entry %s: %s changed since it was extracted; extracting the package again', dir, entry.file);
        return undefined;
      }
    }
    const boot = currentBootId();
    if (boot !== undefined && manifest.boot !== boot) {
      const damaged = await checkContents(dir, manifest);
      if (damaged !== undefined) {
        log('entry %s was written in another boot and %s; extracting the package again', dir, damaged);
        return undefined;
      }
      // Checked: re-stamped with this boot. Best effort (another user's entry in a shared cache): checked again next time.
      await writeFileAtomic(join(dir, 'manifest.json'), JSON.stringify({ ...manifest, boot })).catch((error: unknown) => log('cannot re-stamp %s: %s', dir, errorMessage(error)));
      log('entry %s was written in another boot: its contents checked', dir);
    }
    await markCacheFileUsed(join(dir, 'manifest.json'));
    return { contents: this.#contents(dir, manifest), md5: manifest.md5 };
  }

  #contents(dir: string, manifest: Manifest): ExtractedCondaPackage {
    const info = new Map<string, Buffer>();
    for (const [name, data] of Object.entries(manifest.info)) info.set(name, Buffer.from(data, 'base64'));
    const entries = manifest.entries.map((entry): ExtractedEntry => {
      if (entry.type !== 'file') return entry;
      const { stamp: _stamp, ...rest } = entry;
      // `entry.file` is a name this code made (`f/<n>`): no normalisation needed.
      return { ...rest, file: `${dir}/${entry.file}` };
    });
    return { info, entries };
  }

  /**
   * Removes entries not used for {@link PRUNE_AFTER_DAYS} days and partial ones left by a crash over
   * a day ago, and the same of the derived sets inside the entries kept (derived-files.ts). Best effort.
   */
  async prune(now: number = Date.now()): Promise<number> {
    let removed = 0;
    for (const name of await readdir(this.dir).catch(() => [] as string[])) {
      if (await pruneOne(this.dir, name, now)) removed += 1;
      else removed += await pruneDerived(join(this.dir, name, 'derived'), now);
    }
    return removed;
  }
}

/** Files up to this size are read in one synchronous call to be hashed; larger ones are streamed. */
const SYNC_READ_MAX = 1024 * 1024;

async function sha256Of(path: string): Promise<string> {
  const stats = lstatSync(path);
  return stats.size <= SYNC_READ_MAX ? sha256Hex(readFileSync(path)) : hashFile(path, 'sha256');
}

/**
 * Checks an entry's files by content (an entry written in another boot: see the module comment):
 * undefined when every file holds the bytes it was extracted with, else what is wrong.
 */
async function checkContents(dir: string, manifest: Manifest): Promise<string | undefined> {
  const expected = new Map<string, string>();
  try {
    const raw = manifest.info['info/paths.json'];
    const parsed = raw === undefined ? undefined : (JSON.parse(Buffer.from(raw, 'base64').toString('utf8')) as { paths?: { _path?: unknown; sha256?: unknown }[] });
    for (const one of parsed?.paths ?? []) if (typeof one._path === 'string' && typeof one.sha256 === 'string') expected.set(one._path, one.sha256.toLowerCase());
  } catch {
    return 'its info/paths.json does not parse';
  }
  // A path the archive gives twice: only its last copy is what paths.json describes.
  const last = new Map<string, string>();
  for (const entry of manifest.entries) if (entry.type === 'file') last.set(entry.path, entry.file);
  for (const entry of manifest.entries) {
    if (entry.type !== 'file') continue;
    const want = entry.sha256 ?? (last.get(entry.path) === entry.file ? expected.get(entry.path) : undefined);
    if (want === undefined) return `${entry.path} has no sha256 to check it against`;
    let got: string;
    try {
      got = await sha256Of(join(dir, entry.file));
    } catch (error) {
      return `${entry.file} cannot be read (${errorMessage(error)})`;
    }
    if (got !== want) return `${entry.path} (${entry.file}) does not hold the bytes it was extracted with`;
  }
  return undefined;
}

/**
 * The entry's manifest text; null when there is no entry; undefined when the directory is there
 * without a manifest (damaged). An entry appears complete, manifest included (renamed into place),
 * so a manifest missing while the directory is there is read once more: another build (another
 * process) may have renamed its entry into place between the two looks, and must not have it
 * taken for damaged and removed while it links from it. Out of descriptors is thrown; any other
 * read error makes the entry damaged, as a manifest that does not parse does.
 */
async function readManifest(dir: string): Promise<string | null | undefined> {
  const path = join(dir, 'manifest.json');
  for (let look = 0; look < 2; look++) {
    // Only a regular file is read (core's cache-file.ts): a FIFO, symlink or directory put at the
    // manifest's name in a shared cache is a damaged entry, never followed, never waited on. Out of
    // descriptors is thrown: it says nothing about the entry.
    const read = await readCacheEntry(path, MAX_MANIFEST_BYTES, { throwIfOutOfDescriptors: true });
    if (read === 'unusable') return undefined;
    if (read !== 'missing') return read.bytes.toString('utf8');
    if (!existsSync(dir)) return null;
  }
  return undefined;
}

/** Removes `<dir>/<name>` (an entry or a derived set, with its manifest.json) when unused too long; true when removed. */
async function pruneOne(dir: string, name: string, now: number): Promise<boolean> {
  const path = join(dir, name);
  const leftover = /\.(partial|stale)-/.test(name);
  const used = (await stat(leftover ? path : join(path, 'manifest.json')).catch(() => undefined))?.mtimeMs;
  const limit = leftover ? 86_400_000 : PRUNE_AFTER_DAYS * 86_400_000;
  if (used !== undefined && now - used <= limit) return false;
  await rm(path, { recursive: true, force: true }).catch((error: unknown) => log('cannot remove %s: %s', path, errorMessage(error)));
  return true;
}

async function pruneDerived(dir: string, now: number): Promise<number> {
  let removed = 0;
  for (const name of await readdir(dir).catch(() => [] as string[])) if (await pruneOne(dir, name, now)) removed += 1;
  return removed;
}
