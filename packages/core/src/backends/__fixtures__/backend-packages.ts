/**
 * Writes real install layouts (package.json + node_modules/<pkg>/{package.json,index.js}) into
 * temporary directories, the way npm, pnpm and a global install lay them out.
 */
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { afterEach } from 'vitest';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';

export interface FixtureBackend {
  packageName: string;
  version?: string;
  kind?: 'build-service' | 'image-registry';
  /** The definition's name. Default: the package name's last segment. */
  name?: string;
  /** Overrides the whole index.js. */
  source?: string;
  /** The package.json `"prebuilt"` field; default `{ kind, name }`; `null` for none. */
  manifest?: Record<string, unknown> | null;
  type?: 'module' | 'commonjs';
}

/** A definition module that needs nothing but Node (no @prebuilt/core in the temp project). */
export function definitionSource(
  fields: { apiVersion?: unknown; kind: string; name: string; marker?: string },
  type: 'module' | 'commonjs' = 'module',
): string {
  const body = `{
  apiVersion: ${JSON.stringify(fields.apiVersion ?? 1)},
  kind: ${JSON.stringify(fields.kind)},
  name: ${JSON.stringify(fields.name)},
  description: 'fixture backend ${fields.marker ?? fields.name}',
  marker: ${JSON.stringify(fields.marker ?? fields.name)},
  create(options, context) {
    return {
      name: ${JSON.stringify(fields.name)},
      options,
      context,
      async buildAndPush() { return { ok: false, reason: 'fixture', logTail: [] }; },
      imageTag(input) { return 'fixture/' + input.envId; },
    };
  },
}`;
  return type === 'module' ? `export default ${body};\n` : `module.exports = ${body};\n`;
}

export function tempDir(label: string): string {
  return mkdtempSync(join(tmpdir(), `prebuilt-${label}-`));
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** A `newDir(label)` for a test file: each directory it makes is removed after each test. */
export function tempDirsPerTest(): (label: string) => string {
  let dirs: string[] = [];
  afterEach(() => {
    for (const dir of dirs) removeDir(dir);
    dirs = [];
  });
  return (label) => {
    const dir = tempDir(label);
    dirs.push(dir);
    return dir;
  };
}

function writeJson(path: string, value: unknown): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, `${JSON.stringify(value, null, 2)}\n`);
}

/** Writes a backend package into `packageDir` (the directory that holds its package.json). */
export function writeBackendPackage(packageDir: string, backend: FixtureBackend): void {
  const kind = backend.kind ?? 'build-service';
  const name = backend.name ?? backend.packageName.split('/').pop()!.replace(/^prebuilt-backend-/, '');
  const type = backend.type ?? 'module';
  writeJson(join(packageDir, 'package.json'), {
    name: backend.packageName,
    version: backend.version ?? '1.0.0',
    description: `fixture ${backend.packageName}`,
    type,
    main: 'index.js',
    ...(backend.manifest === null ? {} : { prebuilt: backend.manifest ?? { kind, name } }),
  });
  writeFileSync(join(packageDir, 'index.js'), backend.source ?? definitionSource({ kind, name, marker: `${backend.packageName}@${backend.version ?? '1.0.0'}` }, type));
}

/** A project directory with a package.json listing `dependencies`. */
export function writeProject(dir: string, dependencies: Record<string, string> = {}, devDependencies: Record<string, string> = {}): void {
  writeJson(join(dir, 'package.json'), { name: 'fixture-project', version: '0.0.0', private: true, dependencies, devDependencies });
}

/** npm layout: `<project>/node_modules/<pkg>`. */
export function installNpm(projectDir: string, backend: FixtureBackend): string {
  const dir = join(projectDir, 'node_modules', backend.packageName);
  writeBackendPackage(dir, backend);
  return dir;
}

/**
 * pnpm layout: the package lives in `<root>/node_modules/.pnpm/<id>/node_modules/<pkg>`, the
 * importer gets a symlink `<importer>/node_modules/<pkg>` to it, and the package's own
 * dependencies are symlinked beside it inside the store entry.
 */
export function installPnpm(
  workspaceRoot: string,
  importerDir: string,
  backend: FixtureBackend,
  dependencies: FixtureBackend[] = [],
): string {
  const storeEntry = (b: FixtureBackend): string =>
    join(workspaceRoot, 'node_modules', '.pnpm', `${b.packageName.replace('/', '+')}@${b.version ?? '1.0.0'}`, 'node_modules');
  const real = join(storeEntry(backend), backend.packageName);
  writeBackendPackage(real, backend);
  for (const dependency of dependencies) {
    const depReal = join(storeEntry(dependency), dependency.packageName);
    writeBackendPackage(depReal, dependency);
    const link = join(storeEntry(backend), dependency.packageName);
    mkdirSync(dirname(link), { recursive: true });
    symlinkSync(relative(dirname(link), depReal), link, 'dir');
  }
  const link = join(importerDir, 'node_modules', backend.packageName);
  mkdirSync(dirname(link), { recursive: true });
  symlinkSync(relative(dirname(link), real), link, 'dir');
  return real;
}

/** The first-party catalogue the CLI declares (packages/cli/package.json), as tests pass it to core. */
export const FIRST_PARTY: readonly { name: string; kind: 'build-service' | 'image-registry'; packageName: string }[] = [
  ...['docker', 'buildx', 'kaniko', 'codebuild', 'oci'].map((name) => ({ name, kind: 'build-service' as const, packageName: `@prebuilt/${name}` })),
  ...['local', 'dockerhub', 'ecr', 'gcr'].map((name) => ({ name, kind: 'image-registry' as const, packageName: `@prebuilt/${name}` })),
];
