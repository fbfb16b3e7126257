#!/usr/bin/env node
/**
 * B9 — the `oci` service's layering policies on the realistic env, side by side: `per-package`
 * (a layer per package), `grouped` (the default: big packages alone, small ones in 8 groups) and
 * `single` (one layer, as the `docker` service's COPY), and eStargz with lazy pulling.
 *
 * The env: B8's cached build context (/var/tmp/prebuilt-bench/oci-compression-*: the realistic
 * corpus unpacked with a prefix-layers.json; run `node bench/oci-compression.mjs` once to make it),
 * with noarch packages' files moved where the materializer puts them (hard links), and a copy of
 * that where one small package (`six`) has one file changed.
 *
 * - B3 per policy: a first build into a fresh repository (bytes pushed, time), then the rebuild of
 *   the changed env into the same repository with the layer cache (bytes pushed, time).
 * - B2 per policy, base image cached, env image not: Docker — `docker pull` + `docker run` to the
 *   first line after `import pandas, sklearn`; containerd (a private instance) — `ctr images pull` +
 *   `ctr run`, same command. Runs interleaved.
 * - B2 lazy (when containerd-stargz-grpc is installed: scripts/build-stargz-grpc.sh): the grouped
 *   eStargz image, `ctr-remote images rpull` + `ctr-remote run --snapshotter stargz` against the same
 *   image pulled fully (`ctr images pull` + `ctr run`), with the bytes the registry sent (a TCP proxy).
 *
 *   node bench/oci-layering.mjs [--runs 2] [--json]
 */
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ROOT, alternate, benchArgs, countingProxy, fail, firstLine, fmtBytes, fmtStats, loadServices, machine, main, median, output, ratio, stats } from './lib.mjs';

const exec = promisify(execFile);
const PY = '/opt/prebuilt/envs/bench/bin/python';
// Checks that the real packages load (a namespace package would import from nothing).
const CODE = 'import pandas, sklearn, sklearn.linear_model; assert pandas.__file__ and sklearn.__file__; print("ok")';
const POLICIES = ['per-package', 'grouped', 'single'];

const SITE = 'lib/python3.11/site-packages';

/** A hard-linked copy of `from` with noarch python packages' `site-packages/` and `python-scripts/` where the materializer puts them. */
async function relocatedCopy(from, to) {
  await rm(`${to}.tmp`, { recursive: true, force: true });
  await exec('cp', ['-al', from, `${to}.tmp`]);
  const prefix = join(`${to}.tmp`, 'prefix');
  for (const [src, dest] of [['site-packages', SITE], ['python-scripts', 'bin']]) {
    if (!existsSync(join(prefix, src))) continue;
    await exec('cp', ['-al', `${join(prefix, src)}/.`, join(prefix, dest)]);
    await rm(join(prefix, src), { recursive: true });
  }
  const layers = JSON.parse(await readFile(join(from, 'prefix-layers.json'), 'utf8'));
  const move = (f) => (f === 'site-packages' ? SITE : f.startsWith('site-packages/') ? `${SITE}/${f.slice(14)}` : f === 'python-scripts' ? 'bin' : f.startsWith('python-scripts/') ? `bin/${f.slice(15)}` : f);
  for (const pkg of layers.packages) pkg.files = [...new Set(pkg.files.map(move))].sort();
  await writeFile(join(`${to}.tmp`, 'prefix-layers.json'), `${JSON.stringify(layers, null, 1)}\n`);
  await exec('mv', [`${to}.tmp`, to]);
  return layers;
}

/**
 * B8's cached context relocated (B8 unpacks the archives as they are, which leaves noarch packages
 * off sys.path), and a copy of that where one small package (`six`) has one file changed.
 */
