import { stat } from 'node:fs/promises';
import type { LockedPackage } from '@prebuilt/core';
import { readTarStream, type TarEntryHeader } from '../materialize/archive.js';
import { bzip2Chunks } from '../materialize/bzip2-stream.js';
import { ArchiveError } from '../materialize/errors.js';
import { ExpansionBudget } from '../materialize/expansion-budget.js';
import { readZipDirectory, readZipMember, zipMemberChunks } from '../materialize/zip-file.js';
import { zstdChunks } from '../materialize/zstd-stream.js';
import type { EnsureOptions, PackageCache } from '../cache/package-cache.js';

/** The most metadata (index.json, METADATA) read to find a licence. */
const MAX_METADATA = 4 * 1024 * 1024;

/** Stops a tar read once index.json is in hand. */
class Found extends Error {}

async function readIndexJson(chunks: AsyncIterable<Buffer>, label: string): Promise<Buffer | undefined> {
  let index: Buffer | undefined;
  const onEntry = async (header: TarEntryHeader, content: AsyncIterable<Buffer>): Promise<void> => {
    if (header.path.replace(/^\.\//, '') !== 'info/index.json' || header.type !== 'file') return;
    if (header.size > MAX_METADATA) throw new ArchiveError(`${label} has an info/index.json of ${header.size} bytes; refusing to read it.`, label);
    const parts: Buffer[] = [];
    for await (const chunk of content) parts.push(chunk);
    index = Buffer.concat(parts);
    throw new Found();
  };
  try {
    await readTarStream(chunks, label, onEntry);
  } catch (error) {
    if (!(error instanceof Found) && !(error instanceof ArchiveError && error.cause instanceof Found)) throw error;
  }
  return index;
}

/** The `license` of a conda package's `info/index.json` (only the info tar of a `.conda`; a `.tar.bz2` up to that entry). */
export async function condaPackageLicense(file: string, filename: string): Promise<string | undefined> {
  let index: Buffer | undefined;
  if (filename.endsWith('.conda')) {
    const members = await readZipDirectory(file, filename);
    const info = members.find((m) => m.type === 'file' && /^info-.*\.tar\.zst$/.test(m.name));
    if (!info) throw new ArchiveError(`${filename} is not a valid .conda package: it lacks its info-*.tar.zst member.`, filename);
    const raw = zipMemberChunks(file, info, filename, new ExpansionBudget(filename, info.size));
    index = await readIndexJson(zstdChunks(raw, filename, new ExpansionBudget(filename, info.compressedSize)), filename);
  } else {
    index = await readIndexJson(bzip2Chunks(file, filename, new ExpansionBudget(filename, (await stat(file)).size)), filename);
  }
  if (!index) return undefined;
  try {
    const license = (JSON.parse(index.toString('utf8')) as { license?: unknown }).license;
    return typeof license === 'string' && license.trim() ? license.trim() : undefined;
  } catch (error) {
    throw new ArchiveError(`${filename} has an unreadable info/index.json.`, filename, { cause: error });
  }
}

/**
 * A header of a core-metadata file (`METADATA`): the first occurrence, with its continuation lines
 * (RFC 822 style) joined; the headers end at the first empty line.
 */
export function metadataHeader(text: string, name: string): string | undefined {
  const lines = text.split(/\r?\n/);
  const wanted = `${name.toLowerCase()}:`;
  for (let i = 0; i < lines.length && lines[i] !== ''; i++) {
    if (!lines[i]!.toLowerCase().startsWith(wanted)) continue;
    const value = [lines[i]!.slice(wanted.length).trim()];
    while (i + 1 < lines.length && /^[ \t]/.test(lines[i + 1]!)) value.push(lines[++i]!.trim());
    const joined = value.join('\n').trim();
    return joined && joined.toUpperCase() !== 'UNKNOWN' ? joined : undefined;
  }
  return undefined;
}

/** A wheel's licence: `License-Expression` (PEP 639), else `License` of its `*.dist-info/METADATA`. */
export async function wheelLicense(file: string, filename: string): Promise<string | undefined> {
  const members = await readZipDirectory(file, filename);
  const metadata = members.find((m) => m.type === 'file' && /^[^/]+\.dist-info\/METADATA$/.test(m.name));
  if (!metadata) return undefined;
  const text = (await readZipMember(file, metadata, filename, new ExpansionBudget(filename, metadata.compressedSize), MAX_METADATA)).toString('utf8');
  return metadataHeader(text, 'License-Expression') ?? metadataHeader(text, 'License');
}

/**
 * The declared licence of every locked package (sha256 → licence, or undefined when it declares
 * none), read from the package files themselves through the package cache (downloaded and verified
 * when missing): content-addressed like the lock, so the same lock always gives the same licences.
 */
export async function lockedLicenses(packages: readonly LockedPackage[], cache: PackageCache, options: EnsureOptions = {}): Promise<Map<string, string | undefined>> {
  const { paths } = await cache.ensure(packages, options);
  const licenses = new Map<string, string | undefined>();
  for (const pkg of packages) {
    if (licenses.has(pkg.sha256)) continue;
    const file = paths.get(pkg.sha256)!;
    licenses.set(pkg.sha256, pkg.kind === 'pypi' ? await wheelLicense(file, pkg.filename) : await condaPackageLicense(file, pkg.filename));
  }
  return licenses;
}
