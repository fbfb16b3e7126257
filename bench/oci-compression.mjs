#!/usr/bin/env node
/**
 * B8 — the `oci` build service's first build of a big env, by layer compression, against the floor.
 *
 * The env: every `.conda` of a conda channel directory (default: the realistic Debian scientific
 * corpus cached under /var/tmp/prebuilt-bench/corpus, if present; `--channel DIR` to name one),
 * unpacked once into a build context with a prefix-layers.json (one layer per package, as the
 * materialized recipe writes it) and kept in /var/tmp/prebuilt-bench/oci-compression-<hash>.
 *
 * Measured, each a first build (no layer cache, a fresh repository, so every layer is compressed
 * and uploaded to the local registry): the `oci` service of --baseline (a checkout of an earlier
 * prebuilt, built, e.g. a `git worktree` of the commit before the native codecs; left out when not
 * given), this tree's with gzip (Node zlib) and with zstd. Then the codecs alone on one tar of
 * the env (MB/s of tar bytes, one stream), and the floor: `tar -x` of that tar plus `zstd -T0 -3`
 * of it.
 *
 *   node bench/oci-compression.mjs [--runs 1] [--channel DIR] [--baseline DIR] [--json]
 */
import { execFile, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync } from 'node:fs';
import { mkdir, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { ROOT, alternate, benchArgs, fail, fmtBytes, fmtMs, fmtStats, loadServices, machine, main, output, stats } from './lib.mjs';

const exec = promisify(execFile);
const CORPUS = '/var/tmp/prebuilt-bench/corpus';

function sh(script, options = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn('sh', ['-c', script], { stdio: ['ignore', 'pipe', 'inherit'], ...options });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`sh -c '${script}' exited ${code}`))));
  });
}

async function defaultChannels() {
  if (!existsSync(CORPUS)) return [];
  const names = await readdir(CORPUS);
  const sci = names.filter((n) => n.startsWith('debian-scientific-')).sort().at(-1);
  const python = names.filter((n) => n.startsWith('python-')).sort().at(-1);
  return [python, sci].filter(Boolean).map((n) => join(CORPUS, n));
}

