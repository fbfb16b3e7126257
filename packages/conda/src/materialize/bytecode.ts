import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, constants, lstatSync, openSync, readFileSync, readSync, writeSync, type Stats } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { promisify } from 'node:util';
import { compareBytes, createLogger, errorMessage, writeFileAtomic } from '@prebuilt/core';
import type { PrefixWriter } from './prefix-writer.js';

const log = createLogger('conda:bytecode');
/** Part of the cache key: bump when what is compiled changes. */
const BYTECODE_CACHE_VERSION = 1;
const execFileAsync = promisify(execFile);

/**
 * Valid bytecode for every module of a materialized env, so a task's first import is as fast as
 * its second and nothing writes `__pycache__/` at task start.
 *
 * The materializer gives every file one mtime (SOURCE_DATE_EPOCH, else 0) so the image is
 * reproducible. Python accepts a timestamp-based pyc only when its header holds the source's mtime
 * and size, so the pycs conda packages ship (conda-forge compiles them at build time) are all stale
 * in the image, and noarch python packages and wheels ship none (conda and pip compile those at
 * install time with the env's python). Here:
 *
 * - a shipped timestamp pyc whose source comes from the same package gets the normalised mtime
 *   and the source's size in its header (the code is unchanged: the source is the one it was
 *   compiled from); hash-based pycs are valid whatever the mtime and are left alone;
 * - a `.py` without a pyc (or whose pyc another package's file made wrong) is compiled by a python
 *   of the env's version on the build host, one process per package with PYTHONHASHSEED=0 and the
 *   module's path in the image as its file name: the bytes depend on the python version and the
 *   package's files, not on the CPU the env is for, and nothing of the env runs. Without such a
 *   python those modules stay uncompiled (a warning says so): Python then compiles them at import.
 *
 * Only modules under `lib/pythonX.Y/` are considered (scripts run as `__main__` are never cached).
 */

/** A python on the build host that compiles for the env: its path and `sys.implementation.cache_tag`. */
export interface BytecodeCompiler {
  path: string;
  cacheTag: string;
}

export interface ValidateBytecodeOptions {
  writer: PrefixWriter;
  /** The env's path in the image: compiled modules name their file there. */
  prefix: string;
  /** The env's python version, e.g. `3.11.2`. */
  pythonVersion: string;
  /** Seconds since 1970: the mtime every file of the prefix gets (normaliseTree). */
  mtime: number;
  /** The host python to compile with; `null`: none (compile nothing); default {@link findBytecodeCompiler}. */
  compiler?: BytecodeCompiler | null;
  /**
   * Where compiled modules are kept, per package, keyed by the compiler, the prefix, the mtime and
   * the sources' content: a rebuild compiles only the packages that changed. Default: no cache.
   */
  cacheDir?: string;
  signal?: AbortSignal;
}

export interface ValidateBytecodeResult {
  /** Shipped timestamp pycs whose header now matches their source. */
  rewritten: number;
  /** Modules compiled on the host (or taken from the cache). */
  compiled: number;
  /** Of those, taken from the cache. */
  cached: number;
  /** Modules left without valid bytecode (no compiler, or a syntax error for this python). */
  uncompiled: number;
  warnings: string[];
}

/** `cpython-311` for `3.11.x`. */
export function cacheTagOf(pythonVersion: string): string {
  const [major, minor] = pythonVersion.split('.');
  return `cpython-${major}${minor}`;
}

/** `pkg/__pycache__/mod.cpython-311.pyc` for `pkg/mod.py` (no optimisation level). */
export function pycPathOf(rel: string, cacheTag: string): string {
  const dir = posix.dirname(rel);
  const name = `${posix.basename(rel, '.py')}.${cacheTag}.pyc`;
  return dir === '.' ? `__pycache__/${name}` : `${dir}/__pycache__/${name}`;
}

/**
 * Finds a python of the env's major.minor on the build host's PATH (`pythonX.Y`, then `python3`).
 * Undefined when there is none.
 */
