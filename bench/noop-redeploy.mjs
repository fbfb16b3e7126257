#!/usr/bin/env node
/**
 * B1 — no-op redeploy: a flow whose images are all in the registry and whose lock is present.
 *
 *   prebuilt  — `prebuilt build flow.py --json`, wall (and CPU) time of the CLI process: reads the
 *               flow (a python3 subprocess), reuses the lock, resolves the base image digest, HEADs
 *               the tags, finds them all, finds their SBOMs, writes the image map. Nothing is built
 *               or pushed. Once per build service of `--services` (the no-op path checks the
 *               selected service before anything else: the Docker daemon is pinged, `oci` has
 *               nothing to reach), and with `--before <checkout>` the same by that checkout's CLI.
 *   baseline  — what a user scripts without prebuilt's registry check (and what the Python
 *               reference does, since its cache never hits): for each env, one after the other,
 *               `docker build --network=host` with a warm layer cache (every step CACHED) plus
 *               `docker push` (every layer already in the registry), once with Docker's legacy
 *               builder (DOCKER_BUILDKIT=0) and once with BuildKit (DOCKER_BUILDKIT=1), whose
 *               context transfer is incremental. It uses the very Dockerfiles
 *               and materialized contexts prebuilt builds from (made beforehand by @prebuilt/conda's
 *               recipe runner and not timed, which favours the baseline), and pushes to a repository
 *               of its own (`<namespace>-baseline`, one untimed push first).
 *
 * Envs (`--env`):
 *   small      — 10 steps over 4 distinct envs (two `@conda`, two `@pypi`) of the fixture channel
 *                and index; images built by the `docker` service (untimed).
 *   realistic  — 10 steps over 2 distinct `@conda` envs of the realistic corpus (bench/realistic.mjs:
 *                Debian's scientific stack as 82 conda packages): the corpus's roots (numpy, scipy,
 *                pandas, sklearn, matplotlib, …) and a pandas + requests + boto3 env; images built
 *                by the `oci` service (untimed; the first run takes minutes). Tags do not depend on
 *                the build service, so every service's no-op finds the same images.
 *
 * Lazy images (`--lazy`): also the no-op of the same flow whose images the `oci` service built with
 * zstd:chunked layers laid out by a recorded prefetch profile beside the flow (`flow.prebuilt.prefetch`,
 * common paths plus one `[env <envId>]` section per env: what `prebuilt profile` writes), in a
 * project and repository of their own (`<namespace>-lazy`: the layout is no part of the tag, so
 * these images may not replace the gzip ones). Its no-op reads each image's manifest for the
 * layout annotation (one GET per image more than the gzip no-op) and must find the layout
 * unchanged: nothing rebuilt. Timed with the `oci` service only (the one that records a layout).
 *
 * Also measured: `prebuilt --version` (and the before checkout's), the CLI's start-up alone; and,
 * when `python3` on PATH is a version manager's shim (a script, e.g. pyenv's), the build with
 * METAFLOW_PREBUILT_PYTHON set to the interpreter behind it ("direct python"), for reference.
 * Figures: median, min and max of the runs, wall and CPU (user + system of the process and the
 * python3 it runs; the baseline's CPU is mostly the Docker daemon's and is not counted).
 *
 *   pnpm build && bash scripts/test-services.sh up
 *   node bench/noop-redeploy.mjs [--runs 3] [--env small|realistic] [--services docker,oci] [--lazy] [--before /path/to/checkout] [--port 5181] [--json]
 */
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { alternate, benchArgs, benchDir, BIN, cliEnv, fail, fmtMs, fmtStats, loadServices, machine, main, NOOP_ENVS, NOOP_STEPS, output, prebuilt, ratio, readProjectLock, ROOT, serveFixtures, stats, timed, writeFlowProject } from './lib.mjs';
import { REALISTIC_PACKAGES, realisticCliEnv, startRealisticCorpus } from './realistic.mjs';

const args = benchArgs({ runs: 3 }, { port: { type: 'string', default: '5181' }, env: { type: 'string', default: 'small' }, services: { type: 'string' }, before: { type: 'string' }, lazy: { type: 'boolean', default: false } });
if (!['small', 'realistic'].includes(args.env)) fail(`--env must be small or realistic (got ${args.env})`);
const REALISTIC = args.env === 'realistic';
const SERVICES = (args.services ?? (REALISTIC ? 'oci,docker' : 'docker')).split(',').map((s) => s.trim());
for (const s of SERVICES) if (!['oci', 'docker'].includes(s)) fail(`--services: oci and/or docker (got ${s})`);
if (args.before && !existsSync(join(args.before, 'packages/cli/dist/main.js'))) fail(`--before ${args.before}: no built checkout there (packages/cli/dist/main.js)`);
const NAMESPACE = REALISTIC ? 'prebuilt-bench/noop-realistic' : 'prebuilt-bench/noop';

