/**
 * A hostile or broken machine state, through the real CLI: a tampered, truncated or garbage
 * package-cache entry (healed, never baked), lock files left by runs on other hosts or killed runs
 * (leases), temp dirs of SIGKILLed runs (swept), a corrupt/truncated/newer lock file (exit 2, the
 * file unchanged), a PyPI spec with a shell suffix (exit 2 naming the field), and a full disk — a
 * real tmpfs — under the package cache and under its build contexts (the directory and the setting
 * named), a full TMPDIR that an oci build does not need, and a cache directory other users may
 * write in (plan and build say so once, human or --json, and leave it as it is).
 *
 * Every CLI run gets a private HOME and TMPDIR inside the test's work dir; the tests check that
 * nothing is left in either (no file outside the work dirs changed).
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { chmod, mkdir, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SMALL_FLOW, createWorld, runCli, startCli, stackLines, type World } from '../support/cli.js';
import { describeOrFailInCi, describeWith, getServices } from '../services.js';

const services = getServices();
const MANIFEST_ACCEPT = 'application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json';
const GENUINE = 'print("tinycli 2.0.0 mean=%s"';
const TROJAN = 'TROJAN-FROM-A-TAMPERED-CACHE';

interface LockJson {
  envs: Record<string, { packages: { name: string; url: string; sha256: string; size: number; filename: string }[] }>;
}

const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

/** Files under `dir` (recursive, relative), for "nothing was left here". */
async function listing(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true }).catch(() => [] as string[]);
  return entries.map(String).sort();
}

/** A valid tinycli .conda with other content (a trojan main.py), padded (zip comment) to the genuine size. */
async function forgedTinycli(size: number): Promise<Buffer> {
  const { buildCondaPackage, exampleCondaPackages } = await import('../../packages/fixtures/dist/index.js');
  const spec = exampleCondaPackages().find((p) => p.name === 'tinycli')!;
  const files = spec.files.map((file) => (file.path.endsWith('tinycli/main.py') ? { ...file, content: `print("${TROJAN}")\ndef main():\n    return 0\ndef hello():\n    return 0\n` } : file));
  const [artifact] = await buildCondaPackage({ ...spec, files, formats: ['.conda'] });
  const bytes = Buffer.from(artifact!.bytes);
  expect(bytes.length, 'the forged archive must not be larger than the genuine one').toBeLessThanOrEqual(size);
  // The end-of-central-directory record is the last 22 bytes (no comment yet); its last field is the comment length.
  expect(bytes.readUInt32LE(bytes.length - 22)).toBe(0x06054b50);
  const pad = size - bytes.length;
  bytes.writeUInt16LE(pad, bytes.length - 2);
  return Buffer.concat([bytes, Buffer.alloc(pad, 0x20)]);
}

/** Every layer of an image in the plain registry, decompressed, concatenated. */
async function imageLayers(host: string, image: string): Promise<Buffer> {
  const slash = image.indexOf('/');
  const colon = image.lastIndexOf(':');
  const repo = image.slice(slash + 1, colon);
  const tag = image.slice(colon + 1);
  const res = await fetch(`http://${host}/v2/${repo}/manifests/${tag}`, { headers: { accept: MANIFEST_ACCEPT } });
  expect(res.status, image).toBe(200);
  const manifest = (await res.json()) as { layers: { digest: string; mediaType: string }[] };
  const parts: Buffer[] = [];
  for (const layer of manifest.layers) {
    const blob = Buffer.from(await (await fetch(`http://${host}/v2/${repo}/blobs/${layer.digest}`)).arrayBuffer());
    parts.push(layer.mediaType.endsWith('gzip') ? gunzipSync(blob) : blob);
  }
  return Buffer.concat(parts);
}

let world: World;
let flowDir: string;
let lockText: string;
let tinycli: LockJson['envs'][string]['packages'][number];
/** Private HOME and TMPDIR of the CLI runs. */
let home: string;
let temp: string;

