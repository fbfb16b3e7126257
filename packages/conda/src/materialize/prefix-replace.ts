import { InstallError } from './errors.js';

/** The placeholder old conda-build versions used when `info/has_prefix` gives none. */
export const LEGACY_PLACEHOLDER = '/opt/anaconda1anaconda2anaconda3';

/**
 * How much longer than the original a text file may become by its placeholders' replacement, and
 * all the text files of one package together. Real placeholders (255 bytes, or the legacy 32) are
 * about as long as a prefix or longer: a file grows little if at all. A package naming a one-byte
 * placeholder for a file full of that byte would grow it by the prefix's length per byte — a 1 GiB
 * declared file, tiny compressed, into tens of GiB; and thousands of files each just under the
 * bound, a few hundred bytes compressed each, would write the package's 32 GiB extraction cap
 * many times over.
 */
export const MAX_TEXT_GROWTH = 64 * 1024 * 1024;

/** The growth a package's text files took so far (see {@link checkTextGrowth}): one per package install. */
export interface TextGrowth {
  bytes: number;
}

/** Where a file being patched comes from, for messages. */
export interface PatchedFile {
  label: string;
  path: string;
}

/** NULs a binary string's padding is written from, a piece at a time. */
const ZEROS = Buffer.alloc(64 * 1024);
const EMPTY = Buffer.alloc(0);

/**
 * Replaces a prefix placeholder in a file read a chunk at a time, in bounded memory: what it holds
 * between chunks is the tail that may begin a placeholder (its length - 1 bytes), so a placeholder
 * across a chunk boundary is found. `push` each chunk, then `end`; each returns the output's next
 * pieces. The bytes out are those of conda's replacement:
 *
 * - text mode: every occurrence (left to right, not overlapping) becomes the prefix; the file may
 *   change length ({@link count} occurrences: check the growth with {@link checkTextGrowth}, which
 *   needs a counting pass first);
 * - binary mode: in each NUL-terminated string holding the placeholder, the placeholder (and every
 *   later one in that string) becomes the prefix and the string is padded with NULs to its old
 *   length, so offsets in the binary stay valid. A prefix longer than the placeholder cannot fit:
 *   an InstallError at the first occurrence (see {@link prefixTooLong}).
 */
export class PlaceholderReplacer {
  readonly #needle: Buffer;
  readonly #replacement: Buffer;
  readonly #binary: boolean;
  readonly #file: PatchedFile;
  /** The end of the last chunk, which may begin a placeholder. */
  #carry: Buffer = EMPTY;
  /** Binary mode: inside a string holding the placeholder, until its NUL. */
  #inString = false;
  /** Binary mode: bytes the replacements in the current string took out, owed as NULs at its end. */
  #owed = 0;
  /** Occurrences replaced so far. */
  count = 0;

  constructor(placeholder: string, prefix: string, mode: 'text' | 'binary', file: PatchedFile) {
    this.#needle = Buffer.from(placeholder, 'utf8');
    this.#replacement = Buffer.from(prefix, 'utf8');
    this.#binary = mode === 'binary';
    this.#file = file;
    if (this.#binary && this.#needle.includes(0)) {
      throw new InstallError(`${file.label}: the prefix placeholder of the binary file '${file.path}' holds a NUL byte, which no C string can; refusing to install it.`, file.label);
    }
  }

  /** The output for the next chunk of the file. */
  push(chunk: Buffer): Buffer[] {
    const out: Buffer[] = [];
    this.#scan(this.#carry.length > 0 ? Buffer.concat([this.#carry, chunk]) : chunk, false, out);
    return out;
  }

