/**
 * mkfs.erofs as an attacker would have it: a tool that hangs, writes forever, exits 0 with garbage,
 * ignores SIGTERM, leaves a child holding its stderr, or prints the environment it was given; and
 * package contents with hostile names fed to the real one.
 */
import { execFile } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, readlink, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { CancelledError, ConfigError } from '@prebuilt/core/backend';
import { findMkfsErofs, maxErofsImageBytes, type MkfsErofs } from './erofs.js';
import { writeLayer, type LayerEntry } from './layer.js';
import { have } from './__fixtures__/containerd.js';
import { describeOrFailInCi } from './__fixtures__/services.js';

const exec = promisify(execFile);
const erofsMissing =
  (await have('mkfs.erofs', ['--version'])) && (await have('fsck.erofs', ['--version'])) ? undefined : 'needs erofs-utils ≥ 1.8 on PATH (mkfs.erofs and fsck.erofs; scripts/setup.sh installs them)';

const VERSION_186 = 'if [ "$1" = --version ]; then echo "mkfs.erofs (erofs-utils) 1.8.6"; exit 0; fi';
/** The image file: mkfs.erofs's last argument. */
const IMAGE_ARG = 'for image; do :; done';

let dir: string;
let entries: LayerEntry[];
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'prebuilt-oci-erofs-hostile-'));
  await mkdir(join(dir, 'src'), { recursive: true });
  await writeFile(join(dir, 'src/tool'), '#!/bin/sh\necho hi\n');
  // Larger than a pipe's buffer: a mkfs.erofs that reads nothing blocks the tar.
  await writeFile(join(dir, 'src/big.bin'), Buffer.alloc(2 << 20, 'prebuilt erofs '));
  entries = [
    { path: 'opt/env/bin/tool', kind: 'file', source: join(dir, 'src/tool'), mode: 0o755 },
    { path: 'opt/env/lib/big.bin', kind: 'file', source: join(dir, 'src/big.bin') },
  ];
});
afterAll(() => rm(dir, { recursive: true, force: true }));
afterEach(() => vi.unstubAllEnvs());

/** A directory holding only a fake `mkfs.erofs` (a shell script); its path, for PATH. */
async function fakeMkfs(name: string, script: string): Promise<string> {
  const bin = join(dir, 'bin', name);
  await mkdir(bin, { recursive: true });
  await writeFile(join(bin, 'mkfs.erofs'), `#!/bin/sh\n${VERSION_186}\n${IMAGE_ARG}\n${script}\n`);
  await chmod(join(bin, 'mkfs.erofs'), 0o755);
  return bin;
}

/** The fake found as a build finds it, with short limits. */
const LIMITS = { silenceMs: 1500, pollMs: 100, imageSlackBytes: 1 << 20, finishBytesPerSecond: 1 << 20 };

async function found(bin: string, limits: MkfsErofs['limits'] = LIMITS): Promise<MkfsErofs> {
  return { ...(await findMkfsErofs({ PATH: bin })), limits };
}

function write(mkfs: MkfsErofs, name: string, signal?: AbortSignal) {
  return writeLayer(entries, join(dir, `${name}.erofs`), { compression: 'erofs', mkfsErofs: mkfs, label: `layer ${name}`, ...(signal ? { signal } : {}) });
}