beforeAll(async () => {
  world = await createWorld('hostile-cache');
  flowDir = await world.flow('small.py', SMALL_FLOW);
  home = join(world.dir, 'home');
  temp = join(world.dir, 'tmp');
  await mkdir(home, { recursive: true });
  await mkdir(temp, { recursive: true });
  const locked = await runCli(['lock', 'small.py'], { cwd: flowDir, env: world.env({ HOME: home, TMPDIR: temp }) });
  expect(locked.code, locked.output).toBe(0);
  lockText = await readFile(join(flowDir, 'small.prebuilt.lock'), 'utf8');
  tinycli = Object.values((JSON.parse(lockText) as LockJson).envs)[0]!.packages.find((p) => p.name === 'tinycli')!;
}, 300_000);

afterAll(async () => {
  await world?.close();
});

const ns = (label: string): string => `reliability/hostile-cache-${label}-${process.pid}-${Date.now()}`;

function buildEnv(extra: Record<string, string | undefined> = {}): Record<string, string> {
  return world.env({
    HOME: home,
    TMPDIR: temp,
    METAFLOW_PREBUILT_IMAGE_REGISTRY: 'local',
    METAFLOW_PREBUILT_LOCAL_REGISTRY: services.registries?.plain.host ?? '127.0.0.1:1',
    METAFLOW_PREBUILT_BASE_IMAGE: services.baseImage?.ref ?? 'missing',
    METAFLOW_PREBUILT_BUILD_SERVICE: 'oci',
    ...extra,
  });
}

describeWith(['docker', 'registries', 'baseImage'], 'what is cached is what was locked (oci and docker build services)', () => {
  const tampers: [string, (entry: string) => Promise<void>][] = [
    ['a valid archive with other content, size and mtime restored', async (entry) => {
      const forged = await forgedTinycli((await stat(entry)).size);
      execFileSync('touch', ['-r', entry, `${entry}.ref`]);
      await writeFile(entry, forged);
      execFileSync('touch', ['-r', `${entry}.ref`, entry]);
      await rm(`${entry}.ref`);
      expect((await stat(entry)).size).toBe(tinycli.size);
    }],
    ['truncated', async (entry) => writeFile(entry, (await readFile(entry)).subarray(0, 1000))],
    ['garbage', async (entry) => writeFile(entry, Buffer.alloc(tinycli.size, 0x5a))],
  ];

  it('builds once to fill the cache', async () => {
    const first = await runCli(['build', 'small.py', '--json'], { cwd: flowDir, env: buildEnv({ METAFLOW_PREBUILT_IMAGE_NAMESPACE: ns('first') }) });
    expect(first.code, first.output).toBe(0);
    expect(sha256(await readFile(join(world.dir, 'cache', 'pkgs', tinycli.sha256)))).toBe(tinycli.sha256);
  }, 300_000);

  it.each(tampers)('a cache entry tampered with between two builds (%s) is downloaded again, with a note; the image has the genuine content', async (_what, tamper) => {
    const entry = join(world.dir, 'cache', 'pkgs', tinycli.sha256);
    await tamper(entry);
    const requests = world.server.requests.length;
    const second = await runCli(['build', 'small.py', '--json'], { cwd: flowDir, env: buildEnv({ METAFLOW_PREBUILT_IMAGE_NAMESPACE: ns('second') }) });
    expect(second.code, second.output).toBe(0);
    expect(second.stderr).toContain(`note: The cached package ${entry} (${tinycli.filename}) does not match the lock`);
    expect(second.stderr).toContain('It was removed and is downloaded again.');
    expect(stackLines(second.output)).toEqual([]);
    expect(world.server.requests.slice(requests).some((r) => r.path.endsWith(`/${tinycli.filename}`))).toBe(true);
    expect(sha256(await readFile(entry))).toBe(tinycli.sha256);
    const map = JSON.parse(second.stdout) as { images: Record<string, { image: string }> };
    const layers = await imageLayers(services.registries!.plain.host, Object.values(map.images)[0]!.image);
    expect(layers.includes(GENUINE)).toBe(true);
    expect(layers.includes(TROJAN)).toBe(false);
    expect(await listing(home)).toEqual([]);
    expect((await listing(temp)).filter((name) => !name.includes('/'))).toEqual([]);
  }, 300_000);

  it('with the docker build service too: a valid archive with other content in the cache is downloaded again, and the image the Docker daemon pushed has the genuine content', async () => {
    const entry = join(world.dir, 'cache', 'pkgs', tinycli.sha256);
    await tampers[0]![1](entry);
    const build = await runCli(['build', 'small.py', '--json'], { cwd: flowDir, env: buildEnv({ METAFLOW_PREBUILT_IMAGE_NAMESPACE: ns('docker'), METAFLOW_PREBUILT_BUILD_SERVICE: 'docker' }) });
    expect(build.code, build.output).toBe(0);
    expect(build.stderr).toContain(`note: The cached package ${entry} (${tinycli.filename}) does not match the lock`);
    expect(sha256(await readFile(entry))).toBe(tinycli.sha256);
    const map = JSON.parse(build.stdout) as { images: Record<string, { image: string }> };
    const layers = await imageLayers(services.registries!.plain.host, Object.values(map.images)[0]!.image);
    expect(layers.includes(GENUINE)).toBe(true);
    expect(layers.includes(TROJAN)).toBe(false);
  }, 300_000);

  it('an untouched cache is used without a note (checked on the record beside each entry, not hashed)', async () => {
    const third = await runCli(['build', 'small.py'], { cwd: flowDir, env: buildEnv({ METAFLOW_PREBUILT_IMAGE_NAMESPACE: ns('third') }) });
    expect(third.code, third.output).toBe(0);
    expect(third.stderr).not.toContain('note:');
    const record = JSON.parse(await readFile(join(world.dir, 'cache', 'pkgs', `${tinycli.sha256}.verified`), 'utf8')) as Record<string, unknown>;
    // The archive's md5 (for its conda-meta record) is kept with the record, hashed with the sha256.
    expect(record).toMatchObject({ sha256: tinycli.sha256, size: tinycli.size, md5: expect.stringMatching(/^[0-9a-f]{32}$/) });
  }, 300_000);
});

