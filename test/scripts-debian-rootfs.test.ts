// scripts/debian-rootfs.sh: the debootstrap root file system that test-services.sh (the test base
// image) and bench/base-image.sh (the bench's base image) both build, run with a stand-in debootstrap.
import { execFile } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const library = join(import.meta.dirname, '..', 'scripts', 'debian-rootfs.sh');

// A stand-in debootstrap: records its arguments, lays out a small root with apt lists and cached
// debs in its 5th argument (the target), and exits with $FAKE_DEBOOTSTRAP_EXIT.
const FAKE_DEBOOTSTRAP = `#!/bin/sh
echo "debootstrap $*"
target="$5"
mkdir -p "$target/etc" "$target/var/lib/apt/lists" "$target/var/cache/apt/archives"
echo bookworm >"$target/etc/debian_version"
echo list >"$target/var/lib/apt/lists/deb.debian.org_Packages"
echo deb >"$target/var/cache/apt/archives/python3.deb"
echo "last line of the log"
exit "\${FAKE_DEBOOTSTRAP_EXIT:-0}"
`;

function run(script: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('bash', ['-c', script, 'bash', ...args], { env, timeout: 60_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout: `${stdout}`, stderr: `${stderr}` });
    });
  });
}

function tarList(tarball: string): Promise<string[]> {
  return new Promise((resolve, reject) => {
    execFile('tar', ['-tf', tarball], (error, stdout) => (error ? reject(error) : resolve(`${stdout}`.split('\n').filter(Boolean))));
  });
}

describe('debian_rootfs_tar (scripts/debian-rootfs.sh)', () => {
  let dir: string;
  let env: NodeJS.ProcessEnv;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'prebuilt-debian-rootfs-'));
    await mkdir(join(dir, 'bin'));
    await writeFile(join(dir, 'bin', 'debootstrap'), FAKE_DEBOOTSTRAP);
    await chmod(join(dir, 'bin', 'debootstrap'), 0o755);
    env = { ...process.env, PATH: `${join(dir, 'bin')}:${process.env['PATH'] ?? ''}` };
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  const rootfs = (name: string, extraEnv: NodeJS.ProcessEnv = {}) =>
    run(
      'source "$1" && debian_rootfs_tar "$2" "$3" "$4" bookworm minbase python3,zstd http://mirror.example/debian amd64',
      [library, join(dir, `${name}.tar`), join(dir, `${name}.build`), join(dir, `${name}.log`)],
      { ...env, ...extraEnv },
    );

  it('bootstraps the suite into the build directory and tars it without apt lists or cached debs; the build directory is removed', async () => {
    const result = await rootfs('good');
    expect(result.code, result.stderr).toBe(0);
    expect(await readFile(join(dir, 'good.log'), 'utf8')).toContain(
      `debootstrap --variant=minbase --include=python3,zstd --arch=amd64 bookworm ${join(dir, 'good.build')} http://mirror.example/debian`,
    );
    const entries = await tarList(join(dir, 'good.tar'));
    expect(entries).toContain('./etc/debian_version');
    expect(entries).toContain('./var/lib/apt/lists/');
    expect(entries.filter((entry) => entry.endsWith('_Packages') || entry.endsWith('.deb'))).toEqual([]);
    expect((await readdir(dir)).sort()).toEqual(['bin', 'good.log', 'good.tar']);
  });

  it("returns debootstrap's exit status, shows the log's tail, and leaves neither a tarball nor the build directory", async () => {
    const result = await rootfs('failed', { FAKE_DEBOOTSTRAP_EXIT: '3' });
    expect(result.code).toBe(3);
    expect(result.stderr).toContain('last line of the log');
    expect((await readdir(dir)).filter((name) => name.startsWith('failed'))).toEqual(['failed.log']);
  });
});