const REALISTIC_ENVS = [
  { decorator: 'conda', packages: REALISTIC_PACKAGES },
  { decorator: 'conda', packages: { pandas: '', requests: '', boto3: '' } },
];
const ENVS = REALISTIC ? REALISTIC_ENVS : NOOP_ENVS;
const STEPS = REALISTIC ? Array.from({ length: NOOP_STEPS.length }, (_, i) => REALISTIC_ENVS[i % REALISTIC_ENVS.length]) : NOOP_STEPS;

/** The project, its CLI environment and the cache directory, for the chosen env. */
async function setUp(defer, dir, services) {
  const cacheDir = join(dir, 'cache');
  const extra = { METAFLOW_PREBUILT_IMAGE_NAMESPACE: NAMESPACE };
  if (!REALISTIC) {
    const { generated, server } = await serveFixtures(defer, dir, { port: Number(args.port) });
    return { project: await writeFlowProject(dir, 'NoopFlow', STEPS), env: cliEnv({ server, generated, services, cacheDir, extra }), cacheDir };
  }
  const corpus = await startRealisticCorpus({ port: Number(args.port), services });
  defer(() => corpus.close());
  const env = realisticCliEnv(corpus, { services, cacheDir, extra: { ...extra, METAFLOW_PREBUILT_BUILD_SERVICE: 'oci' } });
  return { project: await writeFlowProject(dir, 'NoopRealisticFlow', STEPS), env, cacheDir, corpus: corpus.summary };
}

/**
 * The `--lazy` project: the same flow in a directory of its own with a recorded prefetch profile
 * beside it, built (untimed) by the oci service with zstd:chunked layers into `<namespace>-lazy`.
 * Checks that the build used the profile and that every image records a profile layout.
 */
async function lazySetUp(dir, env, map) {
  const project = await writeFlowProject(join(dir, 'lazy'), REALISTIC ? 'NoopRealisticFlow' : 'NoopFlow', STEPS);
  const core = await import(join(ROOT, 'packages/core/dist/index.js'));
  const sections = Object.keys(map.images).map((envId) => `[env ${envId}]\n${core.envPrefix(envId)}/bin/python\n${core.envPrefix(envId)}/conda-meta/history\n`);
  await writeFile(join(project, 'flow.prebuilt.prefetch'), `# recorded by bench/noop-redeploy.mjs --lazy\nusr/lib/os-release\netc/passwd\n${sections.join('')}`);
  const lazyEnv = { ...env, METAFLOW_PREBUILT_IMAGE_NAMESPACE: `${NAMESPACE}-lazy`, METAFLOW_PREBUILT_BUILD_SERVICE: 'oci', METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION: 'zstd:chunked' };
  const first = await prebuilt(['build', 'flow.py', '--json'], { cwd: project, env: lazyEnv });
  const lazyMap = JSON.parse(first.stdout);
  const layouts = Object.values(lazyMap.prefetch?.images ?? {});
  if (!lazyMap.prefetch?.profile || layouts.length !== ENVS.length || !layouts.every((l) => String(l.layout ?? l).startsWith('profile '))) {
    throw new Error(`the --lazy build did not lay its images out with the recorded profile: ${JSON.stringify(lazyMap.prefetch)}`);
  }
  process.stderr.write(`[b1] lazy images ready (${Object.values(lazyMap.images).map((i) => i.status).join(', ')}) in ${fmtMs(first.ms)}\n`);
  return { project, env: lazyEnv };
}

