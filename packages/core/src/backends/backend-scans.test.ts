/**
 * How often backend discovery reads the `node_modules/@prebuilt` directories: node:fs's
 * readdirSync is wrapped (it still reads) and its calls on those directories are counted.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { ignoredBuildServiceSettings } from './ignored-settings.js';
import { resolveBackend } from './resolve-backend.js';
import { installNpm, tempDirsPerTest, writeProject } from './__fixtures__/backend-packages.js';

vi.mock('node:fs', async (importOriginal) => {
  const fs = await importOriginal<typeof import('node:fs')>();
  return { ...fs, readdirSync: vi.fn(fs.readdirSync) };
});

const newDir = tempDirsPerTest();

/** The `node_modules/@prebuilt` directories read since the last clear, once per read. */
function scopeReads(): string[] {
  return vi
    .mocked(readdirSync)
    .mock.calls.map(([path]) => String(path))
    .filter((path) => path.endsWith(join('node_modules', '@prebuilt')));
}

describe('backend discovery reads each node_modules/@prebuilt once per process', () => {
  it("a deploy's three looks (its build service, its image registry, the settings of the services it ignores) read each scope directory once, and find what each holds", async () => {
    const project = newDir('project');
    writeProject(project);
    installNpm(project, { packageName: '@prebuilt/docker', name: 'docker' });
    installNpm(project, { packageName: '@prebuilt/acmebuild', name: 'acmebuild' });
    const cliDir = newDir('cli');
    writeProject(cliDir);
    installNpm(cliDir, { packageName: '@prebuilt/quay', kind: 'image-registry', name: 'quay' });
    vi.mocked(readdirSync).mockClear();

    const service = await resolveBackend({ kind: 'build-service', name: 'docker', cwd: project, cliDir });
    // Known only by the scan of the CLI directory's scope (no catalogue declares it).
    const registry = await resolveBackend({ kind: 'image-registry', name: 'quay', cwd: project, cliDir });
    const ignored = ignoredBuildServiceSettings({ env: { METAFLOW_PREBUILT_BUILD_SERVICE: 'docker', METAFLOW_PREBUILT_ACMEBUILD_ZONE: 'z1' }, cwd: project, cliDir });

    expect(service).toMatchObject({ source: 'builtin', packageName: '@prebuilt/docker' });
    expect(registry).toMatchObject({ source: 'builtin', packageName: '@prebuilt/quay', resolvedFrom: cliDir });
    expect(ignored).toEqual([{ service: 'acmebuild', settings: ['METAFLOW_PREBUILT_ACMEBUILD_ZONE'] }]);
    const reads = scopeReads();
    expect(reads).toContain(join(project, 'node_modules', '@prebuilt'));
    expect(reads).toContain(join(cliDir, 'node_modules', '@prebuilt'));
    expect(reads.filter((path, i) => reads.indexOf(path) !== i)).toEqual([]);
  });
});
