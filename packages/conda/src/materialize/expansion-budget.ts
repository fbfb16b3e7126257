import { ArchiveError } from './errors.js';

/**
 * How far a package may expand while it is extracted. Archives are streamed to disk, never held
 * whole in memory, and every byte a decompressor produces is counted against a bound, so a
 * decompression bomb stops at once instead of filling memory or the disk:
 *
 * - when the package declares its sizes (a conda package's `info/paths.json`, a zip's central
 *   directory and a wheel's RECORD), each member may not exceed its declared size and the whole
 *   stream may not exceed the declared total (plus the tar headers of that many entries);
 * - until then (a `.tar.bz2` may put `info/` after its files), the bound is the package file's
 *   size × {@link UNDECLARED_EXPANSION_RATIO} plus {@link UNDECLARED_EXPANSION_FLOOR}: generous for
 *   real packages, whose files compress a few times, tiny for a bomb;
 * - and never more than {@link MAX_PACKAGE_EXPANSION}, whatever a package declares.
 */

/** No package expands to more than this (32 GiB; the largest real conda packages are a few GiB). */
const MAX_PACKAGE_EXPANSION = 32 * 1024 ** 3;
/** Bound of a package whose sizes are not known yet: its file size × this ratio (plus the floor). */
const UNDECLARED_EXPANSION_RATIO = 200;
/** Added to the undeclared bound so that small packages with many tiny files fit (16 MiB). */
const UNDECLARED_EXPANSION_FLOOR = 16 * 1024 ** 2;
/** What a tar may spend on one entry besides its content: header, long-name and pax records. */
export const TAR_ENTRY_OVERHEAD = 2048;

/** "package X expands beyond its declared size", naming the member being read when it happened. */
export function expansionError(label: string, member: string | undefined, detail: string): ArchiveError {
  return new ArchiveError(
    `package ${label} expands beyond its declared size${member ? ` at member '${member}'` : ''} (${detail}); refusing to install it.`,
    label,
    { hint: 'The package is corrupt or built to exhaust memory or disk (a decompression bomb). Remove it from the environment or use a trusted build.' },
  );
}

/** Counts the bytes a package's decompressors produce against its bound. */
export class ExpansionBudget {
  readonly label: string;
  #bound: number;
  #used = 0;
  /** The member being read (for messages). */
  member: string | undefined;

  constructor(label: string, fileSize: number) {
    this.label = label;
    this.#bound = Math.min(MAX_PACKAGE_EXPANSION, fileSize * UNDECLARED_EXPANSION_RATIO + UNDECLARED_EXPANSION_FLOOR);
  }

  get used(): number {
    return this.#used;
  }

  get bound(): number {
    return this.#bound;
  }

  /** Sets the bound from what the package declares (never above the hard cap); an unknown (infinite) declaration keeps the bound. */
  declare(bytes: number): void {
    if (!Number.isFinite(bytes)) return;
    this.#bound = Math.min(MAX_PACKAGE_EXPANSION, bytes);
    this.#check();
  }

  /** Counts `bytes` more; throws the expansion error as soon as the bound is passed. */
  add(bytes: number): void {
    this.#used += bytes;
    this.#check();
  }

  /** Throws when `bytes` more would not fit (e.g. a tar header announcing a member larger than what is left). */
  reserve(bytes: number, member: string): void {
    if (this.#used + bytes > this.#bound) {
      throw expansionError(this.label, member, `${member} announces ${bytes} bytes, more than the ${this.#bound - this.#used} left of its bound of ${this.#bound}`);
    }
  }

  #check(): void {
    if (this.#used > this.#bound) throw expansionError(this.label, this.member, `more than ${this.#bound} bytes`);
  }
}
