import { mkdir, mkdtemp, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';
import { listBackends, resolveBackend } from '@prebuilt/core';

const packageDir = join(dirname(fileURLToPath(import.meta.url)), '..');

it('the resolver finds the built-in name "kaniko" in a project where @prebuilt/kaniko is installed beside the CLI (needs pnpm build)', async () => {
  const project = await mkdtemp(join(tmpdir(), 'prebuilt-kaniko-project-'));
  try {
    await mkdir(join(project, 'node_modules', '@prebuilt'), { recursive: true });
    await symlink(packageDir, join(project, 'node_modules', '@prebuilt', 'kaniko'));
    const resolved = await resolveBackend({ kind: 'build-service', name: 'kaniko', cwd: project, cliDir: project });
    expect(resolved).toMatchObject({ source: 'builtin', packageName: '@prebuilt/kaniko', kind: 'build-service' });
    expect(resolved.definition.name).toBe('kaniko');
    const listed = (await listBackends({ cwd: project, cliDir: project })).find((b) => b.name === 'kaniko');
    expect(listed).toMatchObject({ kind: 'build-service', installed: true, packageName: '@prebuilt/kaniko' });
  } finally {
    await rm(project, { recursive: true, force: true });
  }
});
