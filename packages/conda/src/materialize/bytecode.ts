import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, constants, lstatSync, openSync, readFileSync, readSync, writeSync, type Stats } from 'node:fs';
import { join, posix } from 'node:path';
import { promisify } from 'node:util';
import { BoundedOutput, compareBytes, createLogger, errorMessage, lastLines, programPath, readCacheFile, writeFileAtomic } from '@prebuilt/core';
import { derivedSetDir, readDerivedFiles, storeDerivedFiles } from '../cache/derived-files.js';
import type { PrefixWriter } from './prefix-writer.js';
import { stampPycHeader } from './pyc-header.js';

const log = createLogger('conda:bytecode');
/** Part of the cache key: bump when what is compiled changes. */
const BYTECODE_CACHE_VERSION = 2;
/** Prints what makes a compiler's output differ (with `sys` and `importlib.util` imported). */
const IDENTITY_SCRIPT = 'print(sys.version); print(importlib.util.MAGIC_NUMBER.hex())';
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
 *   python those modules stay uncompiled (a warning says so): Python then compiles them at import;
 * - a pyc another package put at a module's pyc path (Python would run it in the module's place:
 *   an unchecked hash-based pyc whatever the source) is replaced by the module's own when that
 *   compiles, and removed when the module stays uncompiled.
 *
 * Only modules under `lib/pythonX.Y/` are considered (scripts run as `__main__` are never cached).
 */

/** A python on the build host that compiles for the env: its path and `sys.implementation.cache_tag`. */
export interface BytecodeCompiler {
  path: string;
  cacheTag: string;
  /** What makes its output differ (`sys.version`, magic number), when found with it (saves a process per build). */
  identity?: string;
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
  /**
   * The extraction-cache entry of the package labelled `label`, when its files came from one: its
   * compiled and re-stamped pycs are kept there (derived-files.ts) and hard-linked into the prefix,
   * so a rebuild writes no pyc of an unchanged package. Default: none.
   */
  derivedDir?: (label: string) => string | undefined;
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
 * Finds a python of the env's major.minor in the absolute directories of the build host's PATH
 * (`pythonX.Y`, then `python3`; core's programPath: a ConfigError when one is found only through an
 * empty or relative entry, the current directory). Undefined when there is none.
 */
export async function findBytecodeCompiler(pythonVersion: string): Promise<BytecodeCompiler | undefined> {
  const [major, minor] = pythonVersion.split('.');
  const wanted = cacheTagOf(pythonVersion);
  for (const candidate of [`python${major}.${minor}`, `python${major}`]) {
    const file = programPath(candidate, { what: `the python that compiles the env's modules ('${candidate}')` });
    if (file === undefined) continue;
    try {
      const { stdout } = await execFileAsync(file, ['-I', '-S', '-c', `import sys, importlib.util; print(sys.implementation.cache_tag); print(sys.executable); ${IDENTITY_SCRIPT}`], { timeout: 30_000 });
      const [tag, path, ...identity] = stdout.split('\n');
      if (tag === wanted && path) return { path, cacheTag: tag, identity: identity.join('\n') };
    } catch {
      // Not on PATH or not runnable: try the next.
    }
  }
  return undefined;
}

/** The first 16 bytes of the pyc open at `fd` (fewer when it is shorter), stamped in memory with `mtime` and `size`; see stampPycHeader. */
function stampedHeader(fd: number, mtime: number, size: number): { header: Buffer } & ReturnType<typeof stampPycHeader> {
  const header = Buffer.alloc(16);
  const bytesRead = readSync(fd, header, 0, 16, 0);
  return { header, ...stampPycHeader(header.subarray(0, bytesRead), mtime, size) };
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
    const { header, state, patched } = stampedHeader(fd, mtime, size);
    if (patched) writeSync(fd, header, 8, 8, 8);
    return state;
  } finally {
    closeSync(fd);
  }
}

/**
 * What re-stamping a pyc that is a hard link into the extraction cache would do, from its header
 * (never written in place: the inode is the cache's; a patched copy replaces it, see restampedCopy).
 */
function linkedPycState(file: string, mtime: number, size: number): 'valid' | 'restamp' | 'hash' | 'foreign' {
  const fd = openSync(file, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    const { state, patched } = stampedHeader(fd, mtime, size);
    return state === 'rewritten' ? (patched ? 'restamp' : 'valid') : state;
  } finally {
    closeSync(fd);
  }
}

