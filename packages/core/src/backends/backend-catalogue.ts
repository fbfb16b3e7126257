import { dirname, join, parse, resolve as resolvePath } from 'node:path';
import type { BackendKind } from '../contracts.js';
import { listDir, readPackageJson, type PackageJson } from './package-lookup.js';

/** A first-party backend prebuilt knows by name, installed or not. */
export interface KnownBackend {
  name: string;
  kind: BackendKind;
  packageName: string;
}

/** The first-party backends a run knows: core holds none; the CLI declares them, installed ones declare themselves. */
export type BackendCatalogue = readonly KnownBackend[];

/** First-party backends are the packages of this npm scope that declare a `"prebuilt"` field. */
const FIRST_PARTY_SCOPE = '@prebuilt';

const KINDS: readonly BackendKind[] = ['build-service', 'image-registry'];

/** The `"prebuilt"` field of a backend package's package.json, if well-formed. */
export function backendManifest(json: PackageJson): { kind: BackendKind; name: string } | undefined {
  const field = json.prebuilt;
  if (typeof field !== 'object' || field === null) return undefined;
  const { kind, name } = field as { kind?: unknown; name?: unknown };
  if ((kind !== 'build-service' && kind !== 'image-registry') || typeof name !== 'string' || name === '') return undefined;
  return { kind, name };
}

/**
 * The catalogue a CLI package declares in its package.json:
 * `"prebuiltBackends": { "build-service": { "docker": "@prebuilt/docker" }, … }`.
 */
export function declaredCatalogue(json: PackageJson | undefined): KnownBackend[] {
  const catalogue = json?.prebuiltBackends;
  if (typeof catalogue !== 'object' || catalogue === null) return [];
  const known: KnownBackend[] = [];
  for (const kind of KINDS) {
    const names = (catalogue as Record<string, unknown>)[kind];
    if (typeof names !== 'object' || names === null) continue;
    for (const [name, packageName] of Object.entries(names)) {
      if (typeof packageName === 'string' && packageName.startsWith(`${FIRST_PARTY_SCOPE}/`)) known.push({ name, kind, packageName });
    }
  }
  return known;
}

function firstPartyOf(json: PackageJson | undefined): KnownBackend | undefined {
  if (!json?.name?.startsWith(`${FIRST_PARTY_SCOPE}/`)) return undefined;
  const manifest = backendManifest(json);
  return manifest && { ...manifest, packageName: json.name };
}

/** The packages of one `node_modules/@prebuilt/` directory that declare a `"prebuilt"` field. */
function scopeBackends(scopeDir: string): KnownBackend[] {
  return listDir(scopeDir).flatMap((entry) => firstPartyOf(readPackageJson(join(scopeDir, entry, 'package.json'))) ?? []);
}

/**
 * The first-party backends installed where `dir` resolves packages: each package in
 * `node_modules/@prebuilt/` of `dir` and its parents (one scope directory, never all of
 * node_modules) that declares a `"prebuilt"` field; and the package at `dir` itself when it is one.
 * `inScope` reads one scope directory.
 */
export function installedFirstParty(dir: string, inScope: (scopeDir: string) => readonly KnownBackend[] = scopeBackends): KnownBackend[] {
  const found: KnownBackend[] = [];
  const self = firstPartyOf(readPackageJson(join(dir, 'package.json')));
  if (self) found.push(self);
  const { root } = parse(resolvePath(dir));
  for (let current = resolvePath(dir); ; current = dirname(current)) {
    found.push(...inScope(join(current, 'node_modules', FIRST_PARTY_SCOPE)));
    if (current === root) return found;
  }
}

/**
 * The scope directories {@link knownBackends} has read in this process, and what they held: a
 * deploy resolves its build service and its registry and notes the settings of the services it
 * ignores, three looks at the same directories, which read each one once. A backend installed
 * there after that is seen by the next run.
 */
const scopeScans = new Map<string, readonly KnownBackend[]>();

function scannedOnce(scopeDir: string): readonly KnownBackend[] {
  let found = scopeScans.get(scopeDir);
  if (found === undefined) {
    found = scopeBackends(scopeDir);
    scopeScans.set(scopeDir, found);
  }
  return found;
}

/**
 * The first-party backends known to a run: the catalogue given (else the one the CLI package at
 * `cliDir` declares), then those installed from `dirs`, one per kind and name, in that order.
 * Each `node_modules/@prebuilt/` directory is read once per process.
 */
export function knownBackends(input: { dirs: readonly string[]; cliDir?: string | undefined; catalogue?: BackendCatalogue | undefined }): KnownBackend[] {
  const declared = input.catalogue ?? (input.cliDir === undefined ? [] : declaredCatalogue(readPackageJson(join(input.cliDir, 'package.json'))));
  const known: KnownBackend[] = [];
  for (const entry of [...declared, ...input.dirs.flatMap((dir) => installedFirstParty(dir, scannedOnce))]) {
    if (!known.some((k) => k.kind === entry.kind && k.name === entry.name)) known.push(entry);
  }
  return known;
}

/** The known backend a name selects, of any kind (the first of `kind`, when given). */
export function knownBackend(known: BackendCatalogue, name: string, kind?: BackendKind): KnownBackend | undefined {
  return known.find((k) => k.name === name && (kind === undefined || k.kind === kind));
}

/** The names of the known backends of a kind. */
export function knownNames(known: BackendCatalogue, kind: BackendKind): string[] {
  return known.filter((k) => k.kind === kind).map((k) => k.name);
}

/** A sentence naming every known first-party backend, for error messages. */
export function describeKnown(known: BackendCatalogue): string {
  const names = (kind: BackendKind) => knownNames(known, kind).join(', ') || '(none installed)';
  return `Built-in build services: ${names('build-service')}; built-in image registries: ${names('image-registry')}.`;
}
