import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BackendNotFoundError, PrebuiltError } from '../errors.js';
import { declaredCatalogue, installedFirstParty } from './backend-catalogue.js';
import { listBackends } from './list-backends.js';
import { resolveBackend } from './resolve-backend.js';
import { FIRST_PARTY, installNpm, writeBackendPackage, writeProject, tempDirsPerTest } from './__fixtures__/backend-packages.js';

const newDir = tempDirsPerTest();

/** A CLI package directory declaring the first-party catalogue, as packages/cli/package.json does. */
function writeCli(dir: string): void {
  const catalogue: Record<string, Record<string, string>> = { 'build-service': {}, 'image-registry': {} };
  for (const entry of FIRST_PARTY) catalogue[entry.kind]![entry.name] = entry.packageName;
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'metaflow-prebuilt', version: '0.1.0', prebuiltBackends: catalogue }));
}

describe('first-party backends without a list in core', () => {
  it('an installed @prebuilt package is found by the name its "prebuilt" field declares, as a built-in; one without the field is not', async () => {
    const project = newDir('first-party');
    writeProject(project);
    installNpm(project, { packageName: '@prebuilt/quay', kind: 'image-registry', name: 'quay', version: '0.4.0' });
    installNpm(project, { packageName: '@prebuilt/tools', manifest: null });
    expect(installedFirstParty(project)).toEqual([{ name: 'quay', kind: 'image-registry', packageName: '@prebuilt/quay' }]);
    const resolved = await resolveBackend({ kind: 'image-registry', name: 'quay', cwd: project });
    expect(resolved).toMatchObject({ source: 'builtin', packageName: '@prebuilt/quay', version: '0.4.0' });
    expect(listBackends({ cwd: project }).filter((l) => l.source === 'builtin').map((l) => [l.name, l.installed])).toEqual([['quay', true]]);
  });

  it('the CLI package declares the catalogue: a missing first-party backend gets its npm i, a typo gets "did you mean"', async () => {
    const cliDir = newDir('cli');
    writeCli(cliDir);
    const project = newDir('project');
    writeProject(project);
    const missing = await resolveBackend({ kind: 'build-service', name: 'kaniko', cwd: project, cliDir }).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(BackendNotFoundError);
    expect((missing as PrebuiltError).hint).toContain('npm i -D @prebuilt/kaniko');
    const typo = await resolveBackend({ kind: 'build-service', name: 'dokcer', cwd: project, cliDir }).catch((e: unknown) => e);
    expect((typo as PrebuiltError).hint).toContain('Did you mean docker?');
    expect((typo as PrebuiltError).message).toContain('Built-in build services: docker, buildx, kaniko, codebuild, oci');
    expect(listBackends({ cwd: project, cliDir }).filter((l) => l.source === 'builtin').map((l) => l.name)).toEqual(FIRST_PARTY.map((e) => e.name));
  });

  it('reads only well-formed catalogue entries of the @prebuilt scope', () => {
    expect(declaredCatalogue({ prebuiltBackends: { 'build-service': { docker: '@prebuilt/docker', evil: 'prebuilt-backend-evil' }, compiler: { x: '@prebuilt/x' } } })).toEqual([
      { name: 'docker', kind: 'build-service', packageName: '@prebuilt/docker' },
    ]);
    expect(declaredCatalogue({ prebuilt: { kind: 'build-service', name: 'x' } })).toEqual([]);
    expect(declaredCatalogue({ prebuiltBackends: 'docker' })).toEqual([]);
    expect(declaredCatalogue(undefined)).toEqual([]);
  });

  it('lists the third-party backends installed next to a global CLI (prefix/lib/node_modules)', () => {
    const prefix = newDir('global');
    const modules = join(prefix, 'lib', 'node_modules');
    const cliDir = join(modules, 'metaflow-prebuilt');
    writeProject(cliDir);
    writeBackendPackage(join(modules, 'prebuilt-backend-acme'), { packageName: 'prebuilt-backend-acme', version: '1.2.0' });
    writeBackendPackage(join(modules, '@acme', 'prebuilt-backend-foo'), { packageName: '@acme/prebuilt-backend-foo', kind: 'image-registry', name: 'foo' });
    writeBackendPackage(join(modules, 'unrelated-tool'), { packageName: 'unrelated-tool', name: 'unrelated' });
    const project = newDir('project');
    writeProject(project);
    const thirdParty = listBackends({ cwd: project, cliDir }).filter((l) => l.source === 'third-party');
    expect(thirdParty.map((l) => [l.name, l.kind, l.packageName, l.version])).toEqual([
      ['@acme/foo', 'image-registry', '@acme/prebuilt-backend-foo', '1.0.0'],
      ['acme', 'build-service', 'prebuilt-backend-acme', '1.2.0'],
    ]);
  });
});
