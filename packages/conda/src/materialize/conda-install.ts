import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { type FileHandle, open, readFile, stat } from 'node:fs/promises';
import { compareBytes, type LockedPackage } from '@prebuilt/core';
import { hashFile } from '../cache/sha256-file.js';
import { extractCondaPackage, removeScratch, type ExtractedCondaPackage, type ExtractedEntry } from './conda-extract.js';
import { ArchiveError, InstallError } from './errors.js';
import { LEGACY_PLACEHOLDER, PlaceholderReplacer, checkTextGrowth, type TextGrowth } from './prefix-replace.js';
import { safeRelativePath, type PrefixWriter } from './prefix-writer.js';
import type { Pruning } from './pruning.js';
import { entryPointScript, parseEntryPoint } from './scripts.js';

/** A conda package extracted to scratch: its `info/` files and the rest of its entries. */
export type CondaPackageContents = ExtractedCondaPackage;

/**
 * Reads a `.tar.bz2` or `.conda` package file, streaming its content into `scratch` (see
 * extractCondaPackage). Corrupt, truncated or over-expanding files fail naming the package.
 */
export function readCondaPackage(file: string, filename: string, scratch: string): Promise<CondaPackageContents> {
  return extractCondaPackage(file, filename, scratch);
}

/** One path of `info/paths.json`. */
export interface PathEntry {
  _path: string;
  path_type: 'hardlink' | 'softlink' | 'directory';
  file_mode?: 'text' | 'binary';
  prefix_placeholder?: string;
  sha256?: string;
  size_in_bytes?: number;
  no_link?: boolean;
}

function parseJson<T>(data: Buffer | undefined, what: string, label: string): T | undefined {
  if (!data) return undefined;
  try {
    return JSON.parse(data.toString('utf8')) as T;
  } catch (error) {
    throw new ArchiveError(`${label} has an unreadable ${what}: ${(error as Error).message}.`, label, { cause: error });
  }
}

/** `info/paths.json`, or the older `info/files` + `info/has_prefix`. */
function packagePaths(info: Map<string, Buffer>, label: string): PathEntry[] {
  const paths = parseJson<{ paths?: PathEntry[] }>(info.get('info/paths.json'), 'info/paths.json', label);
  if (paths?.paths) return paths.paths;
  const prefixed = new Map<string, { placeholder: string; mode: 'text' | 'binary' }>();
  for (const line of (info.get('info/has_prefix')?.toString('utf8') ?? '').split('\n')) {
    if (line.trim() === '') continue;
    const fields = splitQuoted(line.trim());
    if (fields.length >= 3) prefixed.set(fields.slice(2).join(' '), { placeholder: fields[0]!, mode: fields[1] === 'binary' ? 'binary' : 'text' });
    else prefixed.set(fields.join(' '), { placeholder: LEGACY_PLACEHOLDER, mode: 'text' });
  }
  const files = (info.get('info/files')?.toString('utf8') ?? '').split('\n').filter((l) => l.trim() !== '');
  return files.map((file) => {
    const has = prefixed.get(file);
    return { _path: file, path_type: 'hardlink', ...(has ? { prefix_placeholder: has.placeholder, file_mode: has.mode } : {}) };
  });
}

function splitQuoted(line: string): string[] {
  const out: string[] = [];
  for (const match of line.matchAll(/"([^"]*)"|'([^']*)'|(\S+)/g)) out.push(match[1] ?? match[2] ?? match[3] ?? '');
  return out;
}

/** The fields of `info/index.json` prebuilt uses. */
export interface IndexJson {
  name: string;
  version: string;
  build: string;
  build_number?: number;
  depends?: string[];
  constrains?: string[];
  license?: string;
  noarch?: string | { type?: string };
  subdir?: string;
  timestamp?: number;
  track_features?: string;
}

/** What conda and micromamba read from `conda-meta/<name>-<version>-<build>.json`. */
export interface CondaMetaRecord extends Record<string, unknown> {
  name: string;
  version: string;
  build: string;
  build_number: number;
  channel: string;
  subdir: string;
  fn: string;
  url: string;
  md5: string;
  sha256: string;
  size: number;
  depends: string[];
  constrains: string[];
  files: string[];
  paths_data: { paths: Record<string, unknown>[]; paths_version: 1 };
  requested_spec: string;
}

