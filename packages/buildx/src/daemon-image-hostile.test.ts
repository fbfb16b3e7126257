// The image ID a Docker daemon reports for a tag goes back on a docker command line ('docker image
// tag <ID> <tag>' after a failed build): only something shaped like an image ID is taken.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { usePrivateTmpdir } from '@prebuilt/fixtures';
import { createBuildxBuildService } from './index.js';
import { createFakeDocker, type FakeDocker } from './__testing__/fake-docker.js';

afterAll(usePrivateTmpdir('prebuilt-buildx-hostile-tests-').remove);

let fake: FakeDocker;
let contextDir: string;
beforeAll(async () => {
  fake = await createFakeDocker();
  contextDir = await mkdtemp(join(tmpdir(), 'prebuilt-buildx-hostile-context-'));
  await writeFile(join(contextDir, 'env.txt'), 'an env\n');
});
afterAll(async () => {
  await fake.remove();
  await rm(contextDir, { recursive: true, force: true });
});

describe('buildx: a daemon that reports an image ID that is not one', () => {
  it.each(['--help', '-f', 'sha256:zz; rm -rf /', `sha256:${'1'.repeat(64)} --force`, `sha256:${'A'.repeat(64)}`])(
    'the tag held %j before a failed build: it is treated as unknown (nothing removed, nothing tagged with it)',
    async (id) => {
      const imageTag = `127.0.0.1:5999/prebuilt-test/hostile-id:env-${Math.random().toString(36).slice(2)}`;
      await fake.setImage(imageTag, id);
      const before = (await fake.records()).length;
      const service = createBuildxBuildService({ env: fake.env({ FAKE_DOCKER_DRIVER: 'docker', FAKE_DOCKER_PUSH_ERROR: 'unexpected status from HEAD request: 401 Unauthorized' }) });
      const result = await service.buildAndPush({ dockerfile: 'FROM base\nCOPY env.txt /x\n', contextDir, imageTag, platform: 'linux/amd64', note: () => undefined });
      expect(result).toMatchObject({ ok: false, reason: expect.stringContaining('401 Unauthorized') });
      const commands = (await fake.records()).slice(before).map((r) => r.argv).filter((argv) => argv.includes('image'));
      expect(commands.filter((argv) => argv.includes('tag') || argv.includes('rm'))).toEqual([]);
    },
  );
});
