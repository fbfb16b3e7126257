// The scripts run as root and keep their state under /var/tmp, which every user writes: a directory
// there that another user made (or a symlink) must be refused, not used to download, build and run.
import { execFile } from 'node:child_process';
import { chmod, chown, mkdir, mkdtemp, readdir, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { itOrFailInCi } from './services.js';

const scripts = join(import.meta.dirname, '..', 'scripts');
const notRoot = process.getuid?.() !== 0 ? 'needs root (the scripts run as root; only root can give a directory to another user)' : undefined;

function run(command: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(command, args, { env, timeout: 60_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout: `${stdout}`, stderr: `${stderr}` });
    });
  });
}

/** Runs test-services.sh's private_dir on `dir` (sourced: it only defines the functions). */
function privateDir(dir: string) {
  return run('bash', ['-c', 'source "$1" && private_dir "$2" && echo private', 'bash', join(scripts, 'test-services.sh'), dir]);
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'prebuilt-private-dirs-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('private_dir (test-services.sh, build-erofs-utils.sh)', () => {
  it('makes a missing directory 0755 and takes it; takes an existing one of this user that no one else writes', async () => {
    const made = join(dir, 'made', 'state');
    const result = await privateDir(made);
    expect(result.stdout.trim(), result.stderr).toBe('private');
    expect((await stat(made)).mode & 0o777).toBe(0o755);
    expect((await privateDir(made)).stdout.trim()).toBe('private');
  });

  it('refuses a symlink (to a directory it could write), saying what to do', async () => {
    await mkdir(join(dir, 'elsewhere'));
    await symlink(join(dir, 'elsewhere'), join(dir, 'link'));
    const result = await privateDir(join(dir, 'link'));
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toBe(`${join(dir, 'link')} is not a directory (a symlink or a file): remove it, or set its variable to a directory only you and root can write.\n`);
  });

  it('refuses a directory that others can write (a world-writable one in /var/tmp)', async () => {
    const open = join(dir, 'open');
    await mkdir(open);
    await chmod(open, 0o1777);
    const result = await privateDir(open);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/open is owned by uid \d+ with mode 1777: another user could change what is run from it\. Remove it \(it is made again\)/);
  });

  itOrFailInCi('refuses a directory another user owns (made there first)', notRoot, async () => {
    const theirs = join(dir, 'theirs');
    await mkdir(theirs, { mode: 0o755 });
    await chown(theirs, 65534, 65534);
    const result = await privateDir(theirs);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`${theirs} is owned by uid 65534 with mode 755`);
  });
});

describe('the scripts refuse a state directory that is not private', () => {
  it('test-services.sh: exit 1 saying which directory and setting, before anything is written there', async () => {
    const open = join(dir, 'services-open');
    await mkdir(open);
    await chmod(open, 0o777);
    const result = await run('bash', [join(scripts, 'test-services.sh'), 'status'], { ...process.env, PREBUILT_TEST_SERVICES_DIR: open });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`${open} is owned by uid`);
    expect(result.stderr).toContain('test-services.sh: the state directory is not private (PREBUILT_TEST_SERVICES_DIR)');
    expect(await readdir(open)).toEqual([]);
  });

  itOrFailInCi('build-erofs-utils.sh: with a work directory that is a symlink, fails (exit 1) before apt, leaving the target untouched', notRoot, async () => {
    const bin = join(dir, 'erofs-bin');
    await mkdir(bin);
    await writeFile(join(bin, 'mkfs.erofs'), '#!/bin/sh\necho "mkfs.erofs (erofs-utils) 1.5"\n', { mode: 0o755 });
    const target = join(dir, 'erofs-target');
    await mkdir(target);
    await symlink(target, join(dir, 'erofs-work'));
    const env = { ...process.env, PREBUILT_EROFS_BIN_DIR: bin, PREBUILT_EROFS_SUITE: 'no-such-suite', PREBUILT_EROFS_WORK_DIR: join(dir, 'erofs-work') };
    const result = await run('bash', [join(scripts, 'build-erofs-utils.sh')], env);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`[erofs-utils] FAILED: ${join(dir, 'erofs-work')} cannot hold the build: another user could change its sources`);
    expect(result.stderr).toContain('Set PREBUILT_EROFS_WORK_DIR to a directory only root can write');
    expect(result.stderr).not.toContain('apt-get source');
    expect(await readdir(target)).toEqual([]);
  });

  it('metaflow-source.sh: a cache another user could change is exit 2, and what was planted there is not handed to the tests', async () => {
    const src = join(dir, 'mf-src', 'metaflow-9.9');
    await mkdir(join(src, 'metaflow'), { recursive: true });
    await writeFile(join(src, 'metaflow', '__init__.py'), '');
    const tarball = join(dir, 'metaflow-9.9.tar.gz');
    expect((await run('tar', ['-czf', tarball, '-C', join(dir, 'mf-src'), 'metaflow-9.9'])).code).toBe(0);
    const sha = (await run('sha256sum', [tarball])).stdout.split(' ')[0]!;
    const cache = join(dir, 'mf-cache');
    await mkdir(join(cache, sha, 'metaflow'), { recursive: true });
    await writeFile(join(cache, sha, 'metaflow', '__init__.py'), 'import os  # planted\n');
    await chmod(cache, 0o777);
    const env = { ...process.env, PREBUILT_METAFLOW_TARBALL: tarball, PREBUILT_METAFLOW_CACHE: cache };
    const refused = await run('bash', [join(scripts, 'metaflow-source.sh')], env);
    expect(refused.code).toBe(2);
    expect(refused.stdout).toBe('');
    expect(refused.stderr).toContain(`metaflow-source: ${cache} cannot hold the Metaflow source the tests import: set PREBUILT_METAFLOW_CACHE`);
    // A private cache: unpacked and printed as before.
    const own = join(dir, 'mf-own');
    const unpacked = await run('bash', [join(scripts, 'metaflow-source.sh')], { ...env, PREBUILT_METAFLOW_CACHE: own });
    expect(unpacked.code, unpacked.stderr).toBe(0);
    expect(unpacked.stdout).toBe(`${join(own, sha)}\n`);
  });

  it('test-pips.sh: a directory another user could change is exit 2 before anything is fetched, and no pip of it is handed to the tests', async () => {
    const pips = join(dir, 'pips');
    await mkdir(join(pips, 'forky', 'venv', 'bin'), { recursive: true });
    await chmod(pips, 0o777);
    const refused = await run('bash', [join(scripts, 'test-pips.sh')], { ...process.env, PREBUILT_TEST_PIPS_DIR: pips, PREBUILT_TEST_PIP_SUITES: 'forky' });
    expect(refused.code).toBe(2);
    expect(refused.stdout).toBe('');
    expect(refused.stderr).toContain(`test-pips: ${pips} cannot hold the pips the tests run: set PREBUILT_TEST_PIPS_DIR`);
    expect(await readdir(join(pips, 'forky'))).toEqual(['venv']);
  });
});