describeWith(['registries', 'baseImage'], 'locks do not hang, temp dirs do not pile up', () => {
  async function buildLockPath(namespace: string): Promise<string> {
    const plan = await runCli(['plan', 'small.py', '--json'], { cwd: flowDir, env: buildEnv({ METAFLOW_PREBUILT_IMAGE_NAMESPACE: namespace }) });
    expect(plan.code, plan.output).toBe(0);
    const tag = Object.values((JSON.parse(plan.stdout) as { images: Record<string, { image: string }> }).images)[0]!.image;
    return join(world.dir, 'cache', 'locks', `build-${createHash('sha256').update(tag).digest('hex').slice(0, 32)}.lock`);
  }

  it('a build lock left by another host whose lease ran out is taken over at once', async () => {
    const namespace = ns('lease-old');
    const path = await buildLockPath(namespace);
    await mkdir(join(path, '..'), { recursive: true });
    await writeFile(path, JSON.stringify({ pid: 1, host: 'ci-runner-killed-9c1e', since: new Date(Date.now() - 600_000).toISOString(), heartbeatMs: 5_000, purpose: 'build elsewhere' }));
    const old = new Date(Date.now() - 300_000);
    await utimes(path, old, old);
    const started = Date.now();
    const build = await runCli(['build', 'small.py'], { cwd: flowDir, env: buildEnv({ METAFLOW_PREBUILT_IMAGE_NAMESPACE: namespace }) });
    expect(build.code, build.output).toBe(0);
    expect(build.stderr).not.toMatch(/waiting/);
    expect(Date.now() - started).toBeLessThan(120_000);
    await expect(stat(path)).rejects.toMatchObject({ code: 'ENOENT' });
  }, 300_000);

  it('a live holder on another host is waited on, named with since when, and the lock taken once it stops renewing its lease', async () => {
    const namespace = ns('lease-live');
    const path = await buildLockPath(namespace);
    await mkdir(join(path, '..'), { recursive: true });
    const heartbeatMs = 300;
    await writeFile(path, JSON.stringify({ pid: 4242, host: 'ci-runner-other-77', since: new Date().toISOString(), heartbeatMs, purpose: 'build on the other runner' }));
    const renew = setInterval(() => {
      const now = new Date();
      void utimes(path, now, now).catch(() => undefined);
    }, heartbeatMs);
    try {
      const run = startCli(['build', 'small.py'], { cwd: flowDir, env: buildEnv({ METAFLOW_PREBUILT_IMAGE_NAMESPACE: namespace }) });
      await run.waitFor(/waiting: another prebuilt process is building this image: pid 4242 on host ci-runner-other-77 \(build on the other runner\), holding it since \d\d:\d\d:\d\d UTC, lease renewed \d+s ago; waiting since \d\d:\d\d:\d\d UTC/, 120_000);
      // Still waiting while the lease is renewed.
      await new Promise((resolve) => setTimeout(resolve, heartbeatMs * 10));
      expect(run.stderr).not.toMatch(/materializing/);
      clearInterval(renew);
      const result = await run.result;
      expect(result.code, result.output).toBe(0);
      expect(result.stderr).toMatch(/materializing/);
    } finally {
      clearInterval(renew);
    }
  }, 300_000);

  it("the temp dirs of a SIGKILLed build are removed by the next run", async () => {
    const namespace = ns('killed');
    const run = startCli(['build', 'small.py'], { cwd: flowDir, env: buildEnv({ METAFLOW_PREBUILT_IMAGE_NAMESPACE: namespace }) });
    await run.waitFor(/materializing|building/, 120_000);
    // Wait until the context dir exists (in the cache's contexts/, beside the extraction cache), then kill the run hard (no cleanup runs).
    const contexts = join(world.dir, 'cache', 'contexts');
    const made = async (): Promise<string[]> => (await readdir(contexts).catch(() => [])).filter((name) => name.startsWith('prebuilt-context-'));
    for (let i = 0; i < 200 && (await made()).length === 0; i++) await new Promise((r) => setTimeout(r, 25));
    run.child.kill('SIGKILL');
    await run.result;
    expect((await made()).length).toBeGreaterThan(0);
    const next = await runCli(['build', 'small.py'], { cwd: flowDir, env: buildEnv({ METAFLOW_PREBUILT_IMAGE_NAMESPACE: namespace }) });
    expect(next.code, next.output).toBe(0);
    expect(await made()).toEqual([]);
    expect(await readdir(temp)).toEqual([]);
  }, 300_000);
});