describe('a hostile or broken mkfs.erofs', () => {
  it('gets no secret from the environment: it runs with PATH, LD_LIBRARY_PATH, TMPDIR and the locale only, so it cannot print a password it was never given', async () => {
    vi.stubEnv('METAFLOW_PREBUILT_REGISTRY_PASSWORD', 'hunter2-registry');
    vi.stubEnv('AWS_SECRET_ACCESS_KEY', 'hunter2-aws');
    vi.stubEnv('LC_ALL', 'C');
    const bin = await fakeMkfs('env', '/bin/cat >/dev/null\n/usr/bin/env | /usr/bin/tr "\\n" " " >&2\nexit 1');
    const mkfs = await found(bin);
    expect(Object.keys(mkfs.env).sort()).toEqual(expect.arrayContaining(['LC_ALL', 'PATH']));
    expect(Object.keys(mkfs.env).filter((k) => !['PATH', 'LD_LIBRARY_PATH', 'TMPDIR', 'LANG', 'LC_ALL', 'LC_CTYPE', 'LC_MESSAGES'].includes(k))).toEqual([]);
    const error = (await write(mkfs, 'env').catch((e: unknown) => e)) as Error;
    expect(error.message).toContain(`PATH=${bin}`);
    expect(error.message).toContain('LC_ALL=C');
    expect(error.message).not.toContain('hunter2');
    // Even given a whole environment (a caller's own MkfsErofs), the run keeps to those.
    const leaky = await write({ ...mkfs, env: { ...process.env, PATH: bin } }, 'env2').catch((e: unknown) => e);
    expect((leaky as Error).message).toContain(`PATH=${bin}`);
    expect((leaky as Error).message).not.toContain('hunter2');
  });

  it('exits 0 having written garbage: the layer fails saying it wrote no EROFS image (nothing garbage is pushed)', async () => {
    const bin = await fakeMkfs('garbage', '/bin/cat >/dev/null\n/usr/bin/head -c 8192 /dev/urandom >"$image"\nexit 0');
    await expect(write(await found(bin), 'garbage')).rejects.toThrow(/mkfs\.erofs 1\.8\.6 exited 0 making layer garbage but wrote no EROFS image \(no EROFS superblock in .*garbage\.erofs\)/);
  });

  it('exits 0 having written nothing: the same clear error, not an ENOENT reading the image back', async () => {
    const bin = await fakeMkfs('nothing', '/bin/cat >/dev/null\nexit 0');
    const error = (await write(await found(bin), 'nothing').catch((e: unknown) => e)) as Error & { code?: string };
    expect(error.code).toBeUndefined();
    expect(error.message).toMatch(/exited 0 making layer nothing but wrote no EROFS image \(no file at .*nothing\.erofs\)/);
  });

  it('writes forever: stopped once its image takes far more than its tar, saying so', async () => {
    const bin = await fakeMkfs('forever', '/bin/cat >/dev/null\nexec /bin/cat /dev/zero >"$image"');
    const mkfs = await found(bin);
    const started = Date.now();
    const error = (await write(mkfs, 'forever').catch((e: unknown) => e)) as Error;
    expect(error.message).toMatch(/mkfs\.erofs 1\.8\.6 was stopped making layer forever: its image took \d+ bytes of disk from a tar of \d+ bytes \(at most \d+\)/);
    expect(Date.now() - started).toBeLessThan(20_000);
    // Bounded: the image is removed, not left filling the disk.
    await expect(stat(join(dir, 'forever.erofs'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('the bound: 4x the tar and some slack (mkfs.erofs keeps the tar\'s data in the image while it works, ~1.5x seen)', () => {
    expect(maxErofsImageBytes(100 << 20)).toBe(4 * (100 << 20) + (256 << 20));
    expect(maxErofsImageBytes(100, 10)).toBe(410);
  });

  it('hangs without reading the tar: killed after its silence, the layer failing saying so (not a build that never ends)', async () => {
    const bin = await fakeMkfs('hung', 'exec /bin/sleep 600');
    const started = Date.now();
    await expect(write(await found(bin), 'hung')).rejects.toThrow(/mkfs\.erofs 1\.8\.6 was stopped making layer hung: it made no progress for 1\.5 s \(it took none of the tar and its image did not change\)/);
    expect(Date.now() - started).toBeLessThan(15_000);
  });

  it('hangs after reading the tar: killed the same way', async () => {
    const bin = await fakeMkfs('hung-late', '/bin/cat >/dev/null\nexec /bin/sleep 600');
    await expect(write(await found(bin), 'hung-late')).rejects.toThrow(/was stopped making layer hung-late: it made no progress for 1\.5 s/);
  });

  it('keeps rewriting its image after the tar (never silent, never over the bound): killed once it is past its time to finish', async () => {
    // The shell's own printf (no process started per write): its image changes between any two looks,
    // even on a loaded machine — a loop starting head spent most of its time at 0 blocks, and a busy CI
    // saw no change for 1.5 s.
    const bin = await fakeMkfs('busy', '/bin/cat >/dev/null\nwhile :; do printf \'%65536s\' x >"$image"; printf \'%131072s\' x >"$image"; done');
    const started = Date.now();
    // 1.5 s of silence plus ~2 MiB of tar at 1 MiB/s: about 3.6 s.
    await expect(write(await found(bin), 'busy')).rejects.toThrow(/mkfs\.erofs 1\.8\.6 was stopped making layer busy: it did not finish within 4 s of the end of a tar of \d+ bytes/);
    expect(Date.now() - started).toBeLessThan(15_000);
  });

  it('ignores SIGTERM: a cancelled build still ends (SIGKILL), with CancelledError', async () => {
    const pidFile = join(dir, 'stubborn.pid');
    const bin = await fakeMkfs('stubborn', `echo $$ >${pidFile}\ntrap '' TERM\n/bin/cat >/dev/null\nwhile :; do /bin/sleep 1; done`);
    const controller = new AbortController();
    const started = Date.now();
    setTimeout(() => controller.abort(), 300);
    await expect(write(await found(bin, { ...LIMITS, silenceMs: 600_000 }), 'stubborn', controller.signal)).rejects.toBeInstanceOf(CancelledError);
    expect(Date.now() - started).toBeLessThan(10_000);
    // Gone, not left running in the background.
    const pid = Number((await readFile(pidFile, 'utf8')).trim());
    expect(() => process.kill(pid, 0)).toThrow(/ESRCH/);
  });

  it('exits leaving a child that holds its stderr open: the layer still settles once it has exited', async () => {
    const bin = await fakeMkfs('orphan', '/bin/cat >/dev/null\n/bin/sleep 120 &\nexit 3');
    const started = Date.now();
    await expect(write(await found(bin), 'orphan')).rejects.toThrow(/failed making layer orphan \(exit 3\)/);
    expect(Date.now() - started).toBeLessThan(15_000);
  });

  it('a version longer than a version (it names the layer cache\'s directory) is no version', async () => {
    const { parseMkfsErofsVersion } = await import('./erofs.js');
    expect(parseMkfsErofsVersion(`mkfs.erofs (erofs-utils) 1.8.${'9'.repeat(5000)}`)).toBeUndefined();
    expect(parseMkfsErofsVersion(`mkfs.erofs (erofs-utils) 1.8.6-${'g'.repeat(100)}`)).toBeUndefined();
    expect(parseMkfsErofsVersion('mkfs.erofs (erofs-utils) 1.8.6-g1a2b3c4d-dirty')).toEqual({ version: '1.8.6-g1a2b3c4d-dirty', majorMinor: [1, 8] });
    // 64 characters at most, however they are made of (digits before the first dot count too).
    const longest = `123456789.123456789.${'a'.repeat(44)}`;
    expect(longest).toHaveLength(64);
    expect(parseMkfsErofsVersion(`mkfs.erofs (erofs-utils) ${longest}`)).toEqual({ version: longest, majorMinor: [123456789, 123456789] });
    expect(parseMkfsErofsVersion(`mkfs.erofs (erofs-utils) ${longest}a`)).toBeUndefined();
    expect(parseMkfsErofsVersion(`mkfs.erofs (erofs-utils) ${longest}abc`)).toBeUndefined();
  });

  it('hangs answering --version, ignoring SIGTERM: a ConfigError once the time is up (killed), not a build that never starts', async () => {
    const bin = join(dir, 'bin', 'mute');
    await mkdir(bin, { recursive: true });
    await writeFile(join(bin, 'mkfs.erofs'), "#!/bin/sh\ntrap '' TERM\nwhile :; do /bin/sleep 1; done\n", { mode: 0o755 });
    const started = Date.now();
    const error = await findMkfsErofs({ PATH: bin }, { timeoutMs: 1000 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).message).toBe("erofs layers were asked for, but 'mkfs.erofs --version' did not answer within 1 s (killed).");
    expect(Date.now() - started).toBeLessThan(8_000);
  });

  it('is on PATH but cannot be run (no execute permission): a ConfigError saying why, as before it was bounded', async () => {
    const bin = join(dir, 'bin', 'not-executable');
    await mkdir(bin, { recursive: true });
    await writeFile(join(bin, 'mkfs.erofs'), '#!/bin/sh\necho "mkfs.erofs (erofs-utils) 1.8.6"\n', { mode: 0o644 });
    const error = await findMkfsErofs({ PATH: bin }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).message).toBe(`erofs layers were asked for, but 'mkfs.erofs --version' could not be run: spawn ${join(bin, 'mkfs.erofs')} EACCES.`);
  });

  it('answers --version leaving a child that holds its output open: found all the same, at once', async () => {
    const bin = join(dir, 'bin', 'lingering');
    await mkdir(bin, { recursive: true });
    await writeFile(join(bin, 'mkfs.erofs'), '#!/bin/sh\n/bin/sleep 120 &\necho "mkfs.erofs (erofs-utils) 1.8.6"\n', { mode: 0o755 });
    const started = Date.now();
    expect((await findMkfsErofs({ PATH: bin })).version).toBe('1.8.6');
    expect(Date.now() - started).toBeLessThan(8_000);
  });

  it('prints a huge first line for --version: the error quotes a bounded part of it', async () => {
    const bin = join(dir, 'bin', 'chatty');
    await mkdir(bin, { recursive: true });
    await writeFile(join(bin, 'mkfs.erofs'), '#!/bin/sh\n/usr/bin/head -c 200000 /dev/zero | /usr/bin/tr "\\0" x\n', { mode: 0o755 });
    const error = (await findMkfsErofs({ PATH: bin }).catch((e: unknown) => e)) as Error;
    expect(error.message).toMatch(/printed no version \('x{100,200}…'\)/);
    expect(error.message.length).toBeLessThan(600);
  });
});

describeOrFailInCi('the real mkfs.erofs with hostile package contents', erofsMissing, () => {
  it('long paths, newlines, shell and regex metacharacters, non-ASCII names and a long symlink target come out of the image as they went in, and nothing is run', async () => {
    const src = join(dir, 'names');
    await mkdir(src, { recursive: true });
    await writeFile(join(src, 'f'), 'content');
    const target = `${'t'.repeat(300)}/../x`;
    await symlink(target, join(src, 'link'));
    const deep = Array.from({ length: 40 }, (_, i) => `dir${i}-${'d'.repeat(20)}`).join('/');
    const names = [`${deep}/file`, 'a\nb', 'ünï-名前', 'n'.repeat(255), `x'$(touch ${join(dir, 'pwned')})*[.?`, '-rf', 'back\\slash'];
    const hostile: LayerEntry[] = [...names.map((path) => ({ path, kind: 'file' as const, source: join(src, 'f') })), { path: 'sym', kind: 'symlink', source: join(src, 'link') }];
    const mkfs = await findMkfsErofs(process.env);
    const written = await writeLayer(hostile, join(dir, 'names.erofs'), { compression: 'erofs', mkfsErofs: mkfs });
    const out = join(dir, 'names-out');
    await exec('fsck.erofs', [`--extract=${out}`, written.file]);
    for (const name of names) expect(await readFile(join(out, name), 'utf8'), JSON.stringify(name)).toBe('content');
    expect(await readlink(join(out, 'sym'))).toBe(target);
    await expect(stat(join(dir, 'pwned'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('an image path starting with \'-\' (relative, from a TMPDIR such as -x) is a path, not an option', async () => {
    const cwd = process.cwd();
    process.chdir(dir);
    try {
      await mkdir('-o-dash', { recursive: true });
      const written = await writeLayer(entries, '-o-dash/layer.erofs', { compression: 'erofs', mkfsErofs: await findMkfsErofs(process.env) });
      expect((await readFile(join(dir, '-o-dash', 'layer.erofs'))).readUInt32LE(1024)).toBe(0xe0f5e1e2);
      expect(written.size).toBe((await stat(join(dir, '-o-dash', 'layer.erofs'))).size);
    } finally {
      process.chdir(cwd);
    }
  });

  it('a tar that comes slowly (the build, not mkfs.erofs, is what waits) is not taken for a hung mkfs.erofs', async () => {
    const src = join(dir, 'slow');
    await mkdir(src, { recursive: true });
    await writeFile(join(src, 'f'), 'content');
    // A FIFO as a file's source: its content arrives after 3x the silence limit, mkfs.erofs waiting for the tar meanwhile.
    await exec('mkfifo', [join(src, 'fifo')]);
    const slowEntries: LayerEntry[] = [
      { path: 'a', kind: 'file', source: join(src, 'f') },
      { path: 'b', kind: 'file', source: join(src, 'fifo') },
    ];
    const mkfs: MkfsErofs = { ...(await findMkfsErofs(process.env)), limits: { ...LIMITS, silenceMs: 500, pollMs: 50 } };
    const layer = writeLayer(slowEntries, join(dir, 'slow.erofs'), { compression: 'erofs', mkfsErofs: mkfs, mtime: 0 });
    await new Promise((resolve) => setTimeout(resolve, 1500));
    await writeFile(join(src, 'fifo'), 'late content');
    const written = await layer;
    const out = join(dir, 'slow-out');
    await exec('fsck.erofs', [`--extract=${out}`, written.file]);
    expect(await readFile(join(out, 'b'), 'utf8')).toBe('late content');
    expect((await readFile(written.file)).readUInt32LE(1024)).toBe(0xe0f5e1e2);
  });
});
