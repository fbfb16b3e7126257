import { execFile } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CancelledError, ConfigError } from '@prebuilt/core/backend';
import { findMkfsErofs, parseMkfsErofsVersion, type MkfsErofs } from './erofs.js';
import { layerDiffId, writeLayer, type LayerEntry } from './layer.js';
import { createOciBuildService } from './oci-build-service.js';
import { have } from './__fixtures__/containerd.js';
import { describeOrFailInCi } from './__fixtures__/services.js';

const exec = promisify(execFile);
const erofsMissing = (await have('mkfs.erofs', ['--version'])) && (await have('fsck.erofs', ['--version'])) ? undefined : 'needs erofs-utils ≥ 1.8 on PATH (mkfs.erofs and fsck.erofs; scripts/setup.sh installs them)';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'prebuilt-oci-erofs-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

/** A directory holding only a fake `mkfs.erofs` (a shell script); its path as PATH. */
async function fakeMkfs(name: string, script: string): Promise<string> {
  const bin = join(dir, name);
  await mkdir(bin, { recursive: true });
  await writeFile(join(bin, 'mkfs.erofs'), `#!/bin/sh\n${script}\n`);
  await chmod(join(bin, 'mkfs.erofs'), 0o755);
  return bin;
}

const VERSION_186 = 'if [ "$1" = --version ]; then echo "mkfs.erofs (erofs-utils) 1.8.6"; echo "available compressors: lz4"; exit 0; fi';

