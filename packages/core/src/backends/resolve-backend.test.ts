import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { BackendInvalidError, BackendNotFoundError, ConfigError, PrebuiltError } from '../errors.js';
import { defineBuildService, defineImageRegistry, type BuildService } from '../contracts.js';
import { registerBackend } from './backend-registry.js';
import { backendCandidates, resolveBackend } from './resolve-backend.js';
import { definitionSource, installNpm, installPnpm, writeBackendPackage, writeProject, FIRST_PARTY, tempDirsPerTest } from './__fixtures__/backend-packages.js';

const newDir = tempDirsPerTest();

function marker(resolved: { definition: unknown }): unknown {
  return (resolved.definition as { marker?: unknown }).marker;
}

async function rejection(promise: Promise<unknown>): Promise<PrebuiltError> {
  try {
    await promise;
  } catch (error) {
    if (PrebuiltError.isInstance(error)) return error;
    throw error;
  }
  throw new Error('expected a rejection');
}

describe('backendCandidates', () => {
  it('maps built-in names, the third-party convention, full names and paths, in order', () => {
    expect(backendCandidates('docker', undefined, FIRST_PARTY)).toEqual([{ type: 'package', packageName: '@prebuilt/docker', source: 'builtin' }]);
    expect(backendCandidates('ecr', undefined, FIRST_PARTY)).toEqual([{ type: 'package', packageName: '@prebuilt/ecr', source: 'builtin' }]);
    expect(backendCandidates('acme').map((c) => c.type === 'package' && c.packageName)).toEqual(['prebuilt-backend-acme', 'acme']);
    expect(backendCandidates('@acme/foo').map((c) => c.type === 'package' && c.packageName)).toEqual(['@acme/prebuilt-backend-foo', '@acme/foo']);
    expect(backendCandidates('prebuilt-backend-acme').map((c) => c.type === 'package' && c.packageName)).toEqual(['prebuilt-backend-acme']);
    expect(backendCandidates('@acme/tools/backend').map((c) => c.type === 'package' && c.packageName)).toEqual(['@acme/tools/backend']);
    expect(backendCandidates('./b/x.js', '/proj')).toEqual([{ type: 'path', path: '/proj/b/x.js' }]);
    expect(backendCandidates('/abs/x.js', '/proj')).toEqual([{ type: 'path', path: '/abs/x.js' }]);
  });
});

