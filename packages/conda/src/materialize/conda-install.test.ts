import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { link, lstat, mkdir, mkdtemp, open, readdir, readFile, readlink, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { buildCondaPackage, type CondaArtifact, type CondaPackageSpec } from '@prebuilt/fixtures';
import { installCondaPackage } from './conda-install.js';
import { ArchiveError, InstallError } from './errors.js';
import { PrefixWriter } from './prefix-writer.js';
import { Pruning } from './pruning.js';
import { bzip2Sync, infoEntries, lockedPackage, rawTar, rawZip, zstdSync, type RawTarEntry } from './__fixtures__/helpers.js';

const PREFIX = '/opt/prebuilt/envs/0123456789abcdef';

let parent: string;
let staging: string;
let packages: string;
beforeEach(async () => {
  parent = await mkdtemp(join(tmpdir(), 'prebuilt-conda-install-'));
  packages = await mkdtemp(join(tmpdir(), 'prebuilt-conda-install-pkgs-'));
  staging = join(parent, 'staging');
});
afterEach(async () => {
  await rm(parent, { recursive: true, force: true });
  await rm(packages, { recursive: true, force: true });
});

async function install(artifact: { filename: string; bytes: Buffer; name: string; version: string; build: string; subdir?: string }, pruning?: Pruning) {
  const writer = await PrefixWriter.open(staging);
  const pkg = lockedPackage('conda', artifact.filename, artifact.bytes, artifact);
  const file = join(packages, artifact.filename);
  await writeFile(file, artifact.bytes);
  return installCondaPackage(file, pkg, { writer, prefix: PREFIX, pythonVersion: '3.11.2', requestedSpec: artifact.name, ...(pruning ? { pruning } : {}) });
}

const fromArtifact = (a: CondaArtifact) => ({ filename: a.filename, bytes: a.bytes, name: a.record.name, version: a.record.version, build: a.record.build, subdir: a.subdir });

const TOOL: CondaPackageSpec = {
  name: 'tooly',
  version: '1.0.0',
  subdir: 'linux-64',
  files: [
    { path: 'bin/tooly', content: '#!/bin/sh\necho "@PREFIX@"\n', mode: 0o755, prefix: 'text' },
    { path: 'bin/ty', symlink: 'tooly' },
    { path: 'share/tooly/data.bin', content: Buffer.from('HEAD\0@PREFIX@/lib:@PREFIX@/x\0\x01\x02@PREFIX@\0tail', 'latin1'), prefix: 'binary' },
    { path: 'share/tooly/plain.txt', content: 'no placeholder here\n' },
  ],
  postLink: 'echo linked\n',
};

describe('installCondaPackage', () => {
  for (const format of ['.tar.bz2', '.conda'] as const) {
    it(`installs a ${format} package: placeholders replaced (text and binary), symlink and modes kept, conda-meta record`, async () => {
      const artifact = (await buildCondaPackage({ ...TOOL, formats: [format] }))[0]!;
      const { record, hasLinkScripts, clobbered } = await install(fromArtifact(artifact));

      expect(await readFile(join(staging, 'bin/tooly'), 'utf8')).toBe(`#!/bin/sh\necho "${PREFIX}"\n`);
      expect((await lstat(join(staging, 'bin/tooly'))).mode & 0o777).toBe(0o755);
      expect((await lstat(join(staging, 'share/tooly/plain.txt'))).mode & 0o777).toBe(0o644);
      expect(await readlink(join(staging, 'bin/ty'))).toBe('tooly');

      const original = artifact.bytes; // the binary file in the package has the 255-byte placeholder
      expect(original.length).toBeGreaterThan(0);
      const binary = await readFile(join(staging, 'share/tooly/data.bin'));
      const placeholderLength = 255;
      const expectedLength = Buffer.byteLength('HEAD\0@PREFIX@/lib:@PREFIX@/x\0\x01\x02@PREFIX@\0tail', 'latin1') + 3 * (placeholderLength - '@PREFIX@'.length);
      expect(binary.length).toBe(expectedLength);
      const strings = binary.toString('latin1').split('\0').filter((s) => s !== '');
      expect(strings).toEqual(['HEAD', `${PREFIX}/lib:${PREFIX}/x`, '\x01\x02' + PREFIX, 'tail']);
      expect(binary.toString('latin1')).not.toContain('placehold');

      expect(hasLinkScripts).toBe(true);
      expect(clobbered).toEqual([]);
      expect(record).toMatchObject({
        name: 'tooly',
        version: '1.0.0',
        build: artifact.record.build,
        subdir: 'linux-64',
        fn: artifact.filename,
        url: `https://example.invalid/channel/linux-64/${artifact.filename}`,
        channel: 'https://example.invalid/channel',
        md5: artifact.record.md5,
        sha256: artifact.record.sha256,
        size: artifact.bytes.length,
        requested_spec: 'tooly',
      });
      expect(record.files).toEqual(['bin/.tooly-post-link.sh', 'bin/tooly', 'bin/ty', 'share/tooly/data.bin', 'share/tooly/plain.txt']);
      const text = record.paths_data.paths.find((p) => p._path === 'bin/tooly')!;
      expect(text).toMatchObject({ file_mode: 'text', path_type: 'hardlink' });
      expect(String(text.prefix_placeholder)).toHaveLength(255);
      expect(text.sha256_in_prefix).toMatch(/^[0-9a-f]{64}$/);
      expect(record.paths_data.paths.find((p) => p._path === 'bin/ty')).toMatchObject({ path_type: 'softlink' });
    });
  }

  it('remaps a noarch python package and writes its entry points on the env interpreter', async () => {
    const artifact = (
      await buildCondaPackage({
        name: 'tinycli',
        version: '0.1.0',
        noarch: 'python',
        files: [
          { path: 'site-packages/tinycli/__init__.py', content: 'def main():\n    return 0\n' },
          { path: 'python-scripts/tinycli-helper', content: '#!/usr/bin/env python\nprint(1)\n', mode: 0o755 },
        ],
        entryPoints: ['tinycli = tinycli:main', 'tinycli-sub = tinycli.sub:cmd.run'],
        formats: ['.conda'],
      })
    )[0]!;
    const { record, hasLinkScripts } = await install(fromArtifact(artifact));
    expect(hasLinkScripts).toBe(false);
    expect(await readFile(join(staging, 'lib/python3.11/site-packages/tinycli/__init__.py'), 'utf8')).toContain('def main');
    expect((await lstat(join(staging, 'bin/tinycli-helper'))).mode & 0o777).toBe(0o755);
    const script = await readFile(join(staging, 'bin/tinycli'), 'utf8');
    expect(script.split('\n')[0]).toBe(`#!${PREFIX}/bin/python`);
    expect(script).toContain('from tinycli import main');
    expect(script).toContain('sys.exit(main())');
    const sub = await readFile(join(staging, 'bin/tinycli-sub'), 'utf8');
    expect(sub).toContain('from tinycli.sub import cmd');
    expect(sub).toContain('sys.exit(cmd.run())');
    expect((await lstat(join(staging, 'bin/tinycli'))).mode & 0o777).toBe(0o755);
    expect(record.noarch).toBe('python');
    expect(record.files).toEqual(['bin/tinycli', 'bin/tinycli-helper', 'bin/tinycli-sub', 'lib/python3.11/site-packages/tinycli/__init__.py']);
    expect(record.paths_data.paths.find((p) => p._path === 'bin/tinycli')).toMatchObject({ path_type: 'unix_python_entry_point' });
  });

  it('fails clearly when the prefix is longer than a binary placeholder', async () => {
    const artifact = (
      await buildCondaPackage({
        name: 'shortph',
        version: '1.0',
        subdir: 'linux-64',
        placeholder: '/short/placeholder',
        files: [{ path: 'lib/x.bin', content: Buffer.from('\0@PREFIX@/a\0'), prefix: 'binary' }],
        formats: ['.tar.bz2'],
      })
    )[0]!;
    const error = await install(fromArtifact(artifact)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InstallError);
    expect((error as Error).message).toMatch(/prefix '\/opt\/prebuilt\/envs\/0123456789abcdef' \(35 bytes\) is longer than the 18-byte placeholder in the binary file 'lib\/x.bin'/);
  });

  it('reads info/files + info/has_prefix when there is no paths.json', async () => {
    const tar = await rawTar([
      { name: 'info/index.json', data: JSON.stringify({ name: 'old', version: '1.0', build: 'h0', depends: [] }) },
      { name: 'info/files', data: 'bin/old\netc/old.conf\nshare/old.bin\n' },
      { name: 'info/has_prefix', data: '/opt/anaconda1anaconda2anaconda3/with/a/long/enough/placeholder/path binary share/old.bin\netc/old.conf\n' },
      { name: 'bin/old', data: '#!/bin/sh\n', mode: 0o755 },
      { name: 'etc/old.conf', data: 'root=/opt/anaconda1anaconda2anaconda3\n' },
      { name: 'share/old.bin', data: '\0/opt/anaconda1anaconda2anaconda3/with/a/long/enough/placeholder/path/lib\0' },
      { name: 'share/not-listed', data: 'conda links only the listed paths\n' },
    ]);
    const bytes = bzip2Sync(tar);
    const { record } = await install({ filename: 'old-1.0-h0.tar.bz2', bytes, name: 'old', version: '1.0', build: 'h0' });
    expect(await readFile(join(staging, 'etc/old.conf'), 'utf8')).toBe(`root=${PREFIX}\n`);
    const bin = await readFile(join(staging, 'share/old.bin'));
    expect(bin.length).toBe(74);
    expect(bin.toString('latin1').split('\0').filter(Boolean)).toEqual([`${PREFIX}/lib`]);
    expect(record.files).toEqual(['bin/old', 'etc/old.conf', 'share/old.bin']);
    await expect(lstat(join(staging, 'share/not-listed'))).rejects.toThrow();
  });

  it('prunes a file whose hardlink outside the pruned directory still gets its content (read from the extraction)', async () => {
    const files = [
      { name: 'lib/libhl.a', data: 'static archive\n' },
      { name: 'lib/python3.11/site-packages/hl/tests/data.txt', data: 'shared bytes\n' },
      { name: 'lib/python3.11/site-packages/hl/data.txt', type: 'link' as const, linkname: 'lib/python3.11/site-packages/hl/tests/data.txt' },
      { name: 'lib/python3.11/site-packages/hl/tests/again.txt', type: 'link' as const, linkname: 'lib/python3.11/site-packages/hl/data.txt' },
    ];
    const paths = files.map((e) => ({ _path: e.name, path_type: 'hardlink' }));
    const bytes = bzip2Sync(await rawTar([...infoEntries('hl', paths), ...files]));
    const pruning = new Pruning(['tests', 'static-libs']);
    const { record } = await install({ filename: 'hl-1.0-h0.tar.bz2', bytes, name: 'hl', version: '1.0', build: 'h0' }, pruning);
    expect(await readFile(join(staging, 'lib/python3.11/site-packages/hl/data.txt'), 'utf8')).toBe('shared bytes\n');
    await expect(lstat(join(staging, 'lib/python3.11/site-packages/hl/tests'))).rejects.toThrow();
    await expect(lstat(join(staging, 'lib/libhl.a'))).rejects.toThrow();
    expect(record.files).toEqual(['lib/python3.11/site-packages/hl/data.txt']);
    expect(pruning.summary()).toEqual({ presets: ['static-libs', 'tests'], files: 3, bytes: 'static archive\n'.length + 'shared bytes\n'.length });
  });

  it('copies hardlinks with the bytes and mode of their source: small, bigger than a read chunk, and bigger with a placeholder', async () => {
    const MiB = 1024 * 1024;
    const big = Buffer.alloc(3 * MiB + 17);
    for (let i = 0; i < big.length; i += 1) big[i] = (i * 31 + (i >> 13)) & 0xff;
    // A text file past the 1 MiB read chunk, with a placeholder across the first chunk boundary.
    const text = Buffer.from(`head @PREFIX@\n${'x'.repeat(MiB - 20)}@PREFIX@/lib\n${'y'.repeat(MiB)}tail @PREFIX@\n`);
    const files: RawTarEntry[] = [
      { name: 'bin/small', data: 'small\n', mode: 0o755 },
      { name: 'bin/small-copy', type: 'link', linkname: 'bin/small', mode: 0o755 },
      { name: 'lib/big.bin', data: big },
      { name: 'lib/big-copy.bin', type: 'link', linkname: 'lib/big.bin' },
      { name: 'share/big.txt', data: text },
      { name: 'share/big-copy.txt', type: 'link', linkname: 'share/big.txt' },
    ];
    const placeholder = { prefix_placeholder: '@PREFIX@', file_mode: 'text' };
    const paths = files.map((e) => ({ _path: e.name, ...(e.name.startsWith('share/') ? placeholder : {}) }));
    const bytes = bzip2Sync(await rawTar([...infoEntries('hl', paths), ...files]));
    const { record } = await install({ filename: 'hl-1.0-h0.tar.bz2', bytes, name: 'hl', version: '1.0', build: 'h0' });

    const patched = Buffer.from(text.toString('utf8').replaceAll('@PREFIX@', PREFIX));
    const expected: [string, Buffer, number][] = [
      ['bin/small', Buffer.from('small\n'), 0o755],
      ['lib/big.bin', big, 0o644],
      ['share/big.txt', patched, 0o644],
    ];
    const rows = new Map((record.paths_data.paths as { _path: string; sha256: string; size_in_bytes: number; sha256_in_prefix?: string }[]).map((row) => [row._path, row]));
    for (const [path, content, mode] of expected) {
      const copyPath = path.replace(/(\.[a-z]+)?$/, '-copy$1');
      const copy = await readFile(join(staging, copyPath));
      expect(copy.equals(content), copyPath).toBe(true);
      expect((await readFile(join(staging, path))).equals(content)).toBe(true);
      const info = await lstat(join(staging, copyPath));
      expect(info.mode & 0o777).toBe(mode);
      // A copy, not a link to the source's inode.
      expect(info.ino).not.toBe((await lstat(join(staging, path))).ino);
      // A copy of a placeholder file is taken from the (patched) source in the prefix: its row records that content.
      const sha = createHash('sha256').update(content).digest('hex');
      expect(rows.get(copyPath)).toMatchObject(path.startsWith('share/') ? { sha256_in_prefix: sha } : { sha256: sha, size_in_bytes: content.length });
    }
    expect(rows.get('lib/big-copy.bin')).toMatchObject({ sha256: createHash('sha256').update(big).digest('hex'), size_in_bytes: big.length });
  });

  it('copies a hardlink to a 512 MiB file in bounded memory (the peak RSS of a child process installing it)', async () => {
    const MiB = 1024 * 1024;
    const size = 512 * MiB;
    const tree = join(packages, 'tree');
    await mkdir(join(tree, 'lib'), { recursive: true });
    // Sparse-ish: holes, with a marker every 64 MiB (the copy must carry them, not zeros).
    const handle = await open(join(tree, 'lib/big.bin'), 'w');
    await handle.truncate(size);
    for (let i = 0; i < 8; i += 1) await handle.write(Buffer.from(`marker ${i}\n`), 0, 9, i * 64 * MiB + i);
    await handle.close();
    await link(join(tree, 'lib/big.bin'), join(tree, 'lib/big-copy.bin'));
    // GNU tar stores the second name as a hard link to the first; streamed to zstd, so no 512 MiB buffer here.
    const pkgTar = join(packages, 'pkg.tar.zst');
    execFileSync('sh', ['-c', 'tar -C "$1" --owner=0 --group=0 --mtime=@0 -cf - lib/big.bin lib/big-copy.bin | zstd -3 -q -c > "$2"', 'sh', tree, pkgTar]);
    await rm(tree, { recursive: true });
    // Declared sizes: the expansion budget lets the package expand to them (and no further).
    const paths = [{ _path: 'lib/big.bin', size_in_bytes: size }, { _path: 'lib/big-copy.bin', size_in_bytes: size }];
    const bytes = rawZip([
      { name: 'metadata.json', data: '{"conda_pkg_format_version": 2}' },
      { name: 'info-big-1.0-h0.tar.zst', data: zstdSync(await rawTar(infoEntries('big', paths))) },
      { name: 'pkg-big-1.0-h0.tar.zst', data: await readFile(pkgTar) },
    ]);
    const file = join(packages, 'big-1.0-h0.conda');
    await writeFile(file, bytes);
    const pkgFile = join(packages, 'pkg.json');
    await writeFile(pkgFile, JSON.stringify(lockedPackage('conda', 'big-1.0-h0.conda', bytes, { name: 'big', version: '1.0', build: 'h0' })));

    // The child imports the built package (as the CLI runs it) and reports its peak RSS in KiB.
    const dist = fileURLToPath(new URL('../../dist/materialize/', import.meta.url));
    const script = `
      import { readFileSync } from 'node:fs';
      const { installCondaPackage } = await import(${JSON.stringify(`${dist}conda-install.js`)});
      const { PrefixWriter } = await import(${JSON.stringify(`${dist}prefix-writer.js`)});
      const writer = await PrefixWriter.open(${JSON.stringify(staging)});
      const pkg = JSON.parse(readFileSync(${JSON.stringify(pkgFile)}, 'utf8'));
      await installCondaPackage(${JSON.stringify(file)}, pkg, { writer, prefix: ${JSON.stringify(PREFIX)}, pythonVersion: '3.11.2', requestedSpec: 'big' });
      process.stdout.write(String(process.resourceUsage().maxRSS));
    `;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(err).toBe('');
    expect(code).toBe(0);
    const peakMiB = Number(out) / 1024;
    // Reading the source whole held all 512 MiB; streamed, the process stays near its baseline.
    expect(peakMiB).toBeGreaterThan(0);
    expect(peakMiB).toBeLessThan(192);

    const copy = join(staging, 'lib/big-copy.bin');
    expect((await stat(copy)).size).toBe(size);
    expect((await stat(copy)).ino).not.toBe((await stat(join(staging, 'lib/big.bin'))).ino);
    const read = await open(copy, 'r');
    try {
      for (let i = 0; i < 8; i += 1) {
        const marker = Buffer.alloc(9);
        await read.read(marker, 0, 9, i * 64 * MiB + i);
        expect(marker.toString()).toBe(`marker ${i}\n`);
      }
    } finally {
      await read.close();
    }
  }, 120_000);

  it('refuses a package whose contents do not match the lock', async () => {
    const artifact = (await buildCondaPackage({ ...TOOL, formats: ['.tar.bz2'] }))[0]!;
    const error = await install({ ...fromArtifact(artifact), version: '2.0.0' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InstallError);
    expect((error as Error).message).toContain('but the lock says tooly-2.0.0');
  });
});

describe('installCondaPackage safety', () => {
  async function expectRefused(entries: RawTarEntry[], pattern: RegExp, format: '.tar.bz2' | '.conda' = '.tar.bz2') {
    const paths = entries.filter((e) => !e.name.startsWith('info/')).map((e) => ({ _path: e.name, path_type: e.type === 'symlink' ? 'softlink' : 'hardlink' }));
    const all = [...infoEntries('evil', paths), ...entries];
    const bytes =
      format === '.tar.bz2'
        ? bzip2Sync(await rawTar(all))
        : rawZip([
            { name: 'metadata.json', data: '{"conda_pkg_format_version": 2}' },
            { name: 'info-evil-1.0-h0.tar.zst', data: zstdSync(await rawTar(all.filter((e) => e.name.startsWith('info/')))) },
            { name: 'pkg-evil-1.0-h0.tar.zst', data: zstdSync(await rawTar(all.filter((e) => !e.name.startsWith('info/')))) },
          ]);
    const error = await install({ filename: `evil-1.0-h0${format}`, bytes, name: 'evil', version: '1.0', build: 'h0' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ArchiveError);
    expect((error as ArchiveError).packageName).toBe(`evil-1.0-h0${format}`);
    expect((error as Error).message).toMatch(pattern);
    // Nothing was written beside the staging directory.
    expect((await readdir(parent)).filter((n) => n !== 'staging')).toEqual([]);
    return error as ArchiveError;
  }

  it('refuses an entry with ..', async () => {
    await expectRefused([{ name: 'lib/../../escaped.txt', data: 'x' }], /climbs out of the prefix \('lib\/\.\.\/\.\.\/escaped\.txt'\)/);
  });

  it('refuses an entry with ..  inside a .conda package', async () => {
    await expectRefused([{ name: '../escaped.txt', data: 'x' }], /climbs out of the prefix/, '.conda');
  });

  it('refuses an absolute path', async () => {
    await expectRefused([{ name: '/tmp/escaped-absolute.txt', data: 'x' }], /absolute path/);
    await expect(lstat('/tmp/escaped-absolute.txt')).rejects.toThrow();
  });

  it('refuses a symlink pointing outside the prefix (relative and absolute)', async () => {
    await expectRefused([{ name: 'lib/link', type: 'symlink', linkname: '../../outside' }], /symlink 'lib\/link' pointing outside the prefix/);
    await expectRefused([{ name: 'lib/link', type: 'symlink', linkname: '/etc/passwd' }], /symlink 'lib\/link' pointing outside the prefix/);
  });

  it('refuses writing through an in-prefix symlink chain that leads outside', async () => {
    // `up -> .` is inside; `up2 -> up/..` looks inside lexically but really points at the parent.
    await expectRefused(
      [
        { name: 'up', type: 'symlink', linkname: '.' },
        { name: 'sub/up2', type: 'symlink', linkname: '../up/..' },
        { name: 'sub/up2/escaped.txt', data: 'x' },
      ],
      /leads outside the env prefix/,
    );
  });

  it('refuses a hardlink to a file outside the package', async () => {
    await expectRefused([{ name: 'lib/hard', type: 'link', linkname: '../etc/passwd' }], /climbs out of the prefix \('\.\.\/etc\/passwd'\)/);
    await expectRefused([{ name: 'lib/hard', type: 'link', linkname: 'etc/not-in-this-package' }], /hardlink 'lib\/hard' to 'etc\/not-in-this-package', which is not a file of this package/);
    await expectRefused([{ name: 'lib/hard', type: 'link', linkname: '/etc/passwd' }], /absolute path/);
  });

  it('refuses a hardlink to a symlink or a directory of the package, and one reached through a link that leads out', async () => {
    await expectRefused(
      [
        { name: 'lib/real', data: 'x' },
        { name: 'lib/alias', type: 'symlink', linkname: 'real' },
        { name: 'lib/hard', type: 'link', linkname: 'lib/alias' },
      ],
      /hardlink 'lib\/hard' to 'lib\/alias', which is not a file of this package/,
    );
    await expectRefused(
      [
        { name: 'lib/dir', type: 'directory', mode: 0o755 },
        { name: 'lib/hard', type: 'link', linkname: 'lib/dir' },
      ],
      /hardlink 'lib\/hard' to 'lib\/dir', which is not a file of this package/,
    );
    // A file written through `x`, then `x` replaced by a link that climbs out: the copy would read a host file.
    await expectRefused(
      [
        { name: 'inside', type: 'directory', mode: 0o755 },
        { name: 'd', type: 'directory', mode: 0o755 },
        { name: 'x', type: 'symlink', linkname: 'inside' },
        { name: 'x/secret.txt', data: 'decoy' },
        { name: 'x', type: 'symlink', linkname: 'd/y/../..' },
        { name: 'd/y', type: 'symlink', linkname: '..' },
        { name: 'stolen', type: 'link', linkname: 'x/secret.txt' },
      ],
      /'stolen' leads outside the env prefix/,
    );
  });

  it('fails on a truncated .tar.bz2 naming the package', async () => {
    const artifact = (await buildCondaPackage({ ...TOOL, formats: ['.tar.bz2'] }))[0]!;
    const bytes = artifact.bytes.subarray(0, Math.floor(artifact.bytes.length / 2));
    const error = await install({ ...fromArtifact(artifact), bytes }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ArchiveError);
    expect((error as Error).message).toContain(`${artifact.filename} is corrupt or truncated`);
  });

  it('fails on a truncated or corrupt .conda naming the package', async () => {
    const artifact = (await buildCondaPackage({ ...TOOL, formats: ['.conda'] }))[0]!;
    const truncated = artifact.bytes.subarray(0, artifact.bytes.length - 40);
    const e1 = await install({ ...fromArtifact(artifact), bytes: truncated }).catch((e: unknown) => e);
    expect(e1).toBeInstanceOf(ArchiveError);
    expect((e1 as Error).message).toContain(`${artifact.filename} is corrupt or truncated`);
    const corrupt = Buffer.from(artifact.bytes);
    corrupt[200] = corrupt[200]! ^ 0xff;
    const e2 = await install({ ...fromArtifact(artifact), bytes: corrupt }).catch((e: unknown) => e);
    expect(e2).toBeInstanceOf(ArchiveError);
    expect((e2 as Error).message).toContain(`${artifact.filename} is corrupt or truncated`);
  });
});

describe('installCondaPackage of a package whose text placeholder would blow up a file', () => {
  it('refuses a one-byte placeholder over a file full of that byte, before the patched file is built', async () => {
    // 2 MiB of 'a' (zstd makes it a few hundred bytes) with placeholder 'a': each byte would become
    // the 35-byte prefix, 70 MiB in all — and a 1 GiB file 35 GiB.
    const body = Buffer.alloc(2 * 1024 * 1024, 'a');
    const tar = await rawTar([...infoEntries('grower', [{ _path: 'share/grow.txt', prefix_placeholder: 'a', file_mode: 'text' }]), { name: 'share/grow.txt', data: body }]);
    const bytes = bzip2Sync(tar);
    expect(bytes.length).toBeLessThan(64 * 1024);
    const error = await install({ filename: 'grower-1.0-h0.tar.bz2', bytes, name: 'grower', version: '1.0', build: 'h0' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InstallError);
    expect((error as Error).message).toBe(
      `grower-1.0-h0.tar.bz2: replacing the 1-byte prefix placeholder 'a' in the text file 'share/grow.txt' (${body.length} times) would make it ${body.length * (PREFIX.length - 1)} bytes longer, more than the 67108864 prebuilt allows; refusing to install it.`,
    );
    await expect(lstat(join(staging, 'share/grow.txt'))).rejects.toThrow();
  });

  it('refuses a package whose text files, each within the bound, would together grow past it', async () => {
    // Two files of 'a' with placeholder 'a', each growing 34 MiB (under 64 MiB), 68 MiB together: a
    // package of many such files (each a few hundred bytes compressed) wrote its 32 GiB cap many times over.
    const small = Buffer.alloc(1024 * 1024, 'a');
    const streamed = Buffer.alloc(1024 * 1024 + 1, 'a');
    const tar = await rawTar([
      ...infoEntries('grower', [
        { _path: 'share/a.txt', prefix_placeholder: 'a', file_mode: 'text' },
        { _path: 'share/b.txt', prefix_placeholder: 'a', file_mode: 'text' },
      ]),
      { name: 'share/a.txt', data: small },
      { name: 'share/b.txt', data: streamed },
    ]);
    const error = await install({ filename: 'grower-1.0-h0.tar.bz2', bytes: bzip2Sync(tar), name: 'grower', version: '1.0', build: 'h0' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InstallError);
    const growth = (small.length + streamed.length) * (PREFIX.length - 1);
    expect((error as Error).message).toBe(
      `grower-1.0-h0.tar.bz2: replacing the prefix placeholders of its text files would make them ${growth} bytes longer in all (at 'share/b.txt'), more than the 67108864 prebuilt allows a package; refusing to install it.`,
    );
    await expect(lstat(join(staging, 'share/b.txt'))).rejects.toThrow();
  });

  it('still patches a text file whose placeholders are shorter than the prefix, within the bound', async () => {
    const tar = await rawTar([...infoEntries('short', [{ _path: 'etc/x.conf', prefix_placeholder: '/p', file_mode: 'text' }]), { name: 'etc/x.conf', data: 'a=/p/lib b=/p\n' }]);
    await install({ filename: 'short-1.0-h0.tar.bz2', bytes: bzip2Sync(tar), name: 'short', version: '1.0', build: 'h0' });
    expect(await readFile(join(staging, 'etc/x.conf'), 'utf8')).toBe(`a=${PREFIX}/lib b=${PREFIX}\n`);
  });
});

describe('installCondaPackage of a file with a placeholder bigger than a read chunk (1 MiB)', () => {
  it('streams it a chunk at a time (never the whole file in memory), placeholders across chunk boundaries replaced: text and binary', async () => {
    const placeholder = `/opt/placehold_${'p'.repeat(240)}`;
    const mib = 1024 * 1024;
    // Placeholders straddling each 1 MiB boundary; the binary one in long NUL-terminated strings.
    const make = (fill: string): Buffer => {
      const data = Buffer.alloc(3 * mib + 4096, fill);
      for (const at of [100, mib - 7, 2 * mib - 200, 3 * mib - 1]) data.write(`${placeholder}/lib`, at, 'latin1');
      data[2 * mib + 5000] = 0;
      data[data.length - 1] = 0;
      return data;
    };
    const text = make('t');
    const binary = make('b');
    const tar = await rawTar([
      ...infoEntries('big', [
        { _path: 'share/big.txt', prefix_placeholder: placeholder, file_mode: 'text' },
        { _path: 'lib/libbig.so', prefix_placeholder: placeholder, file_mode: 'binary' },
      ]),
      { name: 'share/big.txt', data: text },
      { name: 'lib/libbig.so', data: binary },
    ]);
    const blocks: number[] = [];
    const original = PrefixWriter.prototype.writeStream;
    const spy = vi.spyOn(PrefixWriter.prototype, 'writeStream').mockImplementation(function (this: PrefixWriter, rel, chunks, ...rest) {
      async function* counted(): AsyncGenerator<Uint8Array> {
        for await (const chunk of chunks) {
          blocks.push(chunk.length);
          yield chunk;
        }
      }
      return original.call(this, rel, counted(), ...rest);
    });
    try {
      const { record } = await install({ filename: 'big-1.0-h0.tar.bz2', bytes: bzip2Sync(tar), name: 'big', version: '1.0', build: 'h0' });
      expect(spy.mock.calls.map((call) => call[0]).sort()).toEqual(['lib/libbig.so', 'share/big.txt']);
      // Written in blocks of about a read chunk (1 MiB and what its replacements add), several per file.
      expect(blocks.length).toBeGreaterThanOrEqual(8);
      expect(Math.max(...blocks)).toBeLessThan(mib + 4 * placeholder.length);
      const swap = (data: Buffer, binaryMode: boolean): Buffer => {
        let out = data.toString('latin1').split(placeholder).join(PREFIX);
        if (binaryMode) {
          // Each string that held the placeholder keeps its length: NULs before its terminator.
          out = data
            .toString('latin1')
            .split('\0')
            .map((s) => (s.includes(placeholder) ? s.split(placeholder).join(PREFIX) + '\0'.repeat(s.length - s.split(placeholder).join(PREFIX).length) : s))
            .join('\0');
        }
        return Buffer.from(out, 'latin1');
      };
      const installedText = await readFile(join(staging, 'share/big.txt'));
      expect(installedText.equals(swap(text, false))).toBe(true);
      const installedBinary = await readFile(join(staging, 'lib/libbig.so'));
      expect(installedBinary.length).toBe(binary.length);
      expect(installedBinary.equals(swap(binary, true))).toBe(true);
      const big = record.paths_data.paths.find((p) => p['_path'] === 'share/big.txt')!;
      expect(big['size_in_bytes']).toBe(text.length);
      expect(big['sha256_in_prefix']).toBe(createHash('sha256').update(installedText).digest('hex'));
      expect(big['sha256']).toBe(createHash('sha256').update(text).digest('hex'));
    } finally {
      spy.mockRestore();
    }
  });

  it('refuses a big binary file whose placeholder the prefix is too long for before anything of it is written', async () => {
    const data = Buffer.alloc(2 * 1024 * 1024, 'b');
    data.write('/short/lib\0', 1024 * 1024 + 10, 'latin1');
    const tar = await rawTar([...infoEntries('shortph', [{ _path: 'lib/libshort.so', prefix_placeholder: '/short', file_mode: 'binary' }]), { name: 'lib/libshort.so', data }]);
    const error = await install({ filename: 'shortph-1.0-h0.tar.bz2', bytes: bzip2Sync(tar), name: 'shortph', version: '1.0', build: 'h0' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InstallError);
    expect((error as Error).message).toBe(`shortph-1.0-h0.tar.bz2: the env prefix '${PREFIX}' (${PREFIX.length} bytes) is longer than the 6-byte placeholder in the binary file 'lib/libshort.so', so it cannot be patched in.`);
    await expect(lstat(join(staging, 'lib/libshort.so'))).rejects.toThrow();
  });
});