describe('mkfs.erofs: found on PATH, version checked', () => {
  it('reads the version erofs-utils prints', () => {
    expect(parseMkfsErofsVersion('mkfs.erofs (erofs-utils) 1.8.6\navailable compressors: lz4')).toEqual({ version: '1.8.6', majorMinor: [1, 8] });
    expect(parseMkfsErofsVersion('mkfs.erofs (erofs-utils) 1.9.4-g1a2b3c4')).toEqual({ version: '1.9.4-g1a2b3c4', majorMinor: [1, 9] });
    // erofs-utils before 1.6 prints a banner, at the start of its output (Debian 12's 1.5: `mkfs.erofs 1.5`).
    expect(parseMkfsErofsVersion('mkfs.erofs 1.5\n')).toEqual({ version: '1.5', majorMinor: [1, 5] });
    expect(parseMkfsErofsVersion('see mkfs.erofs 1.7')).toBeUndefined();
    expect(parseMkfsErofsVersion('something else')).toBeUndefined();
  });

  it('none on PATH: a ConfigError naming mkfs.erofs and how to install erofs-utils', async () => {
    const error = await findMkfsErofs({ PATH: join(dir, 'empty') }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).message).toMatch(/there is no mkfs\.erofs on PATH/);
    expect((error as ConfigError).hint).toMatch(/apt-get install erofs-utils' on Debian ≥ 13 or Ubuntu ≥ 24\.10.*erofs-utils ≥ 1\.8/);
    expect((error as ConfigError).setting).toBe('METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION');
  });

  it('found only through an empty or relative PATH entry (the current directory): a ConfigError, and it is not run', async () => {
    const marker = join(dir, 'relative-ran');
    const bin = await fakeMkfs('relative', `: > '${marker}'\n${VERSION_186}`);
    const here = relative(process.cwd(), bin);
    const error = await findMkfsErofs({ PATH: `/nonexistent:${here}` }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).message).toContain(`erofs layers were asked for, but mkfs.erofs was found only in '${here}', a PATH entry relative to the current directory`);
    await expect(readFile(marker)).rejects.toThrow(/ENOENT/);
    // In an absolute entry the same program is found, and its path kept for the builds.
    expect(await findMkfsErofs({ PATH: `${here}:${bin}` })).toMatchObject({ version: '1.8.6', path: join(bin, 'mkfs.erofs') });
  });

  it('older than 1.8 (no --tar=f), or no version: a ConfigError naming the version found', async () => {
    const old = await fakeMkfs('old', 'echo "mkfs.erofs 1.7.1"; echo "mkfs.erofs (erofs-utils) 1.7.1"');
    const error = (await findMkfsErofs({ PATH: old }).catch((e: unknown) => e)) as ConfigError;
    expect(error).toBeInstanceOf(ConfigError);
    expect(error.message).toContain('the mkfs.erofs on PATH is erofs-utils 1.7.1, older than 1.8');
    expect(error.hint).toContain('apt-get install erofs-utils');
    const odd = await fakeMkfs('odd', 'echo "something else"');
    await expect(findMkfsErofs({ PATH: odd })).rejects.toThrow(/printed no version \('something else'\)/);
    // Debian 12's erofs-utils 1.5 has no --version: its banner on stdout, then its usage on stderr and exit 1.
    const debian12 = await fakeMkfs(
      'debian12',
      `echo "mkfs.erofs 1.5"; echo "mkfs.erofs: unrecognized option '--version'" >&2; echo "usage: [options] FILE DIRECTORY" >&2; echo " --quiet               quiet execution (do not write anything to standard output.)" >&2; echo "Available compressors are: lz4hc, lz4" >&2; exit 1`,
    );
    const tooOld = (await findMkfsErofs({ PATH: debian12 }).catch((e: unknown) => e)) as ConfigError;
    expect(tooOld).toBeInstanceOf(ConfigError);
    expect(tooOld.message).toBe('erofs layers were asked for, but the mkfs.erofs on PATH is erofs-utils 1.5, older than 1.8 (it cannot read a tar with --tar=f).');
    const broken = await fakeMkfs('broken', 'echo "cannot load liblz4" >&2; exit 127');
    await expect(findMkfsErofs({ PATH: broken })).rejects.toThrow(/'mkfs\.erofs --version' failed: cannot load liblz4/);
  });

  it('1.8 and later: found, with the PATH it runs with', async () => {
    const good = await fakeMkfs('good', VERSION_186);
    const found = await findMkfsErofs({ PATH: good });
    expect(found.version).toBe('1.8.6');
    expect(found.env['PATH']).toBe(good);
  });

  it("the build service's check looks for it with erofs layers only (backends --check, and a deploy before it materializes an env)", async () => {
    const env: Record<string, string> = { PATH: join(dir, 'empty'), METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION: 'erofs', METAFLOW_PREBUILT_OCI_RUNNERS: 'containerd@2.1' };
    const service = createOciBuildService({ env, layerCacheDir: false });
    const error = await service.check!().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).message).toMatch(/there is no mkfs\.erofs on PATH/);
    env['PATH'] = await fakeMkfs('checked', 'echo "mkfs.erofs 1.5"; exit 1');
    await expect(service.check!(), 'looked for again: found, too old').rejects.toThrow('the mkfs.erofs on PATH is erofs-utils 1.5, older than 1.8');
    env['PATH'] = await fakeMkfs('checked-good', VERSION_186);
    await expect(service.check!()).resolves.toBeUndefined();
    const gzip = createOciBuildService({ env: { PATH: join(dir, 'empty'), METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION: 'gzip' }, layerCacheDir: false });
    await expect(gzip.check!(), 'gzip layers need no mkfs.erofs').resolves.toBeUndefined();
  });

  it('the build service looks for it at the first build: a ConfigError (thrown, exit 2), not a failed build', async () => {
    const env: Record<string, string> = { PATH: join(dir, 'empty'), METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION: 'erofs', METAFLOW_PREBUILT_OCI_RUNNERS: 'containerd@2.1' };
    const service = createOciBuildService({ env, layerCacheDir: false, retry: { attempts: 1 } });
    const request = { dockerfile: 'FROM 127.0.0.1:1/none\n', contextDir: dir, imageTag: '127.0.0.1:1/x:y', platform: 'linux/amd64' };
    // An aborted build is cancelled before anything is looked for (no mkfs.erofs on PATH yet: no ConfigError).
    const controller = new AbortController();
    controller.abort();
    await expect(service.buildAndPush({ ...request, signal: controller.signal })).rejects.toBeInstanceOf(CancelledError);
    await expect(service.buildAndPush(request)).rejects.toThrow(/there is no mkfs\.erofs on PATH/);
    await expect(service.buildAndPush(request)).rejects.toBeInstanceOf(ConfigError);
    // Looked for again at the next build: installed in between, the build goes on (to a base image no registry serves).
    env['PATH'] = await fakeMkfs('installed', VERSION_186);
    const result = await service.buildAndPush(request);
    expect(result.ok).toBe(false);
    expect(result.ok ? '' : result.reason).toMatch(/127\.0\.0\.1:1/);
  });
});