describeWith(['registries', 'baseImage'], 'a cache directory other users may write in (plan and build)', () => {
  /** The note prepareCacheDir gives for `dir` (mode 0777), as the CLI prints it on stderr. */
  const sharedNote = (dir: string): string =>
    `note: the cache directory ${dir} (mode 0777) can be written by every user: whoever can write there can plant or replace files a build reads or puts in an image. ` +
    `Keep it private (chmod 700 ${dir}), or set METAFLOW_PREBUILT_CACHE_DIR to a directory only you can write; a cache shared on purpose keeps working.\n`;

  async function sharedCache(name: string): Promise<string> {
    const dir = join(world.dir, name);
    await mkdir(dir);
    await chmod(dir, 0o777);
    return dir;
  }

  it('plan says so once on stderr, human or --json (stdout stays the plan, --json one JSON object), and uses the directory as it is', async () => {
    const shared = await sharedCache('shared-cache-plan');
    const env = buildEnv({ METAFLOW_PREBUILT_CACHE_DIR: shared, METAFLOW_PREBUILT_IMAGE_NAMESPACE: ns('shared-plan') });
    const human = await runCli(['plan', 'small.py'], { cwd: flowDir, env });
    expect(human.code, human.output).toBe(0);
    expect(human.stderr.split(sharedNote(shared))).toHaveLength(2);
    expect(human.stdout).not.toContain('note:');
    expect(human.stdout).toMatch(/to build: run prebuilt build small\.py/);
    const json = await runCli(['plan', 'small.py', '--json'], { cwd: flowDir, env });
    expect(json.code, json.output).toBe(0);
    // --json puts notes where it puts every note and warning: on stderr, for the people reading it; stdout is the plan alone.
    expect(json.stderr).toBe(sharedNote(shared));
    expect(Object.keys((JSON.parse(json.stdout) as { images: Record<string, unknown> }).images)).toHaveLength(1);
    // A cache shared on purpose keeps working: its mode is left as it is.
    expect((await stat(shared)).mode & 0o7777).toBe(0o777);
  }, 300_000);

  it('build --json says so once on stderr (not again when the package cache fills it), builds, and leaves the mode as it is', async () => {
    const shared = await sharedCache('shared-cache-build');
    const build = await runCli(['build', 'small.py', '--json'], { cwd: flowDir, env: buildEnv({ METAFLOW_PREBUILT_CACHE_DIR: shared, METAFLOW_PREBUILT_IMAGE_NAMESPACE: ns('shared-build') }) });
    expect(build.code, build.output).toBe(0);
    expect(build.stderr).toBe(sharedNote(shared));
    expect(Object.keys((JSON.parse(build.stdout) as { images: Record<string, unknown> }).images)).toHaveLength(1);
    expect(existsSync(join(shared, 'pkgs', tinycli.sha256))).toBe(true);
    expect((await stat(shared)).mode & 0o7777).toBe(0o777);
  }, 300_000);

  it('a missing cache directory is made private to its user (0700) by plan, with no note', async () => {
    const missing = join(world.dir, 'fresh-parent', 'prebuilt-cache');
    const plan = await runCli(['plan', 'small.py'], { cwd: flowDir, env: buildEnv({ METAFLOW_PREBUILT_CACHE_DIR: missing, METAFLOW_PREBUILT_IMAGE_NAMESPACE: ns('fresh-plan') }) });
    expect(plan.code, plan.output).toBe(0);
    expect(plan.stderr).not.toContain('note:');
    expect((await stat(missing)).mode & 0o7777).toBe(0o700);
  }, 300_000);
});