export interface CondaInstallOptions {
  writer: PrefixWriter;
  /** The absolute prefix the env will have in the image. */
  prefix: string;
  /** Python version of the env (`3.11` or `3.11.9`), for noarch python packages. */
  pythonVersion: string;
  /** The spec the user asked for this package with, or '' when it came in as a dependency. */
  requestedSpec?: string;
  /** Directory to extract the package into before it is linked (default: beside the writer's root; removed after). */
  scratch?: string;
  /** What to leave out of the prefix (and of the conda-meta record); default nothing. */
  pruning?: Pruning;
}

export interface CondaInstallResult {
  record: CondaMetaRecord;
  /** Whether the package carries a pre-link or post-link script (not run by prebuilt). */
  hasLinkScripts: boolean;
  /** Paths this package replaced that an earlier package had installed. */
  clobbered: string[];
}

/** Files with a prefix placeholder are read and written in pieces of this size; one no bigger is patched in memory. */
const PATCH_CHUNK = 1024 * 1024;

const LINK_SCRIPT = /^bin\/\.[^/]+-(post-link|pre-link|pre-unlink)\.sh$/;

/** The `site-packages` directory of a python version: `lib/python3.11/site-packages`. */
export function sitePackagesDir(pythonVersion: string): string {
  const [major, minor] = pythonVersion.split('.');
  return `lib/python${major}.${minor}/site-packages`;
}

/** Where a package's files come from when it is linked into the prefix. */
export interface LinkSource {
  /** The package's archive (for the conda-meta record's md5 and size). */
  file: string;
  contents: ExtractedCondaPackage;
  /**
   * `move`: the files are scratch files of this install, moved into the prefix; `link`: they are
   * extraction-cache files, hard-linked (or copied) into it and never modified.
   */
  files: 'move' | 'link';
  /** The archive's md5, when already known (else it is computed). */
  md5?: string;
}

/**
 * Installs one conda package into the staging directory of `prefix`, as conda would link it:
 * placeholders replaced, noarch python remapped, entry points written. Returns its conda-meta record.
 */
export async function installCondaPackage(file: string, pkg: LockedPackage, options: CondaInstallOptions): Promise<CondaInstallResult> {
  const scratch = options.scratch ?? `${options.writer.root}.extract-${randomBytes(4).toString('hex')}`;
  try {
    return await linkCondaPackage({ file, contents: await extractCondaPackage(file, pkg.filename, scratch), files: 'move' }, pkg, options);
  } finally {
    await removeScratch(scratch);
  }
}

/** What linking a package needs to know about it, from its `info/` files. */
interface LinkPlan {
  label: string;
  index: IndexJson;
  noarchType: string | undefined;
  entryPoints: string[];
  remap: (rel: string) => string;
  byPath: Map<string, PathEntry>;
  hasPathsList: boolean;
  /** How the extracted files come in: moved (`move`) or hard-linked (`link`); see {@link LinkSource.files}. */
  files: LinkSource['files'];
}

/** What no part of a conda-meta record's file name may hold: a '/', whitespace, a control character. */
const NOT_IN_RECORD_NAME = /[/\s\x00-\x1f\x7f]/;

/**
 * The package's name, version and build string make its record's path,
 * `conda-meta/<name>-<version>-<build>.json`, and its line in `conda-meta/history`. They come from
 * the channel (rattler keeps a build string as any string) and the package's `info/index.json`: a
 * build `h0/../numpy-1.26.4-py311_0` would have replaced another package's record, a newline forged
 * a history line. Each must be one non-empty piece of a file name.
 */
function checkRecordName(index: IndexJson, label: string): void {
  for (const [field, value] of [['name', index.name], ['version', index.version], ['build string', index.build]] as const) {
    if (typeof value === 'string' && value !== '' && !NOT_IN_RECORD_NAME.test(value)) continue;
    throw new InstallError(
      `${label}: its ${field} ${JSON.stringify(value)} (info/index.json, as the channel lists it) cannot name its record conda-meta/<name>-<version>-<build>.json: it is empty or holds a '/', whitespace or a control character; refusing to install it.`,
      label,
      { hint: 'No real conda package has such a name, version or build string: the channel is broken or hostile. Remove the package (or the channel) from the environment.' },
    );
  }
}

