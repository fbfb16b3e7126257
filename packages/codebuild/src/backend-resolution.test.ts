import { mkdir, mkdtemp, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';
import { listBackends, resolveBackend } from '@prebuilt/core';

const packageDir = join(dirname(fileURLToPath(import.meta.url)), '..');

it('the resolver finds the built-in name "codebuild" in a project where @prebuilt/codebuild is installed beside the CLI (needs pnpm build)', async () => {
  const project = await mkdtemp(join(tmpdir(), 'prebuilt-codebuild-project-'));
  try {
    await mkdir(join(project, 'node_modules', '@prebuilt'), { recursive: true });
    await symlink(packageDir, join(project, 'node_modules', '@prebuilt', 'codebuild'));
    const resolved = await resolveBackend({ kind: 'build-service', name: 'codebuild', cwd: project, cliDir: project });
    expect(resolved).toMatchObject({ source: 'builtin', packageName: '@prebuilt/codebuild', kind: 'build-service' });
    expect(resolved.definition.name).toBe('codebuild');
    const listed = (await listBackends({ cwd: project, cliDir: project })).find((b) => b.name === 'codebuild');
    expect(listed).toMatchObject({ kind: 'build-service', installed: true, packageName: '@prebuilt/codebuild' });
  } finally {
    await rm(project, { recursive: true, force: true });
  }
});
