#!/usr/bin/env node
/**
 * Benchmark of the materializer: a 50-package fixture env (25 synthetic noarch python conda
 * packages + 25 synthetic wheels, plus the python package assembled from Debian's python3.11
 * unless --no-python), served by the fixture server on 127.0.0.1, materialized
 *   cold — empty package cache: download + verify + install;
 *   warm — cache filled: install only (no request reaches the server);
 * and the deterministic tar of the result. Prints medians (and min/max) over --runs runs.
 *
 *   pnpm build && node bench/materialize.mjs [--runs 5] [--packages 50] [--no-python] [--json]
 *
 * `--env realistic`: the Debian scientific corpus instead, full build vs one-package rebuild vs
 * `tar -x` of the same files, side by side (materialize-realistic.mjs); with `--prune PRESETS`
 * (comma-separated, as METAFLOW_PREBUILT_PRUNE: tests, static-libs, headers) also the full build
 * pruned, interleaved with the others.
 *
 * `--node-disk journal|root`: where every variant writes — its output, the package cache (the
 * extraction cache, the bytecode cache, the copied archives) and, realistic env, the tar `tar -x`
 * extracts and its output: a fresh ext4 with a journal on a loop device (the default, as a build
 * machine's or CI runner's disk) or a temporary directory on this machine's root file system (ext4
 * without a journal, where file creation after a large delete is 3–10× slower; the figures before
 * round 25). See bench/node-disk.mjs.
 */
import { rm } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { materializeEnv, PackageCache, writeDeterministicTar } from '../packages/conda/dist/index.js';
import { generateFixtures, startFixtureServer, syntheticFixtureSet } from '../packages/fixtures/dist/index.js';
import { benchPrunePresets, stats } from './lib.mjs';
import { nodeDisk } from './node-disk.mjs';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '5' },
    packages: { type: 'string', default: '50' },
    'no-python': { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
    env: { type: 'string', default: 'synthetic' },
    before: { type: 'string' },
    'cache-dir': { type: 'string' },
    'node-disk': { type: 'string', default: 'journal' },
    prune: { type: 'string', default: '' },
  },
});
const runs = Number(values.runs);
const total = Number(values.packages);
const withPython = !values['no-python'];
if (values.prune && values.env !== 'realistic') {
  console.error('bench: --prune applies to --env realistic.');
  process.exit(2);
}
const prune = await benchPrunePresets(values.prune);

