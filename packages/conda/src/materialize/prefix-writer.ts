import { lstat, mkdir, readdir, readFile, realpath, symlink, unlink, writeFile } from 'node:fs/promises';
import { posix } from 'node:path';
import { ArchiveError, InstallError } from './errors.js';

/**
 * Checks a path taken from an archive and returns it normalised, relative to the prefix root.
 * Refuses absolute paths, `..` components and empty names: nothing an archive names can land
 * outside the prefix.
 */
export function safeRelativePath(path: string, label: string): string {
  if (path.startsWith('/')) throw new ArchiveError(`${label} has an entry with an absolute path ('${path}'); refusing to install it.`, label);
  if (path.includes('\0')) throw new ArchiveError(`${label} has an entry name with a NUL byte; refusing to install it.`, label);
  const parts = path.split('/').filter((part) => part !== '' && part !== '.');
  if (parts.includes('..')) throw new ArchiveError(`${label} has an entry that climbs out of the prefix ('${path}'); refusing to install it.`, label);
  return parts.join('/');
}

/** Checks that a symlink at `linkPath` (relative) pointing to `target` stays inside the prefix. */
export function checkLinkTarget(linkPath: string, target: string, label: string, kind: 'symlink' | 'hardlink'): string {
  if (target === '' || target.startsWith('/')) {
    throw new ArchiveError(`${label} has a ${kind} '${linkPath}' pointing outside the prefix ('${target}'); refusing to install it.`, label);
  }
  const base = kind === 'symlink' ? posix.dirname(linkPath) : '.';
  const resolved = posix.normalize(posix.join(base, target));
  if (resolved === '..' || resolved.startsWith('../')) {
    throw new ArchiveError(`${label} has a ${kind} '${linkPath}' pointing outside the prefix ('${target}'); refusing to install it.`, label);
  }
  return resolved;
}

/**
 * Writes files into a staging directory that stands for the env prefix. Every write goes through
 * a directory whose real path was checked to be inside the root, and an existing entry at the
 * destination is removed first (never followed), so even a chain of in-prefix symlinks cannot
 * lead a write outside.
 */
export class PrefixWriter {
  readonly root: string;
  #realRoot = '';
  readonly #dirs = new Set<string>(['']);
  /** Whether the root was empty when opened: then only paths in #paths can exist. */
  #fresh = false;
  readonly #paths = new Set<string>();
  /** Who wrote each entry (the `label` of the write): the last writer of a file, the first creator of a directory. */
  readonly #owners = new Map<string, string>();

  private constructor(root: string) {
    this.root = root;
  }

  static async open(root: string): Promise<PrefixWriter> {
    await mkdir(root, { recursive: true });
    const writer = new PrefixWriter(root);
    writer.#realRoot = await realpath(root);
    writer.#fresh = (await readdir(root)).length === 0;
    return writer;
  }

  /** Every entry written, with the label of the write that put it there (for splitting the prefix into layers). */
  owners(): ReadonlyMap<string, string> {
    return this.#owners;
  }

  full(rel: string): string {
    return rel === '' ? this.root : posix.join(this.root, rel);
  }

  /** Creates `rel` and its parents as directories, checking each existing one stays inside the root. */
  async mkdir(rel: string, label: string): Promise<void> {
    if (this.#dirs.has(rel)) return;
    const parts = rel.split('/');
    let current = '';
    for (const part of parts) {
      current = current === '' ? part : `${current}/${part}`;
      if (this.#dirs.has(current)) continue;
      const full = this.full(current);
      const info = this.#fresh && !this.#paths.has(current) ? undefined : await lstat(full).catch(() => undefined);
      this.#paths.add(current);
      if (!this.#owners.has(current)) this.#owners.set(current, label);
      if (!info) {
        await mkdir(full, { mode: 0o755 });
      } else if (info.isSymbolicLink()) {
        const real = await realpath(full).catch(() => '');
        if (real !== this.#realRoot && !real.startsWith(`${this.#realRoot}/`)) {
          throw new ArchiveError(`${label} writes through '${current}', a symlink leading outside the prefix; refusing to install it.`, label);
        }
        const target = await lstat(real);
        if (!target.isDirectory()) throw new InstallError(`${label} needs '${current}' to be a directory, but it is a symlink to a file.`, label);
      } else if (!info.isDirectory()) {
        throw new InstallError(`${label} needs '${current}' to be a directory, but another package installed a file there.`, label);
      }
      this.#dirs.add(current);
    }
  }

  /** Removes whatever is at `rel` (not a directory); true when something was replaced. */
  async #clear(rel: string, label: string): Promise<boolean> {
    if (this.#fresh && !this.#paths.has(rel)) {
      this.#paths.add(rel);
      return false;
    }
    this.#paths.add(rel);
    const info = await lstat(this.full(rel)).catch(() => undefined);
    if (!info) return false;
    if (info.isDirectory()) throw new InstallError(`${label} installs '${rel}', but another package made it a directory.`, label);
    await unlink(this.full(rel));
    return true;
  }

  /** Writes a regular file; true when it replaced an existing one. */
  async writeFile(rel: string, data: Uint8Array | string, mode: number, label: string): Promise<boolean> {
    await this.mkdir(posix.dirname(rel) === '.' ? '' : posix.dirname(rel), label);
    const replaced = await this.#clear(rel, label);
    await writeFile(this.full(rel), data, { flag: 'wx', mode });
    this.#owners.set(rel, label);
    // The umask may have narrowed `mode`; normaliseTree sets the final modes of the whole tree.
    return replaced;
  }

  /** Creates a symlink after checking its target stays inside the prefix. */
  async symlink(rel: string, target: string, label: string): Promise<boolean> {
    checkLinkTarget(rel, target, label, 'symlink');
    await this.mkdir(posix.dirname(rel) === '.' ? '' : posix.dirname(rel), label);
    const replaced = await this.#clear(rel, label);
    await symlink(target, this.full(rel));
    this.#owners.set(rel, label);
    return replaced;
  }

  /** Reads a file already written (for hardlinks: the copy gets the content, never a link outside). */
  async read(rel: string, label: string): Promise<Buffer> {
    const info = await lstat(this.full(rel)).catch(() => undefined);
    if (!info?.isFile()) throw new ArchiveError(`${label} has a hardlink to '${rel}', which is not a file in the package.`, label);
    return readFile(this.full(rel));
  }
}