export async function findBytecodeCompiler(pythonVersion: string): Promise<BytecodeCompiler | undefined> {
  const [major, minor] = pythonVersion.split('.');
  const wanted = cacheTagOf(pythonVersion);
  for (const candidate of [`python${major}.${minor}`, `python${major}`]) {
    try {
      const { stdout } = await execFileAsync(candidate, ['-I', '-S', '-c', 'import sys; print(sys.implementation.cache_tag); print(sys.executable)'], { timeout: 30_000 });
      const [tag, path] = stdout.trim().split('\n');
      if (tag === wanted && path) return { path, cacheTag: tag };
    } catch {
      // Not on PATH or not runnable: try the next.
    }
  }
  return undefined;
}

/** What a pyc's 16-byte header says: `rewritten` (now stamped with mtime and size: `patched` when that changed it), `hash` or `foreign`. */
function stampHeader(header: Buffer, mtime: number, size: number): { state: 'rewritten' | 'hash' | 'foreign'; patched: boolean } {
  if (header.length < 16 || header[2] !== 0x0d || header[3] !== 0x0a) return { state: 'foreign', patched: false };
  const flags = header.readUInt32LE(4);
  if (flags !== 0) return { state: flags & 1 ? 'hash' : 'foreign', patched: false };
  if (header.readUInt32LE(8) === mtime >>> 0 && header.readUInt32LE(12) === size >>> 0) return { state: 'rewritten', patched: false };
  header.writeUInt32LE(mtime >>> 0, 8);
  header.writeUInt32LE(size >>> 0, 12);
  return { state: 'rewritten', patched: true };
}

/**
 * Rewrites a timestamp pyc's header in place; false when it is not a timestamp pyc of this python.
 * Synchronous, as the other small-file calls of this pass (see cacheKey): a 16-byte read and write
 * on the main thread cost microseconds, their promise versions a thread-pool round trip each,
 * which over thousands of modules on a loaded machine is most of the pass.
 */
function retimestamp(file: string, mtime: number, size: number): 'rewritten' | 'hash' | 'foreign' {
  // Never through a link: only the package's own regular file is re-stamped.
  const fd = openSync(file, constants.O_RDWR | constants.O_NOFOLLOW);
  try {
    const header = Buffer.alloc(16);
    const bytesRead = readSync(fd, header, 0, 16, 0);
    const { state, patched } = stampHeader(header.subarray(0, bytesRead), mtime, size);
    if (patched) writeSync(fd, header, 8, 8, 8);
    return state;
  } finally {
    closeSync(fd);
  }
}

/**
 * Re-stamps a pyc that is a hard link into the extraction cache: never in place (the inode is the
 * cache's), but by replacing the file through the writer with the patched copy.
 */
async function retimestampLinked(writer: PrefixWriter, pyc: string, label: string, mtime: number, size: number): Promise<'rewritten' | 'hash' | 'foreign'> {
  const fd = openSync(writer.full(pyc), constants.O_RDONLY | constants.O_NOFOLLOW);
  let data: Buffer;
  try {
    data = readFileSync(fd);
  } finally {
    closeSync(fd);
  }
  const { state, patched } = stampHeader(data.subarray(0, 16), mtime, size);
  if (patched) await writer.writeFile(pyc, data, 0o644, label);
  return state;
}

/**
 * The pycs of a stream of frames (a 4-byte little-endian length, 0 for a module that does not
 * compile, then the pyc), as the compile script writes them and the cache keeps them; undefined
 * unless there are exactly `count` complete frames.
 */
function splitFrames(data: Buffer, count: number): (Buffer | undefined)[] | undefined {
  const out: (Buffer | undefined)[] = [];
  let at = 0;
  while (at + 4 <= data.length) {
    const length = data.readUInt32LE(at);
    at += 4;
    out.push(length === 0 ? undefined : data.subarray(at, at + length));
    at += length;
  }
  return out.length === count && at === data.length ? out : undefined;
}

/**
 * Compiles the modules of one package with the host python: a JSON list of [source, image path]
 * on stdin; for each, the pyc bytes on stdout after a 4-byte little-endian length (0: it does not
 * compile for this python).
 */
