import { chmod, lstat, mkdir, mkdtemp, readFile, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConfigError } from '@prebuilt/core';
import { normaliseTree, sourceDateEpoch, writeDeterministicTar } from './deterministic-tar.js';

let work: string;
beforeEach(async () => {
  work = await mkdtemp(join(tmpdir(), 'prebuilt-dtar-'));
});
afterEach(async () => {
  await rm(work, { recursive: true, force: true });
});

async function tree(root: string, modes: { file: number; exe: number }): Promise<void> {
  await mkdir(join(root, 'bin'), { recursive: true });
  await mkdir(join(root, 'lib/python3.11'), { recursive: true });
  await writeFile(join(root, 'bin/tool'), '#!/bin/sh\n');
  await chmod(join(root, 'bin/tool'), modes.exe);
  await writeFile(join(root, 'lib/python3.11/a.py'), 'a = 1\n');
  await chmod(join(root, 'lib/python3.11/a.py'), modes.file);
  await symlink('tool', join(root, 'bin/t'));
}

describe('writeDeterministicTar', () => {
  it('depends on content only: other modes, mtimes and creation order give the same bytes', async () => {
    await tree(join(work, 'a'), { file: 0o644, exe: 0o755 });
    await tree(join(work, 'b'), { file: 0o600, exe: 0o700 });
    await utimes(join(work, 'b/lib/python3.11/a.py'), 12345, 12345);
    const a = await writeDeterministicTar(join(work, 'a'), join(work, 'a.tar'), { mtime: 42 });
    const b = await writeDeterministicTar(join(work, 'b'), join(work, 'b.tar'), { mtime: 42 });
    expect(b.sha256).toBe(a.sha256);
    expect((await readFile(join(work, 'a.tar'))).equals(await readFile(join(work, 'b.tar')))).toBe(true);
    expect(a.entries).toBe(6);
    const c = await writeDeterministicTar(join(work, 'a'), join(work, 'c.tar'), { mtime: 43 });
    expect(c.sha256).not.toBe(a.sha256);
    await writeFile(join(work, 'b/lib/python3.11/a.py'), 'a = 2\n');
    const d = await writeDeterministicTar(join(work, 'b'), join(work, 'd.tar'), { mtime: 42 });
    expect(d.sha256).not.toBe(a.sha256);
  });

  it('normaliseTree sets 0755/0644 and one mtime on disk', async () => {
    await tree(join(work, 'n'), { file: 0o600, exe: 0o700 });
    await normaliseTree(join(work, 'n'), 1_000_000);
    expect((await lstat(join(work, 'n/bin/tool'))).mode & 0o777).toBe(0o755);
    expect((await lstat(join(work, 'n/lib/python3.11/a.py'))).mode & 0o777).toBe(0o644);
    expect((await lstat(join(work, 'n/lib'))).mode & 0o777).toBe(0o755);
    for (const p of ['n', 'n/bin', 'n/bin/t', 'n/lib/python3.11/a.py']) expect((await lstat(join(work, p))).mtimeMs).toBe(1_000_000_000);
  });
});

describe('sourceDateEpoch', () => {
  it('reads SOURCE_DATE_EPOCH, defaults to 0, and refuses a non-number', () => {
    expect(sourceDateEpoch({})).toBe(0);
    expect(sourceDateEpoch({ SOURCE_DATE_EPOCH: '1700000000' })).toBe(1_700_000_000);
    expect(() => sourceDateEpoch({ SOURCE_DATE_EPOCH: 'yesterday' })).toThrow(ConfigError);
  });
});

describe('writeDeterministicTar and links that lead out of the tree', () => {
  it('archives them as symlinks, never following them: no host file gets into the tar', async () => {
    const dir = join(work, 'prefix');
    await mkdir(join(dir, 'lib'), { recursive: true });
    await writeFile(join(dir, 'lib/ok.txt'), 'ok\n');
    await symlink('/etc/passwd', join(dir, 'passwd'));
    await symlink('/etc', join(dir, 'etc'));
    await symlink('../../..', join(dir, 'lib/up'));
    const out = join(work, 'prefix.tar');
    await writeDeterministicTar(dir, out);
    const tar = await readFile(out);
    expect(tar.includes(await readFile('/etc/passwd'))).toBe(false);
    const { extract } = await import('tar-stream');
    const seen = new Map<string, { type: string; linkname: string | null | undefined; size: number | undefined }>();
    const reader = extract();
    const done = (async () => {
      for await (const entry of reader) {
        seen.set(entry.header.name, { type: entry.header.type ?? '', linkname: entry.header.linkname, size: entry.header.size });
        entry.resume();
      }
    })();
    reader.end(tar);
    await done;
    expect(seen.get('passwd')).toEqual({ type: 'symlink', linkname: '/etc/passwd', size: 0 });
    expect(seen.get('etc')).toEqual({ type: 'symlink', linkname: '/etc', size: 0 });
    expect(seen.get('lib/up')).toEqual({ type: 'symlink', linkname: '../../..', size: 0 });
    expect([...seen.keys()].filter((name) => name.startsWith('etc/'))).toEqual([]);
  });
});
