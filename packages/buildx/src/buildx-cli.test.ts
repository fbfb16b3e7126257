import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, EnvironmentError } from '@prebuilt/core/backend';
import { checkBuildx, runDocker } from './buildx-cli.js';
import { runBuildx } from './buildx-process.js';

let dir: string;
let marker: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'prebuilt-buildx-cli-'));
  marker = join(dir, 'ran');
  // A docker that would pass the check, and leaves a marker: the proof it ran.
  await writeFile(join(dir, 'docker'), `#!/bin/sh\n: > '${marker}'\necho "github.com/docker/buildx v0.12.1"\n`);
  await chmod(join(dir, 'docker'), 0o755);
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('the docker command of the buildx service', () => {
  it('is never run from an empty or relative PATH entry (a checked-out flow\'s directory): a ConfigError naming the setting', async () => {
    const here = relative(process.cwd(), dir);
    const env = { PATH: `/nonexistent:${here}` };
    const error = await checkBuildx('docker', env, undefined).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).message).toContain(`the docker command 'docker' was found only in '${here}', a PATH entry relative to the current directory`);
    expect((error as ConfigError).hint).toContain('or set METAFLOW_PREBUILT_BUILDX_DOCKER to its absolute path');
    const build = await runBuildx({ docker: 'docker', args: ['buildx', 'build'], env, dockerfile: '', log: { write: () => undefined } as never, signal: undefined, timeoutMs: 10_000, killGraceMs: 100 });
    expect(build).toMatchObject({ kind: 'spawn-error', error: expect.any(ConfigError) });
    await expect(readFile(marker)).rejects.toThrow(/ENOENT/);
    // Found in an absolute entry, or named by its path (the setting), it runs.
    expect(await checkBuildx('docker', { PATH: `${here}:${dir}` }, undefined)).toBe('github.com/docker/buildx v0.12.1');
    expect(await checkBuildx(join(dir, 'docker'), { PATH: '' }, undefined)).toBe('github.com/docker/buildx v0.12.1');
  });

  it('missing from every PATH directory: an EnvironmentError saying how to install it', async () => {
    const error = await checkBuildx('docker', { PATH: join(dir, 'empty') }, undefined).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(EnvironmentError);
    expect((error as Error).message).toBe("The docker command 'docker' was not found on PATH.");
  });
});

describe('a short docker command printing without end', () => {
  it('keeps the first and the last 64 KiB of its output (1 GiB printed), the lines read from either end intact', async () => {
    const endless = join(dir, 'endless-docker');
    // Before, every byte was kept in one string: past ~512 MiB, 'RangeError: Invalid string length' crashed prebuilt.
    await writeFile(endless, `#!/bin/sh\necho 'Driver: docker'\nyes 'a warning from the daemon' | head -c 1073741824 >&2\necho\necho 'sha256:last'\n`);
    await chmod(endless, 0o755);
    const { exit, output } = await runDocker(endless, ['buildx', 'inspect'], { PATH: process.env['PATH'] }, undefined);
    expect(exit.code).toBe(0);
    expect(output.length).toBeLessThan(160 * 1024);
    expect(output.startsWith('Driver: docker\n')).toBe(true);
    expect(output).toMatch(/\[… \d+ bytes of output cut …\]/);
    expect(output.trim().split('\n').at(-1)).toBe('sha256:last');
  }, 120_000);

  it('a docker buildx version that never answers is killed: an EnvironmentError saying so', async () => {
    const hung = join(dir, 'hung-docker');
    await writeFile(hung, '#!/bin/sh\nexec sleep 120\n');
    await chmod(hung, 0o755);
    const error = await checkBuildx(hung, { PATH: process.env['PATH'] }, undefined, 300).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(EnvironmentError);
    expect((error as Error).message).toBe(`'${hung} buildx version' did not answer within 0.3 s (killed).`);
  });
});