describe('resolveBackend in an npm project (real node_modules layout)', () => {
  let project: string;
  beforeEach(() => {
    project = newDir('npm-project');
    writeProject(project);
  });

  it('resolves a built-in name to @prebuilt/<name>', async () => {
    installNpm(project, { packageName: '@prebuilt/docker', version: '0.3.1', name: 'docker' });
    const resolved = await resolveBackend({ kind: 'build-service', name: 'docker', cwd: project });
    expect(resolved).toMatchObject({ source: 'builtin', packageName: '@prebuilt/docker', version: '0.3.1', name: 'docker', kind: 'build-service' });
    expect(resolved.resolvedFrom).toBe(project);
    expect(resolved.path).toBe(join(project, 'node_modules/@prebuilt/docker/index.js'));
    expect(resolved.definition.name).toBe('docker');
  });

  it('resolves `acme` to prebuilt-backend-acme', async () => {
    installNpm(project, { packageName: 'prebuilt-backend-acme', version: '2.0.0' });
    // A package named plainly `acme` must lose against the convention.
    installNpm(project, { packageName: 'acme', name: 'acme' });
    const resolved = await resolveBackend({ kind: 'build-service', name: 'acme', cwd: project });
    expect(resolved).toMatchObject({ source: 'convention', packageName: 'prebuilt-backend-acme', version: '2.0.0' });
    expect(marker(resolved)).toBe('prebuilt-backend-acme@2.0.0');
  });

  it('resolves `@acme/foo` to @acme/prebuilt-backend-foo', async () => {
    installNpm(project, { packageName: '@acme/prebuilt-backend-foo', kind: 'image-registry', name: 'foo' });
    const resolved = await resolveBackend({ kind: 'image-registry', name: '@acme/foo', cwd: project });
    expect(resolved).toMatchObject({ source: 'convention', packageName: '@acme/prebuilt-backend-foo', kind: 'image-registry' });
  });

  it('resolves a full package name as given when no conventional package exists', async () => {
    installNpm(project, { packageName: 'acme-tools', name: 'acme' });
    const resolved = await resolveBackend({ kind: 'build-service', name: 'acme-tools', cwd: project });
    expect(resolved).toMatchObject({ source: 'package', packageName: 'acme-tools' });
  });

  it('loads a CommonJS backend package', async () => {
    installNpm(project, { packageName: 'prebuilt-backend-cjs', type: 'commonjs' });
    const resolved = await resolveBackend({ kind: 'build-service', name: 'cjs', cwd: project });
    expect(resolved.definition.name).toBe('cjs');
  });

  it('loads an explicit file path, relative to cwd or absolute', async () => {
    mkdirSync(join(project, 'backends'));
    writeFileSync(join(project, 'backends/mine.mjs'), definitionSource({ kind: 'image-registry', name: 'mine' }));
    const relative = await resolveBackend({ kind: 'image-registry', name: './backends/mine.mjs', cwd: project });
    expect(relative).toMatchObject({ source: 'path', path: join(project, 'backends/mine.mjs') });
    expect(relative.definition.name).toBe('mine');
    const absolute = await resolveBackend({ kind: 'image-registry', name: join(project, 'backends/mine.mjs'), cwd: '/' });
    expect(absolute.path).toBe(join(project, 'backends/mine.mjs'));
  });

  it('calls the factory of what it loaded', async () => {
    installNpm(project, { packageName: 'prebuilt-backend-acme' });
    const resolved = await resolveBackend({ kind: 'build-service', name: 'acme', cwd: project });
    const service = (await resolved.definition.create({ a: 1 }, { env: {}, cwd: project })) as BuildService & { options: unknown };
    expect(service.options).toEqual({ a: 1 });
    expect(await service.buildAndPush({} as never)).toEqual({ ok: false, reason: 'fixture', logTail: [] });
  });

  it('fails for a missing package, naming every candidate, directory and reason, the built-ins and npm i', async () => {
    const cliDir = newDir('cli');
    const error = await rejection(
      resolveBackend({ kind: 'build-service', name: 'nope', cwd: project, cliDir, setting: 'METAFLOW_PREBUILT_BUILD_SERVICE', catalogue: FIRST_PARTY }),
    );
    expect(error).toBeInstanceOf(BackendNotFoundError);
    const notFound = error as BackendNotFoundError;
    expect(notFound.exitCode).toBe(2);
    expect(notFound.tried).toEqual([
      { candidate: 'prebuilt-backend-nope', from: project, reason: 'not installed' },
      { candidate: 'prebuilt-backend-nope', from: cliDir, reason: 'not installed' },
      { candidate: 'nope', from: project, reason: 'not installed' },
      { candidate: 'nope', from: cliDir, reason: 'not installed' },
    ]);
    expect(notFound.message).toContain("Cannot find the build service 'nope' (selected by METAFLOW_PREBUILT_BUILD_SERVICE)");
    expect(notFound.message).toContain(`prebuilt-backend-nope from ${project}: not installed`);
    expect(notFound.message).toContain(`prebuilt-backend-nope from ${cliDir}: not installed`);
    expect(notFound.message).toContain(`nope from ${cliDir}: not installed`);
    expect(notFound.message).toContain('Built-in build services: docker, buildx, kaniko, codebuild, oci');
    expect(notFound.message).toContain('built-in image registries: local, dockerhub, ecr, gcr');
    expect(notFound.hint).toBe('Install it in your project: npm i -D prebuilt-backend-nope');
  });

  it('a typo of a built-in name (dokcer) says "did you mean docker?" and suggests no npm i of a look-alike package', async () => {
    const error = await rejection(resolveBackend({ kind: 'build-service', name: 'dokcer', cwd: project, setting: 'METAFLOW_PREBUILT_BUILD_SERVICE', catalogue: FIRST_PARTY }));
    expect(error).toBeInstanceOf(BackendNotFoundError);
    expect(error.exitCode).toBe(2);
    expect(error.message).toContain('Did you mean docker?');
    expect(error.hint).toBe('Did you mean docker? Set METAFLOW_PREBUILT_BUILD_SERVICE=docker (a built-in build service).');
    expect(`${error.message}\n${error.hint}`).not.toMatch(/npm i/);
  });

  it('a built-in name in other case (OCI) says "did you mean oci?", not npm i of prebuilt-backend-OCI (npm names are lower case)', async () => {
    const error = await rejection(resolveBackend({ kind: 'build-service', name: 'OCI', cwd: project, setting: 'METAFLOW_PREBUILT_BUILD_SERVICE', catalogue: FIRST_PARTY }));
    expect(error).toBeInstanceOf(BackendNotFoundError);
    expect(error.message).toContain('Did you mean oci?');
    expect(error.hint).toBe('Did you mean oci? Set METAFLOW_PREBUILT_BUILD_SERVICE=oci (a built-in build service).');
    expect(`${error.message}\n${error.hint}`).not.toMatch(/npm i/);
  });

  it('suggests the @prebuilt package for a missing built-in', async () => {
    const error = await rejection(resolveBackend({ kind: 'build-service', name: 'kaniko', cwd: project, catalogue: FIRST_PARTY }));
    expect(error).toBeInstanceOf(BackendNotFoundError);
    expect(error.message).toContain(`@prebuilt/kaniko from ${project}: not installed`);
    expect(error.hint).toBe('Install it in your project: npm i -D @prebuilt/kaniko');
    // A global CLI (npm i -g metaflow-prebuilt): the global command first.
    const globalCli = join(project, 'prefix', 'lib', 'node_modules', 'metaflow-prebuilt');
    const global = await rejection(resolveBackend({ kind: 'build-service', name: 'kaniko', cwd: join(project, 'flows'), cliDir: globalCli, catalogue: FIRST_PARTY }));
    expect(global.hint).toBe('Install it beside prebuilt: npm i -g @prebuilt/kaniko (or in your project: npm i -D @prebuilt/kaniko)');
  });

  it('says so when a built-in name of the other kind is selected', async () => {
    const error = await rejection(resolveBackend({ kind: 'build-service', name: 'ecr', cwd: project, setting: 'METAFLOW_PREBUILT_BUILD_SERVICE', catalogue: FIRST_PARTY }));
    expect(error.message).toContain("'ecr' is a built-in image registry, not a build service");
    expect(error.hint).toContain('Set METAFLOW_PREBUILT_BUILD_SERVICE to a build service, e.g. docker');
  });

  it('fails for a missing path with the absolute path tried', async () => {
    const error = await rejection(resolveBackend({ kind: 'build-service', name: './missing.js', cwd: project }));
    expect(error).toBeInstanceOf(BackendNotFoundError);
    expect(error.message).toContain(`${join(project, 'missing.js')} from ${project}: no such file`);
    expect(error.hint).toContain(`relative paths are resolved from ${project}`);
  });

  it('rejects a wrong apiVersion, saying what it found and expected', async () => {
    installNpm(project, { packageName: 'prebuilt-backend-future', source: definitionSource({ apiVersion: 2, kind: 'build-service', name: 'future' }) });
    const error = await rejection(resolveBackend({ kind: 'build-service', name: 'future', cwd: project }));
    expect(error).toBeInstanceOf(BackendInvalidError);
    expect(error.exitCode).toBe(2);
    expect(error.message).toContain("Backend 'future' from prebuilt-backend-future is not a valid prebuilt backend");
    expect(error.message).toContain("'apiVersion' is 2, this prebuilt supports apiVersion 1");
    expect(error.hint).toContain('needs a newer prebuilt');
  });

  it('rejects a wrong shape, naming each problem', async () => {
    installNpm(project, { packageName: 'prebuilt-backend-shape', source: 'export default { apiVersion: 1, kind: "compiler", name: "" };\n' });
    const error = await rejection(resolveBackend({ kind: 'build-service', name: 'shape', cwd: project }));
    expect(error).toBeInstanceOf(BackendInvalidError);
    expect(error.message).toContain("'kind' is string \"compiler\", expected 'build-service' or 'image-registry'");
    expect(error.message).toContain("'name' is string \"\", expected a non-empty string");
    expect(error.message).toContain("'create' is undefined");
  });

  it('rejects a module without a default export, listing what it exports', async () => {
    installNpm(project, { packageName: 'prebuilt-backend-named', source: 'export const backend = {};\n' });
    const error = await rejection(resolveBackend({ kind: 'build-service', name: 'named', cwd: project }));
    expect(error).toBeInstanceOf(BackendInvalidError);
    expect(error.message).toContain("it has no default export (it exports 'backend')");
  });

  it('rejects a backend of the other kind', async () => {
    installNpm(project, { packageName: 'prebuilt-backend-reg', kind: 'image-registry', name: 'reg' });
    const error = await rejection(resolveBackend({ kind: 'build-service', name: 'reg', cwd: project }));
    expect(error).toBeInstanceOf(BackendInvalidError);
    expect(error.message).toContain("it is an image registry (kind 'image-registry'), but a build service was asked for");
  });

  it('reports a package that throws while loading, keeping the cause', async () => {
    installNpm(project, { packageName: 'prebuilt-backend-boom', source: 'throw new Error("boom at load");\n' });
    const error = await rejection(resolveBackend({ kind: 'build-service', name: 'boom', cwd: project }));
    expect(error).toBeInstanceOf(BackendInvalidError);
    expect(error.message).toContain('failed to load: boom at load');
    expect((error.cause as Error).message).toBe('boom at load');
  });

  it('rejects names that are neither names nor paths as configuration errors', async () => {
    await expect(resolveBackend({ kind: 'build-service', name: 'two words', cwd: project })).rejects.toBeInstanceOf(ConfigError);
    await expect(resolveBackend({ kind: 'build-service', name: '  ', cwd: project })).rejects.toBeInstanceOf(ConfigError);
  });
});

