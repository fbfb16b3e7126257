import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { defineBuildService } from '../contracts.js';
import { registerBackend } from './backend-registry.js';
import { listBackends } from './list-backends.js';
import { FIRST_PARTY, installNpm, installPnpm, writeBackendPackage, writeProject, tempDirsPerTest } from './__fixtures__/backend-packages.js';

const newDir = tempDirsPerTest();

describe('listBackends', () => {
  it('lists every built-in name, installed or not, with package, version and kind', () => {
    const project = newDir('list');
    writeProject(project, { '@prebuilt/docker': '^0.2.0' });
    installNpm(project, { packageName: '@prebuilt/docker', version: '0.2.0', name: 'docker' });
    const listings = listBackends({ cwd: project, catalogue: FIRST_PARTY });
    const builtins = listings.filter((l) => l.source === 'builtin');
    expect(builtins.map((l) => l.name)).toEqual(['docker', 'buildx', 'kaniko', 'codebuild', 'oci', 'local', 'dockerhub', 'ecr', 'gcr']);
    expect(builtins.find((l) => l.name === 'docker')).toEqual({
      name: 'docker',
      kind: 'build-service',
      source: 'builtin',
      packageName: '@prebuilt/docker',
      version: '0.2.0',
      installed: true,
      packageDir: join(project, 'node_modules/@prebuilt/docker'),
      description: 'fixture @prebuilt/docker',
    });
    expect(builtins.find((l) => l.name === 'ecr')).toMatchObject({ kind: 'image-registry', packageName: '@prebuilt/ecr', installed: false, version: null });
  });

  it('finds third-party backends through the "prebuilt" field of direct dependencies only', () => {
    const project = newDir('list');
    writeProject(project, { 'prebuilt-backend-acme': '1.0.0', 'acme-tools': '1.0.0', lodash: '4.0.0' }, { '@acme/prebuilt-backend-foo': '1.0.0' });
    installNpm(project, { packageName: 'prebuilt-backend-acme', version: '1.2.3', name: 'acme' });
    installNpm(project, { packageName: '@acme/prebuilt-backend-foo', kind: 'image-registry', name: 'foo' });
    // Declares a name whose lookup would not reach it: listed under its package name.
    installNpm(project, { packageName: 'acme-tools', name: 'tools' });
    installNpm(project, { packageName: 'lodash', manifest: null });
    // Installed but not a direct dependency (a transitive one): never crawled, so not listed.
    installNpm(project, { packageName: 'prebuilt-backend-transitive' });
    const thirdParty = listBackends({ cwd: project }).filter((l) => l.source === 'third-party');
    expect(thirdParty.map((l) => [l.name, l.kind, l.packageName, l.version])).toEqual([
      ['acme', 'build-service', 'prebuilt-backend-acme', '1.2.3'],
      ['acme-tools', 'build-service', 'acme-tools', '1.0.0'],
      ['@acme/foo', 'image-registry', '@acme/prebuilt-backend-foo', '1.0.0'],
    ]);
  });

  it('reads the project\'s package.json from a subdirectory of the project', () => {
    const project = newDir('list');
    writeProject(project, { 'prebuilt-backend-acme': '1.0.0' });
    installNpm(project, { packageName: 'prebuilt-backend-acme' });
    const flows = join(project, 'flows', 'nightly');
    mkdirSync(flows, { recursive: true });
    expect(listBackends({ cwd: flows }).filter((l) => l.source === 'third-party').map((l) => l.name)).toEqual(['acme']);
  });

  it('ignores a malformed "prebuilt" field', () => {
    const project = newDir('list');
    writeProject(project, { 'prebuilt-backend-odd': '1.0.0' });
    installNpm(project, { packageName: 'prebuilt-backend-odd', manifest: { kind: 'compiler', name: 'odd' } });
    expect(listBackends({ cwd: project }).filter((l) => l.source === 'third-party')).toEqual([]);
  });

  it('sees backends installed beside a global CLI and through pnpm symlinks', () => {
    const globalRoot = newDir('global');
    const cliDir = join(globalRoot, 'lib/node_modules/prebuilt');
    writeProject(cliDir, { '@prebuilt/local': '0.1.0' });
    writeBackendPackage(join(globalRoot, 'lib/node_modules/@prebuilt/local'), { packageName: '@prebuilt/local', kind: 'image-registry', name: 'local', version: '0.1.0' });
    const root = newDir('pnpm');
    writeProject(root, { 'prebuilt-backend-acme': '1.0.0' });
    installPnpm(root, root, { packageName: 'prebuilt-backend-acme', version: '1.1.0' });

    const listings = listBackends({ cwd: root, cliDir });
    expect(listings.find((l) => l.name === 'local')).toMatchObject({ installed: true, version: '0.1.0' });
    expect(listings.find((l) => l.name === 'acme')).toMatchObject({
      source: 'third-party',
      version: '1.1.0',
      packageDir: join(root, 'node_modules/.pnpm/prebuilt-backend-acme@1.1.0/node_modules/prebuilt-backend-acme'),
    });
  });

  it('includes backends registered in code', () => {
    const unregister = registerBackend(defineBuildService({ name: 'in-memory', description: 'test', create: () => ({}) as never }));
    try {
      expect(listBackends({ cwd: newDir('list') }).find((l) => l.name === 'in-memory')).toMatchObject({
        source: 'registered',
        installed: true,
        packageName: null,
      });
    } finally {
      unregister();
    }
  });
});
