/**
 * Concurrency and crash safety: two `prebuilt build` runs on one flow at once (each image built
 * once on this machine, both succeed, state and lock files valid JSON); files written atomically
 * (a writer killed mid-write leaves the previous file); a half-downloaded or spoiled cache entry is
 * never used.
 */
import { spawn } from 'node:child_process';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, SMALL_FLOW, createWorld, runCli, startCli, stackLines, type World } from '../support/cli.js';
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy.js';
import { describeWith, getServices } from '../services.js';

const services = getServices();
const ATOMIC = join(ROOT, 'packages', 'core', 'dist', 'atomic-write.js');

describe('atomic writes', () => {
  it('a writer killed in the middle of large writes leaves the previous file whole (never a mix, never empty)', async () => {
    const { mkdtemp } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const dir = await mkdtemp(join(tmpdir(), 'prebuilt-atomic-'));
    const target = join(dir, 'state.json');
    await writeFile(target, JSON.stringify({ generation: 0 }));
    // A child rewrites the file with ever larger JSON (8 MB each); it is killed at a random moment.
    const script = `
      const { writeFileAtomic } = await import(${JSON.stringify(ATOMIC)});
      for (let generation = 1; ; generation++) {
        await writeFileAtomic(${JSON.stringify(target)}, JSON.stringify({ generation, pad: 'x'.repeat(8 * 1024 * 1024) }));
        process.stdout.write(generation + '\\n');
      }`;
    for (const delay of [150, 400, 700]) {
      const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
      let written = '';
      child.stdout.setEncoding('utf8').on('data', (chunk: string) => (written += chunk));
      await new Promise((resolve) => setTimeout(resolve, delay));
      child.kill('SIGKILL');
      await new Promise((resolve) => child.on('close', resolve));
      const content = JSON.parse(await readFile(target, 'utf8')) as { generation: number; pad?: string };
      const last = Number(written.trim().split('\n').pop() ?? 0);
      // The file is the last completed generation or the one after it (renamed before the kill), whole.
      expect([last, last + 1]).toContain(content.generation);
      if (content.generation > 0) expect(content.pad).toHaveLength(8 * 1024 * 1024);
    }
    // Only temp files (dot-prefixed) may be left by the killed writer, never a partial target.
    expect((await readdir(dir)).filter((name) => !name.startsWith('.'))).toEqual(['state.json']);
  }, 60_000);
});

