import { createHash } from 'node:crypto';
import { posix } from 'node:path';
import { compareBytes, type LockedPackage } from '@prebuilt/core';
import { readZip } from './archive.js';
import { ArchiveError, InstallError } from './errors.js';
import { safeRelativePath, type PrefixWriter } from './prefix-writer.js';
import { entryPointScript, parseEntryPointsIni, shebang } from './scripts.js';
import { sitePackagesDir } from './conda-install.js';

export interface WheelInstallOptions {
  writer: PrefixWriter;
  /** The absolute prefix the env will have in the image. */
  prefix: string;
  pythonVersion: string;
  /** Whether the user asked for this package (writes `REQUESTED`, as pip does). */
  requested: boolean;
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

/**
 * Installs a wheel into the env's site-packages as pip would: purelib/platlib, the `.data/`
 * directories, console and GUI scripts on the env's interpreter, INSTALLER, REQUESTED and a
 * rewritten RECORD. Every file is checked against the wheel's RECORD first.
 */
export async function installWheel(data: Buffer, pkg: LockedPackage, options: WheelInstallOptions): Promise<WheelInstallResult> {
  const label = pkg.filename;
  const { writer, prefix } = options;
  const sitePackages = sitePackagesDir(options.pythonVersion);
  const [major, minor] = options.pythonVersion.split('.');
  const interpreter = `${prefix}/bin/python`;

  const entries = readZip(data, label).map((entry) => ({ ...entry, path: safeRelativePath(entry.path, label) }));
  const wheelFile = entries.find((e) => e.type === 'file' && /^[^/]+\.dist-info\/WHEEL$/.test(e.path));
  if (!wheelFile) throw new ArchiveError(`${label} is not a valid wheel: it has no *.dist-info/WHEEL.`, label);
  const distInfo = wheelFile.path.slice(0, -'/WHEEL'.length);
  const dataDir = `${distInfo.slice(0, -'.dist-info'.length)}.data`;
  const distName = distInfo.slice(0, -'.dist-info'.length).split('-')[0] ?? pkg.name;
  const recordEntry = entries.find((e) => e.path === `${distInfo}/RECORD`);
  if (!recordEntry) throw new ArchiveError(`${label} is not a valid wheel: it has no ${distInfo}/RECORD.`, label);
  const recorded = new Map(parseRecord(recordEntry.data.toString('utf8')).map((row) => [row.path, row]));

  // Verify everything before writing anything.
  for (const entry of entries) {
    if (entry.type !== 'file') continue;
    const row = recorded.get(entry.path);
    if (!row?.hash) continue;
    const [algorithm, expected] = row.hash.split('=', 2);
    if (!algorithm || !expected || !['sha256', 'sha384', 'sha512'].includes(algorithm)) {
      throw new InstallError(`Wheel ${label}: RECORD gives '${entry.path}' an unsupported hash '${row.hash}'.`, label);
    }
    const actual = createHash(algorithm).update(entry.data).digest('base64url');
    if (actual !== expected.replace(/=+$/, '')) {
      throw new InstallError(
        `Wheel ${label}: the file '${entry.path}' does not match its RECORD hash (RECORD says ${algorithm}=${expected}, the file has ${algorithm}=${actual}).`,
        label,
        { hint: 'The wheel is corrupt or was tampered with; rebuild or re-download it and re-create the lock.' },
      );
    }
  }

  // Root-Is-Purelib does not matter here: purelib and platlib are the same directory in a conda env.
  const installed = new Map<string, { hash: string; size: number }>();
  const clobbered: string[] = [];
  const put = async (target: string, content: Buffer | string, mode: number): Promise<void> => {
    if (await writer.writeFile(target, content, mode, label)) clobbered.push(target);
    installed.set(target, { hash: recordHash(content), size: Buffer.byteLength(content) });
  };

  for (const entry of entries) {
    if (entry.type === 'directory') continue;
    if (entry.path === `${distInfo}/RECORD` || entry.path === `${distInfo}/INSTALLER` || entry.path === `${distInfo}/REQUESTED`) continue;
    let target: string;
    let content: Buffer = entry.data;
    let mode = entry.mode & 0o111 ? 0o755 : 0o644;
    if (entry.path.startsWith(`${dataDir}/`)) {
      const rest = entry.path.slice(dataDir.length + 1);
      const slash = rest.indexOf('/');
      const scheme = slash < 0 ? rest : rest.slice(0, slash);
      const inner = slash < 0 ? '' : rest.slice(slash + 1);
      if (inner === '') continue;
      switch (scheme) {
        case 'purelib':
        case 'platlib':
          target = `${sitePackages}/${inner}`;
          break;
        case 'scripts': {
          target = `bin/${inner}`;
          mode = 0o755;
          const firstLineEnd = content.indexOf(0x0a);
          const firstLine = content.subarray(0, firstLineEnd < 0 ? content.length : firstLineEnd).toString('latin1');
          if (/^#!pythonw?\s*$/.test(firstLine.replace(/\r$/, ''))) {
            content = Buffer.concat([Buffer.from(shebang(interpreter)), firstLineEnd < 0 ? Buffer.alloc(0) : content.subarray(firstLineEnd + 1)]);
          }
          break;
        }
        case 'data':
          target = inner;
          break;
        case 'headers':
          target = `include/python${major}.${minor}/${distName}/${inner}`;
          break;
        default:
          throw new ArchiveError(`Wheel ${label} has '${entry.path}' in an unknown .data directory '${scheme}'.`, label);
      }
    } else {
      target = `${sitePackages}/${entry.path}`;
    }
    if (entry.type === 'symlink') {
      if (await writer.symlink(target, entry.linkTarget ?? '', label)) clobbered.push(target);
      installed.set(target, { hash: '', size: 0 });
    } else {
      await put(target, content, mode);
    }
  }

  const entryPoints = entries.find((e) => e.path === `${distInfo}/entry_points.txt`);
  if (entryPoints) {
    const sections = parseEntryPointsIni(entryPoints.data.toString('utf8'));
    for (const section of ['console_scripts', 'gui_scripts']) {
      for (const entryPoint of sections.get(section) ?? []) {
        const name = safeRelativePath(entryPoint.name, label);
        if (name.includes('/')) throw new ArchiveError(`Wheel ${label} declares a script name with a slash: '${entryPoint.name}'.`, label);
        await put(`bin/${name}`, entryPointScript(entryPoint, interpreter), 0o755);
      }
    }
  }

  await put(`${sitePackages}/${distInfo}/INSTALLER`, 'prebuilt\n', 0o644);
  if (options.requested) await put(`${sitePackages}/${distInfo}/REQUESTED`, '', 0o644);

  const recordPath = `${sitePackages}/${distInfo}/RECORD`;
  const rows = [...installed.entries()]
    .sort(([a], [b]) => compareBytes(a, b))
    .map(([path, { hash, size }]) => [posix.relative(sitePackages, path), hash, hash ? String(size) : ''].map(csvField).join(','));
  rows.push(`${posix.relative(sitePackages, recordPath)},,`);
  await writer.writeFile(recordPath, `${rows.join('\n')}\n`, 0o644, label);

  const files = [...installed.keys(), recordPath].sort(compareBytes);
  return { distInfo: `${sitePackages}/${distInfo}`, files, clobbered };
}
