#!/usr/bin/env node
/**
 * B3 — incremental rebuild, per build service: a 20-package env (synthetic noarch python conda
 * packages from the fixture channel), then the same env with one package changed (a new version
 * with changed files). For each build service, on a fresh repository of the local registry:
 *
 *   first   — build and push env A (the repository is empty: every blob goes up, the base too);
 *   rebuild — build and push env B into the same repository.
 *
 * Services: `oci` (@prebuilt/oci: package layers — one per package up to 18 packages, grouped beyond —, only missing blobs uploaded) and
 * `docker` (@prebuilt/docker: the Docker daemon builds the materialized recipe — one COPY layer of
 * the whole prefix — and pushes). Both get the same prepared build contexts (materialized once,
 * untimed; FROM the base image in the same registry) and push through a byte-counting TCP proxy
 * on 127.0.0.1 in front of the registry, so
 * "bytes pushed" is the same measure for both: every byte sent to the registry (HTTP headers too).
 * Time: buildAndPush from the prepared context. Runs alternate between the services (AB, BA, …);
 * figures are medians.
 *
 * The env prefix is the same for A and B (`--prefix stable`, default): a package's layer has the
 * same bytes only where its files land at the same paths. `--prefix env-id` gives each env its own
 * prefix (as an envId in the path would), to show what a per-env path would cost.
 *
 *   pnpm build && bash scripts/test-services.sh up
 *   node bench/oci-vs-docker.mjs [--runs 3] [--packages 20] [--file-size 2048] [--prefix stable|env-id] [--env small|realistic] [--services oci,docker] [--json]
 *
 * --env realistic: the env is the realistic corpus (bench/realistic.mjs: Debian's scientific stack
 * as 82 conda packages) plus one small synthetic package, and the rebuild changes that package.
 *
 * --file-size: bytes of each of a package's 6 modules (poorly compressible text); raise it to see
 * packages of realistic size.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { REALISTIC_PACKAGES, startRealisticCorpus } from './realistic.mjs';
import { alternate, benchArgs, benchDir, countingProxy, fail, fmtBytes, fmtMs, loadFixtures, loadServices, machine, main, median, output, ratio } from './lib.mjs';

const args = benchArgs(
  { runs: 3 },
  { packages: { type: 'string', default: '20' }, prefix: { type: 'string', default: 'stable' }, 'file-size': { type: 'string', default: '2048' }, env: { type: 'string', default: 'small' }, port: { type: 'string', default: '5183' }, services: { type: 'string', default: 'oci,docker' } },
);
if (!['small', 'realistic'].includes(args.env)) fail(`--env must be small or realistic (got ${args.env})`);
const REALISTIC = args.env === 'realistic';
// Realistic: the corpus plus one small synthetic package, the one that changes.
const COUNT = REALISTIC ? 1 : Number(args.packages);
if (!REALISTIC && (!Number.isInteger(COUNT) || COUNT < 2 || COUNT > 200)) fail(`--packages must be an integer from 2 to 200 (got ${args.packages})`);
if (!['stable', 'env-id'].includes(args.prefix)) fail(`--prefix must be stable or env-id (got ${args.prefix})`);
const CHANGED = Math.floor(COUNT / 2);
const SERVICES = args.services.split(',').map((s) => s.trim());
if (SERVICES.length === 0 || SERVICES.some((s) => !['oci', 'docker'].includes(s))) fail(`--services must list oci and/or docker (got ${args.services})`);
const FILE_SIZE = Number(args['file-size']);
if (!Number.isInteger(FILE_SIZE) || FILE_SIZE < 64 || FILE_SIZE > 16 << 20) fail(`--file-size must be an integer from 64 to 16777216 (got ${args['file-size']})`);

async function load(path, what) {
  return import(new URL(path, import.meta.url).href).catch((error) => fail(`${what} is not built (${error.message}); run \`pnpm build\` first.`));
}


await main(async (defer) => {
  const services = loadServices();
  const core = await load('../packages/core/dist/index.js', '@prebuilt/core');
  const conda = await load('../packages/conda/dist/index.js', '@prebuilt/conda');
  const oci = await load('../packages/oci/dist/index.js', '@prebuilt/oci');
  const docker = await load('../packages/docker/dist/index.js', '@prebuilt/docker');
  const fixtures = await loadFixtures();

  const dir = await benchDir(defer, 'b3');
  const set = fixtures.syntheticFixtureSet({ count: COUNT, wheelCount: 0, prefix: 'bthree', fileSize: FILE_SIZE });
  const changed = structuredClone(set.conda[CHANGED]);
  changed.version = `${changed.version}.1`;
  changed.files = changed.files.map((f) => ({ ...f, content: `${f.content}\n# changed\n` }));
  const generated = await fixtures.generateFixtures(join(dir, 'fixtures'), set, { python: false, extra: [{ conda: [changed], wheels: [] }] });
  const server = await fixtures.startFixtureServer({ channels: { main: generated.channelDir }, indexes: { main: generated.indexDir } });
  defer(() => server.close());
  const realistic = REALISTIC ? await startRealisticCorpus({ port: Number(args.port), services }) : undefined;
  if (realistic) defer(() => realistic.close());
  const corpusPackages = (realistic?.corpus.channel.artifacts ?? []).map((a) => ({
    kind: 'conda', name: a.record.name, version: a.record.version, build: a.record.build, url: `${realistic.channelUrl}/${a.subdir}/${a.filename}`, sha256: a.record.sha256, size: a.record.size, filename: a.filename, subdir: a.subdir,
  }));

  const lockFor = (withChange) => {
    const packages = set.conda.map((spec, i) => {
      const version = withChange && i === CHANGED ? changed.version : spec.version;
      const a = generated.channel.artifacts.find((x) => x.record.name === spec.name && x.record.version === version);
      return { kind: 'conda', name: a.record.name, version: a.record.version, build: a.record.build, url: `${server.channelUrls.main}/${a.subdir}/${a.filename}`, sha256: a.record.sha256, size: a.record.size, filename: a.filename, subdir: a.subdir };
    });
    packages.push(...corpusPackages);
    packages.sort((x, y) => (x.name < y.name ? -1 : 1));
    const names = [...set.condaNames, ...(realistic ? Object.keys(REALISTIC_PACKAGES) : [])];
    return {
      specHash: withChange ? 'b3-b' : 'b3-a',
      request: { python: '3.11', conda: Object.fromEntries(names.map((n) => [n, ''])), pypi: {}, channels: [server.channelUrls.main, ...(realistic ? [realistic.channelUrl] : [])], indexUrl: null, platform: 'linux-64' },
      platform: 'linux-64',
      pythonVersion: realistic?.summary.python ?? '3.11.2',
      packages,
    };
  };

  const proxy = await countingProxy(services.registries.plain.host);
  defer(() => proxy.close());
  // The base image as seen through the proxy: the same registry as the pushes, as when a team keeps
  // its base images beside its env images (both services may then mount the base layers).
  const baseRepo = services.baseImage.ref.replace(/:[^:/]+$/, '').replace(services.registries.plain.host, proxy.host);
  const base = { ref: `${baseRepo}@${services.baseImage.digest}`, digest: services.baseImage.digest, pinned: `${baseRepo}@${services.baseImage.digest}` };
  const runner = conda.createMaterializedRecipeRunner({ cache: new conda.PackageCache({ cacheDir: join(dir, 'cache') }), tempDir: dir });
  const prepare = async (withChange) => {
    const envId = args.prefix === 'stable' ? 'b3' : withChange ? 'b3-rebuild' : 'b3-first';
    const started = performance.now();
    const prepared = await runner.prepare({ lock: lockFor(withChange), envId, prefix: args.prefix === 'stable' ? core.ENV_PREFIX : `/opt/prebuilt/envs/${envId}`, base });
    return { prepared, materializeMs: performance.now() - started };
  };
  const envA = await prepare(false);
  const envB = await prepare(true);
  defer(() => envA.prepared.dispose());
  defer(() => envB.prepared.dispose());

  const ociService = oci.createOciBuildService({ env: {}, layerCacheDir: join(dir, 'oci-layers') });
  const dockerService = docker.createDockerBuildService({ env: { DOCKER_HOST: services.dockerHost } });
  defer(() => dockerService.close?.() ?? Promise.resolve());

  const build = async (service, env, tag) => {
    proxy.state.sent = 0;
    const started = performance.now();
    const result = await service.buildAndPush({ dockerfile: env.prepared.dockerfile, contextDir: env.prepared.contextDir, imageTag: tag, platform: 'linux/amd64' });
    const ms = performance.now() - started;
    if (!result.ok) throw new Error(`${service.name} build of ${tag} failed: ${result.reason}\n${result.logTail.join('\n')}`);
    return { ms, bytes: proxy.state.sent, digest: result.digest };
  };
  const measure = (service) => async () => {
    const repo = `${proxy.host}/prebuilt-bench/b3-${service.name}-${randomBytes(4).toString('hex')}`;
    const first = await build(service, envA, `${repo}:first`);
    const rebuild = await build(service, envB, `${repo}:rebuild`);
    return { first, rebuild };
  };

  const measured = await alternate(args.runs, ...SERVICES.map((name) => measure(name === 'oci' ? ociService : dockerService)));
  const ociRuns = SERVICES.includes('oci') ? measured[SERVICES.indexOf('oci')] : undefined;
  const dockerRuns = SERVICES.includes('docker') ? measured[SERVICES.indexOf('docker')] : undefined;
  const summarize = (runs) => {
    if (!runs) return undefined;
    const pick = (f) => median(runs.map(f));
    const s = {
      firstMs: Math.round(pick((r) => r.first.ms)),
      rebuildMs: Math.round(pick((r) => r.rebuild.ms)),
      firstBytes: pick((r) => r.first.bytes),
      rebuildBytes: pick((r) => r.rebuild.bytes),
      samples: runs.map((r) => ({ firstMs: Math.round(r.first.ms), rebuildMs: Math.round(r.rebuild.ms), firstBytes: r.first.bytes, rebuildBytes: r.rebuild.bytes })),
    };
    return { ...s, rebuildVsFirstTime: ratio(s.rebuildMs, s.firstMs), rebuildVsFirstBytes: ratio(s.rebuildBytes, s.firstBytes) };
  };
  const ociFigures = summarize(ociRuns);
  const dockerFigures = summarize(dockerRuns);
  const result = {
    benchmark: 'B3 incremental rebuild: oci vs docker build service',
    env: args.env,
    packages: COUNT + corpusPackages.length,
    fileSize: FILE_SIZE,
    prefix: args.prefix,
    runs: args.runs,
    materializeMs: { first: Math.round(envA.materializeMs), rebuild: Math.round(envB.materializeMs) },
    oci: ociFigures,
    docker: dockerFigures,
    ociVsDocker: ociFigures && dockerFigures ? {
      rebuildTime: ratio(ociFigures.rebuildMs, dockerFigures.rebuildMs),
      rebuildBytes: ratio(ociFigures.rebuildBytes, dockerFigures.rebuildBytes),
      firstTime: ratio(ociFigures.firstMs, dockerFigures.firstMs),
      firstBytes: ratio(ociFigures.firstBytes, dockerFigures.firstBytes),
    } : undefined,
    machine: machine(),
  };
  const row = (name, f) =>
    `  ${name.padEnd(7)} first ${fmtMs(f.firstMs).padStart(8)} ${fmtBytes(f.firstBytes).padStart(11)}   rebuild ${fmtMs(f.rebuildMs).padStart(8)} ${fmtBytes(f.rebuildBytes).padStart(11)}   rebuild/first: time ${f.rebuildVsFirstTime}, bytes ${f.rebuildVsFirstBytes}`;
  output(args, result, [
    `B3 incremental rebuild — ${REALISTIC ? `realistic env (${corpusPackages.length} corpus packages, ${realistic.summary.archiveMiB} MiB of archives) + 1 synthetic package (6 modules of ${FILE_SIZE} bytes), then that package changed` : `${COUNT}-package env (6 modules of ${FILE_SIZE} bytes each), then package ${CHANGED} changed`}; prefix ${args.prefix}; medians of ${args.runs} alternating runs (bytes: sent to the registry through a counting proxy)`,
    ...(ociFigures ? [row('oci', ociFigures)] : []),
    ...(dockerFigures ? [row('docker', dockerFigures)] : []),
    ...(result.ociVsDocker ? [`  oci/docker: rebuild time ${result.ociVsDocker.rebuildTime}, rebuild bytes ${result.ociVsDocker.rebuildBytes}; first build time ${result.ociVsDocker.firstTime}, first build bytes ${result.ociVsDocker.firstBytes}`] : []),
    `  materialize (same for both, untimed above): ${fmtMs(result.materializeMs.first)} / ${fmtMs(result.materializeMs.rebuild)}`,
  ]);
});
