import { createHash } from 'node:crypto';
import { posix } from 'node:path';
import { compareBytes, normalizePypiName, type LockedPackage } from '@prebuilt/core';
import { stat } from 'node:fs/promises';
import { ExpansionBudget } from './expansion-budget.js';
import { readZipDirectory, readZipMember, zipMemberChunks, type ZipMember } from './zip-file.js';
import { ArchiveError, InstallError } from './errors.js';
import { safeRelativePath, type PrefixWriter } from './prefix-writer.js';
import { entryPointScript, parseEntryPointsIni, shebang } from './scripts.js';
import { sitePackagesDir } from './conda-install.js';
import type { Pruning } from './pruning.js';

export interface WheelInstallOptions {
  writer: PrefixWriter;
  /** The absolute prefix the env will have in the image. */
  prefix: string;
  pythonVersion: string;
  /** Whether the user asked for this package (writes `REQUESTED`, as pip does). */
  requested: boolean;
  /** What to leave out of the prefix (and of RECORD); default nothing. */
  pruning?: Pruning;
}

export interface WheelInstallResult {
  /** The `*.dist-info` directory, relative to the prefix. */
  distInfo: string;
  /** Every file installed, relative to the prefix, sorted. */
  files: string[];
  /** Paths this wheel replaced that an earlier package had installed. */
  clobbered: string[];
}

/** Parses RECORD (CSV: path, hash, size). */
export function parseRecord(text: string): { path: string; hash: string; size: string }[] {
  const rows: { path: string; hash: string; size: string }[] = [];
  for (const line of text.split(/\r?\n/)) {
    if (line === '') continue;
    const fields: string[] = [];
    let field = '';
    let quoted = false;
    for (let i = 0; i < line.length; i++) {
      const c = line[i]!;
      if (quoted) {
        if (c === '"' && line[i + 1] === '"') {
          field += '"';
          i++;
        } else if (c === '"') quoted = false;
        else field += c;
      } else if (c === '"') quoted = true;
      else if (c === ',') {
        fields.push(field);
        field = '';
      } else field += c;
    }
    fields.push(field);
    rows.push({ path: fields[0] ?? '', hash: fields[1] ?? '', size: fields[2] ?? '' });
  }
  return rows;
}