/** The baseline's inputs: prebuilt's own Dockerfile and materialized context for every env of `map`. */
async function baselineBuilds(defer, { dir, project, env, cacheDir, map }) {
  const core = await import(join(ROOT, 'packages/core/dist/index.js'));
  const conda = await import(join(ROOT, 'packages/conda/dist/index.js'));
  const localRegistry = (await import(join(ROOT, 'packages/local/dist/index.js'))).default;
  const registry = await localRegistry.create({}, { env, cwd: project });
  const lockFile = await readProjectLock(project);
  const { dockerPlatform } = await import(join(ROOT, 'packages/core/dist/env-model.js'));
  const runner = conda.createMaterializedRecipeRunner({ cacheDir, tempDir: dir });
  const builds = [];
  for (const envId of Object.keys(map.images)) {
    const step = Object.entries(map.steps).find(([, s]) => s.envId === envId)[0];
    const lock = lockFile.envs[lockFile.steps[step]['linux-64']];
    const base = await registry.baseImageIdentity(env.METAFLOW_PREBUILT_BASE_IMAGE, dockerPlatform(lock.platform));
    const computed = core.computeEnvId({ lock, baseDigest: base.digest, recipe: { name: runner.name, version: runner.version } });
    if (computed !== envId) throw new Error(`the baseline context for ${envId} would be another env (${computed})`);
    const prepared = await runner.prepare({ lock, envId, prefix: core.envPrefix(envId), base });
    defer(() => prepared.dispose());
    const dockerfile = join(dir, `${envId}.Dockerfile`);
    await writeFile(dockerfile, prepared.dockerfile);
    // Its own repository: the baseline's image never replaces the one prebuilt found.
    const tag = map.images[envId].image.replace(`/${NAMESPACE}:`, `/${NAMESPACE}-baseline:`);
    builds.push({ envId, tag, dockerfile, context: prepared.contextDir });
  }
  return builds;
}

/** A no-op `prebuilt build --json` by the CLI at `bin`; checks that every image was found. */
async function noopBuild(bin, project, env) {
  const r = await timed(process.execPath, [bin, 'build', 'flow.py', '--json'], { cwd: project, env });
  const statuses = Object.values(JSON.parse(r.stdout).images).map((i) => i.status);
  if (statuses.some((s) => s !== 'present')) throw new Error(`the no-op build (${bin}) built something: ${statuses.join(', ')}`);
  return r;
}

/** The interpreter `python3` on PATH runs, when `python3` is a script (a version manager's shim); else undefined. */
async function pythonBehindShim() {
  const which = await timed('sh', ['-c', 'command -v python3'], { allowFailure: true });
  if (which.code !== 0) return undefined;
  const onPath = which.stdout.trim();
  const head = await readFile(onPath).then((b) => b.subarray(0, 2).toString('latin1'), () => '');
  if (head !== '#!') return undefined;
  return (await timed('python3', ['-c', 'import sys; print(sys.executable)'])).stdout.trim();
}

