import { InstallError } from './errors.js';

/** The placeholder old conda-build versions used when `info/has_prefix` gives none. */
export const LEGACY_PLACEHOLDER = '/opt/anaconda1anaconda2anaconda3';

/**
 * How much longer than the original a text file may become by its placeholders' replacement. Real
 * placeholders (255 bytes, or the legacy 32) are about as long as a prefix or longer: a file grows
 * little if at all. A package naming a one-byte placeholder for a file full of that byte would
 * grow it by the prefix's length per byte — a 1 GiB declared file, tiny compressed, into tens of GiB.
 */
export const MAX_TEXT_GROWTH = 64 * 1024 * 1024;

/** Why a text file was not patched: it would grow by more than {@link MAX_TEXT_GROWTH}. */
export interface TextGrowth {
  label: string;
  path: string;
}

/**
 * Text mode: every occurrence of the placeholder becomes the prefix (the file may change length).
 * The occurrences are counted first and the result is written into one buffer of its final size;
 * with `where`, a result more than {@link MAX_TEXT_GROWTH} bytes longer than `data` is an InstallError.
 */
export function replaceText(data: Buffer, placeholder: string, prefix: string, where?: TextGrowth): Buffer {
  const needle = Buffer.from(placeholder, 'utf8');
  const replacement = Buffer.from(prefix, 'utf8');
  if (needle.length === 0) return data;
  let count = 0;
  for (let at = data.indexOf(needle); at >= 0; at = data.indexOf(needle, at + needle.length)) count++;
  if (count === 0) return data;
  const growth = count * (replacement.length - needle.length);
  if (where && growth > MAX_TEXT_GROWTH) {
    throw new InstallError(
      `${where.label}: replacing the ${needle.length}-byte prefix placeholder '${placeholder.slice(0, 64)}' in the text file '${where.path}' (${count} times) would make it ${growth} bytes longer, more than the ${MAX_TEXT_GROWTH} prebuilt allows; refusing to install it.`,
      where.label,
      { hint: 'Real packages use a placeholder about as long as the prefix (conda-build: 255 characters); this one is built to exhaust memory or disk. Remove it from the environment or use a trusted build.' },
    );
  }
  const out = Buffer.allocUnsafe(data.length + growth);
  let from = 0;
  let pos = 0;
  for (let at = data.indexOf(needle); at >= 0; at = data.indexOf(needle, from)) {
    pos += data.copy(out, pos, from, at);
    pos += replacement.copy(out, pos);
    from = at + needle.length;
  }
  data.copy(out, pos, from);
  return out;
}

/**
 * Binary mode: in each NUL-terminated string holding the placeholder, the placeholder becomes the
 * prefix and the string is padded with NULs to its old length, so offsets in the binary stay valid.
 * A prefix longer than the placeholder cannot fit: that is an InstallError.
 */
export function replaceBinary(data: Buffer, placeholder: string, prefix: string, label: string, path: string): Buffer {
  const needle = Buffer.from(placeholder, 'utf8');
  const replacement = Buffer.from(prefix, 'utf8');
  let at = data.indexOf(needle);
  if (at < 0) return data;
  if (replacement.length > needle.length) {
    throw new InstallError(
      `${label}: the env prefix '${prefix}' (${replacement.length} bytes) is longer than the ${needle.length}-byte placeholder in the binary file '${path}', so it cannot be patched in.`,
      label,
      {
        hint: 'The package was built with an unusually short prefix placeholder (conda-build uses 255 characters). Rebuild it with the standard placeholder, or install the env at a shorter prefix.',
      },
    );
  }
  const out = Buffer.from(data);
  while (at >= 0) {
    let end = out.indexOf(0, at + needle.length);
    if (end < 0) end = out.length;
    // The C string [at, end) becomes prefix + rest, followed by NULs up to `end`.
    const rest = Buffer.from(out.subarray(at + needle.length, end));
    let pos = at;
    pos += replacement.copy(out, pos);
    // The rest may itself hold the placeholder again (e.g. a PATH-like list): replace those too.
    const restReplaced = replaceText(rest, placeholder, prefix);
    pos += restReplaced.copy(out, pos);
    out.fill(0, pos, end);
    at = out.indexOf(needle, end);
  }
  return out;
}
