/**
 * Test helpers: hand-made archives (including malicious ones the fixture generator refuses to
 * write) and locks over fixture artifacts.
 */
import { execFileSync } from 'node:child_process';
import { inflateRawSync } from 'node:zlib';
import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { pack } from 'tar-stream';
import type { LockedEnv, LockedPackage } from '@prebuilt/core';
import { crc32 } from '../archive.js';

export interface RawTarEntry {
  name: string;
  type?: 'file' | 'directory' | 'symlink' | 'link';
  data?: string | Buffer;
  mode?: number;
  linkname?: string;
}

/** A tar with exactly these entries, names unchecked. */
export async function rawTar(entries: readonly RawTarEntry[]): Promise<Buffer> {
  const tar = pack();
  const collected = (async () => {
    const chunks: Buffer[] = [];
    for await (const chunk of tar) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  })();
  for (const entry of entries) {
    const data = entry.data === undefined ? undefined : Buffer.from(entry.data);
    await new Promise<void>((resolve, reject) => {
      const header = {
        name: entry.name,
        type: entry.type ?? 'file',
        mode: entry.mode ?? 0o644,
        mtime: new Date(0),
        ...(entry.linkname !== undefined ? { linkname: entry.linkname } : {}),
        ...(data ? { size: data.length } : {}),
      };
      const cb = (error?: Error | null): void => (error ? reject(error) : resolve());
      if (data) tar.entry(header, data, cb);
      else tar.entry(header, cb);
    });
  }
  tar.finalize();
  return collected;
}

export function bzip2Sync(data: Buffer): Buffer {
  return execFileSync('bzip2', ['-9', '-c'], { input: data, maxBuffer: 1 << 30 });
}

export function zstdSync(data: Buffer): Buffer {
  return execFileSync('zstd', ['-3', '-q', '-c'], { input: data, maxBuffer: 1 << 30 });
}

/** A stored (uncompressed) zip with exactly these entries, names unchecked (a Buffer name: its bytes as they are, without the UTF-8 flag). */
export function rawZip(entries: readonly { name: string | Buffer; data: string | Buffer; mode?: number }[]): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const entry of entries) {
    const name = Buffer.from(entry.name);
    const data = Buffer.from(entry.data);
    const crc = crc32(data);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(data.length, 18);
    local.writeUInt32LE(data.length, 22);
    local.writeUInt16LE(name.length, 26);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE((3 << 8) | 20, 4);
    central.writeUInt16LE(20, 6);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(data.length, 20);
    central.writeUInt32LE(data.length, 24);
    central.writeUInt16LE(name.length, 28);
    central.writeUInt32LE(((entry.mode ?? 0o644) | 0o100000) << 16 >>> 0, 38);
    central.writeUInt32LE(offset, 42);
    locals.push(local, name, data);
    centrals.push(central, name);
    offset += 30 + name.length + data.length;
  }
  const cd = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(cd.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, cd, end]);
}

/** A minimal `info/` for a hand-made conda package. */
export function infoEntries(name: string, paths: { _path: string; path_type?: string; prefix_placeholder?: string; file_mode?: string; size_in_bytes?: number }[]): RawTarEntry[] {
  return [
    { name: 'info/index.json', data: JSON.stringify({ name, version: '1.0', build: 'h0', build_number: 0, depends: [], subdir: 'linux-64' }) },
    { name: 'info/paths.json', data: JSON.stringify({ paths: paths.map((p) => ({ path_type: 'hardlink', ...p })), paths_version: 1 }) },
  ];
}

export function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** A LockedPackage for in-memory bytes (the URL is not used by the installers). */
export function lockedPackage(
  kind: 'conda' | 'pypi',
  filename: string,
  bytes: Buffer,
  fields: { name: string; version: string; build?: string; subdir?: string },
): LockedPackage {
  return {
    kind,
    name: fields.name,
    version: fields.version,
    build: fields.build ?? '',
    url: `https://example.invalid/channel/${fields.subdir ?? 'linux-64'}/${filename}`,
    sha256: sha256(bytes),
    size: bytes.length,
    filename,
    ...(kind === 'conda' ? { subdir: fields.subdir ?? 'linux-64' } : {}),
  };
}

/** Writes artifacts into `dir` and returns a lock whose URLs are file:// URLs to them. */
export async function fileLock(
  dir: string,
  artifacts: readonly { kind: 'conda' | 'pypi'; filename: string; bytes: Buffer; name: string; version: string; build?: string; subdir?: string }[],
  request: Partial<LockedEnv['request']> = {},
  pythonVersion = '3.11.2',
): Promise<LockedEnv> {
  await mkdir(dir, { recursive: true });
  const packages: LockedPackage[] = [];
  for (const a of artifacts) {
    const path = join(dir, a.filename);
    await writeFile(path, a.bytes);
    packages.push({
      kind: a.kind,
      name: a.name,
      version: a.version,
      build: a.build ?? '',
      url: pathToFileURL(path).href,
      sha256: sha256(a.bytes),
      size: a.bytes.length,
      filename: a.filename,
      ...(a.subdir ? { subdir: a.subdir } : {}),
    });
  }
  return {
    specHash: 'test',
    request: { python: '3.11', conda: {}, pypi: {}, channels: [], indexUrl: null, platform: 'linux-64', ...request },
    platform: 'linux-64',
    pythonVersion,
    packages,
  };
}

/** Every member of an in-memory zip (test-side reader: names, unix modes, inflated data). */
export function readZipEntries(zip: Buffer): { name: string; data: Buffer; mode: number }[] {
  let eocd = zip.length - 22;
  while (eocd >= 0 && zip.readUInt32LE(eocd) !== 0x06054b50) eocd--;
  const count = zip.readUInt16LE(eocd + 10);
  let p = zip.readUInt32LE(eocd + 16);
  const out: { name: string; data: Buffer; mode: number }[] = [];
  for (let n = 0; n < count; n++) {
    const method = zip.readUInt16LE(p + 10);
    const compressed = zip.readUInt32LE(p + 20);
    const nameLength = zip.readUInt16LE(p + 28);
    const skip = nameLength + zip.readUInt16LE(p + 30) + zip.readUInt16LE(p + 32);
    const mode = (zip.readUInt32LE(p + 38) >>> 16) & 0o7777;
    const local = zip.readUInt32LE(p + 42);
    const name = zip.toString('utf8', p + 46, p + 46 + nameLength);
    const start = local + 30 + zip.readUInt16LE(local + 26) + zip.readUInt16LE(local + 28);
    const raw = zip.subarray(start, start + compressed);
    out.push({ name, data: method === 8 ? inflateRawSync(raw) : Buffer.from(raw), mode });
    p += 46 + skip;
  }
  return out;
}
