#!/usr/bin/env node
/**
 * B2 — cold start: time from `docker run` to the first line the step's code prints.
 *
 *   prebuilt   — the env's image built by `prebuilt build`: `docker run <image> <env python> -c <step>`.
 *   bootstrap  — the same locked env created at container start, as Metaflow's bootstrap does, on the
 *                same base image: bench/cold-start-bootstrap.py downloads the locked files from the
 *                local channel and index (urllib over host networking), unpacks the conda packages,
 *                pip-installs the wheels with the base image's python3, then runs the step code.
 *   floor      — container start + interpreter start alone: `docker run <base> python3 -c 'print(1)'`.
 *
 * The env: a @pypi step (tinyhttp, tinyplot and 10 synthetic wheels, with requests) on the conda
 * python built from Debian's python3.11. Base image: bench/base-image.sh (Debian bookworm minbase +
 * python3, pip, zstd; the bootstrap needs them), pushed to the local registry. Both images are
 * pulled before anything is timed, so no pull time is counted; every container uses host networking.
 *
 * `--env realistic`: the realistic env (Debian's scientific stack as conda packages), images built
 * by both build services, measured from a cached base, an empty node and local images, with
 * `--before <checkout>` adding the images another checkout's CLI builds: see cold-start-realistic.mjs.
 *
 *   pnpm build && bash scripts/test-services.sh up
 *   node bench/cold-start.mjs [--runs 3] [--port 5182] [--env small|realistic] [--before /path/to/checkout] [--json]
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { alternate, benchArgs, benchDir, cliEnv, fail, firstLine, fmtStats, loadFixtures, loadServices, machine, main, output, prebuilt, ratio, readProjectLock, ROOT, serveFixtures, stats, timed, writeFlowProject } from './lib.mjs';
import { coldStartRealistic } from './cold-start-realistic.mjs';

const args = benchArgs({ runs: 3 }, { port: { type: 'string', default: '5182' }, env: { type: 'string', default: 'small' }, before: { type: 'string' } });
if (!['small', 'realistic'].includes(args.env)) fail(`--env must be small or realistic (got ${args.env})`);
if (args.before && args.env !== 'realistic') fail('--before is for --env realistic');
if (args.before && !existsSync(join(args.before, 'packages/cli/dist/main.js'))) fail(`--before ${args.before}: no built checkout there (packages/cli/dist/main.js)`);
const NAMESPACE = 'prebuilt-bench/coldstart';
const CODE = 'import tinyhttp, tinyplot, requests; print("step: tinyhttp " + tinyhttp.__version__ + ", tinyplot " + tinyplot.__version__, flush=True)';

await main(async (defer) => {
  const services = loadServices();
  const base = (await timed('bash', [join(ROOT, 'bench/base-image.sh'), services.registries.plain.host])).stdout.trim();
  const dir = await benchDir(defer, 'coldstart');
  if (args.env === 'realistic') {
    await coldStartRealistic(args, defer, { services, base, dir });
    return;
  }
  const fixtures = await loadFixtures();
  const synthetic = fixtures.syntheticFixtureSet({ count: 0, wheelCount: 10, prefix: 'coldstart' });
  const { generated, server } = await serveFixtures(defer, dir, { port: Number(args.port), extra: [synthetic] });

  const packages = Object.fromEntries(['tinyhttp', 'tinyplot', ...synthetic.wheelNames].map((n) => [n, '']));
  const project = await writeFlowProject(dir, 'ColdStartFlow', [{ decorator: 'pypi', packages }, { decorator: 'pypi', packages }]);
  const env = cliEnv({
    server,
    generated,
    services,
    cacheDir: join(dir, 'cache'),
    extra: { METAFLOW_PREBUILT_BASE_IMAGE: base, METAFLOW_PREBUILT_IMAGE_NAMESPACE: NAMESPACE },
  });
  const map = JSON.parse((await prebuilt(['build', 'flow.py', '--json'], { cwd: project, env })).stdout);
  const step = map.steps.start;
  // core reads either lock format (version 1 for one platform, 2 for several) as step → platform → entry.
  const lockFile = await readProjectLock(project);
  const lock = lockFile.envs[lockFile.steps.start['linux-64']];
  const manifest = {
    // The same absolute prefix as in the image, so prefix replacement does the same work.
    prefix: step.python.replace(/\/bin\/python$/, ''),
    pythonVersion: lock.pythonVersion.split('.').slice(0, 2).join('.'),
    packages: lock.packages.map((p) => ({ kind: p.kind, url: p.url, filename: p.filename, sha256: p.sha256 })),
    code: CODE,
  };
  const bootstrap = await readFile(join(ROOT, 'bench/cold-start-bootstrap.py'), 'utf8');

  // Both images are local before anything is timed (prebuilt's build removes its local copy after the push).
  await timed('docker', ['pull', '-q', step.image]);
  await timed('docker', ['pull', '-q', base]);
  defer(() => timed('docker', ['rmi', step.image], { allowFailure: true }));

  const runPrebuilt = () => firstLine([step.image, step.python, '-u', '-c', CODE], 'step: ');
  const runBootstrap = () => firstLine([base, 'python3', '-c', bootstrap, JSON.stringify(manifest)], 'step: ');
  const runFloor = () => firstLine([base, 'python3', '-c', 'print(1)'], '1');
  // Untimed: one of each (checks the setup, warms the page cache).
  await runPrebuilt();
  await runBootstrap();
  await runFloor();
  const [prebuiltMs, bootstrapMs, floorMs] = await alternate(args.runs, runPrebuilt, runBootstrap, runFloor);

  const bytes = lock.packages.reduce((sum, p) => sum + (p.size ?? 0), 0);
  const result = {
    benchmark: 'B2 cold start',
    env: {
      conda: lock.packages.filter((p) => p.kind === 'conda').length,
      wheels: lock.packages.filter((p) => p.kind !== 'conda').length,
      downloadMiB: Math.round((bytes / 2 ** 20) * 100) / 100,
    },
    baseImage: base,
    image: step.image,
    runs: args.runs,
    prebuiltMs: stats(prebuiltMs),
    bootstrapMs: stats(bootstrapMs),
    floorMs: stats(floorMs),
    ratio: ratio(stats(bootstrapMs).median, stats(prebuiltMs).median),
    machine: machine(),
  };
  output(args, result, [
    `B2 cold start: docker run → first line of the step (env: ${result.env.conda} conda + ${result.env.wheels} wheels, ${result.env.downloadMiB} MiB; images pulled beforehand; ${args.runs} interleaved runs)`,
    `  prebuilt image:                         ${fmtStats(result.prebuiltMs)}`,
    `  bootstrap at start (download + create):  ${fmtStats(result.bootstrapMs)}`,
    `  floor (docker run base python3 print):   ${fmtStats(result.floorMs)}`,
    `  bootstrap / prebuilt: ${result.ratio}x`,
  ]);
});
