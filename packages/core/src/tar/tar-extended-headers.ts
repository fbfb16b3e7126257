/**
 * The headers a tar puts before an entry to say what its own header cannot: pax records (`x`,
 * and `g` for the archive), GNU long names (`L`) and long link names (`K`). Strict, like the
 * header decoder (tar-header.ts): a pax record whose length does not match, a pax number that is
 * not one, an extended header over {@link MAX_EXTENDED_HEADER}, are a {@link TarFormatError}.
 */
import { TarFormatError } from '../errors.js';
import { tarText, type TarHeader } from './tar-header.js';

/** The largest pax or GNU long-name header read (1 MiB, as tar-stream and Go's archive/tar). */
export const MAX_EXTENDED_HEADER = 1024 * 1024;

const PAX = 0x78;
const PAX_GLOBAL = 0x67;
const GNU_LONG_NAME = 0x4c;
const GNU_LONG_LINK = 0x4b;
/** An old GNU sparse file: its sparse map in the header, maybe continued in extension blocks before its data. */
const GNU_SPARSE = 0x53;

/** The entry types that hold no data, by type flag: a reader of Go's or Python's reads none after their header, whatever its size. */
const DATALESS: Record<number, string> = { 0x31: 'hard link', 0x32: 'symbolic link', 0x33: 'character device', 0x34: 'block device', 0x35: 'directory', 0x36: 'FIFO' };

/** Whether a type flag is an extended header's (pax `x` or `g`, GNU `L` or `K`): its body describes the next entry, or the archive. */
export function isExtendedHeader(typeflag: number): boolean {
  return typeflag === PAX || typeflag === PAX_GLOBAL || typeflag === GNU_LONG_NAME || typeflag === GNU_LONG_LINK;
}

/** The first malformed-record reason of a pax record at `at`, or its key's `=` and its end. */
function paxRecordAt(data: Buffer, at: number): { eq: number; end: number } | string {
  const space = data.indexOf(0x20, at);
  if (space === -1 || space === at || space - at > 20) return 'no length';
  let length = 0;
  for (let i = at; i < space; i++) {
    const digit = data[i]! - 0x30;
    if (digit < 0 || digit > 9) return `a length '${data.toString('latin1', at, space)}'`;
    length = length * 10 + digit;
  }
  const end = at + length;
  if (end > data.length || end < space + 3) return `a length ${length} that does not fit`;
  if (data[end - 1] !== 0x0a) return `a length ${length} that does not end at its newline`;
  const eq = data.indexOf(0x3d, space + 1);
  if (eq === -1 || eq >= end - 1 || eq === space + 1) return 'no key=value';
  return { eq, end };
}

/** The records of a pax extended header (`<length> <key>=<value>\n` each), every one checked. */
export function decodePaxRecords(data: Buffer, label: string): Map<string, string> {
  const out = new Map<string, string>();
  let at = 0;
  while (at < data.length) {
    const record = paxRecordAt(data, at);
    if (typeof record === 'string') throw new TarFormatError(label, `a malformed pax record at byte ${at} of a pax header: ${record}`);
    out.set(data.toString('utf8', data.indexOf(0x20, at) + 1, record.eq), data.toString('utf8', record.eq + 1, record.end - 1));
    at = record.end;
  }
  return out;
}

/** A pax record's non-negative integer value (`size`, `uid`, `gid`): decimal digits, a safe integer. */
export function paxInteger(value: string, key: string, label: string): number {
  if (!/^[0-9]+$/.test(value) || !Number.isSafeInteger(Number(value))) throw new TarFormatError(label, `a pax ${key} '${value.slice(0, 40)}'`);
  return Number(value);
}

/** A pax time (`mtime`): seconds, maybe negative, maybe with a fraction; the whole seconds (floor). */
export function paxSeconds(value: string, key: string, label: string): number {
  const seconds = Math.floor(Number(value));
  if (!/^-?[0-9]+(\.[0-9]+)?$/.test(value) || !Number.isSafeInteger(seconds)) throw new TarFormatError(label, `a pax ${key} '${value.slice(0, 40)}'`);
  return seconds;
}

/** How a reader treats pax global headers (`g`). */
export interface TarExtendedHeadersOptions {
  /**
   * true: a global header's records are the defaults of every later pax header (`x`), as
   * tar-stream reads them; false (default): they are checked and left out, as Go's archive/tar
   * (and so the runtimes) read them.
   */
  mergeGlobal?: boolean;
}

/**
 * The extended headers read since the last entry, applied to the next one: a pax `path` or GNU long
 * name replaces its name, a pax `linkpath` or GNU long link name its link name, a pax `size` its size.
 */
export class TarExtendedHeaders {
  readonly #label: string;
  readonly #mergeGlobal: boolean;
  #global: Map<string, string> | undefined;
  #pax: Map<string, string> | undefined;
  #longName: string | undefined;
  #longLink: string | undefined;

  /** `label` names the archive in errors. */
  constructor(label: string, options: TarExtendedHeadersOptions = {}) {
    this.#label = label;
    this.#mergeGlobal = options.mergeGlobal ?? false;
  }