const COMPILE_SCRIPT = String.raw`
import importlib.util, json, marshal, struct, sys
jobs = json.load(sys.stdin)
mtime = int(sys.argv[1]) & 0xFFFFFFFF
out = sys.stdout.buffer
for source, dfile in jobs:
    with open(source, "rb") as f:
        data = f.read()
    try:
        code = compile(data, dfile, "exec", dont_inherit=True)
    except (SyntaxError, ValueError):
        out.write(struct.pack("<I", 0))
        continue
    pyc = importlib.util.MAGIC_NUMBER + struct.pack("<III", 0, mtime, len(data) & 0xFFFFFFFF) + marshal.dumps(code)
    out.write(struct.pack("<I", len(pyc)))
    out.write(pyc)
out.flush()
`;

function compileWith(compiler: BytecodeCompiler, jobs: readonly [string, string][], mtime: number, signal?: AbortSignal): Promise<(Buffer | undefined)[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(compiler.path, ['-I', '-S', '-B', '-c', COMPILE_SCRIPT, String(mtime)], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { PYTHONHASHSEED: '0', PATH: process.env['PATH'] ?? '/usr/bin:/bin' },
      ...(signal ? { signal } : {}),
    });
    const chunks: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => chunks.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => err.push(chunk));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) {
        reject(new Error(`${compiler.path} exited with ${code}: ${Buffer.concat(err).toString().trim().split('\n').slice(-3).join(' ')}`));
        return;
      }
      const results = splitFrames(Buffer.concat(chunks), jobs.length);
      if (!results) reject(new Error(`${compiler.path} did not return one result for each of ${jobs.length} modules.`));
      else resolve(results);
    });
    child.stdin.on('error', () => {
      // The close handler reports the failure.
    });
    child.stdin.end(JSON.stringify(jobs));
  });
}

/** What makes a compiler's output differ: its version and build (`sys.version`) and magic number. */
async function compilerIdentity(compiler: BytecodeCompiler): Promise<string> {
  const { stdout } = await execFileAsync(compiler.path, ['-I', '-S', '-c', 'import sys, importlib.util; print(sys.version); print(importlib.util.MAGIC_NUMBER.hex())']);
  return stdout;
}

/**
 * The cache file of one package's modules: a hash of what the pycs depend on. A source that is a
 * hard link into the extraction cache is identified by that cache file (its name holds the
 * package's sha256) and the inode, size and mtime checked when the entry was used — no read; any
 * other source by its content.
 */
async function cacheKey(writer: PrefixWriter, rels: readonly string[], stats: ReadonlyMap<string, Stats>, input: { compilerId: string; prefix: string; mtime: number }): Promise<string> {
  const hash = createHash('sha256').update(JSON.stringify({ v: BYTECODE_CACHE_VERSION, ...input }));
  for (const rel of rels) {
    const linked = writer.linkedSource(rel);
    const info = stats.get(rel);
    hash.update(`\0${rel}\0`);
    if (linked && info) hash.update(`linked\0${linked}\0${info.ino}\0${info.size}\0${info.mtimeMs}`);
    else hash.update(createHash('sha256').update(readFileSync(writer.full(rel))).digest());
  }
  return hash.digest('hex');
}

/** A cache file holds a package's pycs as frames ({@link splitFrames}). */
async function readCached(file: string, count: number): Promise<(Buffer | undefined)[] | undefined> {
  const data = await readFile(file).catch(() => undefined);
  return data ? splitFrames(data, count) : undefined;
}

async function writeCached(file: string, compiled: readonly (Buffer | undefined)[]): Promise<void> {
  const parts: Buffer[] = [];
  for (const pyc of compiled) {
    const length = Buffer.alloc(4);
    length.writeUInt32LE(pyc?.length ?? 0);
    parts.push(length, ...(pyc ? [pyc] : []));
  }
  try {
    await writeFileAtomic(file, Buffer.concat(parts));
  } catch (error) {
    log('cannot cache bytecode in %s: %s', file, errorMessage(error));
  }
}