/** The bytes of a (linked) timestamp pyc with its header stamped with `mtime` and the source's `size`. */
function restampedCopy(file: string, mtime: number, size: number): Buffer {
  const fd = openSync(file, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    const data = readFileSync(fd);
    stampPycHeader(data.subarray(0, 16), mtime, size);
    return data;
  } finally {
    closeSync(fd);
  }
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
    // Its last 64 KiB only (core's BoundedOutput): compile() prints a SyntaxWarning per `x is 1` of a
    // package's modules, so a hostile one could fill memory with warnings (6 bytes of stderr a byte).
    const err = new BoundedOutput({ tail: 64 * 1024 });
    child.stdout.on('data', (chunk: Buffer) => chunks.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => err.push(chunk));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) {
        reject(new Error(`${compiler.path} exited with ${code}: ${lastLines(err.result().text, 3, ' ')}`));
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
  if (compiler.identity !== undefined) return compiler.identity;
  const { stdout } = await execFileAsync(compiler.path, ['-I', '-S', '-c', `import sys, importlib.util; ${IDENTITY_SCRIPT}`]);
  return stdout;
}

/** What one package's modules need: shipped pycs (hard links into the extraction cache) to re-stamp, modules to compile. */
interface PackageWork {
  restamp: { pyc: string; size: number }[];
  compile: string[];
}

/**
 * The cache key of one package's pycs: a hash of what they depend on. A file that is a hard link
 * into the extraction cache is identified by that cache file — its path names the package's
 * sha256 and the member, and the entry was checked when used, so the path stands for the content
 * even after the entry is extracted again — no read; any other file by its content.
 */
function cacheKey(writer: PrefixWriter, work: PackageWork, stats: ReadonlyMap<string, Stats>, input: { compilerId: string; prefix: string; mtime: number }): string {
  const hash = createHash('sha256').update(JSON.stringify({ v: BYTECODE_CACHE_VERSION, ...input }));
  const identify = (rel: string): void => {
    const linked = writer.linkedSource(rel);
    const info = stats.get(rel);
    if (linked && info) hash.update(`linked\0${linked}\0${info.size}\0${info.mtimeMs}`);
    else hash.update(createHash('sha256').update(readFileSync(writer.full(rel))).digest());
  };
  for (const { pyc, size } of work.restamp) {
    hash.update(`\0restamp\0${pyc}\0${size}\0`);
    identify(pyc);
  }
  for (const rel of work.compile) {
    hash.update(`\0${rel}\0`);
    identify(rel);
  }
  return hash.digest('hex');
}

/** The most a package's cached pycs may take: a larger file (none prebuilt writes) reads as no entry. */
const MAX_CACHED_BYTES = 1024 * 1024 * 1024;

/**
 * A cache file holds a package's pycs as frames ({@link splitFrames}). A FIFO, symlink or directory
 * planted at its name (the key is a hash anyone can work out) reads as no entry: compiled and written anew.
 */