function linkPlan({ contents: { info }, files }: LinkSource, pkg: LockedPackage, pythonVersion: string): LinkPlan {
  const label = pkg.filename;
  const index = parseJson<IndexJson>(info.get('info/index.json'), 'info/index.json', label)!;
  if (index.name !== pkg.name || index.version !== pkg.version || (pkg.build && index.build !== pkg.build)) {
    throw new InstallError(
      `${label} contains ${index.name}-${index.version}-${index.build}, but the lock says ${pkg.name}-${pkg.version}-${pkg.build}.`,
      label,
      { hint: 'Re-create the lock with `prebuilt lock`.' },
    );
  }
  checkRecordName(index, label);
  const link = parseJson<{ noarch?: { type?: string; entry_points?: string[] } }>(info.get('info/link.json'), 'info/link.json', label);
  const noarchType = typeof index.noarch === 'string' ? index.noarch : index.noarch?.type ?? link?.noarch?.type;
  const noarchPython = noarchType === 'python';
  const sitePackages = sitePackagesDir(pythonVersion);
  const remap = (rel: string): string => {
    if (!noarchPython) return rel;
    if (rel === 'site-packages' || rel.startsWith('site-packages/')) return sitePackages + rel.slice('site-packages'.length);
    if (rel === 'python-scripts' || rel.startsWith('python-scripts/')) return `bin${rel.slice('python-scripts'.length)}`;
    return rel;
  };
  const byPath = new Map<string, PathEntry>();
  for (const entry of packagePaths(info, label)) byPath.set(safeRelativePath(entry._path, label), entry);
  const hasPathsList = info.has('info/paths.json') || info.has('info/files');
  return { label, index, noarchType, entryPoints: noarchPython ? link?.noarch?.entry_points ?? [] : [], remap, byPath, hasPathsList, files };
}

/** What linking the entries gave: the conda-meta paths, the paths replaced, whether link scripts came along. */
interface LinkState {
  pathsData: Record<string, unknown>[];
  clobbered: string[];
  hasLinkScripts: boolean;
  /** Files this package wrote (remapped), which its hardlinks may copy. */
  written: Set<string>;
  /** Files of this package left out (remapped), which its hardlinks may still copy: their extracted files. */
  pruned: Map<string, string>;
  /** How much longer its text files became by their placeholders' replacement, all together. */
  textGrowth: TextGrowth;
}

/** Links a package's entries into the prefix; the conda-meta record describes the result. */
export async function linkCondaPackage(source: LinkSource, pkg: LockedPackage, options: CondaInstallOptions): Promise<CondaInstallResult> {
  const plan = linkPlan(source, pkg, options.pythonVersion);
  const state: LinkState = { pathsData: [], clobbered: [], hasLinkScripts: false, written: new Set(), pruned: new Map(), textGrowth: { bytes: 0 } };
  for (const entry of source.contents.entries) await linkEntry(entry, plan, state, options);
  await writeEntryPoints(plan, state, options);
  state.pathsData.sort((a, b) => compareBytes(String(a._path), String(b._path)));
  const record = await condaMetaRecord(source, plan, state.pathsData, pkg, options.requestedSpec ?? '');
  return { record, hasLinkScripts: state.hasLinkScripts, clobbered: state.clobbered };
}

async function linkEntry(entry: ExtractedEntry, plan: LinkPlan, state: LinkState, options: CondaInstallOptions): Promise<void> {
  const { writer } = options;
  const { label } = plan;
  const meta = plan.byPath.get(entry.path);
  const member = entry.path;
  if (entry.type === 'directory') {
    if (options.pruning?.skipsDirectory(plan.remap(entry.path))) return;
    await writer.mkdir(plan.remap(entry.path), label, member);
    if (meta?.path_type === 'directory') state.pathsData.push({ _path: plan.remap(entry.path), path_type: 'directory' });
    return;
  }
  if (plan.hasPathsList && !meta) return; // conda links only the declared paths
  const target = plan.remap(entry.path);
  if (options.pruning?.skips(target, entry.type === 'file' ? entry.size : 0)) {
    if (entry.type === 'file') state.pruned.set(target, entry.file);
    return;
  }
  if (LINK_SCRIPT.test(target)) state.hasLinkScripts = true;
  let replaced: boolean;
  if (entry.type === 'symlink') {
    replaced = await writer.symlink(target, entry.linkTarget, label, { member });
    state.pathsData.push({ _path: target, path_type: 'softlink', ...(meta?.sha256 ? { sha256: meta.sha256 } : {}), size_in_bytes: meta?.size_in_bytes ?? 0 });
  } else {
    replaced = await linkFile(entry, plan, state, options);
  }
  if (replaced) state.clobbered.push(target);
}