function csvField(value: string): string {
  return /[",\n\r]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value;
}

function recordHash(data: Uint8Array | string): string {
  return `sha256=${createHash('sha256').update(data).digest('base64url')}`;
}

/** No wheel metadata file that is read into memory (RECORD, WHEEL, entry points, a symlink's target) may be larger. */
const MAX_METADATA = 64 * 1024 * 1024;
/** A distribution name as a wheel's `{name}-{version}.dist-info` holds it (PEP 427, PEP 503). */
const DIST_NAME = /^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$/;
/** No script whose shebang is rewritten (read into memory) may be larger. */
const MAX_SCRIPT = 64 * 1024 * 1024;

/**
 * Installs a wheel into the env's site-packages as pip would: purelib/platlib, the `.data/`
 * directories, console and GUI scripts on the env's interpreter, INSTALLER, REQUESTED and a
 * rewritten RECORD. Members are streamed from the file into the prefix (through the writer's
 * jail), each bounded by its central-directory size and its RECORD size and hash-checked against
 * RECORD as it is written; a mismatch fails the install (the staging prefix is then discarded).
 */
/** Where a wheel member goes in the prefix: its target, whether it is a script (mode 0755, shebang rewritten); undefined: nowhere. */
function wheelTarget(path: string, layout: WheelLayout, label: string): { target: string; script: boolean } | undefined {
  if (!path.startsWith(`${layout.dataDir}/`)) return { target: `${layout.sitePackages}/${path}`, script: false };
  const rest = path.slice(layout.dataDir.length + 1);
  const slash = rest.indexOf('/');
  const scheme = slash < 0 ? rest : rest.slice(0, slash);
  const inner = slash < 0 ? '' : rest.slice(slash + 1);
  if (inner === '') return undefined;
  switch (scheme) {
    case 'purelib':
    case 'platlib':
      return { target: `${layout.sitePackages}/${inner}`, script: false };
    case 'scripts':
      return { target: `bin/${inner}`, script: true };
    case 'data':
      return { target: inner, script: false };
    case 'headers':
      return { target: `include/python${layout.pythonMajorMinor}/${layout.distName}/${inner}`, script: false };
    default:
      throw new ArchiveError(`Wheel ${label} has '${path}' in an unknown .data directory '${scheme}'.`, label);
  }
}

/** Where a wheel's parts are and go. */
interface WheelLayout {
  sitePackages: string;
  distInfo: string;
  dataDir: string;
  distName: string;
  /** `3.11` */
  pythonMajorMinor: string;
  /** The env's interpreter, for shebangs. */
  interpreter: string;
}

type RecordRow = ReturnType<typeof parseRecord>[number];

/** What installing a wheel's members shares: where they come from and what was installed. */
interface WheelInstall {
  file: string;
  label: string;
  writer: PrefixWriter;
  budget: ExpansionBudget;
  recorded: Map<string, RecordRow>;
  installed: Map<string, { hash: string; size: number }>;
  clobbered: string[];
}

async function putFile(state: WheelInstall, target: string, data: Buffer | string, mode: number, member: string): Promise<void> {
  if (await state.writer.writeFile(target, data, mode, state.label, { member })) state.clobbered.push(target);
  state.installed.set(target, { hash: recordHash(data), size: Buffer.byteLength(data) });
}

/** Installs one member at `target`: a symlink, a script (shebang rewritten) or a file streamed in, hash-checked against RECORD. */
async function installMember(state: WheelInstall, entry: { member: ZipMember; path: string }, target: string, script: boolean, interpreter: string): Promise<void> {
  const { file, label, writer, budget } = state;
  const { member } = entry;
  const content = (): AsyncGenerator<Buffer> => checkedContent(file, member, entry.path, state.recorded.get(entry.path), label, budget);
  if (member.type === 'symlink') {
    const linkTarget = (await readZipMember(file, member, label, budget, 4096)).toString('utf8');
    if (await writer.symlink(target, linkTarget, label, { member: entry.path })) state.clobbered.push(target);
    state.installed.set(target, { hash: '', size: 0 });
  } else if (script) {
    if (member.size > MAX_SCRIPT) throw new ArchiveError(`Wheel ${label} has a script '${entry.path}' of ${member.size} bytes, more than ${MAX_SCRIPT}; refusing to install it.`, label);
    const chunks: Buffer[] = [];
    for await (const chunk of content()) chunks.push(chunk);
    let data = Buffer.concat(chunks);
    const firstLineEnd = data.indexOf(0x0a);
    const firstLine = data.subarray(0, firstLineEnd < 0 ? data.length : firstLineEnd).toString('latin1');
    if (/^#!pythonw?\s*$/.test(firstLine.replace(/\r$/, ''))) {
      data = Buffer.concat([Buffer.from(shebang(interpreter)), firstLineEnd < 0 ? Buffer.alloc(0) : data.subarray(firstLineEnd + 1)]);
    }
    await putFile(state, target, data, 0o755, entry.path);
  } else {
    const hash = createHash('sha256');
    let size = 0;
    const counted = async function* (source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
      for await (const chunk of source) {
        hash.update(chunk);
        size += chunk.length;
        yield chunk;
      }
    };
    const mode = member.mode & 0o111 ? 0o755 : 0o644;
    if (await writer.writeStream(target, counted(content()), mode, label, { member: entry.path })) state.clobbered.push(target);
    state.installed.set(target, { hash: `sha256=${hash.digest('base64url')}`, size });
  }
}

/** The wheel's console and GUI scripts (entry_points.txt) as scripts on the env's interpreter. */
async function installEntryPoints(state: WheelInstall, member: ZipMember | undefined, interpreter: string): Promise<void> {
  if (!member) return;
  const { label } = state;
  const sections = parseEntryPointsIni((await readZipMember(state.file, member, label, state.budget, MAX_METADATA)).toString('utf8'));
  for (const section of ['console_scripts', 'gui_scripts']) {
    for (const entryPoint of sections.get(section) ?? []) {
      const name = safeRelativePath(entryPoint.name, label);
      if (name.includes('/')) throw new ArchiveError(`Wheel ${label} declares a script name with a slash: '${entryPoint.name}'.`, label);
      await putFile(state, `bin/${name}`, entryPointScript(entryPoint, interpreter), 0o755, `entry_points.txt script '${entryPoint.name}'`);
    }
  }
}

/**
 * Installs a wheel into the env's site-packages as pip would: purelib/platlib, the `.data/`
 * directories, console and GUI scripts on the env's interpreter, INSTALLER, REQUESTED and a
 * rewritten RECORD. Members are streamed from the file into the prefix (through the writer's
 * jail), each bounded by its central-directory size and its RECORD size and hash-checked against
 * RECORD as it is written; a mismatch fails the install (the staging prefix is then discarded).
 */
export async function installWheel(file: string, pkg: LockedPackage, options: WheelInstallOptions): Promise<WheelInstallResult> {
  const label = pkg.filename;
  const { writer, prefix } = options;
  const sitePackages = sitePackagesDir(options.pythonVersion);
  const [major, minor] = options.pythonVersion.split('.');
  const interpreter = `${prefix}/bin/python`;

  const members = await readZipDirectory(file, label);
  const declaredTotal = members.reduce((sum, m) => sum + m.size, 0);
  const budget = new ExpansionBudget(label, (await stat(file)).size);
  // Each member is bounded by its own declared size; RECORD and entry_points.txt are read twice
  // (as metadata and as installed files), hence twice the declared total for the whole wheel.
  budget.declare(2 * declaredTotal);
  const entries = members.map((member) => ({ member, path: safeRelativePath(member.name, label) }));
  const wheelFile = entries.find((e) => e.member.type === 'file' && /^[^/]+\.dist-info\/WHEEL$/.test(e.path));
  if (!wheelFile) throw new ArchiveError(`${label} is not a valid wheel: it has no *.dist-info/WHEEL.`, label);
  const distInfo = wheelFile.path.slice(0, -'/WHEEL'.length);
  const dataDir = `${distInfo.slice(0, -'.dist-info'.length)}.data`;
  const distName = distInfo.slice(0, -'.dist-info'.length).split('-')[0]!;
  // `...dist-info` names the distribution `..`: its headers would go to include/python3.x/../.
  if (!DIST_NAME.test(distName)) {
    throw new ArchiveError(
      `${label} is not a valid wheel: its dist-info directory '${distInfo}' names the distribution '${distName}', which is not a valid distribution name (letters, digits, '.', '_' and '-', starting and ending with a letter or digit).`,
      label,
    );
  }
  checkDistribution(entries, distInfo, distName, pkg);
  const layout: WheelLayout = { sitePackages, distInfo, dataDir, distName, pythonMajorMinor: `${major}.${minor}`, interpreter };
  const recordEntry = entries.find((e) => e.path === `${distInfo}/RECORD`);
  if (!recordEntry) throw new ArchiveError(`${label} is not a valid wheel: it has no ${distInfo}/RECORD.`, label);
  const recordText = (await readZipMember(file, recordEntry.member, label, budget, MAX_METADATA)).toString('utf8');
  const recorded = new Map(parseRecord(recordText).map((row) => [row.path, row]));
  // Root-Is-Purelib does not matter here: purelib and platlib are the same directory in a conda env.
  const state: WheelInstall = { file, label, writer, budget, recorded, installed: new Map(), clobbered: [] };

  for (const entry of entries) {
    if (entry.member.type === 'directory') continue;
    if (entry.path === `${distInfo}/RECORD` || entry.path === `${distInfo}/INSTALLER` || entry.path === `${distInfo}/REQUESTED`) continue;
    const where = wheelTarget(entry.path, layout, label);
    if (!where || options.pruning?.skips(where.target, entry.member.type === 'symlink' ? 0 : entry.member.size)) continue;
    await installMember(state, entry, where.target, where.script, interpreter);
  }
  await installEntryPoints(state, entries.find((e) => e.path === `${distInfo}/entry_points.txt`)?.member, interpreter);
  await putFile(state, `${sitePackages}/${distInfo}/INSTALLER`, 'prebuilt\n', 0o644, `${distInfo}/INSTALLER`);
  if (options.requested) await putFile(state, `${sitePackages}/${distInfo}/REQUESTED`, '', 0o644, `${distInfo}/REQUESTED`);

  const recordPath = `${sitePackages}/${distInfo}/RECORD`;
  const rows = [...state.installed.entries()]
    .sort(([a], [b]) => compareBytes(a, b))
    .map(([path, { hash, size }]) => [posix.relative(sitePackages, path), hash, hash ? String(size) : ''].map(csvField).join(','));
  rows.push(`${posix.relative(sitePackages, recordPath)},,`);
  await writer.writeFile(recordPath, `${rows.join('\n')}\n`, 0o644, label, { member: `${distInfo}/RECORD` });

  const files = [...state.installed.keys(), recordPath].sort(compareBytes);
  return { distInfo: `${sitePackages}/${distInfo}`, files, clobbered: state.clobbered };
}

/**
 * The wheel is the distribution the lock names, as pip checks before it installs one: one
 * `*.dist-info` directory, whose name part is the locked name. The lock's name comes from pip's
 * report, which may be read from the index's PEP 658 metadata file rather than the wheel: a wheel
 * locked as `tinyhttp` holding `numpy-1.26.4.dist-info` (or a second dist-info beside its own)
 * would put another distribution's files and metadata into the image under the lock's name.
 */
function checkDistribution(entries: readonly { path: string }[], distInfo: string, distName: string, pkg: LockedPackage): void {
  const label = pkg.filename;
  const distInfos = new Set<string>();
  for (const { path } of entries) {
    const slash = path.indexOf('/');
    if (slash > 0 && path.slice(0, slash).endsWith('.dist-info')) distInfos.add(path.slice(0, slash));
  }
  if (distInfos.size > 1) {
    throw new ArchiveError(`${label} is not a valid wheel: it has ${distInfos.size} .dist-info directories (${[...distInfos].sort(compareBytes).join(', ')}), where a wheel has one.`, label);
  }
  // Compared as PEP 503 does (core's normalizePypiName): `Tiny_Http` and `tiny-http` are one.
  if (normalizePypiName(distName) !== normalizePypiName(pkg.name)) {
    throw new InstallError(`${label} contains the distribution '${distName}' (${distInfo}), but the lock says ${pkg.name} ${pkg.version}.`, label, {
      hint: 'The index serves a wheel that is not the distribution it lists (or the lock was edited); re-create the lock with `prebuilt lock --update`, or use another index.',
    });
  }
}

/**
 * A member's content as RECORD vouches for it: no longer than RECORD's size (when given) nor the
 * central directory's, and, at its end, the hash RECORD gives (when given).
 */
async function* checkedContent(
  file: string,
  member: ZipMember,
  path: string,
  row: { hash: string; size: string } | undefined,
  label: string,
  budget: ExpansionBudget,
): AsyncGenerator<Buffer> {
  const limit = member.size;
  if (row?.size && /^\d+$/.test(row.size)) {
    const recordSize = Number(row.size);
    if (recordSize !== member.size) {
      throw new InstallError(`Wheel ${label}: the file '${path}' does not match its RECORD size (RECORD says ${recordSize} bytes, the zip holds ${member.size}).`, label, {
        hint: 'The wheel is corrupt or was tampered with; rebuild or re-download it and re-create the lock.',
      });
    }
  }
  let hash: ReturnType<typeof createHash> | undefined;
  let algorithm = '';
  let expected = '';
  if (row?.hash) {
    [algorithm = '', expected = ''] = row.hash.split('=', 2);
    if (!algorithm || !expected || !['sha256', 'sha384', 'sha512'].includes(algorithm)) {
      throw new InstallError(`Wheel ${label}: RECORD gives '${path}' an unsupported hash '${row.hash}'.`, label);
    }
    hash = createHash(algorithm);
  }
  for await (const chunk of zipMemberChunks(file, member, label, budget, limit)) {
    hash?.update(chunk);
    yield chunk;
  }
  if (hash) {
    const actual = hash.digest('base64url');
    if (actual !== expected.replace(/=+$/, '')) {
      throw new InstallError(
        `Wheel ${label}: the file '${path}' does not match its RECORD hash (RECORD says ${algorithm}=${expected}, the file has ${algorithm}=${actual}).`,
        label,
        { hint: 'The wheel is corrupt or was tampered with; rebuild or re-download it and re-create the lock.' },
      );
    }
  }
}
