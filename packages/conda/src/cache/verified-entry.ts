/**
 * Whether a package-cache entry still holds the bytes the lock names, checked cheaply.
 *
 * When an entry's sha256 was verified, a small record is kept beside it (`<sha256>.verified`):
 * the hash, and the file's size, inode, mtime and ctime (nanoseconds) at that moment. A later
 * check compares them with `lstat` of the file; only when one differs is the file hashed again
 * (and the record renewed when it still matches the lock).
 *
 * The record also keeps the archive's md5 (its conda-meta record names it), hashed in the same pass
 * as the sha256 — at download or when the entry is hashed again — and trusted under the same rule:
 * only while the file's metadata is the one recorded, so an extraction never hashes the archive
 * again. A record without an md5 (written before it was kept) has the entry hashed once more.
 *
 * What the cheap check catches: any change to the file's bytes in place (a write moves mtime and
 * ctime; restoring the mtime with `touch -d`/utimes moves ctime, which no unprivileged process
 * can set), a truncation, and a replacement by another file (rename, copy: a new inode and ctime).
 * A cache restored by copying (CI caches, `cp -a`) gets new inodes, so its entries are hashed once
 * again. What it cannot catch: someone who changes the file and then rewrites the record to the
 * new inode and ctime — that needs write access to the cache directory itself, the same access
 * that could replace prebuilt's own cached solves; keep the cache directory private to its user.
 * The check runs when a build asks for its packages, right before materializing; a change in the
 * moments between the two is not caught.
 */
import { lstatSync, type BigIntStats } from 'node:fs';
import { lstat, rm } from 'node:fs/promises';
import { createLogger, errorMessage, readCacheFileSync, writeFileAtomic } from '@prebuilt/core';
import { archiveDigests } from './sha256-file.js';

const log = createLogger('conda:cache');

/** The record kept beside a verified entry. */
export interface VerifiedRecord {
  sha256: string;
  size: number;
  ino: string;
  mtimeNs: string;
  ctimeNs: string;
  /** The file's md5, hashed with its sha256 (absent in records written before it was kept). */
  md5?: string;
}

export type EntryCheck =
  | { state: 'missing' }
  /**
   * `hashed`: the record did not match the file's metadata (or had no md5), so the file was hashed
   * (and matched); `md5`: the file's md5, from the record or that hash.
   */
  | { state: 'ok'; hashed: boolean; md5: string }
  /** Not the locked bytes (or not a regular file); `problem` says what is wrong, for a note. */
  | { state: 'mismatch'; problem: string };

/** Where the record of an entry lives. */
export function verifiedRecordPath(entry: string): string {
  return `${entry}.verified`;
}

function recordOf(sha256: string, stats: BigIntStats, md5?: string): VerifiedRecord {
  return { sha256, size: Number(stats.size), ino: String(stats.ino), mtimeNs: String(stats.mtimeNs), ctimeNs: String(stats.ctimeNs), ...(md5 ? { md5 } : {}) };
}

const MD5 = /^[0-9a-f]{32}$/;

// The cheap path uses synchronous calls on purpose: an lstat and a read of a 150-byte file take
// microseconds, while their promise versions go through the thread pool (open, stat, read, close)
// and cost ten times as much over hundreds of entries (bench/cache-verify.mjs).
function readRecord(entry: string): VerifiedRecord | undefined {
  try {
    // A record is ~200 bytes; a FIFO or a link planted at its name reads as no record (see cache-file.ts).
    const text = readCacheFileSync(verifiedRecordPath(entry), 4096);
    if (text === undefined) return undefined;
    const value = JSON.parse(text.toString('utf8')) as Partial<VerifiedRecord>;
    return typeof value.sha256 === 'string' && typeof value.size === 'number' ? (value as VerifiedRecord) : undefined;
  } catch {
    return undefined;
  }
}

function sameRecord(a: VerifiedRecord, b: VerifiedRecord): boolean {
  return a.sha256 === b.sha256 && a.size === b.size && a.ino === b.ino && a.mtimeNs === b.mtimeNs && a.ctimeNs === b.ctimeNs;
}

/**
 * Records that `entry` (just verified, or just renamed into place after its hash matched) holds
 * `sha256` and has `md5` (hashed from the same bytes). Best effort: without a record (a read-only
 * or full cache) the entry is hashed again next time.
 */
export async function recordVerified(entry: string, sha256: string, md5: string, statsBeforeHashing?: BigIntStats): Promise<void> {
  try {
    // Stats from before the hash: a change while it was read moves the ctime past them, and the
    // next check hashes the file again.
    const stats = statsBeforeHashing ?? (await lstat(entry, { bigint: true }));
    await writeFileAtomic(verifiedRecordPath(entry), `${JSON.stringify(recordOf(sha256, stats, md5))}\n`);
  } catch (error) {
    log('cannot record %s as verified: %s', entry, errorMessage(error));
  }
}

/**
 * Checks that `entry` holds the locked file (`sha256`, `size`): cheaply by its record when the
 * file's metadata is unchanged since it was verified, else by hashing it.
 */
export async function checkEntry(entry: string, expected: { sha256: string; size: number }): Promise<EntryCheck> {
  const stats = lstatSync(entry, { bigint: true, throwIfNoEntry: false });
  if (stats === undefined) return { state: 'missing' };
  if (!stats.isFile()) return { state: 'mismatch', problem: 'it is not a regular file' };
  if (Number(stats.size) !== expected.size) {
    return { state: 'mismatch', problem: `it has ${stats.size} bytes, the lock says ${expected.size} (truncated or replaced)` };
  }
  const record = readRecord(entry);
  if (record && sameRecord(record, recordOf(expected.sha256, stats)) && MD5.test(record.md5 ?? '')) return { state: 'ok', hashed: false, md5: record.md5! };
  const actual = await archiveDigests(entry);
  if (actual.sha256 !== expected.sha256) return { state: 'mismatch', problem: `its sha256 is ${actual.sha256}, the lock says ${expected.sha256}` };
  await recordVerified(entry, expected.sha256, actual.md5, stats);
  return { state: 'ok', hashed: true, md5: actual.md5 };
}

/** Removes an entry and its record (a tampered or corrupt entry, before it is downloaded again). */
export async function forgetEntry(entry: string): Promise<void> {
  await rm(verifiedRecordPath(entry), { force: true });
  await rm(entry, { force: true });
}