describe('the lock file is never silently replaced', () => {
  const bad: [string, (text: string) => string, RegExp][] = [
    ['truncated', (text) => text.slice(0, Math.floor(text.length / 2)), /is not valid JSON \(truncated or edited\?\)/],
    ['empty', () => '', /is empty \(truncated\?\)/],
    ['corrupt (a package without sha256)', (text) => text.replace(/"sha256": "[0-9a-f]{64}"/, '"sha256": "zz"'), /is invalid: .*sha256/],
    ['of a newer version', (text) => text.replace(/"lockVersion": \d+/, '"lockVersion": 7'), /has lockVersion 7, written by a newer prebuilt/],
  ];
  const commands: [string, string[]][] = [
    ['lock', ['lock', 'small.py']],
    ['plan', ['plan', 'small.py']],
    ['build', ['build', 'small.py']],
    ['run', ['run', 'small.py', 'run', '--with', 'kubernetes']],
  ];

  it.each(bad)('the lock file %s: lock, plan, build and run exit 2 naming it and the fix, the file unchanged byte for byte; lock --update rewrites it', async (_what, spoil, message) => {
    const lockFile = join(flowDir, 'small.prebuilt.lock');
    const spoiled = spoil(lockText);
    expect(spoiled).not.toBe(lockText);
    // A FAKE metaflow package on PYTHONPATH: `prebuilt run` checks that the interpreter finds Metaflow before it reads the lock.
    const fakeMetaflow = join(temp, 'fake-metaflow');
    await mkdir(join(fakeMetaflow, 'metaflow'), { recursive: true });
    await writeFile(join(fakeMetaflow, 'metaflow', '__init__.py'), '');
    await writeFile(lockFile, spoiled);
    try {
      for (const [name, args] of commands) {
        const result = await runCli(args, { cwd: flowDir, env: buildEnv({ METAFLOW_PREBUILT_LOCAL_REGISTRY: '127.0.0.1:1', PYTHONPATH: fakeMetaflow }) });
        expect(result.code, `${name}: ${result.output}`).toBe(2);
        // Named relative to the cwd, as the user would type it.
        expect(result.stderr, name).toContain('Lock file small.prebuilt.lock ');
        expect(result.stderr, name).toMatch(message);
        expect(result.stderr, name).toContain('prebuilt lock --update small.py');
        expect(stackLines(result.output), name).toEqual([]);
        expect(await readFile(lockFile, 'utf8'), name).toBe(spoiled);
      }
    } catch (error) {
      await writeFile(lockFile, lockText); // the later tests of this file build from the genuine lock
      throw error;
    }
    const update = await runCli(['lock', 'small.py', '--update'], { cwd: flowDir, env: buildEnv() });
    expect(update.code, update.output).toBe(0);
    expect(await readFile(lockFile, 'utf8')).toBe(lockText);
  }, 300_000);
});