/**
 * One file to write into the prefix: its path there and mode, its prefix placeholder (if any) and
 * how that is replaced (`file_mode`), and the package and member it comes from, for errors.
 */
interface FileOut {
  target: string;
  mode: number;
  placeholder: string | undefined;
  fileMode: PathEntry['file_mode'];
  file: { label: string; path: string };
  /** The package's text growth so far (checked and added to when the file is patched). */
  growth: TextGrowth;
}

/** What writing one file gave: whether it replaced one, the hashes and size for its paths_data row. */
interface Written {
  replaced: boolean;
  originalSha: string;
  originalSize: number;
  patchedSha?: string;
}

/**
 * Installs a file or a (copied) hardlink entry: a hardlink's copy ({@link copyHardlink}); a file of
 * at most {@link PATCH_CHUNK} with a placeholder, patched in memory; a bigger file with a
 * placeholder patched as it streams ({@link writePatched}); any other file moved or linked in.
 */
async function linkFile(entry: Extract<ExtractedEntry, { type: 'file' | 'hardlink' }>, plan: LinkPlan, state: LinkState, options: CondaInstallOptions): Promise<boolean> {
  const { writer } = options;
  const { label, files } = plan;
  const member = entry.path;
  const target = plan.remap(member);
  const meta = plan.byPath.get(member);
  const placeholder = meta?.prefix_placeholder;
  const out: FileOut = { target, mode: entry.mode & 0o111 ? 0o755 : 0o644, placeholder, fileMode: meta?.file_mode, file: { label, path: member }, growth: state.textGrowth };
  let written: Written;
  if (entry.type === 'hardlink') {
    written = await copyHardlink(entry, out, plan, state, options);
  } else if (placeholder && entry.size <= PATCH_CHUNK) {
    // A small file (most placeholder files: scripts, .pc files, configs) is patched in memory and written at once.
    written = await writeInMemory(await readFile(entry.file), out, options);
  } else if (placeholder) {
    written = await writePatched(() => createReadStream(entry.file, { highWaterMark: PATCH_CHUNK }), { ...out, placeholder }, options);
  } else {
    // Hashed before it is moved in (when paths.json gives no sha256).
    const originalSha = meta?.sha256 ?? (await hashFile(entry.file, 'sha256'));
    const replaced = files === 'link' ? await writer.linkIn(target, entry.file, label, { member }) : await writer.moveIn(target, entry.file, label, { member });
    written = { replaced, originalSha, originalSize: entry.size };
  }
  state.written.add(target);
  const record: Record<string, unknown> = { _path: target, path_type: 'hardlink', sha256: meta?.sha256 ?? written.originalSha, size_in_bytes: meta?.size_in_bytes ?? written.originalSize };
  if (placeholder && written.patchedSha !== undefined) {
    record.prefix_placeholder = placeholder;
    record.file_mode = meta.file_mode ?? 'text';
    record.sha256_in_prefix = written.patchedSha;
  }
  if (meta?.no_link) record.no_link = true;
  state.pathsData.push(record);
  return written.replaced;
}

/** A copy's content with its placeholder replaced (see PlaceholderReplacer), the text bound checked. */
function patchInMemory(content: Buffer, out: FileOut & { placeholder: string }, prefix: string): Buffer {
  const { placeholder, fileMode, file, growth } = out;
  const replacer = new PlaceholderReplacer(placeholder, prefix, fileMode === 'binary' ? 'binary' : 'text', file);
  const pieces = [...replacer.push(content), ...replacer.end()];
  if (fileMode !== 'binary') checkTextGrowth(replacer.count, placeholder, prefix, file, growth);
  return Buffer.concat(pieces);
}