async function contexts() {
  const dirs = (await readdir('/var/tmp/prebuilt-bench').catch(() => [])).filter((n) => /^oci-compression-[0-9a-f]{16}$/.test(n));
  const b8 = dirs.map((n) => join('/var/tmp/prebuilt-bench', n)).find((d) => existsSync(join(d, 'prefix-layers.json')));
  if (!b8) fail('no cached realistic build context; run `node bench/oci-compression.mjs` once to make it.');
  const ctx = `${b8}-relocated`;
  if (!existsSync(join(ctx, 'prefix-layers.json'))) await relocatedCopy(b8, ctx);
  const changed = `${ctx}-six-changed`;
  if (!existsSync(join(changed, 'prefix-layers.json'))) {
    await rm(`${changed}.tmp`, { recursive: true, force: true });
    await exec('cp', ['-al', ctx, `${changed}.tmp`]);
    const layers = JSON.parse(await readFile(join(ctx, 'prefix-layers.json'), 'utf8'));
    const six = layers.packages.find((p) => p.name === 'six') ?? fail('the context has no package six');
    const file = six.files.find((f) => f.endsWith('.py')) ?? fail('six has no .py file');
    const target = join(`${changed}.tmp`, 'prefix', file);
    const text = await readFile(target);
    await rm(target);
    await writeFile(target, Buffer.concat([text, Buffer.from('\n# changed\n')]));
    await exec('mv', [`${changed}.tmp`, changed]);
  }
  return { ctx, changed };
}

function ms(t0) {
  return performance.now() - t0;
}

/** `cmd args`: ms from the spawn to the first stdout line (which must start with `expect`). */
function firstLineOf(cmd, args, expect) {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let first;
    child.stdout.setEncoding('utf8').on('data', (c) => {
      out += c;
      if (first === undefined && out.includes('\n')) first = ms(t0);
    });
    child.stderr.setEncoding('utf8').on('data', (c) => (err += c));
    child.on('close', (code) => (code === 0 && out.startsWith(expect) ? resolve(first) : reject(new Error(`${cmd} ${args.slice(0, 4).join(' ')} exited ${code}: ${err.trim().split('\n').slice(-5).join(' | ')}`))));
  });
}

async function startContainerd(dir, stargz) {
  await mkdir(join(dir, 'root'), { recursive: true });
  const sock = join(dir, 'containerd.sock');
  const conf = ['version = 2', `root = "${dir}/root"`, `state = "${dir}/state"`, 'disabled_plugins = ["io.containerd.grpc.v1.cri"]', '[grpc]', `  address = "${sock}"`, '[ttrpc]', `  address = "${sock}.ttrpc"`];
  if (stargz) conf.push('[proxy_plugins]', '  [proxy_plugins.stargz]', '    type = "snapshot"', `    address = "${dir}/stargz.sock"`);
  await writeFile(join(dir, 'config.toml'), `${conf.join('\n')}\n`);
  const procs = [spawn('containerd', ['-c', join(dir, 'config.toml')], { stdio: 'ignore' })];
  if (stargz) {
    await writeFile(join(dir, 'stargz.toml'), 'noprefetch = true\nno_background_fetch = true\nno_prometheus = true\n');
    procs.push(spawn('containerd-stargz-grpc', ['--address', `${dir}/stargz.sock`, '--root', `${dir}/sroot`, '--config', `${dir}/stargz.toml`], { stdio: 'ignore' }));
  }
  for (let i = 0; i < 100; i++) {
    if (await exec('ctr', ['-a', sock, 'version']).then(() => true, () => false)) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const stop = async () => {
    for (const p of procs.reverse()) p.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 1000));
    await exec('sh', ['-c', `grep -o " ${dir}[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l`]).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  };
  return { sock, stop };
}

