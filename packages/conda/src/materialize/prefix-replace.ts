import { InstallError } from './errors.js';

/** The placeholder old conda-build versions used when `info/has_prefix` gives none. */
export const LEGACY_PLACEHOLDER = '/opt/anaconda1anaconda2anaconda3';

/** Text mode: every occurrence of the placeholder becomes the prefix (the file may change length). */
export function replaceText(data: Buffer, placeholder: string, prefix: string): Buffer {
  const needle = Buffer.from(placeholder, 'utf8');
  const replacement = Buffer.from(prefix, 'utf8');
  const parts: Buffer[] = [];
  let from = 0;
  for (let at = data.indexOf(needle, from); at >= 0; at = data.indexOf(needle, from)) {
    parts.push(data.subarray(from, at), replacement);
    from = at + needle.length;
  }
  if (parts.length === 0) return data;
  parts.push(data.subarray(from));
  return Buffer.concat(parts);
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