const cleanups = [];
const cleanup = async () => {
  for (const fn of cleanups.reverse()) await fn().catch((error) => console.error(`cleanup: ${error.message}`));
};
const disk = await nodeDisk(values['node-disk'], (fn) => cleanups.push(fn)).catch(async (error) => {
  await cleanup();
  throw error;
});
const work = await disk.dir('materialize');
let server;
try {
  if (values.env === 'realistic') {
    const { runRealistic } = await import('./materialize-realistic.mjs');
    try {
      await runRealistic({ runs, work, json: values.json, before: values.before, cacheDir: values['cache-dir'], nodeDisk: disk.kind, prune });
    } finally {
      await cleanup();
    }
    process.exit(0);
  }
  const condaCount = Math.ceil(total / 2);
  const synthetic = syntheticFixtureSet({ count: condaCount, wheelCount: total - condaCount, prefix: 'bench' });
  const fixtures = await generateFixtures(join(work, 'fixtures'), { conda: [], wheels: [] }, { python: withPython, extra: [synthetic] });
  server = await startFixtureServer({ channels: { main: fixtures.channelDir }, indexes: { main: fixtures.indexDir } });

  const python = fixtures.python.find((a) => a.subdir === 'linux-64' && a.format === '.conda') ?? fixtures.python[0];
  const condaArtifacts = [
    ...(withPython && python ? [python] : []),
    ...synthetic.condaNames.map((name, i) => {
      // Alternate the two archive formats when both exist.
      const all = fixtures.channel.artifacts.filter((a) => a.record.name === name);
      return all.find((a) => a.format === (i % 2 ? '.tar.bz2' : '.conda')) ?? all[0];
    }),
  ];
  const wheels = synthetic.wheelNames.map((name) => fixtures.index.wheels.find((w) => w.project === name));
  const lock = {
    specHash: 'bench',
    request: { python: '3.11', conda: {}, pypi: {}, channels: [server.channelUrls.main], indexUrl: server.indexUrls.main, platform: 'linux-64' },
    platform: 'linux-64',
    pythonVersion: python?.record.version ?? '3.11.2',
    packages: [
      ...condaArtifacts.map((a) => ({
        kind: 'conda', name: a.record.name, version: a.record.version, build: a.record.build,
        url: `${server.channelUrls.main}/${a.subdir}/${a.filename}`, sha256: a.record.sha256, size: a.record.size, filename: a.filename, subdir: a.subdir,
      })),
      ...wheels.map((w) => ({
        kind: 'pypi', name: w.project, version: w.version, build: '',
        url: `${server.url}/pypi/main/files/${w.filename}`, sha256: w.sha256, size: w.bytes.length, filename: w.filename,
      })),
    ],
  };
  const bytes = lock.packages.reduce((sum, p) => sum + p.size, 0);
  const prefix = '/opt/prebuilt/envs/0123456789abcdef';

  const cold = [];
  const warm = [];
  const tar = [];
  const coldCpu = [];
  const warmCpu = [];
  const cpuMs = (start) => {
    const { user, system } = process.cpuUsage(start);
    return (user + system) / 1000;
  };
  const digests = new Set();
  let warmRequests = 0;
  for (let i = 0; i < runs; i++) {
    const cacheDir = join(work, `cache-${i}`);
    let t = performance.now();
    let cpu = process.cpuUsage();
    await materializeEnv({ lock, prefix, outDir: join(work, `env-cold-${i}`), cache: new PackageCache({ cacheDir }) });
    cold.push(performance.now() - t);
    coldCpu.push(cpuMs(cpu));

    server.clearRequests();
    t = performance.now();
    cpu = process.cpuUsage();
    await materializeEnv({ lock, prefix, outDir: join(work, `env-warm-${i}`), cache: new PackageCache({ cacheDir }) });
    warm.push(performance.now() - t);
    warmCpu.push(cpuMs(cpu));
    warmRequests += server.requests.length;

    t = performance.now();
    const result = await writeDeterministicTar(join(work, `env-warm-${i}`), join(work, `env-${i}.tar`), { root: 'prefix' });
    tar.push(performance.now() - t);
    digests.add(result.sha256);
    await rm(join(work, `env-cold-${i}`), { recursive: true });
    await rm(join(work, `env-warm-${i}`), { recursive: true });
    await rm(join(work, `env-${i}.tar`));
    await rm(cacheDir, { recursive: true });
  }

  const report = {
    packages: lock.packages.length,
    conda: condaArtifacts.length,
    wheels: wheels.length,
    python: withPython,
    nodeDisk: disk.kind,
    downloadMiB: +(bytes / 1048576).toFixed(2),
    runs,
    coldMs: stats(cold),
    warmMs: stats(warm),
    coldCpuMs: stats(coldCpu),
    warmCpuMs: stats(warmCpu),
    loadAverage: os.loadavg()[0],
    tarMs: stats(tar),
    warmRequests,
    identicalTars: digests.size === 1,
  };
  if (values.json) console.log(JSON.stringify(report, null, 2));
  else {
    console.log(`materialize: ${report.packages} packages (${report.conda} conda${withPython ? ' incl. python' : ''}, ${report.wheels} wheels), ${report.downloadMiB} MiB, ${runs} runs, node disk: ${disk.kind}, node ${process.version}`);
    console.log(`  cold (download + install)  median ${report.coldMs.median} ms wall, ${report.coldCpuMs.median} ms cpu  (wall min ${report.coldMs.min}, max ${report.coldMs.max})`);
    console.log(`  warm (install from cache)  median ${report.warmMs.median} ms wall, ${report.warmCpuMs.median} ms cpu  (wall min ${report.warmMs.min}, max ${report.warmMs.max})  requests to the server: ${warmRequests}`);
    console.log(`  deterministic tar          median ${report.tarMs.median} ms  (min ${report.tarMs.min}, max ${report.tarMs.max})  identical across runs: ${report.identicalTars}`);
    console.log(`  (1-minute load average at the end: ${report.loadAverage.toFixed(1)} on ${os.cpus().length} cpus; the server runs in this process, so cold cpu includes serving)`);
  }
} finally {
  await server?.close();
  await cleanup();
}
