/**
 * Interrupts: SIGINT during resolution and during materialization (a download in flight), SIGTERM
 * during a Docker build. Each run stops promptly with 130/143, says it was interrupted, prints no
 * stack trace, releases its locks and leaves nothing half-done behind (no cache entry, no tag).
 * (SIGINT during a Docker build/push is in test/e2e/build*.test.ts; the cleanup of kaniko and
 * CodeBuild remote resources on cancel is in their packages' tests.)
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SMALL_FLOW, createWorld, runCli, startCli, stackLines, type CliRun, type World } from '../support/cli.js';
import { getServices, itWith } from '../services.js';

const services = getServices();

async function until(check: () => boolean, what: string, run: CliRun, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (run.child.exitCode !== null) throw new Error(`the CLI ended before ${what}:\n${run.stdout}${run.stderr}`);
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}:\n${run.stdout}${run.stderr}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function files(dir: string): Promise<string[]> {
  return readdir(dir).catch(() => []);
}

/**
 * Sends `signal` to the run; it must stop with `code` within `withinMs`, say it was interrupted
 * and print no stack trace.
 */
async function interrupt(run: CliRun, signal: 'SIGINT' | 'SIGTERM', code: number, withinMs: number): Promise<void> {
  const sent = Date.now();
  run.child.kill(signal);
  const result = await run.result;
  expect(result.code, result.output).toBe(code);
  expect(Date.now() - sent).toBeLessThan(withinMs);
  expect(result.stderr).toMatch(new RegExp(`interrupted \\(${signal}\\)`));
  expect(stackLines(result.output)).toEqual([]);
}