/** Unpacks every `.conda` (its pkg-*.tar.zst) into <ctx>/prefix, writing prefix-layers.json and a Dockerfile; cached. */
async function buildContext(channels, base) {
  const archives = [];
  for (const dir of channels) for (const name of (await readdir(dir)).sort()) if (name.endsWith('.conda')) archives.push(join(dir, name));
  if (archives.length === 0) fail(`no .conda archives in ${channels.join(', ') || '(no channel: pass --channel DIR)'}`);
  const key = createHash('sha256').update(archives.join('\n')).digest('hex').slice(0, 16);
  const ctx = `/var/tmp/prebuilt-bench/oci-compression-${key}`;
  if (existsSync(join(ctx, 'prefix-layers.json'))) return { ctx, archives: archives.length };
  const tmp = `${ctx}.tmp-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  await mkdir(join(tmp, 'prefix'), { recursive: true });
  const packages = [];
  for (const archive of archives) {
    const member = (await exec('unzip', ['-Z1', archive])).stdout.split('\n').find((m) => m.startsWith('pkg-'));
    const files = (await sh(`unzip -p '${archive}' '${member}' | zstd -d -q | tar -t`)).split('\n').filter(Boolean).map((f) => f.replace(/\/$/, ''));
    await sh(`unzip -p '${archive}' '${member}' | zstd -d -q | tar -x -C '${join(tmp, 'prefix')}'`);
    const filename = archive.split('/').at(-1);
    const [, name, version] = /^(.*)-([^-]+)-[^-]+\.conda$/.exec(filename) ?? [null, filename, '0'];
    const sha256 = createHash('sha256').update(filename).digest('hex');
    packages.push({ kind: 'conda', name, version, filename, sha256, files: [...new Set(files)].sort() });
  }
  // A file two packages ship belongs to the first (as the materializer's clobber order would have it).
  await writeFile(join(tmp, 'prefix-layers.json'), `${JSON.stringify({ version: 1, prefixDir: 'prefix', packages }, null, 1)}\n`);
  await writeFile(join(tmp, 'Dockerfile'), `FROM ${base}\nCOPY prefix /opt/prebuilt/envs/bench\n`);
  await rename(tmp, ctx);
  return { ctx, archives: archives.length };
}

async function duBytes(dir) {
  return Number((await exec('du', ['-sb', dir])).stdout.split('\t')[0]);
}

async function main_() {
  const args = benchArgs({ runs: 1 }, { channel: { type: 'string', multiple: true }, baseline: { type: 'string' } });
  const services = loadServices();
  const base = `${services.baseImage.ref.replace(/:[^:/]+$/, '')}@${services.baseImage.digest}`;
  const channels = args.channel ?? (await defaultChannels());
  const { ctx, archives } = await buildContext(channels, base);
  const envBytes = await duBytes(join(ctx, 'prefix'));
  const dockerfile = `FROM ${base}\nCOPY prefix /opt/prebuilt/envs/bench\n`;

  const ours = await import(new URL('../packages/oci/dist/index.js', import.meta.url).href);
  const baselinePath = args.baseline ? join(args.baseline, 'packages/oci/dist/index.js') : '';
  const baseline = baselinePath && existsSync(baselinePath) ? await import(baselinePath) : undefined;
  const host = services.registries.plain.host;
  const build = (mod, env) => async () => {
    const tag = `${host}/prebuilt-bench/oci-compression-${randomBytes(4).toString('hex')}:x`;
    const t0 = performance.now();
    const result = await mod.createOciBuildService({ env, layerCacheDir: false }).buildAndPush({ dockerfile, contextDir: ctx, imageTag: tag, platform: 'linux/amd64' });
    if (!result.ok) throw new Error(`build failed: ${result.reason}`);
    return performance.now() - t0;
  };
  const variants = [
    ...(baseline ? [['baseline (JS gzip)', build(baseline, {})]] : []),
    ['gzip (Node zlib, parallel)', build(ours, { METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION: 'gzip', METAFLOW_PREBUILT_OCI_LAYERS: 'per-package' })],
    ['zstd (-3, parallel)', build(ours, { METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION: 'zstd', METAFLOW_PREBUILT_OCI_LAYERS: 'per-package' })],
  ];
  const samples = await alternate(args.runs, ...variants.map(([, fn]) => fn));
  const builds = Object.fromEntries(variants.map(([name], i) => [name, stats(samples[i])]));

  // The codecs alone on one tar of the env, and the floor.
  const work = `/var/tmp/prebuilt-bench/oci-compression-work-${process.pid}`;
  await mkdir(work, { recursive: true });
  try {
    const tar = join(work, 'env.tar');
    await sh(`tar -c -C '${join(ctx, 'prefix')}' -f '${tar}' .`);
    const tarBytes = (await stat(tar)).size;
    const codec = async (stages) => {
      const t0 = performance.now();
      let out = 0;
      await pipeline([createReadStream(tar, { highWaterMark: 1 << 20 }), ...stages, new Writable({ write: (c, _e, cb) => ((out += c.length), cb()) })]);
      return { ms: performance.now() - t0, out };
    };
    const { layerCompressor } = await import(new URL('../packages/oci/dist/layer-codec.js', import.meta.url).href);
    const throughput = {};
    const mbps = (ms) => Math.round(tarBytes / 1e6 / (ms / 1000));
    if (baseline) {
      const { deterministicGzip } = baseline;
      const { readFile } = await import('node:fs/promises');
      const data = await readFile(tar);
      const t0 = performance.now();
      const out = await deterministicGzip(data);
      const ms = performance.now() - t0;
      throughput['JS gzip (fflate, level 6)'] = { mbps: mbps(ms), ratio: Math.round((out.length / tarBytes) * 1000) / 1000 };
    }
    for (const c of ['gzip', 'zstd']) {
      const r = await codec(layerCompressor(c));
      throughput[c === 'gzip' ? 'Node zlib gzip -6 (one stream)' : 'zstd -3 (one stream, 4 MiB frames on the thread pool)'] = { mbps: mbps(r.ms), ratio: Math.round((r.out / tarBytes) * 1000) / 1000 };
    }
    const time = async (script) => {
      const t0 = performance.now();
      await sh(script);
      return performance.now() - t0;
    };
    await rm(join(work, 'x'), { recursive: true, force: true });
    await mkdir(join(work, 'x'));
    const tarX = await time(`tar -x -C '${join(work, 'x')}' -f '${tar}'`);
    const zstdT0 = await time(`zstd -T0 -3 -q -c '${tar}' > /dev/null`);
    const gzipCli = await time(`gzip -6 -c '${tar}' > /dev/null`);
    const floor = tarX + zstdT0;
    const result = {
      bench: 'oci-compression',
      machine: machine(),
      env: { channels, archives, bytes: envBytes, tarBytes },
      builds,
      throughput,
      floor: { tarX: Math.round(tarX), zstdT0: Math.round(zstdT0), total: Math.round(floor), gzipCli: Math.round(gzipCli) },
    };
    const lines = [
      `B8 oci first build, ${archives} packages, ${fmtBytes(envBytes)} env (${fmtBytes(tarBytes)} tar), fresh repository each, no layer cache`,
      ...Object.entries(builds).map(([name, s]) => `  ${name.padEnd(30)} ${fmtStats(s)}  (${(s.median / floor).toFixed(2)}× the floor)`),
      `  codecs on one tar of the env (MB/s of tar bytes, compressed/tar):`,
      ...Object.entries(throughput).map(([name, t]) => `    ${name.padEnd(54)} ${String(t.mbps).padStart(5)} MB/s  ratio ${t.ratio}`),
      `  floor: tar -x ${fmtMs(tarX)} + zstd -T0 -3 ${fmtMs(zstdT0)} = ${fmtMs(floor)}  (gzip -6 CLI: ${fmtMs(gzipCli)})`,
    ];
    output(args, result, lines);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

await main(async () => {
  if (!existsSync(join(ROOT, 'packages/oci/dist/layer-codec.js'))) fail('packages/oci is not built; run `pnpm build` first.');
  await main_();
});