describe('a PyPI spec with a shell suffix', () => {
  it.each([
    ['{"tinyhttp": "1.0; rm -rf /"}', /Invalid PyPI version spec '1\.0; rm -rf \/' for package 'tinyhttp' in the @pypi packages of step start: it contains ';' \(an environment marker or a shell command separator\)/],
    // Before: pip saw `tinyhttp>=0.1; rm -rf /` and the CLI said only "Cannot resolve the PyPI packages of step start: Exception:".
    ['{"tinyhttp": ">=0.1; rm -rf /"}', /Invalid PyPI version spec '>=0\.1; rm -rf \/' for package 'tinyhttp' in the @pypi packages of step start: it contains ';' .* at position 6/],
    ['{"tinyhttp": ">=0.1 && echo pwned"}', /Invalid PyPI version spec '>=0\.1 && echo pwned' for package 'tinyhttp' in the @pypi packages of step start: it contains '&'/],
  ])('%s is exit 2 naming the field and the problem, before pip runs', async (packages, message) => {
    const flow = `from metaflow import FlowSpec, pypi, step\n\n\nclass ShellFlow(FlowSpec):\n    @pypi(python="3.11", packages=${packages})\n    @step\n    def start(self):\n        self.next(self.end)\n\n    @step\n    def end(self):\n        pass\n`;
    const dir = await world.flow('shell.py', flow);
    const result = await runCli(['lock', 'shell.py'], { cwd: dir, env: world.env({ HOME: home, TMPDIR: temp }) });
    expect(result.code, result.output).toBe(2);
    expect(result.stderr).toMatch(message);
    expect(result.stderr).not.toMatch(/^Exception:/m);
    expect(stackLines(result.output)).toEqual([]);
    expect(await readdir(dir)).toEqual(['shell.py']);
  }, 120_000);
});

/** Why this machine cannot mount a tmpfs (needs root and CAP_SYS_ADMIN), or undefined when it can. */
function tmpfsMissing(): string | undefined {
  const probe = mkdtempSync(join(tmpdir(), 'prebuilt-tmpfs-probe-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=16k', 'tmpfs', probe], { stdio: 'pipe' });
    execFileSync('umount', [probe], { stdio: 'pipe' });
    return undefined;
  } catch (error) {
    return `cannot mount a tmpfs (needs root and CAP_SYS_ADMIN: run the tests as root, as .ci/run does): ${String((error as { stderr?: Buffer }).stderr ?? (error as Error).message).trim()}`;
  } finally {
    rmSync(probe, { recursive: true, force: true });
  }
}

