import { readdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { dirname, join, parse } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { resolve as resolveModule } from 'import-meta-resolve';
import { errorMessage } from '../errors.js';

/** The fields of a package.json prebuilt reads. */
export interface PackageJson {
  name?: string;
  version?: string;
  description?: string;
  dependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  /** A backend package declares itself here: `{ "kind": "build-service", "name": "acme" }`. */
  prebuilt?: unknown;
  /** A CLI package names the first-party backends it knows here: `{ "build-service": { "docker": "@prebuilt/docker" } }`. */
  prebuiltBackends?: unknown;
}

export type ModuleResolution =
  | { found: true; url: string; path: string }
  | { found: false; reason: string };

/**
 * Resolves an ES module specifier the way Node's `import` would from a file in `dir`
 * (walking up node_modules directories from there, following pnpm's symlinks).
 */
export function resolveModuleFrom(specifier: string, dir: string): ModuleResolution {
  let url: string;
  try {
    url = resolveModule(specifier, pathToFileURL(join(dir, '__prebuilt_resolve__.js')).href);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const message = errorMessage(error);
    if (code === 'ERR_MODULE_NOT_FOUND' && /Cannot find package/.test(message)) {
      return { found: false, reason: 'not installed' };
    }
    // Installed but unusable: a missing entry file, a bad "exports" map, …
    return { found: false, reason: `installed but cannot be imported: ${message.split('\n')[0]}` };
  }
  if (!url.startsWith('file:')) return { found: false, reason: `resolves to ${url}, which is not a file` };
  return { found: true, url, path: fileURLToPath(url) };
}

export function readPackageJson(path: string): PackageJson | undefined {
  try {
    const value: unknown = JSON.parse(readFileSync(path, 'utf8'));
    return typeof value === 'object' && value !== null ? (value as PackageJson) : undefined;
  } catch {
    return undefined;
  }
}

/** The package a resolved module file belongs to: the nearest package.json above it (with `name`, when given). */
export function packageOfFile(filePath: string, name?: string): { dir: string; json: PackageJson } | undefined {
  let dir = dirname(filePath);
  const { root } = parse(dir);
  for (;;) {
    const json = readPackageJson(join(dir, 'package.json'));
    if (json && (name === undefined || json.name === name)) return { dir, json };
    if (dir === root) return undefined;
    dir = dirname(dir);
  }
}

/**
 * Finds an installed package's directory the way Node looks a package up from `dir`
 * (`<dir>/node_modules/<name>`, then each parent's), without importing it. Returns the real path.
 */
export function findInstalledPackage(name: string, dir: string): { dir: string; json: PackageJson } | undefined {
  let current = dir;
  const { root } = parse(current);
  for (;;) {
    const candidate = join(current, 'node_modules', name);
    const json = readPackageJson(join(candidate, 'package.json'));
    if (json) {
      let real = candidate;
      try {
        real = realpathSync(candidate);
      } catch {
        // keep the unresolved path
      }
      return { dir: real, json };
    }
    if (current === root) return undefined;
    current = dirname(current);
  }
}

export function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

export function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/** The names in `dir`, sorted; none when it cannot be read (missing, not a directory). */
export function listDir(dir: string): string[] {
  try {
    return readdirSync(dir).sort();
  } catch {
    return [];
  }
}
