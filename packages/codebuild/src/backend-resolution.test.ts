import { fileURLToPath } from 'node:url';
import { it } from 'vitest';
import { checkBuiltinBackendPackage } from '@prebuilt/fixtures';

it('the resolver finds the built-in name "codebuild" as the project itself and where @prebuilt/codebuild is installed beside the CLI (needs pnpm build)', async () => {
  await checkBuiltinBackendPackage(fileURLToPath(new URL('..', import.meta.url)), 'build-service', 'codebuild');
});
