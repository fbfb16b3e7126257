// A cloned repository that ships `.prebuilt/<Flow>` (or `.prebuilt`) as a symbolic link, to ~/.ssh or
// anywhere: the image map must not be written through it.
import { mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ExitCode, InputError, writeFileAtomic } from '@prebuilt/core';
import { buildFlow } from './build-flow.js';
import { checkStateDirectory } from './state-file.js';

let dir: string;
let project: string;
let victim: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'prebuilt-state-dir-link-'));
  project = join(dir, 'repo');
  victim = join(dir, 'home-ssh');
  await mkdir(join(project, 'flows'), { recursive: true });
  await mkdir(victim);
  await writeFile(join(victim, 'authorized_keys'), 'ssh-ed25519 AAAA me\n');
});
afterEach(() => rm(dir, { recursive: true, force: true }));

async function refusal(check: Promise<unknown>): Promise<InputError> {
  const error = await check.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(InputError);
  expect((error as InputError).exitCode).toBe(ExitCode.usage);
  return error as InputError;
}

describe('the state directory below the project (.prebuilt/<Flow>) is never a symbolic link', () => {
  it('.prebuilt/<Flow> a link: exit 2 naming the path and the fix', async () => {
    await mkdir(join(project, 'flows', '.prebuilt'));
    await symlink(victim, join(project, 'flows', '.prebuilt', 'HelloFlow'));
    const error = await refusal(checkStateDirectory('flows/hello.py', 'HelloFlow', {}, project));
    expect(error.message).toBe('flows/.prebuilt/HelloFlow is a symbolic link: prebuilt writes the image map only into a directory of its own, never through a link (a cloned repository can ship one that points anywhere).');
    expect(error.hint).toBe('Remove the link (rm flows/.prebuilt/HelloFlow): prebuilt build creates the directory. To keep the image map elsewhere, set METAFLOW_PREBUILT_STATE_FILE to a file path.');
  });

  it('.prebuilt a link: refused with or without the flow name (before the flow is read)', async () => {
    await symlink(victim, join(project, 'flows', '.prebuilt'));
    for (const flow of ['HelloFlow', undefined]) {
      const error = await refusal(checkStateDirectory('flows/hello.py', flow, {}, project));
      expect(error.message).toMatch(/^flows\/\.prebuilt is a symbolic link: /);
    }
  });

  it('a build stops before the flow is read when .prebuilt is a link, and nothing is written in its target', async () => {
    await symlink(victim, join(project, 'flows', '.prebuilt'));
    const scope = { cwd: project, cliDir: '/nonexistent-prebuilt-cli', env: {}, signal: new AbortController().signal };
    // The flow file does not exist: the link is what is reported, so nothing was read.
    const error = await refusal(buildFlow('flows/no-such-flow.py', scope));
    expect(error.message).toMatch(/^flows\/\.prebuilt is a symbolic link/);
    expect(await readdir(victim)).toEqual(['authorized_keys']);
  });

  it('a file where the directory goes is refused too; a real directory, a missing one and METAFLOW_PREBUILT_STATE_FILE are fine', async () => {
    await mkdir(join(project, 'flows', '.prebuilt'));
    await writeFile(join(project, 'flows', '.prebuilt', 'HelloFlow'), 'x');
    const error = await refusal(checkStateDirectory('flows/hello.py', 'HelloFlow', {}, project));
    expect(error.message).toMatch(/^flows\/\.prebuilt\/HelloFlow is a file, not a directory/);
    await expect(checkStateDirectory('flows/hello.py', 'OtherFlow', {}, project)).resolves.toBeUndefined();
    await mkdir(join(project, 'flows', '.prebuilt', 'ThirdFlow'));
    await expect(checkStateDirectory('flows/hello.py', 'ThirdFlow', {}, project)).resolves.toBeUndefined();
    await expect(checkStateDirectory('other/hello.py', 'HelloFlow', {}, project)).resolves.toBeUndefined();
    // The user's own choice: a state file whose directory is a link is theirs to make.
    await symlink(victim, join(project, 'maps'));
    await expect(checkStateDirectory('flows/hello.py', 'HelloFlow', { METAFLOW_PREBUILT_STATE_FILE: 'maps/images.json' }, project)).resolves.toBeUndefined();
  });

  it('a lock file (or image map) that is itself a link is replaced by the atomic write, its target left as it was', async () => {
    // `<flow>.prebuilt.lock -> ~/.ssh/authorized_keys`: the rename replaces the link, never writes through it.
    const lock = join(project, 'flows', 'hello.prebuilt.lock');
    await symlink(join(victim, 'authorized_keys'), lock);
    await writeFileAtomic(lock, '{"version":1}\n');
    expect(await readFile(join(victim, 'authorized_keys'), 'utf8')).toBe('ssh-ed25519 AAAA me\n');
    expect(await readFile(lock, 'utf8')).toBe('{"version":1}\n');
  });
});
