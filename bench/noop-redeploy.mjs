#!/usr/bin/env node
/**
 * B1 — no-op redeploy: a 10-step flow with 4 distinct envs whose images are all in the registry.
 *
 *   prebuilt  — `prebuilt build flow.py --json`, wall time of the CLI process: reads the lock,
 *               resolves the base image digest, HEADs the 4 tags, finds them all, writes the
 *               image map. Nothing is built or pushed.
 *   baseline  — what a user scripts without prebuilt's registry check (and what the Python
 *               reference does, since its cache never hits): for each env, one after the other,
 *               `docker build --network=host` with a warm layer cache (every step CACHED) plus
 *               `docker push` (every layer already in the registry). It uses the very Dockerfiles
 *               and materialized contexts prebuilt builds from (made beforehand by @prebuilt/conda's
 *               recipe runner and not timed, which favours the baseline).
 *
 * Also measured: `prebuilt --version`, the CLI's start-up alone, as a reference line.
 * The images go to their own namespace (prebuilt-bench/noop) of the local registry.
 *
 *   pnpm build && bash scripts/test-services.sh up
 *   node bench/noop-redeploy.mjs [--runs 3] [--port 5181] [--json]
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { alternate, benchArgs, benchDir, cliEnv, fmtMs, fmtStats, loadServices, machine, main, NOOP_ENVS, NOOP_STEPS, output, prebuilt, ratio, ROOT, serveFixtures, stats, timed, writeFlowProject } from './lib.mjs';

const args = benchArgs({ runs: 3 }, { port: { type: 'string', default: '5181' } });
const NAMESPACE = 'prebuilt-bench/noop';

const ENVS = NOOP_ENVS;
const STEPS = NOOP_STEPS;

await main(async (defer) => {
  const services = loadServices();
  const dir = await benchDir(defer, 'noop');
  const { generated, server } = await serveFixtures(defer, dir, { port: Number(args.port) });
  const project = await writeFlowProject(dir, 'NoopFlow', STEPS);
  const cacheDir = join(dir, 'cache');
  const env = cliEnv({ server, generated, services, cacheDir, extra: { METAFLOW_PREBUILT_IMAGE_NAMESPACE: NAMESPACE } });

  // Untimed: lock, build and push whatever the registry lacks (nothing when an earlier run pushed them).
  const first = await prebuilt(['build', 'flow.py', '--json'], { cwd: project, env });
  const map = JSON.parse(first.stdout);
  const envIds = Object.keys(map.images);
  if (envIds.length !== ENVS.length) throw new Error(`expected ${ENVS.length} images, the build made ${envIds.length}`);

  // The baseline's inputs: prebuilt's own Dockerfile and materialized context for every env.
  const core = await import(join(ROOT, 'packages/core/dist/index.js'));
  const conda = await import(join(ROOT, 'packages/conda/dist/index.js'));
  const localRegistry = (await import(join(ROOT, 'packages/local/dist/index.js'))).default;
  const registry = await localRegistry.create({}, { env, cwd: project });
  // core reads either lock format (version 1 for one platform, 2 for several) as step → platform → entry.
  const lockFile = await core.readLockFile(join(project, 'flow.prebuilt.lock'));
  const runner = conda.createMaterializedRecipeRunner({ cacheDir, tempDir: dir });
  const builds = [];
  for (const envId of envIds) {
    const step = Object.entries(map.steps).find(([, s]) => s.envId === envId)[0];
    const lock = lockFile.envs[lockFile.steps[step]['linux-64']];
    const base = await registry.baseImageIdentity(env.METAFLOW_PREBUILT_BASE_IMAGE, core.dockerPlatform(lock.platform));
    const computed = core.computeEnvId({ lock, baseDigest: base.digest, recipe: { name: runner.name, version: runner.version } });
    if (computed !== envId) throw new Error(`the baseline context for ${envId} would be another env (${computed})`);
    const prepared = await runner.prepare({ lock, envId, prefix: core.envPrefix(envId), base });
    defer(() => prepared.dispose());
    const dockerfile = join(dir, `${envId}.Dockerfile`);
    await writeFile(dockerfile, prepared.dockerfile);
    builds.push({ envId, tag: map.images[envId].image, dockerfile, context: prepared.contextDir });
  }
  const dockerBuild = (b) => timed('docker', ['build', '--network=host', '-q', '-f', b.dockerfile, '-t', b.tag, b.context]);
  // Untimed: fills the layer cache (the timed builds then hit it on every step).
  for (const b of builds) await dockerBuild(b);
  defer(async () => {
    for (const b of builds) await timed('docker', ['rmi', b.tag], { allowFailure: true });
  });

  const [prebuiltMs, baselineMs] = await alternate(
    args.runs,
    async () => {
      const r = await prebuilt(['build', 'flow.py', '--json'], { cwd: project, env });
      const statuses = Object.values(JSON.parse(r.stdout).images).map((i) => i.status);
      if (statuses.some((s) => s !== 'present')) throw new Error(`the no-op build built something: ${statuses.join(', ')}`);
      return r.ms;
    },
    async () => {
      const started = process.hrtime.bigint();
      for (const b of builds) {
        await dockerBuild(b);
        await timed('docker', ['push', '-q', b.tag]);
      }
      return Number(process.hrtime.bigint() - started) / 1e6;
    },
  );
  const version = [];
  for (let i = 0; i < args.runs; i++) version.push((await prebuilt(['--version'], { cwd: project, env })).ms);

  const result = {
    benchmark: 'B1 no-op redeploy',
    flow: { steps: STEPS.length, distinctEnvs: ENVS.length },
    runs: args.runs,
    prebuiltBuildMs: stats(prebuiltMs),
    dockerBuildPushMs: stats(baselineMs),
    ratio: ratio(stats(baselineMs).median, stats(prebuiltMs).median),
    cliStartupMs: stats(version),
    machine: machine(),
  };
  output(args, result, [
    `B1 no-op redeploy: ${STEPS.length}-step flow, ${ENVS.length} distinct envs, every image already pushed (${args.runs} alternating runs)`,
    `  prebuilt build (registry HEAD, nothing built):      ${fmtStats(result.prebuiltBuildMs)}`,
    `  docker build (warm cache) + docker push, per env:   ${fmtStats(result.dockerBuildPushMs)}`,
    `  baseline / prebuilt: ${result.ratio}x`,
    `  reference: prebuilt --version (CLI start-up):       ${fmtStats(result.cliStartupMs)}  (${fmtMs(result.prebuiltBuildMs.median - result.cliStartupMs.median)} of the no-op build is past start-up)`,
  ]);
});