describe('resolveBackend: backends registered in code', () => {
  it('prefers registerBackend over an installed package, and forgets it after unregistering', async () => {
    const project = newDir('registered');
    writeProject(project);
    installNpm(project, { packageName: 'prebuilt-backend-acme' });
    const unregister = registerBackend(
      defineBuildService({ name: 'acme', create: () => ({ name: 'acme', buildAndPush: async () => ({ ok: true, digest: `sha256:${'0'.repeat(64)}` }) }) }),
    );
    try {
      const resolved = await resolveBackend({ kind: 'build-service', name: 'acme', cwd: project });
      expect(resolved.source).toBe('registered');
      expect(resolved.packageName).toBeUndefined();
    } finally {
      unregister();
    }
    const after = await resolveBackend({ kind: 'build-service', name: 'acme', cwd: project });
    expect(after.source).toBe('convention');
  });

  it('takes definitions passed in `registered`, matching kind and name', async () => {
    const registry = defineImageRegistry({ name: 'mem', create: () => ({}) as never });
    const resolved = await resolveBackend({ kind: 'image-registry', name: 'mem', cwd: newDir('reg'), registered: [registry] });
    expect(resolved.definition).toBe(registry);
    await expect(resolveBackend({ kind: 'build-service', name: 'mem', cwd: newDir('reg'), registered: [registry] })).rejects.toBeInstanceOf(
      BackendNotFoundError,
    );
  });

  it('registerBackend refuses an invalid definition', () => {
    expect(() => registerBackend({ apiVersion: 3, kind: 'build-service', name: 'x', create: () => ({}) } as never)).toThrow(BackendInvalidError);
  });
});