describe('writeLayer: erofs', () => {
  let entries: LayerEntry[];
  beforeAll(async () => {
    await mkdir(join(dir, 'src/bin'), { recursive: true });
    await writeFile(join(dir, 'src/bin/tool'), '#!/bin/sh\necho hi\n');
    await chmod(join(dir, 'src/bin/tool'), 0o755);
    await writeFile(join(dir, 'src/big.bin'), Buffer.alloc(3 << 20, 'prebuilt erofs '));
    await symlink('tool', join(dir, 'src/bin/t'));
    entries = [
      { path: 'opt/env/bin/tool', kind: 'file', source: join(dir, 'src/bin/tool'), mode: 0o755 },
      { path: 'opt/env/bin/t', kind: 'symlink', source: join(dir, 'src/bin/t') },
      { path: 'opt/env/lib/big.bin', kind: 'file', source: join(dir, 'src/big.bin'), mode: 0o644 },
    ];
  });

  it('a mkfs.erofs failure: its stderr\'s last lines and the layer in the error', async () => {
    const failing = await fakeMkfs('failing', `${VERSION_186}\n/bin/cat >/dev/null\necho "<E> erofs: something broke" >&2\necho "<E> erofs: Could not format the device" >&2\nexit 1`);
    const mkfs: MkfsErofs = { env: { ...process.env, PATH: failing }, version: '1.8.6' };
    await expect(writeLayer(entries, join(dir, 'fail.erofs'), { compression: 'erofs', mkfsErofs: mkfs, label: 'layer 2/5 tinynum' })).rejects.toThrow(
      'mkfs.erofs 1.8.6 failed making layer 2/5 tinynum (exit 1): <E> erofs: something broke | <E> erofs: Could not format the device',
    );
    // One that quits without reading the tar: its own error, not the broken pipe.
    const quits = await fakeMkfs('quits', `${VERSION_186}\necho "<E> erofs: invalid option -- 'z'" >&2\nexit 1`);
    await expect(writeLayer(entries, join(dir, 'fail2.erofs'), { compression: 'erofs', mkfsErofs: { env: { ...process.env, PATH: quits }, version: '1.8.6' } })).rejects.toThrow(/failed making .*\(exit 1\): <E> erofs: invalid option -- 'z'$/);
  });

  it('a cancelled build stops mkfs.erofs (killed) with CancelledError', async () => {
    const slow = await fakeMkfs('slow', `${VERSION_186}\n/bin/cat >/dev/null\nexec /bin/sleep 60`);
    const controller = new AbortController();
    const started = Date.now();
    setTimeout(() => controller.abort(), 300);
    const writing = writeLayer(entries, join(dir, 'cancelled.erofs'), { compression: 'erofs', mkfsErofs: { env: { ...process.env, PATH: slow }, version: '1.8.6' }, signal: controller.signal });
    await expect(writing).rejects.toBeInstanceOf(CancelledError);
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('a file that cannot be read: that error, not mkfs.erofs\'s, and mkfs.erofs stopped (not left waiting or spinning)', async () => {
    const slow = await fakeMkfs('slow-too', `${VERSION_186}\n/bin/cat >/dev/null\nexec /bin/sleep 60`);
    const broken = [...entries, { path: 'opt/env/lib/zz-gone.py', kind: 'file' as const, source: join(dir, 'src/gone.py') }];
    const started = Date.now();
    await expect(writeLayer(broken, join(dir, 'broken.erofs'), { compression: 'erofs', mkfsErofs: { env: { ...process.env, PATH: slow }, version: '1.8.6' } })).rejects.toMatchObject({ code: 'ENOENT' });
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  describeOrFailInCi('with the real mkfs.erofs', erofsMissing, () => {
    it('the EROFS image of exactly the tar the other formats compress: reproducible, its digest is its diff_id, fsck.erofs extracts the files', async () => {
      const mkfs = await findMkfsErofs(process.env);
      const one = await writeLayer(entries, join(dir, 'one.erofs'), { compression: 'erofs', mkfsErofs: mkfs, mtime: 1_700_000_000 });
      const two = await writeLayer(entries, join(dir, 'two.erofs'), { compression: 'erofs', mkfsErofs: mkfs, mtime: 1_700_000_000 });
      expect(two.digest).toBe(one.digest);
      expect((await readFile(one.file)).equals(await readFile(two.file))).toBe(true);
      expect(one.diffId).toBe(one.digest);
      const tar = await layerDiffId(entries, { mtime: 1_700_000_000 });
      expect([one.tarDigest, one.tarSize, one.entries]).toEqual([tar.diffId, tar.tarSize, tar.entries]);
      expect(one.size).toBe((await readFile(one.file)).length);
      // EROFS superblock magic at 1024.
      expect((await readFile(one.file)).readUInt32LE(1024)).toBe(0xe0f5e1e2);

      const out = join(dir, 'extracted');
      await exec('fsck.erofs', [`--extract=${out}`, one.file]);
      expect(await readFile(join(out, 'opt/env/bin/tool'), 'utf8')).toBe('#!/bin/sh\necho hi\n');
      expect((await readFile(join(out, 'opt/env/lib/big.bin'))).equals(await readFile(join(dir, 'src/big.bin')))).toBe(true);
      const { stdout } = await exec('ls', ['-l', '--time-style=+%s', join(out, 'opt/env/bin')]);
      expect(stdout).toMatch(/-rwxr-xr-x 1 root root +18 1700000000 tool/);
      expect(stdout).toMatch(/lrwxrwxrwx 1 root root +4 1700000000 t -> tool/);
    });

  });
});