describe('interrupts', () => {
  let world: World;
  let flowDir: string;
  let lockedDir: string;
  let pythonPath = '';
  let pythonSha = '';

  beforeAll(async () => {
    world = await createWorld('interrupts');
    flowDir = await world.flow('small.py', SMALL_FLOW);
    lockedDir = await world.flow('small.py', SMALL_FLOW);
    const locked = await runCli(['lock', 'small.py', '--json'], { cwd: lockedDir, env: world.env() });
    expect(locked.code, locked.output).toBe(0);
    const { readFile } = await import('node:fs/promises');
    const lock = JSON.parse(await readFile(join(lockedDir, 'small.prebuilt.lock'), 'utf8')) as { envs: Record<string, { packages: { name: string; url: string; sha256: string }[] }> };
    const python = Object.values(lock.envs)[0]!.packages.find((p) => p.name === 'python')!;
    pythonPath = new URL(python.url).pathname;
    pythonSha = python.sha256;
  }, 300_000);

  /** The env of a `prebuilt build` into its own namespace of the local registry on the test base image. */
  const localBuildEnv = (cache: string, namespace: string, extra: Record<string, string> = {}) =>
    world.env({
      METAFLOW_PREBUILT_CACHE_DIR: cache,
      METAFLOW_PREBUILT_IMAGE_REGISTRY: 'local',
      METAFLOW_PREBUILT_LOCAL_REGISTRY: services.registries!.plain.host,
      METAFLOW_PREBUILT_BASE_IMAGE: services.baseImage!.ref,
      METAFLOW_PREBUILT_IMAGE_NAMESPACE: namespace,
      ...(services.dockerHost ? { DOCKER_HOST: services.dockerHost } : {}),
      ...extra,
    });

  afterAll(async () => {
    world?.server.clearFaults();
    await world?.close();
  });

  it('SIGINT while the channel is being read (resolution) exits 130 at once', async () => {
    world.server.clearRequests();
    const remove = world.server.fault(/\/linux-64\/repodata\.json$/, { type: 'delay', ms: 120_000 });
    try {
      const run = startCli(['lock', 'small.py'], { cwd: flowDir, env: world.env({ METAFLOW_PREBUILT_CACHE_DIR: join(world.dir, 'cache-resolve') }) });
      // The server logs a request when it answers: once noarch's came, linux-64's (delayed) is pending.
      await until(() => world.server.requests.some((r) => r.path.endsWith('/noarch/repodata.json')), 'the noarch repodata request', run);
      // The delayed answer has not come: the request is pending now.
      await new Promise((resolve) => setTimeout(resolve, 300));
      await interrupt(run, 'SIGINT', 130, 15_000);
      expect(await files(flowDir)).toEqual(['small.py']);
      // One line: what stopped, what it left (true: no lock file was written), how to go on.
      expect((await run.result).stderr).toContain('\ninterrupted (SIGINT): prebuilt lock stopped. The lock file was not touched: it is replaced whole, once the resolution is done. Run it again.\n');
      // --json: stdout is the one error object, its message and hint the line's.
      world.server.clearRequests();
      const json = startCli(['lock', 'small.py', '--json'], { cwd: flowDir, env: world.env({ METAFLOW_PREBUILT_CACHE_DIR: join(world.dir, 'cache-resolve-json') }) });
      await until(() => world.server.requests.some((r) => r.path.endsWith('/noarch/repodata.json')), 'the noarch repodata request', json);
      await new Promise((resolve) => setTimeout(resolve, 300));
      await interrupt(json, 'SIGINT', 130, 15_000);
      expect(JSON.parse((await json.result).stdout)).toEqual({
        ok: false,
        interrupted: true,
        completed: false,
        error: { name: 'CancelledError', code: 'cancelled', message: 'prebuilt lock was interrupted (SIGINT, Ctrl-C).', hint: 'The lock file was not touched: it is replaced whole, once the resolution is done. Run it again.' },
      });
    } finally {
      remove();
    }
  }, 180_000);

  itWith(['registries', 'baseImage'], 'SIGINT while a package downloads (materialization) exits 130, caches nothing and releases its locks', async () => {
    const cache = join(world.dir, 'cache-materialize');
    world.server.clearRequests();
    const remove = world.server.fault(pythonPath, { type: 'delay', ms: 120_000 });
    try {
      const run = startCli(['build', 'small.py'], { cwd: lockedDir, env: localBuildEnv(cache, `reliability/interrupts-${process.pid}-${Date.now()}`) });
      await run.waitFor(/materializing/);
      await until(() => world.server.requests.length > 0 && run.stderr.includes('materializing'), 'the download', run);
      await new Promise((resolve) => setTimeout(resolve, 1000));
      await interrupt(run, 'SIGINT', 130, 15_000);
      expect((await run.result).stderr).toMatch(/\ninterrupted \(SIGINT\): prebuilt build stopped\. Nothing was left half-written .*Run it again: the images already pushed and the packages already downloaded are reused\.\n/);
      const pkgs = await files(join(cache, 'pkgs'));
      expect(pkgs).not.toContain(pythonSha);
      expect(pkgs.filter((name) => name.endsWith('.lock'))).toEqual([]);
      expect(await files(join(cache, 'locks'))).toEqual([]);
      // --json: the one interrupted envelope (never `ok: true` or the build's own error), exit 130.
      // Its own cache: the packages are fetched again (answered, so logged) while python's hangs.
      world.server.clearRequests();
      const json = startCli(['build', 'small.py', '--json'], { cwd: lockedDir, env: localBuildEnv(`${cache}-json`, `reliability/interrupts-json-${process.pid}-${Date.now()}`) });
      await until(() => world.server.requests.length > 0, 'the downloads (--json)', json);
      await new Promise((resolve) => setTimeout(resolve, 1000));
      await interrupt(json, 'SIGINT', 130, 15_000);
      const stdout = (await json.result).stdout;
      expect(stdout.trim().startsWith('{') && stdout.trim().endsWith('}')).toBe(true);
      expect(JSON.parse(stdout)).toMatchObject({ ok: false, interrupted: true, completed: false, error: { code: 'cancelled', message: 'prebuilt build was interrupted (SIGINT, Ctrl-C).' } });
    } finally {
      remove();
    }
  }, 300_000);

  itWith(['docker', 'registries', 'baseImage'], 'SIGTERM during the Docker build exits 143, pushes no tag and releases the build lock', async () => {
    const cache = join(world.dir, 'cache-build');
    const namespace = `reliability/interrupts-term-${process.pid}-${Date.now()}`;
    const run = startCli(['build', 'small.py'], { cwd: lockedDir, env: localBuildEnv(cache, namespace, { METAFLOW_PREBUILT_BUILD_SERVICE: 'docker' }) });
    await run.waitFor(/ building /, 300_000);
    await interrupt(run, 'SIGTERM', 143, 30_000);
    const tags = await fetch(`http://${services.registries!.plain.host}/v2/${namespace}/tags/list`);
    expect(tags.status === 404 ? [] : (((await tags.json()) as { tags: string[] | null }).tags ?? [])).toEqual([]);
    expect(await files(join(cache, 'locks'))).toEqual([]);
    // The state file was not written.
    expect(await files(join(lockedDir, '.prebuilt'))).toEqual([]);
  }, 400_000);
});
