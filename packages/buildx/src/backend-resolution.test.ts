import { mkdir, mkdtemp, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';
import { listBackends, resolveBackend } from '@prebuilt/core';

const packageDir = join(dirname(fileURLToPath(import.meta.url)), '..');

it('the resolver finds the built-in name "buildx" in a project where @prebuilt/buildx is installed beside the CLI (needs pnpm build)', async () => {
  const project = await mkdtemp(join(tmpdir(), 'prebuilt-buildx-project-'));
  try {
    await mkdir(join(project, 'node_modules', '@prebuilt'), { recursive: true });
    await symlink(packageDir, join(project, 'node_modules', '@prebuilt', 'buildx'));
    const resolved = await resolveBackend({ kind: 'build-service', name: 'buildx', cwd: project, cliDir: project });
    expect(resolved).toMatchObject({ source: 'builtin', packageName: '@prebuilt/buildx', kind: 'build-service' });
    expect(resolved.definition.name).toBe('buildx');
    const listed = (await listBackends({ cwd: project, cliDir: project })).find((b) => b.name === 'buildx');
    expect(listed).toMatchObject({ kind: 'build-service', installed: true, packageName: '@prebuilt/buildx' });
  } finally {
    await rm(project, { recursive: true, force: true });
  }
});
