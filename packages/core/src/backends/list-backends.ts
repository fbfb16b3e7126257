import { dirname, join, resolve as resolvePath } from 'node:path';
import type { BackendKind } from '../contracts.js';
import { registeredBackends } from './backend-registry.js';
import { BUILTIN_BACKENDS, builtinPackageName } from './builtin-backends.js';
import { findInstalledPackage, readPackageJson, resolveModuleFrom, type PackageJson } from './package-lookup.js';
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
}

/** The `"prebuilt"` field of a backend package's package.json, if well-formed. */
export function backendManifest(json: PackageJson): { kind: BackendKind; name: string } | undefined {
  const field = json.prebuilt;
  if (typeof field !== 'object' || field === null) return undefined;
  const { kind, name } = field as { kind?: unknown; name?: unknown };
  if ((kind !== 'build-service' && kind !== 'image-registry') || typeof name !== 'string' || name === '') return undefined;
  return { kind, name };
}

/**
 * The name that selects a third-party package: its declared name (scoped like the package) when
 * the lookup of that name reaches the package (`acme` → prebuilt-backend-acme, `foo` in @acme →
 * `@acme/foo`), otherwise the full package name.
 */
function selectionName(declared: string, packageName: string): string {
  const scope = packageName.startsWith('@') ? packageName.split('/')[0] : undefined;
  const names = scope && !declared.startsWith('@') ? [`${scope}/${declared}`, declared] : [declared];
  const reaching = names.find((n) => backendCandidates(n).some((c) => c.type === 'package' && c.packageName === packageName));
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
 * What `prebuilt backends` shows: every built-in name (installed or not) and every installed
 * third-party backend. Third-party backends are found by reading the `"prebuilt"` field of the
 * package.json of each direct dependency of the project (the nearest package.json at or above
 * `cwd`) and of the CLI package (`cliDir`) — node_modules is never crawled. Nothing is imported.
 */
export function listBackends(options: ListBackendsOptions = {}): BackendListing[] {
  const cwd = resolvePath(options.cwd ?? process.cwd());
  const dirs = resolutionDirs(cwd, options.cliDir);
  const listings: BackendListing[] = [];

  for (const kind of Object.keys(BUILTIN_BACKENDS) as BackendKind[]) {
    for (const name of BUILTIN_BACKENDS[kind]) {
      const packageName = builtinPackageName(name);
      let found: { dir: string; json: PackageJson } | undefined;
      for (const dir of dirs) {
        // Installed = importable from there, exactly as the resolver would see it.
        if (resolveModuleFrom(packageName, dir).found) {
          found = findInstalledPackage(packageName, dir);
          if (found) break;
        }
      }
      listings.push({
        name,
        kind,
        source: 'builtin',
        packageName,
        version: found?.json.version ?? null,
        installed: found !== undefined,
        packageDir: found?.dir ?? null,
        description: found?.json.description ?? null,
      });
    }
  }

  const seen = new Set(listings.map((l) => l.packageName));
  for (const dir of dirs.map(nearestPackageDir)) {
    for (const dependency of directDependencies(dir)) {
      if (seen.has(dependency)) continue;
      const found = findInstalledPackage(dependency, dir);
      if (!found) continue;
      const manifest = backendManifest(found.json);
      if (!manifest) continue;
      seen.add(dependency);
      listings.push({
        name: selectionName(manifest.name, dependency),
        kind: manifest.kind,
        source: 'third-party',
        packageName: dependency,
        version: found.json.version ?? null,
        installed: true,
        packageDir: found.dir,
        description: found.json.description ?? null,
      });
    }
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
