import { randomBytes } from 'node:crypto';
import { rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { CancelledError, ConfigError, compareBytes, createLogger, type LockedEnv, type PrefixLayersPackage } from '@prebuilt/core';
import { PackageCache, type DownloadProgress } from '../cache/package-cache.js';
import { validateBytecode } from './bytecode.js';
import { installCondaPackage } from './conda-install.js';
import { normaliseTree, sourceDateEpoch } from './deterministic-tar.js';
import { PrefixWriter } from './prefix-writer.js';
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
  /** Seconds since 1970 for every mtime (default: SOURCE_DATE_EPOCH, else 0). */
  mtime?: number;
  onProgress?: (progress: MaterializeProgress) => void;
  signal?: AbortSignal;
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
   * give every package its own image layer. Entries whose content depends on the env rather than
   * the package alone (`conda-meta/`, a wheel's REQUESTED and RECORD) are in no package's list.
   */
  packageFiles: PackageFiles[];
}

/** The entries (relative to the prefix, sorted) one locked package installed: what `prefix-layers.json` lists per package. */
export type PackageFiles = PrefixLayersPackage;

/** True for an entry whose content depends on the env (the request), not only on its package. */
export function isEnvSpecificEntry(rel: string): boolean {
  return rel === 'conda-meta' || rel.startsWith('conda-meta/') || /\.dist-info\/(REQUESTED|RECORD)$/.test(rel);
}

const normaliseName = (name: string): string => name.toLowerCase().replace(/[-_.]+/g, '-');

/**
 * Lays out a locked env as a prefix tree: downloads and verifies every file through the cache,
 * installs the conda packages (in lock order) and then the wheels, writes `conda-meta/`, and
 * gives every module valid bytecode (bytecode.ts: shipped pycs re-stamped, the others compiled by
 * a host python of the env's version), and normalises modes and mtimes. Nothing of the env runs:
 * no link scripts.
 */
export async function materializeEnv(options: MaterializeOptions): Promise<MaterializeResult> {
  const { lock, prefix, outDir, signal, onProgress } = options;
  if (!prefix.startsWith('/') || prefix.endsWith('/') || prefix.includes('\0') || /\/\.\.?(\/|$)/.test(prefix)) {
    throw new ConfigError(`The env prefix '${prefix}' is not a normalised absolute path.`, { hint: 'Use a path like /opt/prebuilt/env.' });
  }
  const mtime = options.mtime ?? sourceDateEpoch();
  const cache = options.cache ?? new PackageCache();
  const pythonVersion = lock.pythonVersion;

  const download = await cache.ensure(lock.packages, {
    ...(signal ? { signal } : {}),
    ...(onProgress ? { onProgress: (d: DownloadProgress) => onProgress({ phase: 'download', download: d }) } : {}),
  });

  const temp = `${outDir}.partial-${process.pid}-${randomBytes(4).toString('hex')}`;
  const warnings: string[] = [];
  const linkScriptPackages: string[] = [];
  const packageFiles: PackageFiles[] = [];
  try {
    const writer = await PrefixWriter.open(temp);
    await writer.mkdir('conda-meta', 'conda-meta');
    // Only the materializer writes conda-meta: a package that puts files there (directly or
    // through a link) could forge the env's records.
    writer.reserve('conda-meta');
    const requestedConda = new Map<string, string>();
    for (const [key, spec] of Object.entries(lock.request.conda)) {
      const name = key.includes('::') ? key.slice(key.lastIndexOf('::') + 2) : key;
      requestedConda.set(name, spec ? `${name} ${spec}` : name);
    }
    requestedConda.set('python', `python ${lock.request.python}.*`);
    const requestedPypi = new Set(Object.keys(lock.request.pypi).map(normaliseName));
    const history: string[] = [];

    let done = 0;
    for (const pkg of lock.packages) {
      if (signal?.aborted) throw new CancelledError('Materializing the env was cancelled.', { cause: signal.reason });
      const file = download.paths.get(pkg.sha256.toLowerCase())!;
      if (pkg.kind === 'conda') {
        const result = await installCondaPackage(file, pkg, {
          writer,
          prefix,
          pythonVersion,
          requestedSpec: requestedConda.get(pkg.name) ?? '',
        });
        const { record } = result;
        await writer.writeFile(
          `conda-meta/${record.name}-${record.version}-${record.build}.json`,
          `${JSON.stringify(record, null, 2)}\n`,
          0o644,
          pkg.filename,
          { reserved: true },
        );
        history.push(`+${record.channel}::${record.name}-${record.version}-${record.build}`);
        if (result.hasLinkScripts) {
          linkScriptPackages.push(pkg.name);
          warnings.push(
            `${pkg.name} has a pre-link or post-link script, which prebuilt does not run; if the package needs it, use the micromamba recipe (METAFLOW_PREBUILT_RECIPE=micromamba).`,
          );
        }
        for (const path of result.clobbered) warnings.push(`${pkg.filename} replaced '${path}' installed by an earlier package.`);
      } else {
        const result = await installWheel(file, pkg, { writer, prefix, pythonVersion, requested: requestedPypi.has(normaliseName(pkg.name)) });
        for (const path of result.clobbered) warnings.push(`${pkg.filename} replaced '${path}' installed by an earlier package.`);
      }
      done += 1;
      onProgress?.({ phase: 'install', filename: pkg.filename, done, total: lock.packages.length });
    }

    const when = new Date(mtime * 1000).toISOString().replace('T', ' ').slice(0, 19);
    await writer.writeFile(
      'conda-meta/history',
      history.length > 0 ? `==> ${when} <==\n# cmd: prebuilt materialize (lock ${lock.specHash})\n${history.join('\n')}\n` : '',
      0o644,
      'conda-meta/history',
      { reserved: true },
    );
    // Every link, now that all packages are in, must still lead inside the prefix.
    await writer.verifyLinks();
    // Every module gets bytecode valid under the normalised mtime (bytecode.ts); after the links are
    // verified, as it reads and re-stamps files by their paths.
    warnings.push(...(await validateBytecode({ writer, prefix, pythonVersion, mtime, cacheDir: join(cache.dir, 'bytecode'), ...(signal ? { signal } : {}) })).warnings);
    const byLabel = new Map<string, string[]>();
    for (const [rel, label] of writer.owners()) {
      if (isEnvSpecificEntry(rel)) continue;
      const list = byLabel.get(label);
      if (list) list.push(rel);
      else byLabel.set(label, [rel]);
    }
    for (const pkg of lock.packages) {
      const files = (byLabel.get(pkg.filename) ?? []).sort(compareBytes);
      packageFiles.push({ kind: pkg.kind, name: pkg.name, version: pkg.version, filename: pkg.filename, sha256: pkg.sha256.toLowerCase(), files });
    }
    await normaliseTree(temp, mtime);
    if (await stat(outDir).catch(() => undefined)) await rm(outDir, { recursive: true, force: true });
    await rename(temp, outDir);
  } catch (error) {
    await rm(temp, { recursive: true, force: true });
    throw error;
  }
  log('materialized %d packages into %s (for %s)', lock.packages.length, outDir, prefix);
  return {
    outDir,
    prefix,
    pythonVersion,
    packages: lock.packages.length,
    filesDownloaded: download.filesDownloaded,
    bytesDownloaded: download.bytesDownloaded,
    linkScriptPackages,
    warnings,
    packageFiles,
  };
}
