import { createHash, randomBytes } from 'node:crypto';
import { rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { CancelledError, ConfigError, compareBytes, createLogger, pypiProjectName, type LockedEnv, type LockedPackage, type PrefixLayersPackage, type PrunePreset } from '@prebuilt/core';
import { ExtractionCache } from '../cache/extraction-cache.js';
import { PackageCache, type DownloadProgress, type EnsureResult } from '../cache/package-cache.js';
import { BytecodePass } from './bytecode.js';
import { removeScratch } from './conda-extract.js';
import { extractAhead } from './extract-ahead.js';
import { processExtractPool, type ExtractPool } from './extract-pool.js';
import { linkCondaPackage, type CondaInstallOptions, type CondaInstallResult, type LinkSource } from './conda-install.js';
import { normaliseTree, sourceDateEpoch } from './deterministic-tar.js';
import { PrefixWriter } from './prefix-writer.js';
import { Pruning, type PruneSummary } from './pruning.js';
import { installWheel } from './wheel-install.js';

const log = createLogger('conda:materialize');

export type MaterializeProgress =
  | { phase: 'download'; download: DownloadProgress }
  | { phase: 'install'; filename: string; done: number; total: number };

export interface MaterializeOptions {
  lock: LockedEnv;
  /** The absolute path the env will have in the image, e.g. `/opt/prebuilt/env`. */
  prefix: string;
  /**
   * The directory to fill with the prefix's content (the staging directory standing for `prefix`).
   * It is built beside itself and renamed into place when complete; an existing one is replaced.
   */
  outDir: string;
  /** The package cache (default: a PackageCache on the default cache directory). */
  cache?: PackageCache;
  /**
   * Keep each conda package extracted in the cache's `extracted/` directory and link its files
   * from there (default true): a rebuild extracts only the packages that changed. `false`:
   * extract into scratch beside the prefix and move the files in (nothing kept).
   */
  extractionCache?: boolean;
  /** Seconds since 1970 for every mtime (default: SOURCE_DATE_EPOCH, else 0). */
  mtime?: number;
  onProgress?: (progress: MaterializeProgress) => void;
  signal?: AbortSignal;
  /** The extraction pool (default: the process's, shared by every materialize: {@link processExtractPool}). */
  extractPool?: ExtractPool;
  /**
   * What to leave out of the prefix (core's prune presets: `tests`, `static-libs`, `headers`);
   * default nothing. Pruned entries are never written, and conda-meta records and wheels' RECORD
   * leave them out, as if the packages had shipped without them. The extraction cache is unchanged.
   */
  prune?: readonly PrunePreset[];
}

export interface MaterializeResult {
  outDir: string;
  prefix: string;
  pythonVersion: string;
  /** Packages installed: conda packages and wheels. */
  packages: number;
  filesDownloaded: number;
  bytesDownloaded: number;
  /** Conda packages with pre-link/post-link scripts, which prebuilt does not run. */
  linkScriptPackages: string[];
  /** Human-readable warnings (link scripts, files replaced by a later package). */
  warnings: string[];
  /**
   * The prefix's entries each package put there, in lock order: what a build service needs to
   * give every package its own image layer. A package's list holds its conda-meta record (or a
   * wheel's REQUESTED and RECORD) with its files, so a change of one package changes only its own
   * layer; the entries of the env as a whole (`conda-meta/` itself, `conda-meta/history`) are in
   * no package's list.
   */
  packageFiles: PackageFiles[];
  /** What the prune presets left out (files and bytes; zero with no presets). */
  pruned: PruneSummary;
}

/** The entries (relative to the prefix, sorted) one locked package installed: what `prefix-layers.json` lists per package. */
export type PackageFiles = PrefixLayersPackage;

/**
 * True for an entry of the env as a whole, which lists or depends on every package: `conda-meta`
 * and the files in it that are not a package's record (`history`, `pinned`). A package's own record
 * (`conda-meta/<name>-<version>-<build>.json`) is not: it goes into the package's layer.
 */
export function isEnvWideEntry(rel: string): boolean {
  return rel === 'conda-meta' || (rel.startsWith('conda-meta/') && !/^conda-meta\/[^/]+\.json$/.test(rel));
}

/** The conda-meta `requested_spec` of each requested conda package, and the requested PyPI names. */
function requestedSpecs(lock: LockedEnv): { conda: Map<string, string>; pypi: Set<string> } {
  const conda = new Map<string, string>();
  for (const [key, spec] of Object.entries(lock.request.conda)) {
    const name = key.includes('::') ? key.slice(key.lastIndexOf('::') + 2) : key;
    conda.set(name, spec ? `${name} ${spec}` : name);
  }
  conda.set('python', `python ${lock.request.python}.*`);
  return { conda, pypi: new Set(Object.keys(lock.request.pypi).map(pypiProjectName)) };
}

/** A conda package's extraction: from the extraction cache, or into scratch beside the prefix (removed after linking). */
interface Extraction {
  source: LinkSource;
  /** Removes what the extraction left that the prefix does not keep. */
  release: () => Promise<void>;
  /** The package's extraction-cache entry (where its pycs are kept), when it came from the cache. */
  entryDir?: string;
  /** What the user should know of this extraction (a damaged cache entry it could not replace). */
  note?: string;
}

/** A package archive in the package cache, with its md5 when the cache knows it (hashed when it was verified). */
interface Archive {
  file: string;
  md5: string | undefined;
}

function extractOne({ file, md5 }: Archive, pkg: LockedPackage, root: string, cache: ExtractionCache | undefined, mtime: number, pool: ExtractPool): Promise<Extraction> {
  if (cache) {
    // The archive is hashed for its md5 only when the package cache does not know it.
    const extract = (scratch: string) =>
      md5 === undefined ? pool.extract(file, pkg.filename, scratch, { mtime, md5: true }) : pool.extract(file, pkg.filename, scratch, { mtime }).then((contents) => ({ ...contents, md5 }));
    return cache.obtain(file, pkg.sha256, mtime, extract).then((got) =>
      got.privateNote
        ? // Extracted for this build alone (a damaged entry of another user's it may not replace): linked, then removed.
          { source: { file, contents: got.contents, files: 'link', md5: got.md5 }, release: () => removeScratch(got.dir), note: got.privateNote }
        : { source: { file, contents: got.contents, files: 'link', md5: got.md5 }, release: () => Promise.resolve(), entryDir: got.dir },
    );
  }
  const scratch = `${root}.extract-${randomBytes(4).toString('hex')}`;
  const release = (): Promise<void> => removeScratch(scratch);
  return pool.extract(file, pkg.filename, scratch).then(
    (contents) => ({ source: { file, contents, files: 'move' as const, ...(md5 === undefined ? {} : { md5 }) }, release }),
    async (error: unknown) => {
      await release();
      throw error;
    },
  );
}

/** Everything the install loop collects for the result and conda-meta/history. */
interface InstallLog {
  warnings: string[];
  linkScriptPackages: string[];
  history: string[];
  /** The extraction-cache entry of each conda package linked from the cache, by its label (filename). */
  entryDirs: Map<string, string>;
}

async function installConda(extraction: Extraction, pkg: LockedPackage, writer: PrefixWriter, options: CondaInstallOptions, out: InstallLog): Promise<void> {
  let result: CondaInstallResult;
  try {
    result = await linkCondaPackage(extraction.source, pkg, options);
  } finally {
    await extraction.release();
  }
  if (extraction.entryDir) out.entryDirs.set(pkg.filename, extraction.entryDir);
  if (extraction.note) out.warnings.push(extraction.note);
  const { record } = result;
  await writer.writeFile(`conda-meta/${record.name}-${record.version}-${record.build}.json`, `${JSON.stringify(record, null, 2)}\n`, 0o644, pkg.filename, { reserved: true });
  out.history.push(`+${record.channel}::${record.name}-${record.version}-${record.build}`);
  if (result.hasLinkScripts) {
    out.linkScriptPackages.push(pkg.name);
    out.warnings.push(
      `${pkg.name} has a pre-link or post-link script, which prebuilt does not run; if the package needs it, use the micromamba recipe (METAFLOW_PREBUILT_RECIPE=micromamba).`,
    );
  }
  for (const path of result.clobbered) out.warnings.push(`${pkg.filename} replaced '${path}' installed by an earlier package.`);
}

/** Installs every locked package into `writer` in lock order (conda packages extracted ahead, see extract-ahead.ts). */
async function installPackages(
  options: MaterializeOptions & { pruning: Pruning },
  writer: PrefixWriter,
  download: Pick<EnsureResult, 'paths' | 'md5'>,
  extractionCache: ExtractionCache | undefined,
  mtime: number,
  bytecode: { pass: BytecodePass; entryDirs: Map<string, string> },
): Promise<InstallLog> {
  const { lock, prefix, signal, onProgress, pruning } = options;
  const pythonVersion = lock.pythonVersion;
  const requested = requestedSpecs(lock);
  const out: InstallLog = { warnings: [], linkScriptPackages: [], history: [], entryDirs: bytecode.entryDirs };
  const fileOf = (pkg: LockedPackage): string => download.paths.get(pkg.sha256.toLowerCase())!;
  const archiveOf = (pkg: LockedPackage): Archive => ({ file: fileOf(pkg), md5: download.md5.get(pkg.sha256.toLowerCase()) });
  // Extraction in worker threads (extract-pool.ts), started at the first package not in the cache;
  // one pool for the process, shared by the envs a build materializes at once.
  const pool = options.extractPool ?? processExtractPool();
  const ahead = extractAhead(lock.packages, (pkg) => pkg.kind === 'conda', (pkg) => extractOne(archiveOf(pkg), pkg, writer.root, extractionCache, mtime, pool));
  try {
    for (const [i, pkg] of lock.packages.entries()) {
      if (signal?.aborted) throw new CancelledError('Materializing the env was cancelled.', { cause: signal.reason });
      if (pkg.kind === 'conda') {
        await installConda(await ahead.take(i), pkg, writer, { writer, prefix, pythonVersion, requestedSpec: requested.conda.get(pkg.name) ?? '', pruning }, out);
        // Its pycs now, while the next packages are extracted (bytecode.ts: what a later package touches is done again at the end).
        await bytecode.pass.settle(pkg.filename);
      } else {
        const result = await installWheel(fileOf(pkg), pkg, { writer, prefix, pythonVersion, requested: requested.pypi.has(pypiProjectName(pkg.name)), pruning });
        for (const path of result.clobbered) out.warnings.push(`${pkg.filename} replaced '${path}' installed by an earlier package.`);
      }
      onProgress?.({ phase: 'install', filename: pkg.filename, done: i + 1, total: lock.packages.length });
    }
  } finally {
    await ahead.settle();
  }
  return out;
}

/** The entries each locked package put in the prefix (its conda-meta record included), sorted, in lock order. */
function filesByPackage(lock: LockedEnv, writer: PrefixWriter): PackageFiles[] {
  const byLabel = new Map<string, string[]>();
  for (const [rel, label] of writer.owners()) {
    if (isEnvWideEntry(rel)) continue;
    const list = byLabel.get(label);
    if (list) list.push(rel);
    else byLabel.set(label, [rel]);
  }
  return lock.packages.map((pkg) => {
    const files = (byLabel.get(pkg.filename) ?? []).sort(compareBytes);
    const contentKey = packageContentKey(writer, files);
    return { kind: pkg.kind, name: pkg.name, version: pkg.version, filename: pkg.filename, sha256: pkg.sha256.toLowerCase(), files, ...(contentKey ? { contentKey } : {}) };
  });
}

/** Part of every content key: bump when the same identities could give other installed bytes. */
const CONTENT_KEY_FORMAT = 'prefix-content-v1';

/**
 * A hash of what a package's entries are (the writer's identity of each: kind, mode, content or
 * the extraction-cache file it is linked to), so a build service can reuse a layer of the same
 * packages without reading their files; undefined when an entry has no identity (moved in from
 * scratch, without the extraction cache).
 */
function packageContentKey(writer: PrefixWriter, files: readonly string[]): string | undefined {
  const hash = createHash('sha256').update(`${CONTENT_KEY_FORMAT}\n`);
  for (const rel of files) {
    const identity = writer.identity(rel);
    if (identity === undefined) return undefined;
    hash.update(`${rel}\0${identity}\n`);
  }
  return `sha256:${hash.digest('hex')}`;
}

/**
 * Lays out a locked env as a prefix tree: downloads and verifies every file through the cache,
 * installs the conda packages (in lock order; each extracted once into the extraction cache and
 * linked from there, the next ones extracted while one is linked) and then the wheels, writes
 * `conda-meta/`, and gives every module valid bytecode (bytecode.ts: shipped pycs re-stamped, the
 * others compiled by a host python of the env's version), and normalises modes and mtimes. What
 * `prune` names is never written (pruning.ts).
 * Nothing of the env runs: no link scripts.
 */
export async function materializeEnv(options: MaterializeOptions): Promise<MaterializeResult> {
  const { lock, prefix, outDir, signal, onProgress } = options;
  if (!prefix.startsWith('/') || prefix.endsWith('/') || prefix.includes('\0') || /\/\.\.?(\/|$)/.test(prefix)) {
    throw new ConfigError(`The env prefix '${prefix}' is not a normalised absolute path.`, { hint: 'Use a path like /opt/prebuilt/env.' });
  }
  const mtime = options.mtime ?? sourceDateEpoch();
  const cache = options.cache ?? new PackageCache();
  const extractionCache = options.extractionCache === false ? undefined : new ExtractionCache(join(cache.dir, 'extracted'));
  const download = await cache.ensure(lock.packages, {
    ...(signal ? { signal } : {}),
    ...(onProgress ? { onProgress: (d: DownloadProgress) => onProgress({ phase: 'download', download: d }) } : {}),
  });

  const temp = `${outDir}.partial-${process.pid}-${randomBytes(4).toString('hex')}`;
  const pruning = new Pruning(options.prune);
  let installed: InstallLog;
  let packageFiles: PackageFiles[];
  try {
    const writer = await PrefixWriter.open(temp);
    await writer.mkdir('conda-meta', 'conda-meta');
    // Only the materializer writes conda-meta: a package that puts files there (directly or
    // through a link) could forge the env's records.
    writer.reserve('conda-meta');
    const entryDirs = new Map<string, string>();
    const pass = new BytecodePass({ writer, prefix, pythonVersion: lock.pythonVersion, mtime, cacheDir: join(cache.dir, 'bytecode'), derivedDir: (label) => entryDirs.get(label), ...(signal ? { signal } : {}) });
    installed = await installPackages({ ...options, pruning }, writer, download, extractionCache, mtime, { pass, entryDirs });
    const when = new Date(mtime * 1000).toISOString().replace('T', ' ').slice(0, 19);
    const { history } = installed;
    const historyText = history.length > 0 ? `==> ${when} <==\n# cmd: prebuilt materialize (lock ${lock.specHash})\n${history.join('\n')}\n` : '';
    await writer.writeFile('conda-meta/history', historyText, 0o644, 'conda-meta/history', { reserved: true });
    // Every link, now that all packages are in, must still lead inside the prefix.
    await writer.verifyLinks();
    // Every module not settled as its package was installed gets bytecode valid under the
    // normalised mtime (bytecode.ts): the wheels', and any a later package touched.
    const bytecode = await pass.finish();
    installed.warnings.push(...bytecode.warnings);
    packageFiles = filesByPackage(lock, writer);
    await normaliseTree(temp, mtime, writer.linkedFiles());
    if (await stat(outDir).catch(() => undefined)) await rm(outDir, { recursive: true, force: true });
    await rename(temp, outDir);
  } catch (error) {
    await rm(temp, { recursive: true, force: true });
    throw error;
  }
  await extractionCache?.prune();
  log('materialized %d packages into %s (for %s)', lock.packages.length, outDir, prefix);
  return {
    outDir,
    prefix,
    pythonVersion: lock.pythonVersion,
    packages: lock.packages.length,
    filesDownloaded: download.filesDownloaded,
    bytesDownloaded: download.bytesDownloaded,
    linkScriptPackages: installed.linkScriptPackages,
    warnings: installed.warnings,
    packageFiles,
    pruned: pruning.summary(),
  };
}
