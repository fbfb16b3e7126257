/**
 * What makes a directory tree give the same bytes on every machine, shared by the materializer's
 * deterministic tar (`@prebuilt/conda`) and the daemonless image layers (`@prebuilt/oci`): bytewise
 * path order, normalised modes, the SOURCE_DATE_EPOCH mtime, and a listing that refuses what
 * cannot go into an image.
 */
import { lstatSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, InputError } from './errors.js';

/**
 * Byte-order comparison of strings (as UTF-8), independent of locale. UTF-8 orders as code points
 * do, and so as UTF-16 code units below the surrogates (U+D800): strings are compared unit by unit
 * without encoding them (sorting a package's paths encoded two buffers per comparison), and encoded
 * only from a code unit at or above U+D800 on (a surrogate pair, or a lone one: as Buffer.from
 * encodes it).
 */
export function compareBytes(a: string, b: string): number {
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x >= 0xd800 || y >= 0xd800) return Buffer.compare(Buffer.from(a.slice(i)), Buffer.from(b.slice(i)));
    if (x !== y) return x < y ? -1 : 1;
  }
  return a.length === b.length ? 0 : a.length < b.length ? -1 : 1;
}

export type TreeEntryKind = 'file' | 'directory' | 'symlink';

/** The mode every entry gets: 0755 for directories and executables, 0644 for other files, 0777 for symlinks. */
export function normalisedMode(kind: TreeEntryKind, mode: number | undefined): number {
  if (kind === 'directory') return 0o755;
  if (kind === 'symlink') return 0o777;
  return (mode ?? 0) & 0o111 ? 0o755 : 0o644;
}

export interface TreeEntry {
  /** Path relative to the listed directory, `/`-separated. */
  rel: string;
  kind: TreeEntryKind;
  /** Mode as on disk (lstat). */
  mode: number;
  /** Size as on disk (lstat): for a file, how it is best read (see addTarTreeEntry). */
  size: number;
}

/**
 * Every entry under `dir`, relative, sorted bytewise by path. Devices, sockets and FIFOs are an
 * InputError saying they cannot go into `destination` (e.g. `an image layer`).
 */
export async function listTree(dir: string, destination: string): Promise<TreeEntry[]> {
  const out: TreeEntry[] = [];
  // Synchronous calls: one short system call per entry, where the promise versions cost a
  // thread-pool round trip each — most of the time of listing a large env on a busy machine.
  const walk = (rel: string): void => {
    for (const name of readdirSync(rel === '' ? dir : join(dir, rel)).sort(compareBytes)) {
      const child = rel === '' ? name : `${rel}/${name}`;
      const info = lstatSync(join(dir, child));
      if (info.isDirectory()) {
        out.push({ rel: child, kind: 'directory', mode: info.mode, size: info.size });
        walk(child);
      } else if (info.isSymbolicLink()) out.push({ rel: child, kind: 'symlink', mode: info.mode, size: info.size });
      else if (info.isFile()) out.push({ rel: child, kind: 'file', mode: info.mode, size: info.size });
      else throw new InputError(`'${join(dir, child)}' is neither a file, a directory nor a symlink; it cannot go into ${destination}.`);
    }
  };
  walk('');
  return out.sort((a, b) => compareBytes(a.rel, b.rel));
}

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
