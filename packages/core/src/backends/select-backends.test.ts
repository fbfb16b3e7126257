import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BackendInvalidError, BackendNotFoundError, ConfigError } from '../errors.js';
import { defineBuildService, defineImageRegistry } from '../contracts.js';
import { createBackends, resolveSelectedBackends, selectedBackendNames } from './select-backends.js';
import { installNpm, writeProject, tempDirsPerTest } from './__fixtures__/backend-packages.js';

const newDir = tempDirsPerTest();

describe('selectedBackendNames', () => {
  it('defaults to docker and dockerhub, and reads the two env vars (empty = unset)', () => {
    expect(selectedBackendNames({})).toEqual({
      buildService: { name: 'docker', envVar: 'METAFLOW_PREBUILT_BUILD_SERVICE', from: 'default' },
      imageRegistry: { name: 'dockerhub', envVar: 'METAFLOW_PREBUILT_IMAGE_REGISTRY', from: 'default' },
    });
    expect(selectedBackendNames({ METAFLOW_PREBUILT_BUILD_SERVICE: ' kaniko ', METAFLOW_PREBUILT_IMAGE_REGISTRY: '' })).toEqual({
      buildService: { name: 'kaniko', envVar: 'METAFLOW_PREBUILT_BUILD_SERVICE', from: 'env' },
      imageRegistry: { name: 'dockerhub', envVar: 'METAFLOW_PREBUILT_IMAGE_REGISTRY', from: 'default' },
    });
  });
});

describe('createBackends', () => {
  it('resolves the selected packages and calls each factory with its options and the context', async () => {
    const project = newDir('select');
    writeProject(project);
    installNpm(project, { packageName: 'prebuilt-backend-acme', name: 'acme' });
    installNpm(project, { packageName: '@prebuilt/local', kind: 'image-registry', name: 'local' });
    const env = { METAFLOW_PREBUILT_BUILD_SERVICE: 'acme', METAFLOW_PREBUILT_IMAGE_REGISTRY: 'local' };
    const created = await createBackends({ env, cwd: project, buildServiceOptions: { parallel: 2 }, imageRegistryOptions: { port: 5000 } });
    expect(created.resolved.buildService).toMatchObject({ packageName: 'prebuilt-backend-acme', source: 'convention' });
    expect(created.resolved.imageRegistry).toMatchObject({ packageName: '@prebuilt/local', source: 'builtin' });
    expect(created.buildService).toMatchObject({ name: 'acme', options: { parallel: 2 }, context: { env, cwd: project } });
    expect(created.imageRegistry).toMatchObject({ name: 'local', options: { port: 5000 }, context: { env, cwd: project } });
  });

  it('names the setting when the selected backend is missing', async () => {
    const project = newDir('select');
    writeProject(project);
    const error = await resolveSelectedBackends({ env: { METAFLOW_PREBUILT_BUILD_SERVICE: 'ghost' }, cwd: project }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BackendNotFoundError);
    expect((error as Error).message).toContain("Cannot find the build service 'ghost' (selected by METAFLOW_PREBUILT_BUILD_SERVICE)");
  });

  it('uses in-code definitions and passes a factory\'s typed errors through', async () => {
    const failing = defineBuildService({
      name: 'needs-setting',
      create: () => {
        throw new ConfigError('The build host is not set.', { setting: 'ACME_HOST' });
      },
    });
    const registry = defineImageRegistry({ name: 'mem', create: () => ({ name: 'mem' }) as never });
    const env = { METAFLOW_PREBUILT_BUILD_SERVICE: 'needs-setting', METAFLOW_PREBUILT_IMAGE_REGISTRY: 'mem' };
    await expect(createBackends({ env, cwd: newDir('s'), registered: [failing, registry] })).rejects.toThrow('The build host is not set.');
  });

  it('wraps a factory that returns something without the contract\'s methods', async () => {
    const broken = defineBuildService({ name: 'broken', create: () => ({ name: 'broken' }) as never });
    const registry = defineImageRegistry({ name: 'mem', create: () => ({ name: 'mem', imageTag: () => 'x' }) as never });
    const env = { METAFLOW_PREBUILT_BUILD_SERVICE: 'broken', METAFLOW_PREBUILT_IMAGE_REGISTRY: 'mem' };
    const error = await createBackends({ env, cwd: newDir('s'), registered: [broken, registry] }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BackendInvalidError);
    expect((error as Error).message).toContain("without buildAndPush()");
  });

  it('resolves relative paths in the selection from cwd', async () => {
    const project = newDir('select');
    writeProject(project);
    installNpm(project, { packageName: 'local-backends', kind: 'image-registry', name: 'mine' });
    const env = { METAFLOW_PREBUILT_BUILD_SERVICE: 'docker', METAFLOW_PREBUILT_IMAGE_REGISTRY: './node_modules/local-backends/index.js' };
    const error = await resolveSelectedBackends({ env, cwd: project }).catch((e: unknown) => e);
    // docker is not installed here, so the build service fails first; the registry path alone resolves.
    expect(error).toBeInstanceOf(BackendNotFoundError);
    const { imageRegistry } = await resolveSelectedBackends({
      env,
      cwd: project,
      registered: [defineBuildService({ name: 'docker', create: () => ({}) as never })],
    });
    expect(imageRegistry).toMatchObject({ source: 'path', path: join(project, 'node_modules/local-backends/index.js') });
  });
});