describe('resolveBackend in a pnpm workspace (symlinked .pnpm store)', () => {
  it('follows the importer symlink into the store and the backend finds its own dependencies there', async () => {
    const root = newDir('pnpm-ws');
    writeProject(root);
    const app = join(root, 'packages', 'app');
    writeProject(app, { 'prebuilt-backend-acme': '^1.0.0' });
    const helper = { packageName: 'acme-helper', manifest: null, source: 'export const greeting = "from-helper";\n' };
    installPnpm(root, app, {
      packageName: 'prebuilt-backend-acme',
      version: '1.4.0',
      source:
        'import { greeting } from "acme-helper";\n' +
        'export default { apiVersion: 1, kind: "build-service", name: "acme", greeting, create() { return { name: "acme", buildAndPush: async () => ({ ok: false, reason: greeting, logTail: [] }) }; } };\n',
    }, [helper]);
    const resolved = await resolveBackend({ kind: 'build-service', name: 'acme', cwd: app });
    expect(resolved).toMatchObject({ source: 'convention', version: '1.4.0', resolvedFrom: app });
    expect(resolved.path).toBe(join(root, 'node_modules/.pnpm/prebuilt-backend-acme@1.4.0/node_modules/prebuilt-backend-acme/index.js'));
    expect((resolved.definition as unknown as { greeting: string }).greeting).toBe('from-helper');
  });

  it('does not see a package that is only in the store, not linked to the importer', async () => {
    const root = newDir('pnpm-ws');
    const app = join(root, 'packages', 'app');
    writeProject(app);
    writeBackendPackage(join(root, 'node_modules/.pnpm/prebuilt-backend-hidden@1.0.0/node_modules/prebuilt-backend-hidden'), { packageName: 'prebuilt-backend-hidden' });
    await expect(resolveBackend({ kind: 'build-service', name: 'hidden', cwd: app })).rejects.toBeInstanceOf(BackendNotFoundError);
  });
});