async function readCached(file: string, count: number): Promise<(Buffer | undefined)[] | undefined> {
  const data = await readCacheFile(file, MAX_CACHED_BYTES);
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

/** Adds a module to its package's work. */
function workOf(work: Map<string, PackageWork>, label: string): PackageWork {
  let entry = work.get(label);
  if (!entry) work.set(label, (entry = { restamp: [], compile: [] }));
  return entry;
}

/** What a module and its pyc are now (owners and identities): unchanged since a package was settled early, it is not looked at again. */
function moduleState(writer: PrefixWriter, rel: string, pyc: string): string {
  const owners = writer.owners();
  return `${owners.get(rel)}\0${writer.identity(rel)}\0${owners.get(pyc)}\0${writer.identity(pyc)}`;
}

/**
 * Looks at the modules `sources` (relative paths under the prefix's `lib/pythonX.Y/`, sorted): a
 * shipped pyc that is the package's own regular file is re-stamped in place now; what is left per
 * package — linked pycs to re-stamp, modules to compile — is returned, with the `lstat` of the
 * files the cache keys identify.
 */
function scanModules(writer: PrefixWriter, sources: readonly string[], cacheTag: string, mtime: number, result: ValidateBytecodeResult) {
  const owners = writer.owners();
  const work = new Map<string, PackageWork>();
  const stats = new Map<string, Stats>();
  for (const rel of sources) {
    const label = owners.get(rel)!;
    const info = lstatSync(writer.full(rel), { throwIfNoEntry: false });
    if (!info?.isFile()) continue;
    stats.set(rel, info);
    const pyc = pycPathOf(rel, cacheTag);
    let state: 'valid' | 'restamp' | 'hash' | 'foreign' | undefined;
    if (owners.get(pyc) === label) {
      try {
        if (writer.isLinked(pyc)) state = linkedPycState(writer.full(pyc), mtime, info.size);
        else {
          const done = retimestamp(writer.full(pyc), mtime, info.size);
          state = done === 'rewritten' ? 'valid' : done;
        }
      } catch {
        state = undefined;
      }
    }
    if (state === 'valid') result.rewritten += 1;
    if (state === 'valid' || state === 'hash') continue;
    if (state === 'restamp') {
      stats.set(pyc, lstatSync(writer.full(pyc)));
      workOf(work, label).restamp.push({ pyc, size: info.size });
    } else {
      workOf(work, label).compile.push(rel);
    }
  }
  return { work, stats };
}

/** What the per-package pass shares. */
interface PassContext {
  options: ValidateBytecodeOptions;
  cacheTag: string;
  compiler: BytecodeCompiler | undefined;
  compilerId: string;
  stats: ReadonlyMap<string, Stats>;
  result: ValidateBytecodeResult;
}

/** The package's compiled modules (one slot per module; undefined: it does not compile), or undefined when compiling failed. */
async function compiledModules(ctx: PassContext, label: string, rels: readonly string[], key: string | undefined): Promise<(Buffer | undefined)[] | undefined> {
  const { options, compiler, result } = ctx;
  if (rels.length === 0) return [];
  if (!compiler) return rels.map(() => undefined);
  const cacheFile = options.cacheDir && key ? join(options.cacheDir, key) : undefined;
  const hit = cacheFile ? await readCached(cacheFile, rels.length) : undefined;
  if (hit) {
    result.cached += hit.filter(Boolean).length;
    return hit;
  }
  try {
    const compiled = await compileWith(compiler, rels.map((rel) => [options.writer.full(rel), `${options.prefix}/${rel}`]), options.mtime, options.signal);
    // Also kept as frames: they outlive the package's extraction-cache entry (its derived sets go with it).
    if (cacheFile) await writeCached(cacheFile, compiled);
    return compiled;
  } catch (error) {
    if (options.signal?.aborted) throw error;
    result.warnings.push(`The modules of ${label} were not byte-compiled (${errorMessage(error)}); Python compiles them at import.`);
    return undefined;
  }
}

/**
 * One package's pycs: hard-linked from its derived set in the extraction cache when there is one
 * for the key, else re-stamped and compiled (or read from the frames cache), kept as a derived set
 * when the package has an entry, and linked (or written) into the prefix.
 */
async function settlePackage(ctx: PassContext, label: string, work: PackageWork): Promise<void> {
  const { options, cacheTag, result } = ctx;
  const { writer, mtime } = options;
  const entry = options.derivedDir?.(label);
  // Re-stamped pycs do not depend on the compiler: a package with nothing to compile keys without it.
  const compilerId = work.compile.length > 0 ? ctx.compilerId : '';
  const key = entry || options.cacheDir ? cacheKey(writer, work, ctx.stats, { compilerId, prefix: options.prefix, mtime }) : undefined;
  const setDir = entry && key ? derivedSetDir(entry, key) : undefined;
  const targets = [...work.restamp.map((r) => r.pyc), ...work.compile.map((rel) => pycPathOf(rel, cacheTag))];
  let files = setDir ? await readDerivedFiles(setDir, targets.length) : undefined;
  const fromSet = files !== undefined;
  let data: (Buffer | undefined)[] = [];
  if (!files) {
    const compiled = await compiledModules(ctx, label, work.compile, key);
    data = [...work.restamp.map((r) => restampedCopy(writer.full(r.pyc), mtime, r.size)), ...(compiled ?? work.compile.map(() => undefined))];
    // Kept only when complete: a package whose modules could not be compiled is tried again next time.
    if (setDir && compiled && (ctx.compiler || work.compile.length === 0)) files = await storeDerivedFiles(setDir, data, mtime);
  }
  for (const [i, target] of targets.entries()) {
    const file = files?.[i];
    if (file) await writer.linkIn(target, file, label);
    else if (data[i]) await writer.writeFile(target, data[i]!, 0o644, label);
    const done = file !== undefined || data[i] !== undefined;
    if (i < work.restamp.length) result.rewritten += done ? 1 : 0;
    else if (!done) {
      result.uncompiled += 1;
      // Another package's pyc at this module's pyc path would run in its place (an unchecked
      // hash-based pyc whatever the source): compiled, the module's own pyc replaces it; left
      // uncompiled, it is taken out.
      const source = work.compile[i - work.restamp.length]!;
      const owner = await writer.removeUnlessOwnedBy(target, label);
      if (owner !== undefined) {
        result.warnings.push(`${owner} put '${target}', the bytecode of '${source}' of ${label}, which is left uncompiled: removed, so Python reads the module's source rather than another package's code.`);
      }
    } else {
      result.compiled += 1;
      if (fromSet) result.cached += 1;
    }
  }
}

/**
 * The bytecode pass of one prefix, package by package: {@link settle} gives a package's modules
 * valid bytecode as soon as it is installed (the materializer calls it while later packages are
 * still being extracted, so the pycs are derived and linked in the time it waited), and
 * {@link finish}, once every package is in, does every module not settled yet — the wheels', and
 * any a later package touched since (its `.py` or its pyc replaced or clobbered: looked at again as
 * if never settled, so the tree is the same whichever packages were settled early).
 */
export class BytecodePass {
  readonly #options: ValidateBytecodeOptions;
  readonly #cacheTag: string;
  readonly #libDir: string;
  readonly #result: ValidateBytecodeResult = { rewritten: 0, compiled: 0, cached: 0, uncompiled: 0, warnings: [] };
  /** Each module settled early, with its {@link moduleState} then. */
  readonly #settled = new Map<string, string>();
  #tools: Promise<{ compiler: BytecodeCompiler | undefined; compilerId: string }> | undefined;
  /** Modules left uncompiled for want of a compiler (one warning at the end). */
  #noCompiler = 0;

  constructor(options: ValidateBytecodeOptions) {
    this.#options = options;
    this.#cacheTag = cacheTagOf(options.pythonVersion);
    const [major, minor] = options.pythonVersion.split('.');
    this.#libDir = `lib/python${major}.${minor}/`;
  }

  /** Gives the modules of the package labelled `label` (installed, with nothing of it to change) valid bytecode now. */
  async settle(label: string): Promise<void> {
    const { writer } = this.#options;
    const owners = writer.owners();
    const sources: string[] = [];
    // The package's own paths (not every path of the prefix once per package).
    for (const rel of writer.writtenBy(label)) if (this.#isModule(rel) && owners.get(rel) === label) sources.push(rel);
    await this.#run(sources.sort(compareBytes));
    for (const rel of sources) this.#settled.set(rel, moduleState(writer, rel, pycPathOf(rel, this.#cacheTag)));
  }

  /** Every module not settled (or changed since), then the result of the whole pass. */
  async finish(): Promise<ValidateBytecodeResult> {
    const { writer } = this.#options;
    const sources = [...writer.owners().keys()].filter((rel) => this.#isModule(rel) && this.#settled.get(rel) !== moduleState(writer, rel, pycPathOf(rel, this.#cacheTag)));
    await this.#run(sources.sort(compareBytes));
    const result = this.#result;
    if (this.#noCompiler > 0) {
      const [major, minor] = this.#options.pythonVersion.split('.');
      result.warnings.push(
        `${this.#noCompiler} python modules of the env have no bytecode: no python${major}.${minor} on this host to compile them with (nothing of the env is run at build time). Python compiles them at each task's first import; install python${major}.${minor} where prebuilt builds to ship them compiled.`,
      );
    }
    log('bytecode: %d headers rewritten, %d modules compiled (%d from the cache), %d uncompiled', result.rewritten, result.compiled, result.cached, result.uncompiled);
    return result;
  }

  #isModule(rel: string): boolean {
    return rel.startsWith(this.#libDir) && rel.endsWith('.py');
  }

  /** The compiler and its identity, looked for once (at the first module to compile). */
  #compilerTools(): Promise<{ compiler: BytecodeCompiler | undefined; compilerId: string }> {
    const options = this.#options;
    this.#tools ??= (async () => {
      const compiler = options.compiler === undefined ? await findBytecodeCompiler(options.pythonVersion) : options.compiler ?? undefined;
      const compilerId = compiler && (options.cacheDir || options.derivedDir) ? await compilerIdentity(compiler) : '';
      return { compiler, compilerId };
    })();
    return this.#tools;
  }

  async #run(sources: readonly string[]): Promise<void> {
    const options = this.#options;
    const { work, stats } = scanModules(options.writer, sources, this.#cacheTag, options.mtime, this.#result);
    if (work.size === 0) return;
    const pending = [...work.values()].reduce((n, w) => n + w.compile.length, 0);
    const { compiler, compilerId } = pending === 0 ? { compiler: undefined, compilerId: '' } : await this.#compilerTools();
    if (pending > 0 && !compiler) this.#noCompiler += pending;
    const ctx: PassContext = { options, cacheTag: this.#cacheTag, compiler, compilerId, stats, result: this.#result };
    for (const [label, packageWork] of [...work].sort((a, b) => compareBytes(a[0], b[0]))) await settlePackage(ctx, label, packageWork);
  }
}

/** Makes every module of the prefix have bytecode Python accepts as it is (see the file header). */
export function validateBytecode(options: ValidateBytecodeOptions): Promise<ValidateBytecodeResult> {
  return new BytecodePass(options).finish();
}
