import { basename, dirname, join, resolve as resolvePath } from 'node:path';
import type { BackendKind } from '../contracts.js';
import { registeredBackends } from './backend-registry.js';
import { backendManifest, knownBackends, type BackendCatalogue, type KnownBackend } from './backend-catalogue.js';
import { findInstalledPackage, listDir, readPackageJson, resolveModuleFrom, type PackageJson } from './package-lookup.js';
import { backendCandidates, resolutionDirs } from './resolve-backend.js';

/** One row of `prebuilt backends`. */
export interface BackendListing {
  /** The name it is selected by. */
  name: string;
  kind: BackendKind;
  /** `builtin` (ships with prebuilt), `third-party` (an installed package declaring a "prebuilt" field), `registered` (in code). */
  source: 'builtin' | 'third-party' | 'registered';
  /** The package it comes from (null for backends registered in code). */
  packageName: string | null;
  /** The installed version, or null when not installed. */
  version: string | null;
  installed: boolean;
  /** The installed package's directory. */
  packageDir: string | null;
  description: string | null;
}

export interface ListBackendsOptions {
  /** The user's project directory. Default: process.cwd(). */
  cwd?: string;
  /** The CLI's install directory (its package directory). */
  cliDir?: string;
  /** The first-party backends known by name; default: the CLI's catalogue plus the installed `@prebuilt` backends. */
  catalogue?: BackendCatalogue;
}

export { backendManifest };

/**
 * The name that selects a third-party package: its declared name (scoped like the package) when
 * the lookup of that name reaches the package (`acme` → prebuilt-backend-acme, `foo` in @acme →
 * `@acme/foo`), otherwise the full package name.
 */
function selectionName(declared: string, packageName: string, known: BackendCatalogue): string {
  const scope = packageName.startsWith('@') ? packageName.split('/')[0] : undefined;
  const names = scope && !declared.startsWith('@') ? [`${scope}/${declared}`, declared] : [declared];
  const reaching = names.find((n) => backendCandidates(n, undefined, known).some((c) => c.type === 'package' && c.packageName === packageName));
  return reaching ?? packageName;
}

/** The nearest directory at or above `dir` with a package.json (the project root for a subdirectory). */
function nearestPackageDir(dir: string): string {
  let current = dir;
  for (;;) {
    if (readPackageJson(join(current, 'package.json'))) return current;
    const parent = dirname(current);
    if (parent === current) return dir;
    current = parent;
  }
}

function directDependencies(dir: string): string[] {
  const json = readPackageJson(join(dir, 'package.json'));
  if (!json) return [];
  return [
    ...Object.keys(json.dependencies ?? {}),
    ...Object.keys(json.devDependencies ?? {}),
    ...Object.keys(json.optionalDependencies ?? {}),
  ];
}

/**
 * What `prebuilt backends` shows: every first-party backend known (the CLI's catalogue, installed
 * or not, and every installed `@prebuilt` package declaring a `"prebuilt"` field) and every
 * installed third-party backend. Third-party backends are found by reading the `"prebuilt"` field
 * of the package.json of each direct dependency of the project (the nearest package.json at or
 * above `cwd`) and of the CLI package (`cliDir`), and of the `prebuilt-backend-*` packages beside
 * a global CLI — node_modules is never crawled. Nothing is imported.
 */
export function listBackends(options: ListBackendsOptions = {}): BackendListing[] {
  const cwd = resolvePath(options.cwd ?? process.cwd());
  const dirs = resolutionDirs(cwd, options.cliDir);
  const listings: BackendListing[] = [];

  const known = knownBackends({ dirs, cliDir: options.cliDir, catalogue: options.catalogue });
  for (const entry of known) listings.push(firstPartyListing(entry, dirs));

  const seen = new Set(listings.map((l) => l.packageName));
  const candidates = [
    ...dirs.map(nearestPackageDir).flatMap((dir) => directDependencies(dir).map((dependency) => ({ dependency, dir }))),
    ...globalNeighbours(options.cliDir),
  ];
  for (const { dependency, dir } of candidates) {
    if (seen.has(dependency)) continue;
    const found = findInstalledPackage(dependency, dir);
    if (!found) continue;
    const manifest = backendManifest(found.json);
    if (!manifest) continue;
    seen.add(dependency);
    listings.push({
      name: selectionName(manifest.name, dependency, known),
      kind: manifest.kind,
      source: 'third-party',
      packageName: dependency,
      version: found.json.version ?? null,
      installed: true,
      packageDir: found.dir,
      description: found.json.description ?? null,
    });
  }

  for (const definition of registeredBackends()) {
    listings.push({
      name: definition.name,
      kind: definition.kind,
      source: 'registered',
      packageName: null,
      version: null,
      installed: true,
      packageDir: null,
      description: definition.description ?? null,
    });
  }
  return listings;
}

/** A first-party backend's row: installed when importable from one of `dirs`, as the resolver would see it. */
function firstPartyListing(entry: KnownBackend, dirs: readonly string[]): BackendListing {
  let found: { dir: string; json: PackageJson } | undefined;
  for (const dir of dirs) {
    if (resolveModuleFrom(entry.packageName, dir).found) {
      found = findInstalledPackage(entry.packageName, dir);
      if (found) break;
    }
  }
  return {
    name: entry.name,
    kind: entry.kind,
    source: 'builtin',
    packageName: entry.packageName,
    version: found?.json.version ?? null,
    installed: found !== undefined,
    packageDir: found?.dir ?? null,
    description: found?.json.description ?? null,
  };
}

/**
 * Third-party backends installed next to a global CLI (`<prefix>/lib/node_modules/<cli>`): the
 * packages named by the convention (`prebuilt-backend-*`, `@scope/prebuilt-backend-*`) in the
 * CLI's own node_modules directory — one directory and its scopes, never the whole tree.
 */
function globalNeighbours(cliDir: string | undefined): { dependency: string; dir: string }[] {
  if (cliDir === undefined) return [];
  let modules = dirname(resolvePath(cliDir));
  if (basename(modules).startsWith('@')) modules = dirname(modules);
  if (basename(modules) !== 'node_modules') return [];
  const names: string[] = [];
  for (const entry of listDir(modules)) {
    if (entry.startsWith('prebuilt-backend-')) names.push(entry);
    else if (entry.startsWith('@')) for (const scoped of listDir(join(modules, entry))) if (scoped.startsWith('prebuilt-backend-')) names.push(`${entry}/${scoped}`);
  }
  return names.map((dependency) => ({ dependency, dir: dirname(modules) }));
}