describeWith(['docker', 'registries', 'baseImage'], 'two prebuilt build runs on one flow at once', () => {
  let world: World;
  let proxy: FaultProxy;
  let flowDir: string;
  let env: Record<string, string>;
  const namespace = `reliability/concurrency-${process.pid}-${Date.now()}`;

  beforeAll(async () => {
    world = await createWorld('concurrency');
    proxy = await startFaultProxy(services.registries!.plain.host);
    flowDir = await world.flow('small.py', SMALL_FLOW);
    env = world.env({
      METAFLOW_PREBUILT_IMAGE_REGISTRY: 'local',
      METAFLOW_PREBUILT_LOCAL_REGISTRY: proxy.host,
      METAFLOW_PREBUILT_BASE_IMAGE: services.baseImage!.ref,
      METAFLOW_PREBUILT_IMAGE_NAMESPACE: namespace,
      METAFLOW_PREBUILT_BUILD_SERVICE: 'docker',
      DOCKER_HOST: services.dockerHost!,
    });
  }, 300_000);

  afterAll(async () => {
    await proxy?.close();
    await world?.close();
  });

  it('a failed download leaves no cache entry; a spoiled partial file is discarded and the file downloaded again', async () => {
    const locked = await runCli(['lock', 'small.py'], { cwd: flowDir, env });
    expect(locked.code, locked.output).toBe(0);
    const lock = JSON.parse(await readFile(join(flowDir, 'small.prebuilt.lock'), 'utf8')) as { envs: Record<string, { packages: { name: string; url: string; sha256: string; size: number }[] }> };
    const python = Object.values(lock.envs)[0]!.packages.find((p) => p.name === 'python')!;
    const remove = world.server.fault(new URL(python.url).pathname, { type: 'truncate' });
    let failed;
    try {
      failed = await runCli(['build', 'small.py'], { cwd: flowDir, env });
    } finally {
      remove();
    }
    expect(failed.code, failed.output).toBe(1);
    expect(failed.stderr).toContain(python.url);
    const pkgs = join(world.dir, 'cache', 'pkgs');
    const names = await readdir(pkgs);
    expect(names).not.toContain(python.sha256);
    expect(names).toContain(`${python.sha256}.partial`);
    expect(names.filter((name) => name.endsWith('.lock'))).toEqual([]);
    // Spoil the partial file (as a killed writer or a disk error might): a resume would give wrong bytes.
    const partial = join(pkgs, `${python.sha256}.partial`);
    const size = (await stat(partial)).size;
    await writeFile(partial, Buffer.alloc(size, 0x5a));
  }, 600_000);

  it('both succeed, each image is built and pushed once, and the state and lock files are valid JSON', async () => {
    proxy.clearRequests();
    const debugEnv = { ...env, DEBUG: 'prebuilt:lock' };
    const first = startCli(['build', 'small.py', '--json'], { cwd: flowDir, env: debugEnv });
    const second = startCli(['build', 'small.py', '--json'], { cwd: flowDir, env: debugEnv });
    const [a, b] = await Promise.all([first.result, second.result]);
    for (const run of [a, b]) {
      expect(run.code, run.output).toBe(0);
      expect(stackLines(run.output)).toEqual([]);
    }
    type BuildJson = { images: Record<string, { status: string; digest: string; image: string }>; stateFile: string };
    const outputs = [JSON.parse(a.stdout) as BuildJson, JSON.parse(b.stdout) as BuildJson];
    const envIds = Object.keys(outputs[0]!.images);
    expect(envIds).toHaveLength(1);
    const statuses = outputs.map((out) => out.images[envIds[0]!]!.status).sort();
    expect(statuses).toEqual(['built', 'present']);
    expect(outputs[0]!.images[envIds[0]!]!.digest).toBe(outputs[1]!.images[envIds[0]!]!.digest);
    // The second waited for the first's build lock.
    expect(`${a.stderr}${b.stderr}`).toMatch(/waiting for \S+\/locks\/build-[0-9a-f]+\.lock \(held by pid \d+/);
    // One manifest PUT for the env image (under its tag): it was pushed once. The other manifest PUTs
    // are its SBOM (an artifact by digest, and the referrers tag `sha256-<hex>`).
    const manifestPuts = proxy.requests.filter((r) => r.method === 'PUT' && r.path.startsWith(`/v2/${namespace}/manifests/`));
    const reference = (path: string): string => path.slice(`/v2/${namespace}/manifests/`.length);
    const imagePuts = manifestPuts.filter((r) => !/^sha256[:-]/.test(reference(r.path)));
    expect(imagePuts).toHaveLength(1);
    expect(manifestPuts.filter((r) => reference(r.path).startsWith('sha256-')).length).toBeGreaterThanOrEqual(1);
    // State and lock files: whole JSON, no temp files left beside them.
    const stateFile = outputs[0]!.stateFile;
    const state = JSON.parse(await readFile(stateFile, 'utf8')) as { images: Record<string, { digest: string }> };
    expect(state.images[envIds[0]!]!.digest).toBe(outputs[0]!.images[envIds[0]!]!.digest);
    expect((await readdir(join(stateFile, '..'))).filter((name) => name.endsWith('.tmp'))).toEqual([]);
    JSON.parse(await readFile(join(flowDir, 'small.prebuilt.lock'), 'utf8'));
    expect((await readdir(flowDir)).filter((name) => name.endsWith('.tmp'))).toEqual([]);
    // Every lock is released; the spoiled partial was replaced by the verified file.
    expect(await readdir(join(world.dir, 'cache', 'locks'))).toEqual([]);
    const pkgs = await readdir(join(world.dir, 'cache', 'pkgs'));
    expect(pkgs.filter((name) => name.endsWith('.partial') || name.endsWith('.lock'))).toEqual([]);
  }, 600_000);
});