/** Makes every module of the prefix have bytecode Python accepts as it is (see the file header). */
export async function validateBytecode(options: ValidateBytecodeOptions): Promise<ValidateBytecodeResult> {
  const { writer, prefix, pythonVersion, mtime, signal } = options;
  const cacheTag = cacheTagOf(pythonVersion);
  const [major, minor] = pythonVersion.split('.');
  const libDir = `lib/python${major}.${minor}/`;
  const owners = writer.owners();
  const result: ValidateBytecodeResult = { rewritten: 0, compiled: 0, cached: 0, uncompiled: 0, warnings: [] };
  /** Modules to compile, by the package that installed them. */
  const toCompile = new Map<string, string[]>();
  const sourceStats = new Map<string, Stats>();
  const sources = [...owners.keys()].filter((rel) => rel.startsWith(libDir) && rel.endsWith('.py')).sort(compareBytes);
  for (const rel of sources) {
    const label = owners.get(rel)!;
    const info = lstatSync(writer.full(rel), { throwIfNoEntry: false });
    if (!info?.isFile()) continue;
    sourceStats.set(rel, info);
    const pyc = pycPathOf(rel, cacheTag);
    const pycOwner = owners.get(pyc);
    let state: 'rewritten' | 'hash' | 'foreign' | undefined;
    if (pycOwner === label) {
      try {
        state = writer.isLinked(pyc) ? await retimestampLinked(writer, pyc, label, mtime, info.size) : retimestamp(writer.full(pyc), mtime, info.size);
      } catch {
        state = undefined;
      }
    }
    if (state === 'rewritten') result.rewritten += 1;
    if (state === 'rewritten' || state === 'hash') continue;
    const list = toCompile.get(label);
    if (list) list.push(rel);
    else toCompile.set(label, [rel]);
  }
  const pending = [...toCompile.values()].reduce((n, list) => n + list.length, 0);
  if (pending === 0) return result;
  const compiler = options.compiler === undefined ? await findBytecodeCompiler(pythonVersion) : options.compiler;
  if (!compiler) {
    result.uncompiled = pending;
    result.warnings.push(
      `${pending} python modules of the env have no bytecode: no python${major}.${minor} on this host to compile them with (nothing of the env is run at build time). Python compiles them at each task's first import; install python${major}.${minor} where prebuilt builds to ship them compiled.`,
    );
    return result;
  }
  const compilerId = options.cacheDir ? await compilerIdentity(compiler) : '';
  for (const [label, rels] of [...toCompile].sort((a, b) => compareBytes(a[0], b[0]))) {
    let compiled: (Buffer | undefined)[];
    const cacheFile = options.cacheDir ? join(options.cacheDir, await cacheKey(writer, rels, sourceStats, { compilerId, prefix, mtime })) : undefined;
    const hit = cacheFile ? await readCached(cacheFile, rels.length) : undefined;
    try {
      compiled = hit ?? (await compileWith(compiler, rels.map((rel) => [writer.full(rel), `${prefix}/${rel}`]), mtime, signal));
      if (hit) result.cached += rels.filter((_, i) => hit[i]).length;
      else if (cacheFile) await writeCached(cacheFile, compiled);
    } catch (error) {
      if (signal?.aborted) throw error;
      result.uncompiled += rels.length;
      result.warnings.push(`The modules of ${label} were not byte-compiled (${errorMessage(error)}); Python compiles them at import.`);
      continue;
    }
    for (let i = 0; i < rels.length; i++) {
      const data = compiled[i];
      if (!data) {
        result.uncompiled += 1;
        continue;
      }
      await writer.writeFile(pycPathOf(rels[i]!, cacheTag), data, 0o644, label);
      result.compiled += 1;
    }
  }
  log('bytecode: %d headers rewritten, %d modules compiled with %s (%d from the cache), %d uncompiled', result.rewritten, result.compiled, compiler.path, result.cached, result.uncompiled);
  return result;
}
