#!/usr/bin/env node
/**
 * B4 — parallel builds: `prebuilt build` of a flow with 8 distinct envs,
 *
 *   serial   — METAFLOW_PREBUILT_BUILD_WORKERS=1;
 *   default  — the default worker count, min(images, 8) = 8.
 *
 * Every run really builds all 8 images: METAFLOW_PREBUILT_REGISTRY_CACHE=0 skips the registry check,
 * and the Docker build service removes its local image after the push, so the daemon has no layer
 * cache of it. Per image: materialize the env into a build context (the package cache is warm after
 * the untimed first run, so nothing is downloaded), `docker build` on the local daemon, push to the
 * local registry (whose blobs are present after the first run, as for any rebuild). The lock file
 * is present, so nothing is resolved. Each env: the conda python built from Debian's python3.11 plus
 * a few synthetic noarch packages. Wall time of the CLI process.
 *
 *   pnpm build && bash scripts/test-services.sh up
 *   node bench/parallel-builds.mjs [--runs 3] [--port 5184] [--json]
 */
import { join } from 'node:path';
import { alternate, benchArgs, benchDir, cliEnv, fmtStats, loadFixtures, loadServices, machine, main, output, prebuilt, ratio, serveFixtures, stats, writeFlowProject } from './lib.mjs';

const args = benchArgs({ runs: 3 }, { port: { type: 'string', default: '5184' } });
const NAMESPACE = 'prebuilt-bench/parallel';
const ENVS = 8;

await main(async (defer) => {
  const services = loadServices();
  const dir = await benchDir(defer, 'parallel');
  const fixtures = await loadFixtures();
  // A binary tree of 16 packages: the 8 leaves (8…15) each pull a distinct path to the root.
  const synthetic = fixtures.syntheticFixtureSet({ count: 16, wheelCount: 0, prefix: 'parallel' });
  const { generated, server } = await serveFixtures(defer, dir, { port: Number(args.port), extra: [synthetic] });
  const steps = synthetic.condaNames.slice(8, 8 + ENVS).map((name) => ({ decorator: 'conda', packages: { [name]: '' } }));
  const project = await writeFlowProject(dir, 'ParallelFlow', steps);
  const env = cliEnv({
    server,
    generated,
    services,
    cacheDir: join(dir, 'cache'),
    extra: { METAFLOW_PREBUILT_IMAGE_NAMESPACE: NAMESPACE, METAFLOW_PREBUILT_REGISTRY_CACHE: '0' },
  });

  const build = async (workers) => {
    const r = await prebuilt(['build', 'flow.py', '--json'], {
      cwd: project,
      env: workers === undefined ? env : { ...env, METAFLOW_PREBUILT_BUILD_WORKERS: String(workers) },
    });
    const images = Object.values(JSON.parse(r.stdout).images);
    if (images.length !== ENVS || images.some((i) => i.status !== 'built')) {
      throw new Error(`expected ${ENVS} built images, got ${images.map((i) => i.status).join(', ')}`);
    }
    return r.ms;
  };
  // Untimed: locks the flow, fills the package cache, pushes the blobs once.
  await build(undefined);
  const [serialMs, defaultMs] = await alternate(args.runs, () => build(1), () => build(undefined));

  const result = {
    benchmark: 'B4 parallel builds',
    images: ENVS,
    defaultWorkers: Math.min(ENVS, 8),
    runs: args.runs,
    serialMs: stats(serialMs),
    defaultMs: stats(defaultMs),
    ratio: ratio(stats(serialMs).median, stats(defaultMs).median),
    machine: machine(),
  };
  output(args, result, [
    `B4 parallel builds: ${ENVS} distinct envs, every image built and pushed each run (${args.runs} alternating runs)`,
    `  1 worker:              ${fmtStats(result.serialMs)}`,
    `  default (${result.defaultWorkers} workers):  ${fmtStats(result.defaultMs)}`,
    `  1 worker / default: ${result.ratio}x   (on ${result.machine.nproc} cpus)`,
  ]);
});