describe('resolveBackend with a global install (backend beside the CLI, not in the project)', () => {
  it('finds the backend from the CLI install directory when the project lacks it', async () => {
    const globalRoot = newDir('global');
    const cliDir = join(globalRoot, 'lib/node_modules/prebuilt');
    writeProject(cliDir);
    writeBackendPackage(join(globalRoot, 'lib/node_modules/@prebuilt/local'), { packageName: '@prebuilt/local', kind: 'image-registry', name: 'local', version: '0.9.0' });
    const project = newDir('plain-project');
    writeProject(project);
    const resolved = await resolveBackend({ kind: 'image-registry', name: 'local', cwd: project, cliDir });
    expect(resolved).toMatchObject({ source: 'builtin', version: '0.9.0', resolvedFrom: cliDir });
    expect(resolved.path).toBe(join(globalRoot, 'lib/node_modules/@prebuilt/local/index.js'));
  });

  it('prefers the project over the CLI install directory', async () => {
    const globalRoot = newDir('global');
    const cliDir = join(globalRoot, 'lib/node_modules/prebuilt');
    writeProject(cliDir);
    writeBackendPackage(join(globalRoot, 'lib/node_modules/prebuilt-backend-acme'), { packageName: 'prebuilt-backend-acme', version: '1.0.0' });
    const project = newDir('project');
    writeProject(project, { 'prebuilt-backend-acme': '2.0.0' });
    installNpm(project, { packageName: 'prebuilt-backend-acme', version: '2.0.0' });
    const resolved = await resolveBackend({ kind: 'build-service', name: 'acme', cwd: project, cliDir });
    expect(resolved).toMatchObject({ version: '2.0.0', resolvedFrom: project });
    expect(marker(resolved)).toBe('prebuilt-backend-acme@2.0.0');
  });
});
