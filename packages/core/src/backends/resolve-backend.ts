import { isAbsolute, resolve as resolvePath } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type {
  BackendDefinition,
  BackendKind,
  BuildServiceDefinition,
  ImageRegistryDefinition,
} from '../contracts.js';
import { BackendInvalidError, BackendNotFoundError, ConfigError, errorMessage } from '../errors.js';
import { createLogger } from '../logger.js';
import { registeredBackend } from './backend-registry.js';
import { describeKnown, knownBackend, knownBackends, knownNames, type BackendCatalogue } from './backend-catalogue.js';
import { kindLabel, withArticle } from './builtin-backends.js';
import { cliInstallKind, installCommand } from './cli-install.js';
import { closestName } from './closest-name.js';
import { isDirectory, isFile, packageOfFile, resolveModuleFrom } from './package-lookup.js';
import { validateBackendDefinition } from './validate-definition.js';

const log = createLogger('core:backends');

/** Which step of the lookup found a backend. */
export type BackendSource = 'registered' | 'builtin' | 'convention' | 'package' | 'path';

/** The definition type for a kind. */
export type DefinitionOfKind<K extends BackendKind> = K extends 'build-service'
  ? BuildServiceDefinition
  : ImageRegistryDefinition;

export interface ResolveBackendOptions<K extends BackendKind = BackendKind> {
  kind: K;
  /** What the user selected: a built-in name, a third-party name, a package name or a file path. */
  name: string;
  /** The user's project directory; packages are resolved from here first. Default: process.cwd(). */
  cwd?: string;
  /** The CLI's install directory; packages are resolved from here second (global installs). */
  cliDir?: string;
  /** Definitions passed in code (e.g. to createPrebuilt); checked before registerBackend's registry. */
  registered?: readonly BackendDefinition[];
  /** The setting the name came from, named in messages (e.g. `METAFLOW_PREBUILT_BUILD_SERVICE`). */
  setting?: string;
  /**
   * The first-party backends known by name (installed or not). Default: the catalogue the CLI
   * package at `cliDir` declares in its package.json, plus the `@prebuilt` packages installed.
   */
  catalogue?: BackendCatalogue;
}

export interface ResolvedBackend<D extends BackendDefinition = BackendDefinition> {
  definition: D;
  kind: D['kind'];
  /** The name as selected. */
  name: string;
  source: BackendSource;
  /** The package it was loaded from (absent for backends registered in code and file paths). */
  packageName?: string;
  /** The package's version, when it has a package.json. */
  version?: string;
  /** The module file that was imported. */
  path?: string;
  /** The directory the package was resolved from (the project or the CLI's install directory). */
  resolvedFrom?: string;
}

/** One thing the resolver will try, in order. */
export type BackendCandidate =
  | { type: 'package'; packageName: string; source: 'builtin' | 'convention' | 'package' }
  | { type: 'path'; path: string };

/** True when a selection is a file path rather than a name (`/abs`, `./rel`, `../rel`, `file:` URL). */
function isPathSelection(name: string): boolean {
  return name.startsWith('./') || name.startsWith('../') || name.startsWith('file:') || name === '.' || isAbsolute(name) || /^[A-Za-z]:[\\/]/.test(name);
}

const PACKAGE_SPECIFIER = /^(?:@[a-z0-9][\w.~-]*\/)?[a-z0-9~][\w.~-]*(?:\/[^\s]+)?$/i;
const BARE_NAME = /^[a-z0-9~][\w.~-]*$/i;
const SCOPED_NAME = /^@([a-z0-9][\w.~-]*)\/([a-z0-9~][\w.~-]*)$/i;

/**
 * The candidates for a selection, in lookup order (after the in-code registry):
 * a known first-party name → its package only (`@prebuilt/<name>`); `foo` → `prebuilt-backend-foo`, then `foo`;
 * `@acme/foo` → `@acme/prebuilt-backend-foo`, then `@acme/foo`; anything else (a package
 * subpath, a full name) as given; a path → that file, relative to `cwd`.
 */
export function backendCandidates(name: string, cwd: string = process.cwd(), known: BackendCatalogue = []): BackendCandidate[] {
  if (isPathSelection(name)) {
    return [{ type: 'path', path: name.startsWith('file:') ? fileURLToPath(name) : resolvePath(cwd, name) }];
  }
  const firstParty = knownBackend(known, name);
  if (firstParty !== undefined) {
    return [{ type: 'package', packageName: firstParty.packageName, source: 'builtin' }];
  }
  const candidates: BackendCandidate[] = [];
  const scoped = SCOPED_NAME.exec(name);
  if (BARE_NAME.test(name) && !name.startsWith('prebuilt-backend-')) {
    candidates.push({ type: 'package', packageName: `prebuilt-backend-${name}`, source: 'convention' });
  } else if (scoped && !scoped[2]!.startsWith('prebuilt-backend-')) {
    candidates.push({ type: 'package', packageName: `@${scoped[1]}/prebuilt-backend-${scoped[2]}`, source: 'convention' });
  }
  candidates.push({ type: 'package', packageName: name, source: 'package' });
  return candidates;
}

