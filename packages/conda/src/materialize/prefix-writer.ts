import { constants, linkSync, type Stats, lstatSync, mkdirSync, readlinkSync, renameSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { copyFile, type FileHandle, open, mkdir, readdir, realpath, writeFile } from 'node:fs/promises';
import { posix } from 'node:path';
import { createHash } from 'node:crypto';
import { errorMessage, normalisedMode } from '@prebuilt/core/extraction';
import { ArchiveError, InstallError } from './errors.js';

/**
 * Checks a path taken from an archive and returns it normalised, relative to the prefix root.
 * Refuses absolute paths, `..` components and empty names: nothing an archive names can land
 * outside the prefix lexically (symlinks are the writer's business, see {@link PrefixWriter}).
 */
export function safeRelativePath(path: string, label: string): string {
  if (path.startsWith('/')) throw new ArchiveError(`${label} has an entry with an absolute path ('${path}'); refusing to install it.`, label);
  if (path.includes('\0')) throw new ArchiveError(`${label} has an entry name with a NUL byte; refusing to install it.`, label);
  const parts = path.split('/').filter((part) => part !== '' && part !== '.');
  if (parts.includes('..')) throw new ArchiveError(`${label} has an entry that climbs out of the prefix ('${path}'); refusing to install it.`, label);
  return parts.join('/');
}

/** Checks lexically that a link at `linkPath` (relative) pointing to `target` stays inside the prefix. */
function checkLinkTarget(linkPath: string, target: string, label: string, kind: 'symlink' | 'hardlink'): string {
  if (target === '' || target.startsWith('/') || target.includes('\0')) {
    throw new ArchiveError(`${label} has a ${kind} '${linkPath}' pointing outside the prefix ('${target}'); refusing to install it.`, label);
  }
  const base = kind === 'symlink' ? posix.dirname(linkPath) : '.';
  const resolved = posix.normalize(posix.join(base, target));
  if (resolved === '..' || resolved.startsWith('../')) {
    throw new ArchiveError(`${label} has a ${kind} '${linkPath}' pointing outside the prefix ('${target}'); refusing to install it.`, label);
  }
  return resolved;
}

/** Files up to this size are written with one synchronous call (see writeFile). */
const SYNC_WRITE_MAX = 256 * 1024;

/** The kernel's limit on symlinks followed while resolving one path (Linux MAXSYMLINKS). */
const MAX_SYMLINK_HOPS = 40;

type Walk = 'create-parents' | 'follow' | 'check-link';

/**
 * Writes files into a staging directory that stands for the env prefix. The staging directory is
 * a jail: no byte is written, replaced or read outside it, whatever the archives hold and in
 * whatever order their entries come.
 *
 * The mechanism: every path is resolved by walking it one component at a time from the root, as
 * the kernel would, but in this code: a component that is a symlink is read (readlink) and its
 * target spliced into the rest of the walk, an absolute target or a `..` above the root is
 * refused, and so are more than 40 hops (loops). The result is a path made only of real
 * directories, and every file system call is made on that resolved path, never on the archive's
 * spelling of it; the final component is never followed when it is replaced (unlink, then create
 * with O_EXCL, which itself refuses a symlink). So a chain of links that each look inside
 * (`a -> .`, `a/b -> ..`), a link that replaces one the archive already wrote through, or a file
 * written "through" a symlinked parent cannot reach outside.
 *
 * What is cached is only "this resolved path is a real directory": the writer never removes or
 * replaces a directory (replacing one is an InstallError), so that fact cannot be invalidated by a
 * later entry. Symlinks are never cached: they are read again on every walk. The walk is sound
 * because this writer is the only thing changing the staging directory and its operations run one
 * at a time (an internal queue serialises them, so callers may extract in parallel later). The
 * metadata calls (lstat, mkdir, link, unlink, symlink, readlink) are synchronous: one short
 * system call each, where the promise version costs a thread-pool round trip — over the tens of
 * thousands of entries of a large env, most of the time of linking it from the extraction cache.
 *
 * Symlinks are also checked when made (their target, resolved from the link's real directory
 * through the tree as it is, must stay inside) and once more by {@link verifyLinks} after every
 * package is in: a link's meaning can change when later entries add the links it passes through,
 * and the finished prefix must hold no link that leads out.
 */
export class PrefixWriter {
  readonly root: string;
  #realRoot = '';
  /** Resolved paths known to be real directories (never invalidated: directories are never removed). */
  readonly #dirs = new Set<string>(['']);
  /** Whether the root was empty when opened: then only paths in #paths can exist. */
  #fresh = false;
  readonly #paths = new Set<string>();
  /** Who wrote each entry (the `label` of the write): the last writer of a file, the first creator of a directory. */
  readonly #owners = new Map<string, string>();
  /** The entries each label's writes made or replaced (the owner of one may be a later label since: see owners()). */
  readonly #byLabel = new Map<string, Set<string>>();
  /** Every symlink made (resolved path → the package and member that made it), for verifyLinks. */
  readonly #links = new Map<string, { label: string; member: string }>();
  /** Top-level directories only the materializer itself may write (conda-meta). */
  readonly #reserved = new Set<string>();
  /** Files that are hard links to extraction-cache files (never written in place: see linkIn), with the cache file. */
  readonly #linked = new Map<string, string>();
  /** What each file or symlink is, for content keys (see {@link identity}); undefined for a file moved in. */
  readonly #identities = new Map<string, string | undefined>();
  #queue: Promise<unknown> = Promise.resolve();

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

  /**
   * The entries the writes labelled `label` made or replaced, in the order they were first made:
   * a package's own paths without a walk over every entry of the prefix. Some may be another
   * label's since (a later write replaced them): check {@link owners}.
   */
  writtenBy(label: string): Iterable<string> {
    return this.#byLabel.get(label) ?? [];
  }

  #own(real: string, label: string): void {
    this.#owners.set(real, label);
    const paths = this.#byLabel.get(label);
    if (paths) paths.add(real);
    else this.#byLabel.set(label, new Set([real]));
  }

  /** Makes `dir` (a top-level directory, e.g. `conda-meta`) writable only with `{ reserved: true }`. */
  reserve(dir: string): void {
    this.#reserved.add(dir);
  }

  full(rel: string): string {
    return rel === '' ? this.#realRoot : `${this.#realRoot}/${rel}`;
  }

  /** Runs one operation after the previous ones finished: the walks assume nothing changes under them. */
  #serial<T>(op: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(op, op);
    this.#queue = run.catch(() => undefined);
    return run;
  }

  /** Creates `rel` and its parents as directories (through in-prefix symlinks, never out). */
  mkdir(rel: string, label: string, member: string = rel): Promise<void> {
    return this.#serial(async () => {
      const real = this.#walk(rel, label, member, 'create-parents', true);
      this.#checkReserved(real, label, member, false);
    });
  }

  /** Writes a regular file; true when it replaced an existing one. */
  writeFile(rel: string, data: Uint8Array | string, mode: number, label: string, options: WriteOptions = {}): Promise<boolean> {
    return this.#serial(() =>
      this.#replace(rel, label, options, (full) => {
        // The umask may have narrowed `mode`; normaliseTree sets the final modes of the whole tree.
        const identity = (): string => `file ${normalisedMode('file', mode).toString(8)} ${createHash('sha256').update(data).digest('hex')}`;
        // A small file (a pyc, a record, an entry point) is written synchronously: its open, write
        // and close take microseconds, their promise versions three thread-pool round trips.
        if (data.length > SYNC_WRITE_MAX) return writeFile(full, data, { flag: 'wx', mode }).then(identity);
        writeFileSync(full, data, { flag: 'wx', mode });
        return identity();
      }),
    );
  }

  /** Writes a regular file from a stream of chunks; true when it replaced an existing one. */
  writeStream(rel: string, chunks: AsyncIterable<Uint8Array>, mode: number, label: string, options: WriteOptions = {}): Promise<boolean> {
    return this.#serial(() =>
      this.#replace(rel, label, options, async (full) => {
        const handle = await open(full, 'wx', mode);
        const hash = createHash('sha256');
        try {
          for await (const chunk of chunks) {
            hash.update(chunk);
            await handle.write(chunk);
          }
        } finally {
          await handle.close();
        }
        return `file ${normalisedMode('file', mode).toString(8)} ${hash.digest('hex')}`;
      }),
    );
  }

  /** Moves a file from outside the tree (an extraction scratch file) to `rel`; true when it replaced one. */
  moveIn(rel: string, source: string, label: string, options: WriteOptions = {}): Promise<boolean> {
    return this.#serial(() =>
      this.#replace(rel, label, options, (full) => {
        // rename() replaces the final component itself (never follows it); #replace cleared it.
        renameSync(source, full);
        return undefined;
      }),
    );
  }

  /**
   * Hard-links a file from outside the tree (an extraction-cache file, which this code named) to
   * `rel`, or copies it where a link cannot be made (another file system); true when it replaced
   * one. The linked inode is shared with the cache: callers never write such a file in place
   * ({@link isLinked}) but replace it.
   */
  linkIn(rel: string, source: string, label: string, options: WriteOptions = {}): Promise<boolean> {
    return this.#serial(() =>
      this.#replace(rel, label, options, (full, real) => {
        // A cache file's content and mode are fixed by its path for as long as its entry is intact (checked when used).
        const identity = `cached ${source}`;
        try {
          linkSync(source, full);
          this.#linked.set(real, source);
          return identity;
        } catch (error) {
          const code = (error as NodeJS.ErrnoException).code;
          if (code !== 'EXDEV' && code !== 'EPERM' && code !== 'EMLINK') throw error;
          return copyFile(source, full, constants.COPYFILE_EXCL).then(() => identity);
        }
      }),
    );
  }

  /** Whether the file at `rel` (as resolved by the writer) is a hard link made by {@link linkIn}. */
  isLinked(rel: string): boolean {
    return this.#linked.has(rel);
  }

  /** The extraction-cache file `rel` is a hard link to (undefined when it is not one). */
  linkedSource(rel: string): string | undefined {
    return this.#linked.get(rel);
  }

  /** Every file that is still a hard link made by {@link linkIn} (its mode and mtime are already normalised). */
  linkedFiles(): ReadonlySet<string> {
    return new Set(this.#linked.keys());
  }

  /**
   * What the entry at `rel` (a resolved path) is, as one string that changes whenever its content
   * or mode could: a directory, a symlink's target, a file's mode and sha256 as written, or the
   * extraction-cache file it is linked to. Undefined for a file moved in from scratch (not hashed)
   * or a path the writer did not make. Content keys of packages (materialize.ts) are built from it.
   */
  identity(rel: string): string | undefined {
    if (this.#dirs.has(rel)) return 'directory';
    return this.#identities.get(rel);
  }

  /** Creates a symlink after checking its target stays inside the prefix. */
  symlink(rel: string, target: string, label: string, options: WriteOptions = {}): Promise<boolean> {
    return this.#serial(async () => {
      checkLinkTarget(rel, target, label, 'symlink');
      const member = options.member ?? rel;
      return this.#replace(rel, label, options, async (full, real) => {
        // Where the link leads from where it really is, through the tree as it is now.
        const dir = posix.dirname(real) === '.' ? '' : posix.dirname(real);
        this.#walk(dir === '' ? target : `${dir}/${target}`, label, member, 'check-link', true);
        symlinkSync(target, full);
        this.#links.set(real, { label, member });
        return `symlink ${target}`;
      });
    });
  }

  /**
   * Opens a file already written, for reading (a hardlink's copy gets its content, never a link);
   * the caller reads it in chunks — it may be of any size — and closes it. The path is walked like a
   * write, so a symlinked parent or a symlink at the end cannot lead out; the file is opened at its
   * resolved path (made only of real directories) with O_NOFOLLOW, and the open descriptor is
   * checked to be a regular file. The descriptor holds the inode: the writer never writes a file in
   * place (it replaces it), so entries written later do not change what is read.
   */
  openFile(rel: string, label: string, member: string = rel): Promise<FileHandle> {
    return this.#serial(async () => {
      const real = this.#walk(rel, label, member, 'follow', true);
      const notFile = (): ArchiveError => new ArchiveError(`${label} has a hardlink '${member}' to '${rel}', which is not a file in the package.`, label);
      // Checked before the open too: opening a FIFO (or a device) could block or act.
      if (!this.#lstat(real, label, member)?.isFile()) throw notFile();
      let handle: FileHandle;
      try {
        handle = await open(this.full(real), constants.O_RDONLY | constants.O_NOFOLLOW);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ELOOP') throw notFile();
        throw this.#fsError(error, label, member);
      }
      const info = await handle.stat().catch(async (error: unknown) => {
        await handle.close();
        throw error;
      });
      if (!info.isFile()) {
        await handle.close();
        throw notFile();
      }
      return handle;
    });
  }

  /**
   * Removes the file or symlink at `rel` unless the write labelled `keep` put it there: the bytecode
   * pass's way to take out a pyc another package put at a module's pyc path, which Python would run
   * in place of the module (bytecode.ts). The parent is resolved as for a write (a symlinked parent
   * is followed inside the prefix, never out) and the final component is never followed; a directory
   * or a missing entry is left alone. Returns the label of the write that had put the entry there,
   * undefined when nothing was removed. The entry is no longer any label's (owners, layers).
   */
  removeUnlessOwnedBy(rel: string, keep: string, member: string = rel): Promise<string | undefined> {
    return this.#serial(async () => {
      const slash = rel.lastIndexOf('/');
      const parent = slash < 0 ? '' : rel.slice(0, slash);
      const name = slash < 0 ? rel : rel.slice(slash + 1);
      if (name === '' || name === '.' || name === '..') return undefined;
      const realParent = this.#walk(parent, keep, member, 'check-link', true);
      const real = realParent === '' ? name : `${realParent}/${name}`;
      const owner = this.#owners.get(real);
      if (owner === undefined || owner === keep || this.#dirs.has(real)) return undefined;
      const info = this.#lstat(real, keep, member);
      if (!info || info.isDirectory()) return undefined;
      unlinkSync(this.full(real));
      this.#paths.delete(real);
      this.#owners.delete(real);
      this.#identities.delete(real);
      this.#links.delete(real);
      this.#linked.delete(real);
      return owner;
    });
  }

  /**
   * Checks every symlink made, now that all entries are in: each must still resolve inside the
   * prefix (a later link it passes through may have changed where it leads). Fails naming the
   * package and member that made the first one that does not.
   */
  verifyLinks(): Promise<void> {
    return this.#serial(async () => {
      for (const [real, { label, member }] of [...this.#links].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
        const info = lstatSync(this.full(real), { throwIfNoEntry: false });
        if (!info?.isSymbolicLink()) continue; // replaced by a later file
        this.#walk(real, label, member, 'check-link', true);
      }
    });
  }

  /** Resolves the parent of `rel`, clears its final component and lets `make` create it. */
  async #replace(rel: string, label: string, options: WriteOptions, make: (full: string, real: string) => string | undefined | Promise<string | undefined>): Promise<boolean> {
    const member = options.member ?? rel;
    const slash = rel.lastIndexOf('/');
    const parent = slash < 0 ? '' : rel.slice(0, slash);
    const name = slash < 0 ? rel : rel.slice(slash + 1);
    if (name === '' || name === '.' || name === '..') throw new ArchiveError(`${label} has an entry '${member}' without a file name; refusing to install it.`, label);
    const realParent = this.#walk(parent, label, member, 'create-parents', true);
    const real = realParent === '' ? name : `${realParent}/${name}`;
    this.#checkReserved(real, label, member, options.reserved === true);
    const replaced = this.#clear(real, label, member);
    if (replaced) {
      this.#links.delete(real);
      this.#linked.delete(real);
    }
    try {
      // Most makes are synchronous (a link, a small write): no promise to wait for then.
      const made = make(this.full(real), real);
      this.#identities.set(real, made instanceof Promise ? await made : made);
    } catch (error) {
      throw this.#fsError(error, label, member);
    }
    this.#paths.add(real);
    this.#own(real, label);
    return replaced;
  }

  #checkReserved(real: string, label: string, member: string, allowed: boolean): void {
    if (allowed) return;
    const slash = real.indexOf('/');
    const top = slash < 0 ? real : real.slice(0, slash);
    if (this.#reserved.has(top) && real !== top) {
      throw new ArchiveError(`${label} writes '${member}' into ${top}/, which holds the env's own records; refusing to install it.`, label);
    }
  }

  /** Removes whatever is at the resolved path `real` (never a directory); true when something was replaced. */
  #clear(real: string, label: string, member: string): boolean {
    if (this.#fresh && !this.#paths.has(real)) return false;
    const info = lstatSync(this.full(real), { throwIfNoEntry: false });
    if (!info) return false;
    if (info.isDirectory()) {
      throw new InstallError(`${label} installs '${member}', but the prefix already has a directory there (from this or an earlier package); a directory is never replaced.`, label);
    }
    unlinkSync(this.full(real));
    return true;
  }

  /**
   * Walks `rel` from the root one component at a time (see the class comment) and returns the
   * resolved path, relative to the root. `create-parents` makes missing directories (the final
   * component is left unresolved: it is what the caller replaces, so pass the parent);
   * `follow` resolves every component and requires it to exist; `check-link` resolves what
   * exists and continues lexically past the first missing component.
   */
  #walk(rel: string, label: string, member: string, walk: Walk, resolveLast: boolean): string {
    // A path this writer already resolved to a real directory (the parent of most files, after the
    // first of its directory): every component of it is a real directory — a key of #dirs is made
    // only of components the walk found or made as directories, never of symlinks, '.', '..' or
    // empty names — and directories are never removed or replaced, so the walk would return it
    // unchanged, one lookup per component later.
    if (this.#dirs.has(rel)) return rel;
    const queue = rel.split('/').filter((part) => part !== '' && part !== '.');
    const stack: string[] = [];
    let hops = 0;
    let missing = false;
    const out = (through: string, target: string): never => {
      throw new ArchiveError(
        `${label}: '${member}' leads outside the env prefix (through '${through}', a symlink to '${target}'); refusing to install it.`,
        label,
      );
    };
    while (queue.length > 0) {
      const name = queue.shift()!;
      if (name === '..') {
        if (stack.length === 0) {
          throw new ArchiveError(`${label}: '${member}' leads outside the env prefix (a '..' above its root); refusing to install it.`, label);
        }
        stack.pop();
        continue;
      }
      const current = stack.length === 0 ? name : `${stack.join('/')}/${name}`;
      if (missing || (!resolveLast && queue.length === 0)) {
        stack.push(name);
        continue;
      }
      if (this.#dirs.has(current)) {
        stack.push(name);
        continue;
      }
      const info = this.#fresh && !this.#paths.has(current) ? undefined : this.#lstat(current, label, member);
      if (!info) {
        if (walk === 'follow') throw new ArchiveError(`${label} refers to '${member}', which is not in the prefix.`, label);
        if (walk === 'check-link') {
          missing = true;
          stack.push(name);
          continue;
        }
        try {
          mkdirSync(this.full(current), { mode: 0o755 });
        } catch (error) {
          throw this.#fsError(error, label, member);
        }
        this.#paths.add(current);
        this.#dirs.add(current);
        if (!this.#owners.has(current)) this.#own(current, label);
        stack.push(name);
      } else if (info.isDirectory()) {
        this.#dirs.add(current);
        if (!this.#owners.has(current)) this.#own(current, label);
        stack.push(name);
      } else if (info.isSymbolicLink()) {
        hops += 1;
        if (hops > MAX_SYMLINK_HOPS) throw new ArchiveError(`${label}: '${member}' passes through a symlink loop at '${current}'; refusing to install it.`, label);
        const target = readlinkSync(this.full(current));
        if (target.startsWith('/')) out(current, target);
        const parts = target.split('/').filter((part) => part !== '' && part !== '.');
        // `..` in the target climbs from the link's directory: check it against what is left of the stack.
        let depth = stack.length;
        for (const part of parts) {
          depth += part === '..' ? -1 : 1;
          if (depth < 0) out(current, target);
        }
        queue.unshift(...parts);
      } else if (queue.length > 0) {
        throw new InstallError(`${label} needs '${current}' to be a directory for '${member}', but it is a file.`, label);
      } else {
        stack.push(name);
      }
    }
    return stack.join('/');
  }

  /** The entry at a resolved path, undefined when there is none. */
  #lstat(real: string, label: string, member: string): Stats | undefined {
    try {
      return lstatSync(this.full(real), { throwIfNoEntry: false });
    } catch (error) {
      throw this.#fsError(error, label, member);
    }
  }

  /** A file system error as a plain error naming the package and member (over-long names above all). */
  #fsError(error: unknown, label: string, member: string): unknown {
    const code = (error as NodeJS.ErrnoException | undefined)?.code;
    if (code === 'ENAMETOOLONG') {
      return new ArchiveError(
        `${label} has a member whose name is too long for the file system: '${member.length > 120 ? `${member.slice(0, 60)}…${member.slice(-40)}` : member}' (${Buffer.byteLength(member)} bytes); refusing to install it.`,
        label,
        { cause: error },
      );
    }
    if (code === 'ENOTDIR' || code === 'EEXIST' || code === 'ELOOP') {
      return new InstallError(`${label} cannot install '${member}': ${errorMessage(error)}.`, label, { cause: error });
    }
    return error;
  }
}

export interface WriteOptions {
  /** The member's name in the package, for messages (default: the path written). */
  member?: string;
  /** Allows writing into a reserved directory (the materializer's own conda-meta records). */
  reserved?: boolean;
}