async function main_(onCleanup) {
  const args = benchArgs({ runs: 2 });
  const services = loadServices();
  const { ctx, changed } = await contexts();
  const base = `${services.baseImage.ref.replace(/:[^:/]+$/, '')}@${services.baseImage.digest}`;
  const dockerfile = `FROM ${base}\nCOPY prefix /opt/prebuilt/envs/bench\n`;
  const oci = await import(new URL('../packages/oci/dist/index.js', import.meta.url).href);
  const host = services.registries.plain.host;
  const cacheRoot = await mkdtemp('/var/tmp/prebuilt-bench/oci-layering-cache-');
  onCleanup(() => rm(cacheRoot, { recursive: true, force: true }));
  const build = async (env, contextDir, imageTag, cacheName) => {
    let summary;
    const t0 = performance.now();
    const result = await oci.createOciBuildService({ env, layerCacheDir: join(cacheRoot, cacheName), onPushed: (s) => (summary = s) }).buildAndPush({ dockerfile, contextDir, imageTag, platform: 'linux/amd64' });
    if (!result.ok) throw new Error(`build failed: ${result.reason}`);
    return { ms: ms(t0), bytes: summary.bytesSent, layers: summary.layers.length, uploaded: summary.layers.filter((l) => l.status === 'uploaded').length };
  };

  // B3: first build and one-package rebuild per policy.
  const b3 = {};
  const tags = {};
  for (const policy of POLICIES) {
    const repo = `${host}/prebuilt-bench/oci-layering-${policy}-${randomBytes(4).toString('hex')}`;
    tags[policy] = `${repo}:a`;
    const env = { METAFLOW_PREBUILT_OCI_LAYERS: policy };
    const first = await build(env, ctx, `${repo}:a`, policy);
    const rebuild = await build(env, changed, `${repo}:b`, policy);
    b3[policy] = { first, rebuild, bytesShare: rebuild.bytes / first.bytes };
  }
  const esgzTag = `${host}/prebuilt-bench/oci-layering-estargz-${randomBytes(4).toString('hex')}:a`;
  const esgz = await build({ METAFLOW_PREBUILT_OCI_LAYERS: 'grouped', METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION: 'estargz' }, ctx, esgzTag, 'estargz');

  // B2, Docker: base cached, env image not.
  await exec('docker', ['pull', base]);
  const dockerRun = (tag) => async () => {
    await exec('docker', ['rmi', '-f', tag]).catch(() => undefined);
    const t0 = performance.now();
    await exec('docker', ['pull', tag], { maxBuffer: 1 << 24 });
    const pull = ms(t0);
    const run = await firstLine([tag, PY, '-c', CODE], 'ok');
    await exec('docker', ['rmi', '-f', tag]).catch(() => undefined);
    return { pull, run, total: pull + run };
  };
  const dockerSamples = await alternate(args.runs, ...POLICIES.map((p) => dockerRun(tags[p])));
  const b2docker = Object.fromEntries(POLICIES.map((p, i) => [p, summarize(dockerSamples[i])]));

  // B2, containerd (overlayfs): base pulled once, env image pulled and run per sample.
  const cd = await startContainerd(await mkdtemp('/tmp/prebuilt-bench-containerd-'), false);
  onCleanup(cd.stop);
  await exec('ctr', ['-a', cd.sock, 'images', 'pull', '--plain-http', base], { maxBuffer: 1 << 26 });
  let n = 0;
  const ctrRun = (tag, snapshotter = []) => async () => {
    await exec('ctr', ['-a', cd.sock, 'images', 'rm', '--sync', tag]).catch(() => undefined);
    const t0 = performance.now();
    await exec('ctr', ['-a', cd.sock, 'images', 'pull', '--plain-http', tag], { maxBuffer: 1 << 26 });
    const pull = ms(t0);
    const run = await firstLineOf('ctr', ['-a', cd.sock, 'run', '--rm', '--net-host', ...snapshotter, tag, `b9-${process.pid}-${n++}`, PY, '-c', CODE], 'ok');
    return { pull, run, total: pull + run };
  };
  const ctrSamples = await alternate(args.runs, ...POLICIES.map((p) => ctrRun(tags[p])));
  const b2containerd = Object.fromEntries(POLICIES.map((p, i) => [p, summarize(ctrSamples[i])]));

  // B2, lazy: the grouped eStargz image through a counting proxy, rpull (stargz) vs full pull (overlayfs).
  let b2lazy;
  const haveStargz = await exec('sh', ['-c', 'command -v containerd-stargz-grpc && command -v ctr-remote']).then(() => true, () => false);
  if (haveStargz) {
    const proxy = await countingProxy(host);
    onCleanup(proxy.close);
    const proxied = esgzTag.replace(host, proxy.host);
    // A fresh node per sample (the snapshotter caches what it fetched): base rpulled untimed.
    const lazy = async () => {
      const sz = await startContainerd(await mkdtemp('/tmp/prebuilt-bench-stargz-'), true);
      try {
        await exec('ctr-remote', ['-a', sz.sock, 'images', 'rpull', '--plain-http', base], { maxBuffer: 1 << 26 });
        proxy.state.received = 0;
        const t0 = performance.now();
        await exec('ctr-remote', ['-a', sz.sock, 'images', 'rpull', '--plain-http', proxied], { maxBuffer: 1 << 26 });
        const pull = ms(t0);
        const run = await firstLineOf('ctr-remote', ['-a', sz.sock, 'run', '--rm', '--net-host', '--snapshotter', 'stargz', proxied, `b9l-${process.pid}-${n++}`, PY, '-c', CODE], 'ok');
        return { pull, run, total: pull + run, fetched: proxy.state.received };
      } finally {
        await sz.stop();
      }
    };
    const full = async () => {
      await exec('ctr', ['-a', cd.sock, 'images', 'rm', '--sync', proxied]).catch(() => undefined);
      proxy.state.received = 0;
      const r = await ctrRun(proxied)();
      return { ...r, fetched: proxy.state.received };
    };
    const [l, f] = await alternate(args.runs, lazy, full);
    b2lazy = { lazy: summarize(l), full: summarize(f), estargzBytes: esgz.bytes };
  }

  const result = { bench: 'oci-layering', machine: machine(), b3, estargzFirstBuild: esgz, b2docker, b2containerd, b2lazy };
  const lines = [
    `B9 layering policies, realistic env (${ctx})`,
    ...POLICIES.map((p) => `  B3 ${p.padEnd(12)} ${b3[p].first.layers} layers; first ${fmtBytes(b3[p].first.bytes)} in ${(b3[p].first.ms / 1000).toFixed(1)} s; one-package rebuild ${fmtBytes(b3[p].rebuild.bytes)} (${(b3[p].bytesShare * 100).toFixed(2)} %) in ${(b3[p].rebuild.ms / 1000).toFixed(1)} s`),
    ...POLICIES.map((p) => `  B2 docker ${p.padEnd(12)} total ${fmtStats(b2docker[p].total)}; pull ${fmtStats(b2docker[p].pull)}`),
    ...POLICIES.map((p) => `  B2 ctr    ${p.padEnd(12)} total ${fmtStats(b2containerd[p].total)}; pull ${fmtStats(b2containerd[p].pull)}`),
    `  ratios to per-package (docker / ctr): grouped ${ratio(b2docker.grouped.total.median, b2docker['per-package'].total.median)} / ${ratio(b2containerd.grouped.total.median, b2containerd['per-package'].total.median)}; single ${ratio(b2docker.single.total.median, b2docker['per-package'].total.median)} / ${ratio(b2containerd.single.total.median, b2containerd['per-package'].total.median)}`,
    ...(b2lazy
      ? [
          `  B2 lazy (eStargz, grouped) rpull+run ${fmtStats(b2lazy.lazy.total)}, fetched ${fmtBytes(b2lazy.lazy.fetched.median)}`,
          `  B2 full (same image) pull+run  ${fmtStats(b2lazy.full.total)}, fetched ${fmtBytes(b2lazy.full.fetched.median)}; lazy/full ${ratio(b2lazy.lazy.total.median, b2lazy.full.total.median)}`,
        ]
      : ['  B2 lazy: skipped (containerd-stargz-grpc or ctr-remote missing: bash scripts/build-stargz-grpc.sh)']),
  ];
  output(args, result, lines);
}

function summarize(samples) {
  const pick = (k) => (samples[0][k] === undefined ? undefined : k === 'fetched' ? { median: median(samples.map((s) => s[k])) } : stats(samples.map((s) => s[k])));
  return { total: pick('total'), pull: pick('pull'), run: pick('run'), ...(samples[0].fetched !== undefined ? { fetched: pick('fetched') } : {}) };
}

await main(async (onCleanup) => {
  if (!existsSync(join(ROOT, 'packages/oci/dist/index.js'))) fail('packages/oci is not built; run `pnpm build` first.');
  await main_(onCleanup);
});