/** The package name of a specifier that may carry a subpath (`@a/b/c` → `@a/b`, `a/b` → `a`). */
function packageRootName(specifier: string): string {
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]!;
}

/** The directories packages are resolved from: the project, then the CLI's install directory. */
export function resolutionDirs(cwd: string, cliDir: string | undefined): string[] {
  const dirs = [resolvePath(cwd)];
  if (cliDir !== undefined && resolvePath(cliDir) !== dirs[0]) dirs.push(resolvePath(cliDir));
  return dirs;
}

function defaultExport(namespace: Record<string, unknown>): unknown {
  let value = namespace.default;
  // A CommonJS module compiled from ESM: `exports.default = …` arrives as `default.default`.
  if (typeof value === 'object' && value !== null && (value as { __esModule?: unknown }).__esModule === true && 'default' in value) {
    value = (value as { default: unknown }).default;
  }
  return value;
}

async function loadDefinition(
  url: string,
  kind: BackendKind,
  source: { backend: string; packageName: string },
): Promise<BackendDefinition> {
  let namespace: Record<string, unknown>;
  try {
    namespace = (await import(url)) as Record<string, unknown>;
  } catch (error) {
    throw new BackendInvalidError(
      `Backend '${source.backend}' was found (${source.packageName}, ${fileURLToPath(url)}) but failed to load: ${errorMessage(error)}`,
      source,
      { cause: error, hint: `Reinstall ${source.packageName}, or run with --verbose to see the stack trace.` },
    );
  }
  if (!('default' in namespace)) {
    const names = Object.keys(namespace);
    throw new BackendInvalidError(
      `Backend '${source.backend}' from ${source.packageName} is not a valid prebuilt backend: it has no default export` +
        (names.length > 0 ? ` (it exports ${names.map((n) => `'${n}'`).join(', ')})` : '') +
        '.',
      source,
      { hint: 'A backend module must `export default defineBuildService({...})` or `export default defineImageRegistry({...})`.' },
    );
  }
  return validateBackendDefinition(defaultExport(namespace), source, kind);
}

/**
 * Finds, loads and checks the backend a name selects. Lookup order: definitions passed in
 * `registered`, then registerBackend's registry; built-in names → `@prebuilt/<name>`; the
 * third-party convention (`prebuilt-backend-<name>`, `@scope/prebuilt-backend-<name>`); the
 * name as a full package name, or a file path. Packages resolve from `cwd`, then `cliDir`.
 *
 * @throws BackendNotFoundError listing every candidate and directory tried, with the reason.
 * @throws BackendInvalidError when what was found is not a backend of this kind and apiVersion.
 */