  /** The rest of the output, once the whole file was pushed. */
  end(): Buffer[] {
    const out: Buffer[] = [];
    this.#scan(this.#carry, true, out);
    if (this.#inString) this.#pay(out);
    this.#inString = false;
    return out;
  }

  #scan(buf: Buffer, final: boolean, out: Buffer[]): void {
    const needle = this.#needle;
    const emit = (piece: Buffer): void => {
      if (piece.length > 0) out.push(piece);
    };
    let from = 0;
    if (needle.length > 0) {
      for (;;) {
        if (this.#inString) {
          // A placeholder has no NUL: one starting before the string's NUL ends before it.
          const nul = buf.indexOf(0, from);
          const limit = nul < 0 ? buf.length : nul;
          for (let at = buf.indexOf(needle, from); at >= 0 && at < limit; at = buf.indexOf(needle, from)) {
            emit(buf.subarray(from, at));
            out.push(this.#replacement);
            this.count++;
            this.#owed += needle.length - this.#replacement.length;
            from = at + needle.length;
          }
          if (nul < 0) break;
          emit(buf.subarray(from, nul));
          this.#pay(out);
          this.#inString = false;
          from = nul;
          continue;
        }
        const at = buf.indexOf(needle, from);
        if (at < 0) break;
        if (this.#binary && this.#replacement.length > needle.length) throw prefixTooLong(this.#replacement.toString('utf8'), needle.length, this.#file);
        emit(buf.subarray(from, at));
        out.push(this.#replacement);
        this.count++;
        from = at + needle.length;
        if (this.#binary) {
          this.#owed += needle.length - this.#replacement.length;
          this.#inString = true;
        }
      }
    }
    // What may begin a placeholder waits for the next chunk; the rest goes out.
    const keep = final || needle.length === 0 ? 0 : Math.min(needle.length - 1, buf.length - from);
    emit(buf.subarray(from, buf.length - keep));
    this.#carry = keep > 0 ? Buffer.from(buf.subarray(buf.length - keep)) : EMPTY;
  }

  /** The NULs owed at the end of a binary string. */
  #pay(out: Buffer[]): void {
    for (; this.#owed > 0; this.#owed -= Math.min(this.#owed, ZEROS.length)) out.push(ZEROS.subarray(0, Math.min(this.#owed, ZEROS.length)));
  }
}

/**
 * Text mode's bound: an InstallError when replacing `count` occurrences of `placeholder` by `prefix`
 * would make the file more than {@link MAX_TEXT_GROWTH} bytes longer, or, with `packageGrowth` (the
 * growth of the package's earlier files, added to), its text files all together.
 */
export function checkTextGrowth(count: number, placeholder: string, prefix: string, file: PatchedFile, packageGrowth?: TextGrowth): void {
  const growth = count * (Buffer.byteLength(prefix) - Buffer.byteLength(placeholder));
  if (growth <= MAX_TEXT_GROWTH) {
    if (!packageGrowth || growth <= 0) return;
    const total = packageGrowth.bytes + growth;
    if (total <= MAX_TEXT_GROWTH) {
      packageGrowth.bytes = total;
      return;
    }
    throw new InstallError(
      `${file.label}: replacing the prefix placeholders of its text files would make them ${total} bytes longer in all (at '${file.path}'), more than the ${MAX_TEXT_GROWTH} prebuilt allows a package; refusing to install it.`,
      file.label,
      { hint: 'Real packages use placeholders about as long as the prefix (conda-build: 255 characters); this one is built to exhaust memory or disk. Remove it from the environment or use a trusted build.' },
    );
  }
  throw new InstallError(
    `${file.label}: replacing the ${Buffer.byteLength(placeholder)}-byte prefix placeholder '${placeholder.slice(0, 64)}' in the text file '${file.path}' (${count} times) would make it ${growth} bytes longer, more than the ${MAX_TEXT_GROWTH} prebuilt allows; refusing to install it.`,
    file.label,
    { hint: 'Real packages use a placeholder about as long as the prefix (conda-build: 255 characters); this one is built to exhaust memory or disk. Remove it from the environment or use a trusted build.' },
  );
}

/** Binary mode: the prefix does not fit in the placeholder's place. */
function prefixTooLong(prefix: string, placeholderBytes: number, file: PatchedFile): InstallError {
  return new InstallError(
    `${file.label}: the env prefix '${prefix}' (${Buffer.byteLength(prefix)} bytes) is longer than the ${placeholderBytes}-byte placeholder in the binary file '${file.path}', so it cannot be patched in.`,
    file.label,
    {
      hint: 'The package was built with an unusually short prefix placeholder (conda-build uses 255 characters). Rebuild it with the standard placeholder, or install the env at a shorter prefix.',
    },
  );
}