await main(async (defer) => {
  const services = loadServices();
  const dir = await benchDir(defer, 'noop');
  const { project, env, cacheDir, corpus } = await setUp(defer, dir, services);

  // Untimed: lock, build and push whatever the registry lacks (nothing when an earlier run pushed them).
  const first = await prebuilt(['build', 'flow.py', '--json'], { cwd: project, env });
  const map = JSON.parse(first.stdout);
  if (Object.keys(map.images).length !== ENVS.length) throw new Error(`expected ${ENVS.length} images, the build made ${Object.keys(map.images).length}`);
  process.stderr.write(`[b1] images ready (${Object.values(map.images).map((i) => i.status).join(', ')}) in ${fmtMs(first.ms)}\n`);

  const lazy = args.lazy ? await lazySetUp(dir, env, map) : undefined;
  const builds = await baselineBuilds(defer, { dir, project, env, cacheDir, map });
  // The baseline with each of Docker's builders: the legacy one (DOCKER_BUILDKIT=0; the default of a
  // docker CLI < 23, or of a newer one without the buildx plugin) and BuildKit (DOCKER_BUILDKIT=1: the
  // CLI's own BuildKit client, or buildx where the CLI uses it), whose context transfer is incremental.
  const builders = [
    { name: 'docker build + push (legacy builder)', env: { ...process.env, DOCKER_BUILDKIT: '0' } },
    { name: 'docker build + push (BuildKit)', env: { ...process.env, DOCKER_BUILDKIT: '1' } },
  ];
  // Every env built by `builder`, then pushed, one after the other.
  const buildAndPush = async (builder) => {
    for (const b of builds) {
      await timed('docker', ['build', '--network=host', '-q', '-f', b.dockerfile, '-t', b.tag, b.context], { env: builder.env });
      await timed('docker', ['push', '-q', b.tag]);
    }
  };
  // Untimed: fills each builder's layer cache (the timed builds then hit it on every step) and the baseline's repository.
  for (const builder of builders) await buildAndPush(builder);
  defer(async () => {
    for (const b of builds) await timed('docker', ['rmi', b.tag], { allowFailure: true });
  });
  process.stderr.write('[b1] baseline contexts and layer cache ready\n');

  const checkouts = [{ label: 'prebuilt', bin: BIN }, ...(args.before ? [{ label: 'before', bin: join(args.before, 'packages/cli/bin/prebuilt.js') }] : [])];
  const variants = checkouts.flatMap((c) => SERVICES.map((service) => ({ name: `${c.label} build, ${service}`, checkout: c.label, service, run: () => noopBuild(c.bin, project, { ...env, METAFLOW_PREBUILT_BUILD_SERVICE: service }) })));
  if (lazy) for (const c of checkouts) variants.push({ name: `${c.label} build, oci, lazy`, checkout: c.label, service: 'oci', lazy: true, run: () => noopBuild(c.bin, lazy.project, lazy.env) });
  // Reference: when `python3` on PATH is a version manager's shim (pyenv, asdf: a script that picks
  // the interpreter, itself several processes), the same build with the interpreter it runs.
  const direct = await pythonBehindShim();
  if (direct) variants.push({ name: `prebuilt build, ${SERVICES[0]}, direct python`, checkout: 'prebuilt', service: SERVICES[0], run: () => noopBuild(BIN, project, { ...env, METAFLOW_PREBUILT_BUILD_SERVICE: SERVICES[0], METAFLOW_PREBUILT_PYTHON: direct }) });
  for (const builder of builders) {
    variants.push({
      name: builder.name,
      run: async () => {
        const started = process.hrtime.bigint();
        await buildAndPush(builder);
        return { ms: Number(process.hrtime.bigint() - started) / 1e6, cpuMs: null };
      },
    });
  }
  for (const c of checkouts) variants.push({ name: `${c.label} --version`, checkout: c.label, version: true, run: () => timed(process.execPath, [c.bin, '--version'], { cwd: project, env }) });

  const samples = await alternate(args.runs, ...variants.map((v) => v.run));
  const figures = variants.map((v, i) => ({
    name: v.name,
    ...(v.service ? { service: v.service } : {}),
    ...(v.checkout ? { checkout: v.checkout } : {}),
    wallMs: stats(samples[i].map((s) => s.ms)),
    cpuMs: samples[i][0].cpuMs === null ? null : stats(samples[i].map((s) => s.cpuMs)),
  }));
  const byName = Object.fromEntries(figures.map((f) => [f.name, f]));
  const baselines = builders.map((builder) => ({ name: builder.name, ms: byName[builder.name].wallMs.median }));
  const result = {
    benchmark: `B1 no-op redeploy (${args.env} env)`,
    env: args.env,
    flow: { steps: STEPS.length, distinctEnvs: ENVS.length, ...(corpus ? { corpus } : {}) },
    runs: args.runs,
    ...(args.before ? { before: args.before } : {}),
    ...(direct ? { pythonBehindShim: direct } : {}),
    variants: figures,
    baselineOverPrebuilt: Object.fromEntries(baselines.flatMap((base) => figures.filter((f) => f.service).map((f) => [`${base.name} / ${f.name}`, ratio(base.ms, f.wallMs.median)]))),
    ...(args.before ? { afterOverBefore: Object.fromEntries(SERVICES.map((s) => [s, ratio(byName[`prebuilt build, ${s}`].wallMs.median, byName[`before build, ${s}`].wallMs.median)])) } : {}),
    ...(lazy && SERVICES.includes('oci') ? { lazyOverGzip: ratio(byName['prebuilt build, oci, lazy'].wallMs.median, byName['prebuilt build, oci'].wallMs.median) } : {}),
    machine: machine(),
  };
  const line = (f) => `  ${f.name.padEnd(36)} ${fmtStats(f.wallMs)}${f.cpuMs ? `; CPU ${fmtMs(f.cpuMs.median)} (${fmtMs(f.cpuMs.min)}–${fmtMs(f.cpuMs.max)})` : ''}`;
  output(args, result, [
    `B1 no-op redeploy, ${args.env} env: ${STEPS.length}-step flow, ${ENVS.length} distinct envs, every image already pushed, lock present (${args.runs} interleaved runs)`,
    ...figures.map(line),
    ...Object.entries(result.baselineOverPrebuilt).map(([name, r]) => `  ${name}: ${r}x`),
    ...Object.entries(result.afterOverBefore ?? {}).map(([s, r]) => `  after / before (${s}): ${r}x`),
    ...(result.lazyOverGzip ? [`  lazy (zstd:chunked + profile) / gzip, oci: ${result.lazyOverGzip}x`] : []),
    ...(direct ? [`  (python3 on PATH is a shim; "direct python" runs ${direct} instead)`] : []),
  ]);
});