  /** Fails unless an extended header of `size` bytes may be read (before its body is). */
  checkSize(size: number): void {
    if (size > MAX_EXTENDED_HEADER) throw new TarFormatError(this.#label, `a ${size}-byte extended header`);
  }

  /**
   * Reads the body of an extended header of type `typeflag` (see {@link isExtendedHeader}). Refuses
   * a header sequence tar readers read differently (real tars never write one): a second pax
   * header, GNU long name or long link name before one entry (which applies?), and a pax global
   * header while an entry's extended headers are pending (Go's archive/tar, and so a runtime
   * unpacking a layer, drops them there; others keep them for the next entry).
   */
  read(typeflag: number, body: Buffer): void {
    this.checkSize(body.length);
    if (typeflag === PAX) {
      if (this.#pax) this.#refuse('two pax headers for one entry (tar readers differ on which applies)');
      const records = decodePaxRecords(body, this.#label);
      this.#pax = this.#global ? new Map([...this.#global, ...records]) : records;
    } else if (typeflag === PAX_GLOBAL) {
      const pending = this.#pending();
      if (pending) this.#refuse(`a pax global header between a ${pending} and its entry (tar readers differ on whether the ${pending} still applies)`);
      const records = decodePaxRecords(body, this.#label);
      if (this.#mergeGlobal) this.#global = records;
    } else if (typeflag === GNU_LONG_NAME) {
      if (this.#longName !== undefined) this.#refuse('two GNU long names for one entry (tar readers differ on which applies)');
      this.#longName = tarText(body, 0, body.length);
    } else if (typeflag === GNU_LONG_LINK) {
      if (this.#longLink !== undefined) this.#refuse('two GNU long link names for one entry (tar readers differ on which applies)');
      this.#longLink = tarText(body, 0, body.length);
    }
  }

  /**
   * Fails if extended headers are pending where no entry follows: at the end of the archive, or at
   * a zero block (which some readers take for the end and others skip).
   */
  checkNonePending(): void {
    const pending = this.#pending();
    if (pending) this.#refuse(`a ${pending} with no entry after it`);
  }

  /** What extended header is waiting for its entry, in words; undefined when none is. */
  #pending(): string | undefined {
    if (this.#pax) return 'pax header';
    if (this.#longName !== undefined) return 'GNU long name';
    if (this.#longLink !== undefined) return 'GNU long link name';
    return undefined;
  }

  #refuse(reason: string): never {
    throw new TarFormatError(this.#label, reason);
  }

  /**
   * Applies the extended headers read since the last entry to `header` (an entry's, not an extended
   * header's): its name, link name and size; returns the pax records that applied (undefined when
   * none), for a reader that wants more of them. Forgets them: the next entry starts afresh.
   * Refuses an entry of a type that holds no data whose size is not 0 (see #checkDataless) and a GNU sparse file (see #checkSparse).
   */
  apply(header: TarHeader): ReadonlyMap<string, string> | undefined {
    const pax = this.#pax;
    // Go's archive/tar takes the GNU name over the pax one, tar-stream the pax one.
    if (this.#longName !== undefined && pax?.has('path')) this.#refuse('a pax path and a GNU long name for one entry (tar readers differ on which names it)');
    if (this.#longLink !== undefined && pax?.has('linkpath')) this.#refuse('a pax linkpath and a GNU long link name for one entry (tar readers differ on which it links to)');
    if (this.#longName !== undefined) header.name = this.#longName;
    if (this.#longLink !== undefined) header.linkname = this.#longLink;
    this.#longName = undefined;
    this.#longLink = undefined;
    if (!pax) {
      this.#checkEntry(header, undefined);
      return undefined;
    }
    this.#pax = undefined;
    const path = pax.get('path');
    const linkpath = pax.get('linkpath');
    const size = pax.get('size');
    if (path) header.name = path;
    if (linkpath) header.linkname = linkpath;
    if (size !== undefined) header.size = paxInteger(size, 'size', this.#label);
    this.#checkEntry(header, pax);
    return pax;
  }

  /** The checks of an entry's header, its extended headers applied: {@link #checkSparse}, {@link #checkDataless}. */
  #checkEntry(header: TarHeader, pax: ReadonlyMap<string, string> | undefined): void {
    this.#checkSparse(header, pax);
    this.#checkDataless(header);
  }

  /**
   * Refuses a GNU sparse file: an old GNU one (type `S`, its sparse map in the header and maybe in
   * extension blocks between the header and its data) or a pax one (`GNU.sparse.*` records, formats
   * 0.0, 0.1 and 1.0, the 1.0 map at the start of its data). Go's archive/tar (a runtime unpacking a
   * layer) and Python's tarfile (conda) expand it to its holes and data, while these readers would
   * take the map and the packed data for the file's bytes (or the extension blocks for its data);
   * docker, buildkit and conda never write one.
   */
  #checkSparse(header: TarHeader, pax: ReadonlyMap<string, string> | undefined): void {
    const sparse = header.typeflag === GNU_SPARSE ? 'a GNU sparse file' : pax && [...pax.keys()].some((key) => key.startsWith('GNU.sparse.')) ? 'a pax GNU sparse file' : undefined;
    if (sparse) this.#refuse(`'${header.name}' is ${sparse} (tar readers differ on its bytes: sparse entries are not supported)`);
  }

  /**
   * Refuses an entry of a type that holds no data (a link, a device, a directory, a FIFO, or an old
   * regular file whose name ends in `/`: a directory) whose size is not 0: Go's archive/tar (and so a
   * runtime unpacking a layer) and Python's tarfile (conda) read no data after it, so what follows is
   * their next header, while these readers skip `size` bytes as its data.
   */
  #checkDataless(header: TarHeader): void {
    if (header.size === 0) return;
    const kind = DATALESS[header.typeflag] ?? (header.typeflag === 0 && header.name.endsWith('/') ? 'directory' : undefined);
    if (kind) this.#refuse(`'${header.name}' is a ${kind} of ${header.size} bytes (tar readers differ on whether data follows it)`);
  }
}
