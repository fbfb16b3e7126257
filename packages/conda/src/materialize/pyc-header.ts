/**
 * The 16-byte header of a timestamp-based pyc (PEP 552: magic, flags, source mtime, source size)
 * and its re-stamping: the normalised mtime and the source's size written into it, so Python
 * accepts the pyc for a source of that mtime and size (bytecode.ts). Used by the bytecode pass and
 * by the extraction cache, which keeps shipped pycs already stamped (conda-extract.ts).
 */

/** What a pyc's header says: `rewritten` (now stamped with mtime and size: `patched` when that changed it), `hash` or `foreign`. Patches `header` in place. */
export function stampPycHeader(header: Buffer, mtime: number, size: number): { state: 'rewritten' | 'hash' | 'foreign'; patched: boolean } {
  if (header.length < 16 || header[2] !== 0x0d || header[3] !== 0x0a) return { state: 'foreign', patched: false };
  const flags = header.readUInt32LE(4);
  if (flags !== 0) return { state: flags & 1 ? 'hash' : 'foreign', patched: false };
  if (header.readUInt32LE(8) === mtime >>> 0 && header.readUInt32LE(12) === size >>> 0) return { state: 'rewritten', patched: false };
  header.writeUInt32LE(mtime >>> 0, 8);
  header.writeUInt32LE(size >>> 0, 12);
  return { state: 'rewritten', patched: true };
}

const SHIPPED_PYC = /^(.*\/)?__pycache__\/([^/]+)\.cpython-\d+\.pyc$/;

/** The source a `__pycache__/<name>.cpython-XY.pyc` was compiled from (`<name>.py` beside `__pycache__`), undefined for another path. */
export function pycSourceOf(pyc: string): string | undefined {
  const match = SHIPPED_PYC.exec(pyc);
  return match ? `${match[1] ?? ''}${match[2]}.py` : undefined;
}