/**
 * Writes an extracted file with its placeholder replaced, streamed in {@link PATCH_CHUNK} pieces:
 * memory stays a few chunks whatever the file's size. What would be refused is refused before
 * anything is written, by a first pass that only reads: a text file growing past MAX_TEXT_GROWTH, a
 * binary one holding the placeholder when the prefix is longer. The hashes are taken on the way.
 */
async function writePatched(read: () => AsyncIterable<Uint8Array>, out: FileOut & { placeholder: string }, options: CondaInstallOptions): Promise<Written & { patchedSha: string }> {
  const { target, mode, placeholder, fileMode, file, growth } = out;
  const binary = fileMode === 'binary';
  const replacer = (): PlaceholderReplacer => new PlaceholderReplacer(placeholder, options.prefix, binary ? 'binary' : 'text', file);
  if (!binary || Buffer.byteLength(options.prefix) > Buffer.byteLength(placeholder)) {
    // Binary: the replacer throws at the first placeholder the longer prefix cannot replace.
    const counting = replacer();
    for await (const chunk of read()) counting.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    counting.end();
    if (!binary) checkTextGrowth(counting.count, placeholder, options.prefix, file, growth);
  }
  const original = createHash('sha256');
  const patched = createHash('sha256');
  let originalSize = 0;
  const patching = replacer();
  // One write per read chunk (its pieces joined), not one per replacement: about a chunk held at a time.
  const block = (out: Buffer[]): Buffer[] => {
    if (out.length === 0) return [];
    const joined = out.length === 1 ? out[0]! : Buffer.concat(out);
    patched.update(joined);
    return [joined];
  };
  async function* pieces(): AsyncGenerator<Buffer> {
    for await (const chunk of read()) {
      original.update(chunk);
      originalSize += chunk.length;
      yield* block(patching.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)));
    }
    yield* block(patching.end());
  }
  const replaced = await options.writer.writeStream(target, pieces(), mode, file.label, { member: file.path });
  return { replaced, originalSha: original.digest('hex'), originalSize, patchedSha: patched.digest('hex') };
}

/** A file's content held in memory (at most {@link PATCH_CHUNK}), its placeholder (if any) replaced, written at once. */
async function writeInMemory(content: Buffer, out: FileOut, options: CondaInstallOptions): Promise<Written> {
  const { target, mode, placeholder, file } = out;
  const originalSha = createHash('sha256').update(content).digest('hex');
  const written = placeholder ? patchInMemory(content, { ...out, placeholder }, options.prefix) : content;
  const replaced = await options.writer.writeFile(target, written, mode, file.label, { member: file.path });
  return { replaced, originalSha, originalSize: content.length, ...(placeholder ? { patchedSha: createHash('sha256').update(written).digest('hex') } : {}) };
}

/**
 * Writes a hardlink entry as a copy of its source, in bounded memory whatever the source's size (a
 * package may hold a file of gigabytes and a hardlink to it): the source is opened through the jail
 * ({@link PrefixWriter.openFile}; or, when it was pruned, its extracted file) and read in
 * {@link PATCH_CHUNK} pieces. A source of at most one piece is read whole and written as a small
 * file is (patched in memory when it has a placeholder); a bigger one streams into the new file
 * ({@link PrefixWriter.writeStream}, or {@link writePatched} with a placeholder). The copy's bytes,
 * mode and (normalised later) mtime are what a copy read whole would have.
 */