export async function resolveBackend<K extends BackendKind>(
  options: ResolveBackendOptions<K>,
): Promise<ResolvedBackend<DefinitionOfKind<K>>> {
  const { kind, setting } = options;
  const name = options.name.trim();
  const cwd = resolvePath(options.cwd ?? process.cwd());
  type Result = ResolvedBackend<DefinitionOfKind<K>>;
  const dirs = resolutionDirs(cwd, options.cliDir);
  const known = knownBackends({ dirs, cliDir: options.cliDir, catalogue: options.catalogue });

  if (name === '') {
    throw new ConfigError(`The ${kindLabel(kind)} name is empty.`, {
      ...(setting ? { setting } : {}),
      hint: `${setting ? `Set ${setting} to` : 'Use'} one of the names \`prebuilt backends\` lists. ${describeKnown(known)}`,
    });
  }

  const inCode =
    options.registered?.find((d) => d.kind === kind && d.name === name) ?? registeredBackend(kind, name);
  if (inCode !== undefined) {
    const definition = validateBackendDefinition(inCode, { backend: name, packageName: '(registered in code)' }, kind);
    log('%s %s: registered in code', kind, name);
    return { definition: definition as DefinitionOfKind<K>, kind: kind as Result['kind'], name, source: 'registered' };
  }

  if (!isPathSelection(name) && !PACKAGE_SPECIFIER.test(name)) {
    throw new ConfigError(`'${name}' is not ${withArticle(kindLabel(kind))} name, a package name or a file path.`, {
      ...(setting ? { setting } : {}),
      hint: `${describeKnown(known)} Third-party backends are named like \`acme\` (package prebuilt-backend-acme); paths start with ./, ../ or /.`,
    });
  }

  const tried: { candidate: string; from: string; reason: string }[] = [];

  for (const candidate of backendCandidates(name, cwd, known)) {
    if (candidate.type === 'path') {
      const { path } = candidate;
      let reason: string | undefined;
      if (isDirectory(path)) reason = 'is a directory; name the module file itself (e.g. index.js)';
      else if (!isFile(path)) reason = 'no such file';
      if (reason !== undefined) {
        log('%s %s: path %s: %s', kind, name, path, reason);
        tried.push({ candidate: path, from: cwd, reason });
        continue;
      }
      const definition = await loadDefinition(pathToFileURL(path).href, kind, { backend: name, packageName: path });
      log('%s %s: loaded file %s', kind, name, path);
      return { definition: definition as DefinitionOfKind<K>, kind: kind as Result['kind'], name, source: 'path', path, resolvedFrom: cwd };
    }

    for (const dir of dirs) {
      const found = resolveModuleFrom(candidate.packageName, dir);
      if (!found.found) {
        log('%s %s: %s from %s: %s', kind, name, candidate.packageName, dir, found.reason);
        tried.push({ candidate: candidate.packageName, from: dir, reason: found.reason });
        continue;
      }
      const definition = await loadDefinition(found.url, kind, { backend: name, packageName: candidate.packageName });
      const pkg = packageOfFile(found.path, packageRootName(candidate.packageName));
      log('%s %s: loaded %s %s from %s', kind, name, candidate.packageName, pkg?.json.version ?? '', found.path);
      return {
        definition: definition as DefinitionOfKind<K>,
        kind: kind as Result['kind'],
        name,
        source: candidate.source,
        packageName: candidate.packageName,
        ...(pkg?.json.version ? { version: pkg.json.version } : {}),
        path: found.path,
        resolvedFrom: dir,
      };
    }
  }

  throw notFoundError({ name, kind, cwd, cliDir: options.cliDir, setting, known }, tried);
}

interface Selection {
  name: string;
  kind: BackendKind;
  cwd: string;
  cliDir: string | undefined;
  setting: string | undefined;
  known: BackendCatalogue;
}

function notFoundError(selection: Selection, tried: { candidate: string; from: string; reason: string }[]): BackendNotFoundError {
  const { name, kind, cwd, cliDir, setting, known } = selection;
  const label = kindLabel(kind);
  const lines = [`Cannot find the ${label} '${name}'${setting ? ` (selected by ${setting})` : ''}. Tried:`];
  for (const t of tried) lines.push(`  - ${t.candidate} from ${t.from}: ${t.reason}`);
  const otherKind = knownBackend(known, name)?.kind;
  if (otherKind !== undefined && otherKind !== kind) {
    lines.push(`'${name}' is a built-in ${kindLabel(otherKind)}, not ${withArticle(label)}.`);
  }
  // A typo of a built-in name: suggest the built-in, never `npm i` of a look-alike package name.
  const meant = otherKind === undefined && !isPathSelection(name) ? closestName(name, knownNames(known, kind)) : undefined;
  if (meant !== undefined) lines.push(`Did you mean ${meant}?`);
  lines.push(describeKnown(known));

  let hint: string;
  const firstPackage = tried.find((t) => !isPathSelection(t.candidate) && !isAbsolute(t.candidate));
  if (meant !== undefined) {
    hint = `Did you mean ${meant}? ${setting ? `Set ${setting}=${meant}` : `Select ${meant}`} (a built-in ${label}).`;
  } else if (otherKind !== undefined && otherKind !== kind) {
    hint = `${setting ? `Set ${setting} to` : 'Select'} ${withArticle(label)}, e.g. ${knownNames(known, kind).join(', ')}.`;
  } else if (isPathSelection(name)) {
    hint = `Check the path (relative paths are resolved from ${cwd}), or select a backend by name.`;
  } else if (firstPackage !== undefined) {
    const pkg = packageRootName(firstPackage.candidate);
    // Where the CLI finds it: beside a global prebuilt (npm i -g), else in the project (and a
    // global prebuilt finds a project's backend too).
    hint =
      cliDir !== undefined && cliInstallKind(cliDir, cwd) === 'global'
        ? `Install it beside prebuilt: ${installCommand(pkg, cliDir, cwd)} (or in your project: npm i -D ${pkg})`
        : `Install it in your project: ${installCommand(pkg, cliDir, cwd)}`;
  } else {
    hint = 'Run `prebuilt backends` to see what is installed.';
  }
  return new BackendNotFoundError(lines.join('\n'), { backend: name, kind, tried }, { hint });
}