const noTmpfs = tmpfsMissing();
describeOrFailInCi('a full disk (a real tmpfs)', noTmpfs, () => describeWith(['registries', 'baseImage'], 'under the cache, the state file and TMPDIR', () => {
  const mounts: string[] = [];
  let mountable = true;

  async function tmpfs(name: string, size: string): Promise<string> {
    const dir = join(world.dir, name);
    await mkdir(dir, { recursive: true });
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], { stdio: 'pipe' });
    } catch (error) {
      mountable = false;
      throw new Error(`cannot mount a tmpfs (needs root and CAP_SYS_ADMIN): ${(error as Error).message}`);
    }
    mounts.push(dir);
    return dir;
  }

  afterAll(() => {
    for (const dir of mounts.reverse()) execFileSync('umount', [dir], { stdio: 'pipe' });
  });

  it('under the package cache: exit 1 (the image failed), names the cache directory and METAFLOW_PREBUILT_CACHE_DIR, no stack', async () => {
    const cache = await tmpfs('full-cache', '48k');
    const result = await runCli(['build', 'small.py'], { cwd: flowDir, env: buildEnv({ METAFLOW_PREBUILT_CACHE_DIR: cache, METAFLOW_PREBUILT_IMAGE_NAMESPACE: ns('enospc-cache') }) });
    expect(result.code, result.output).toBe(1);
    expect(result.stderr).toContain(`No space left on the device of ${join(cache, 'pkgs')} while downloading`);
    expect(result.stderr).toContain('set METAFLOW_PREBUILT_CACHE_DIR to a directory on a disk with room');
    expect(stackLines(result.output)).toEqual([]);
    expect((await readdir(join(cache, 'pkgs'))).filter((name) => !name.endsWith('.verified') && !name.endsWith('.partial') && !name.endsWith('.lock'))
      .every((name) => /^[0-9a-f]{64}$/.test(name))).toBe(true);
    expect(await readFile(join(flowDir, 'small.prebuilt.lock'), 'utf8')).toBe(lockText);
  }, 300_000);

  it('under the state file: exit 2, names its directory and METAFLOW_PREBUILT_STATE_FILE, no stack', async () => {
    expect(mountable).toBe(true);
    const state = await tmpfs('full-state', '64k');
    // Fill the disk to the last block.
    await writeFile(join(state, 'filler'), Buffer.alloc(64 * 1024)).catch(() => undefined);
    for (let i = 0; ; i++) {
      const written = await writeFile(join(state, `f${i}`), Buffer.alloc(512)).then(() => true, () => false);
      if (!written) break;
    }
    const result = await runCli(['build', 'small.py'], {
      cwd: flowDir,
      env: buildEnv({ METAFLOW_PREBUILT_STATE_FILE: join(state, 'images.json'), METAFLOW_PREBUILT_IMAGE_NAMESPACE: ns('enospc-state') }),
    });
    expect(result.code, result.output).toBe(2);
    expect(result.stderr).toContain(`No space left on the device of ${state} while writing ${join(state, 'images.json')}`);
    expect(result.stderr).toContain('set METAFLOW_PREBUILT_STATE_FILE to a directory on a disk with room');
    expect(stackLines(result.output)).toEqual([]);
    expect((await readdir(state)).filter((name) => !/^(filler|f\d+)$/.test(name))).toEqual([]);
  }, 300_000);

  it("under the build contexts (the cache's contexts/) while materializing: exit 1 (the image failed), names the directory and METAFLOW_PREBUILT_CACHE_DIR, no stack, nothing left there", async () => {
    expect(mountable).toBe(true);
    const contexts = await tmpfs(join('cache', 'contexts'), '64k');
    try {
      const result = await runCli(['build', 'small.py'], { cwd: flowDir, env: buildEnv({ METAFLOW_PREBUILT_IMAGE_NAMESPACE: ns('enospc-contexts') }) });
      expect(result.code, result.output).toBe(1);
      expect(result.stderr).toContain(`No space left on the device of ${contexts} while materializing env`);
      expect(result.stderr).toContain('set METAFLOW_PREBUILT_CACHE_DIR to a directory on a disk with room');
      expect(stackLines(result.output)).toEqual([]);
      expect(await readdir(contexts)).toEqual([]);
    } finally {
      // The world's cache serves the next tests: its contexts/ goes back on the disk.
      execFileSync('umount', [contexts], { stdio: 'pipe' });
      mounts.splice(mounts.indexOf(contexts), 1);
    }
  }, 300_000);

  it('a full TMPDIR (often a small tmpfs) does not fail an oci build: the env is materialized and spooled under the cache', async () => {
    expect(mountable).toBe(true);
    const tmp = await tmpfs('full-tmp', '64k');
    await writeFile(join(tmp, 'filler'), Buffer.alloc(64 * 1024)).catch(() => undefined);
    const result = await runCli(['build', 'small.py'], { cwd: flowDir, env: buildEnv({ TMPDIR: tmp, METAFLOW_PREBUILT_IMAGE_NAMESPACE: ns('full-tmp') }) });
    expect(result.code, result.output).toBe(0);
    expect(await readdir(tmp)).toEqual(['filler']);
  }, 300_000);
}));