async function copyHardlink(entry: Extract<ExtractedEntry, { type: 'hardlink' }>, out: FileOut, plan: LinkPlan, state: LinkState, options: CondaInstallOptions): Promise<Written> {
  const { target, mode, placeholder, file } = out;
  const handle = await openHardlinkSource(entry, plan, state, options.writer);
  try {
    // autoClose false: the handle is closed here, after every pass (writePatched reads twice).
    const read = (): AsyncIterable<Buffer> => handle.createReadStream({ start: 0, highWaterMark: PATCH_CHUNK, autoClose: false });
    const { size } = await handle.stat();
    if (size <= PATCH_CHUNK) {
      const pieces: Buffer[] = [];
      for await (const chunk of read()) pieces.push(chunk);
      return await writeInMemory(Buffer.concat(pieces), out, options);
    }
    if (placeholder) return await writePatched(read, { ...out, placeholder }, options);
    const hash = createHash('sha256');
    let originalSize = 0;
    async function* copied(): AsyncGenerator<Buffer> {
      for await (const chunk of read()) {
        hash.update(chunk);
        originalSize += chunk.length;
        yield chunk;
      }
    }
    const replaced = await options.writer.writeStream(target, copied(), mode, file.label, { member: file.path });
    return { replaced, originalSha: hash.digest('hex'), originalSize };
  } finally {
    await handle.close();
  }
}

/** A hardlink's source, open for reading: opened through the jail, or, when the source was pruned, its extracted file. */
async function openHardlinkSource(entry: Extract<ExtractedEntry, { type: 'hardlink' }>, plan: LinkPlan, state: LinkState, writer: PrefixWriter): Promise<FileHandle> {
  const { label } = plan;
  const source = plan.remap(safeRelativePath(entry.linkTarget, label));
  // A pruned source never reached the prefix: its extracted file (scratch or the extraction cache, named by this code) is read, no prefix path.
  const pruned = state.pruned.get(source);
  if (pruned !== undefined) return open(pruned, 'r');
  if (!state.written.has(source)) {
    throw new ArchiveError(`${label} has a hardlink '${entry.path}' to '${entry.linkTarget}', which is not a file of this package; refusing to install it.`, label);
  }
  // Opened through the jail: a hardlink reached through a symlink cannot read outside.
  return writer.openFile(source, label, entry.path);
}

async function writeEntryPoints(plan: LinkPlan, state: LinkState, options: CondaInstallOptions): Promise<void> {
  const { label } = plan;
  for (const text of plan.entryPoints) {
    const entryPoint = parseEntryPoint(text);
    if (!entryPoint) throw new InstallError(`${label} declares an unreadable entry point in info/link.json: '${text}'.`, label);
    const target = `bin/${safeRelativePath(entryPoint.name, label)}`;
    const script = entryPointScript(entryPoint, `${options.prefix}/bin/python`);
    if (await options.writer.writeFile(target, script, 0o755, label, { member: `info/link.json entry point '${entryPoint.name}'` })) state.clobbered.push(target);
    state.pathsData.push({ _path: target, path_type: 'unix_python_entry_point', sha256: createHash('sha256').update(script).digest('hex'), size_in_bytes: Buffer.byteLength(script) });
  }
}

async function condaMetaRecord(source: LinkSource, plan: LinkPlan, pathsData: Record<string, unknown>[], pkg: LockedPackage, requestedSpec: string): Promise<CondaMetaRecord> {
  const { index, noarchType } = plan;
  const suffix = `/${pkg.subdir ?? index.subdir ?? ''}/${pkg.filename}`;
  const channel = pkg.url.endsWith(suffix) ? pkg.url.slice(0, -suffix.length) : pkg.url.slice(0, pkg.url.lastIndexOf('/'));
  return {
    name: index.name,
    version: index.version,
    build: index.build,
    build_number: index.build_number ?? 0,
    channel,
    subdir: index.subdir ?? pkg.subdir ?? '',
    fn: pkg.filename,
    url: pkg.url,
    md5: source.md5 ?? (await hashFile(source.file, 'md5')),
    sha256: pkg.sha256,
    size: (await stat(source.file)).size,
    depends: index.depends ?? [],
    constrains: index.constrains ?? [],
    ...(index.license ? { license: index.license } : {}),
    ...(noarchType ? { noarch: noarchType } : {}),
    ...(index.timestamp ? { timestamp: index.timestamp } : {}),
    ...(index.track_features ? { track_features: index.track_features } : {}),
    files: pathsData.filter((p) => p.path_type !== 'directory').map((p) => String(p._path)),
    paths_data: { paths: pathsData, paths_version: 1 },
    requested_spec: requestedSpec,
    link: { source: '', type: 1 },
    extracted_package_dir: '',
    package_tarball_full_path: '',
  };
}
