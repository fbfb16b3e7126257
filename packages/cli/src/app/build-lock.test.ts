import { chmod, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EnvironmentError, ExitCode } from '@prebuilt/core';
import { buildLockFor } from './build-lock.js';

const run = promisify(execFile);
const image = { envId: '0123456789abcdef', tag: '127.0.0.1:5000/ns:env-0123456789abcdef-amd64' };
const notRootWithSetpriv = process.getuid?.() !== 0 ? 'needs root' : !existsSync('/usr/bin/setpriv') ? 'needs setpriv (util-linux)' : undefined;

let work: string;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'prebuilt-build-lock-'));
});
afterAll(() => rm(work, { recursive: true, force: true }));

describe('the build lock', () => {
  it('is taken and released under <cache>/locks', async () => {
    const cache = join(work, 'cache-ok');
    const lock = await buildLockFor({ METAFLOW_PREBUILT_CACHE_DIR: cache })(image, { onWait: () => undefined });
    expect((await readdir(join(cache, 'locks'))).filter((name) => name.endsWith('.lock'))).toHaveLength(1);
    await lock.release();
    expect(await readdir(join(cache, 'locks'))).toEqual([]);
  });

  it('a locks directory that cannot be made (a file in the way) is an EnvironmentError naming it and METAFLOW_PREBUILT_CACHE_DIR (exit 2), not a bare ENOTDIR', async () => {
    const cache = join(work, 'cache-file-in-the-way');
    await mkdir(cache);
    await writeFile(join(cache, 'locks'), 'not a directory');
    const error = await buildLockFor({ METAFLOW_PREBUILT_CACHE_DIR: cache })(image, { onWait: () => undefined }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(EnvironmentError);
    expect((error as EnvironmentError).exitCode).toBe(ExitCode.usage);
    expect((error as EnvironmentError).message).toBe(`Cannot write ${join(cache, 'locks')} while taking the build lock of ${image.tag}: a file is in the way (ENOTDIR).`);
    expect((error as EnvironmentError).hint).toContain('METAFLOW_PREBUILT_CACHE_DIR');
  });

  it.skipIf(notRootWithSetpriv !== undefined)(`another user's cache (its locks directory not writable by this user: a cache shared without a shared group) is an EnvironmentError naming it, not a bare EACCES (${notRootWithSetpriv ?? 'root and setpriv'})`, async () => {
    const cache = join(work, 'cache-of-another-user');
    await mkdir(join(cache, 'locks'), { recursive: true });
    await chmod(work, 0o755);
    await chmod(cache, 0o777);
    await chmod(join(cache, 'locks'), 0o755);
    const module = fileURLToPath(new URL('../../dist/app/build-lock.js', import.meta.url));
    const script = `const { buildLockFor } = await import(${JSON.stringify(module)});
try { await buildLockFor({ METAFLOW_PREBUILT_CACHE_DIR: ${JSON.stringify(cache)} })(${JSON.stringify(image)}, { onWait: () => undefined }); console.log('locked'); }
catch (e) { console.log(JSON.stringify({ name: e.name, message: e.message, hint: e.hint })); }`;
    const { stdout } = await run('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '--input-type=module', '-e', script]);
    expect(JSON.parse(stdout)).toEqual({
      name: 'EnvironmentError',
      message: expect.stringMatching(new RegExp(`^Cannot write ${join(cache, 'locks').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/build-[0-9a-f]{32}\\.lock\\.\\d+\\.[0-9a-f]{8}\\.tmp while taking the build lock of ${image.tag.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: permission denied \\(EACCES\\)\\.$`)),
      hint: 'Set METAFLOW_PREBUILT_CACHE_DIR to a directory you can write, or fix that directory\'s permissions.',
    });
  });
});
