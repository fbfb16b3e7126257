#!/usr/bin/env node
/**
 * B9 — the `oci` service's layering policies on the realistic env, side by side: `per-package`
 * (a layer per package), `grouped` (the default: big packages alone, small ones in 8 groups) and
 * `single` (one layer, as the `docker` service's COPY), and eStargz with lazy pulling.
 *
 * The env (`--context`): `materialized` (the default), the realistic corpus materialized by
 * prebuilt's materializer at /opt/prebuilt/envs/bench, as prebuilt ships it (pycs stamped to match
 * their sources), built once and cached by bench/materialized-context.mjs; or `unpacked`, the
 * context of the figures before round 24: B8's cached build context
 * (/var/tmp/prebuilt-bench/oci-compression-*: the realistic corpus unpacked with a
 * prefix-layers.json; run `node bench/oci-compression.mjs` once to make it) with noarch packages'
 * files moved where the materializer puts them (hard links), whose pandas/scikit-learn pycs do not
 * match their sources, so the task recompiles. Each with a copy where one small package (`six`) has
 * one file changed.
 *
 * - B3 per policy: a first build into a fresh repository (bytes pushed, time), then the rebuild of
 *   the changed env into the same repository with the layer cache (bytes pushed, time).
 * - B2 per policy, base image cached, env image not: Docker — `docker pull` + `docker run` to the
 *   first line after `import pandas, sklearn`; containerd (a private instance) — `ctr images pull` +
 *   `ctr run`, same command. Runs interleaved.
 * - B2 lazy (when containerd-stargz-grpc is installed: scripts/build-stargz-grpc.sh): the grouped
 *   image as eStargz in three prefetch orders (`off`; `static`, the default; `profile`, recorded by
 *   running the `off` image once with the oci package's PREFETCH_RECORDER_PY), with containerd, base
 *   cached and empty node: `ctr-remote images rpull` + `ctr-remote run --snapshotter stargz` without
 *   prefetch (the `off` image) and with it (static, profile; the snapshotter's default config), the
 *   `off` image pulled fully (`ctr images pull` + `ctr run`), and the env created at start on the
 *   base (bench/cold-start-realistic.mjs's bootstrap, served by the realistic corpus), with the
 *   bytes the registry sent (a TCP proxy) and the load average.
 *
 *   node bench/oci-layering.mjs [--runs 2] [--lazy-only] [--base-cached-only | --empty-node-only] [--no-background-fetch]
 *                               [--fuse-timeout SECONDS] [--lazy-layers grouped|per-package|single]
 *                               [--estargz-base] [--stargz-extra 'TOML lines'] [--zstd-chunked] [--lazy-match REGEXP]
 *                               [--profile-exclude REGEXP] [--diagnose DIR] [--runtime-root DIR] [--stargz-bin PATH]
 *                               [--context materialized|unpacked] [--prune PRESETS] [--json]
 *   node bench/oci-layering.mjs --pull-only [--pull-layers grouped,single] [--pull-runtimes docker,ctr] [--pull-match REGEXP] [--settle sync|none] [--import-sync]
 *                               [--runtime-root DIR] [--erofs] [--base-cached-only] [--context materialized|unpacked] [--prune PRESETS] [--runs 2] [--json]
 *
 *   --prune PRESETS (with --context materialized): B9's and B10's images are built from the context
 *   materialized with these prune presets (comma-separated, as METAFLOW_PREBUILT_PRUNE: tests,
 *   static-libs, headers); the env created at start stays unpruned — it is the comparison.
 *
 *   --node-disk journal|root: where the private daemons keep their data — a fresh ext4 with a journal
 *   on a loop device (the default, as a node's disk) or this machine's root file system (ext4
 *   without a journal; the figures before round 25). See bench/node-disk.mjs.
 *   --estargz-base: the eStargz images re-layer the base as eStargz too (the oci service's
 *   METAFLOW_PREBUILT_OCI_ESTARGZ_BASE=1), and the node's base, where cached, is that converted base
 *   (the full-pull row pulls the same image), plus one more variant: the profile image on the base
 *   re-layered with the same profile (its files the task read first, then the landmark), the node's
 *   cached base then being that one. --stargz-extra: one more variant, the best profile image (the
 *   zstd:chunked one with --zstd-chunked, else base too with --estargz-base) with these lines added
 *   to the snapshotter's config (e.g.
 *   'disable_verification = true', '[blob]\nchunk_size = 1048576').
 *   --zstd-chunked: one more variant, the profile image (base too with --estargz-base: the base
 *   re-layered as zstd:chunked with the same profile, and cached on the node as such) with
 *   zstd:chunked layers instead of eStargz (METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION=zstd:chunked),
 *   and its full pull by `ctr` (zstd). --lazy-match REGEXP: only the lazy variants whose name
 *   matches (the env created at start always runs: the ratios' denominator).
 *   --profile-exclude REGEXP (with --zstd-chunked): one more variant, the zstd:chunked profile
 *   image with the profile's lines matching left out of its prefetch (they are read on demand).
 *   --diagnose DIR: where the lazy start's time goes — each lazy sample's snapshotter writes its Go
 *   CPU profile (DIR/sN-TAG-CASE.pprof: `go tool pprof -top $(command -v containerd-stargz-grpc)
 *   FILE`), its Prometheus metrics (.prom: FUSE reads served, on-demand fetches, the time the
 *   container waited for the prefetch, `all_prefetches_completed`) and its debug log (.log: each
 *   layer's prefetch_download / prefetch_decompress in ms); the lazy and full-pull runs are split
 *   into create (to the container's first process: snapshots, the prefetch wait, runc), python's
 *   start and the import, by timestamps the task prints.
 *   --runtime-root DIR (with --lazy-only): where DIR's Docker is 24 or newer, the same lazy pulls on
 *   Docker, rows `docker 26.1: …`: each sample on a fresh private containerd from DIR with the
 *   snapshotter, and a private dockerd on it (`--containerd`) with the containerd image store and
 *   `"storage-driver": "stargz"`; `docker pull` + `docker run` of the static and profile images
 *   (and zstd:chunked with --zstd-chunked), against the env created at start on the same setup.
 *   --stargz-bin PATH: each `ctr-remote` lazy row (those --lazy-match keeps) once more, interleaved,
 *   on this containerd-stargz-grpc (an upstream build ≥ v0.16, e.g. by bench/stargz-passthrough.sh)
 *   with FUSE passthrough on (`[fuse]` `passthrough = true` added to the row's config); rows
 *   `… · VERSION passthrough`. Not with --diagnose (upstream's binary has no --cpu-profile).
 *   --async-prefetch (with --stargz-bin): each passthrough twin once more with `prefetch_async_size
 *   = 1` (upstream ≥ v0.18, or v0.17.0 with that commit, 1d148296): the container starts without
 *   waiting for the prefetch, which goes on beside the task; rows `… · VERSION passthrough, async prefetch`.
 *
 * --pull-only (B10, bench/oci-pull.mjs): non-lazy pulls of the image as gzip and as zstd, by the
 * Docker daemon and by containerd, each with and without `unpigz` on the node, base cached and
 * empty node, against the env created at start; and the floor: the same layer blobs decompressed
 * and unpacked by `gzip`/`unpigz`/`zstd` + `tar -x`; containerd also pulling as the CRI plugin does
 * (bench/cri-pull); every sample after `sync` (`--settle`); the first and second import after a pull.
 * --runtime-root DIR: the same again on the runtimes unpacked under DIR (e.g. Debian trixie's
 * containerd 1.7 and docker.io 26, which `scripts/test-services.sh up` unpacks into
 * /var/tmp/prebuilt-test-services/trixie/root), side by side with the system's,
 * each runtime against its own env created at start. --pull-runtimes takes kinds (`docker`, `ctr`)
 * or runtime labels (`ctr 1.7`, `docker 26.1`).
 * --erofs (with --pull-only): where a runtime set's containerd is 2.1 or newer, the same pulls on
 * containerd with its EROFS snapshotter and differ (`ctr 2.1 erofs: …`) and on its Docker with the
 * containerd image store on that snapshotter (`docker 28.5 c8d erofs: …`), each against its own
 * env created at start: the zstd image (each layer converted by `mkfs.erofs` at pull) and the
 * image with native EROFS layers (`METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION=erofs`, not unpacked at
 * all). Needs `mkfs.erofs` (erofs-utils ≥ 1.8) on PATH: scripts/setup.sh installs it.
 */
import { execFile, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, existsSync, openSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { loadavg } from 'node:os';
import { ROOT, alternate, benchArgs, benchPrunePresets, countingProxy, fail, firstLine, fmtBytes, fmtMs, fmtStats, loadServices, machine, main, median, output, ratio, stats } from './lib.mjs';
import { bootstrapCommand } from './cold-start-realistic.mjs';
import { startRealisticCorpus } from './realistic.mjs';
import { materializedContexts, oneChangedCopy } from './materialized-context.mjs';
import { nodeDisk } from './node-disk.mjs';

const exec = promisify(execFile);
const PREFIX = '/opt/prebuilt/envs/bench';
const PY = `${PREFIX}/bin/python`;
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
  // The copy's prefix-layers.json is a hard link to B8's: unlink it first, or the write changes B8's too.
  await rm(join(`${to}.tmp`, 'prefix-layers.json'));
  await writeFile(join(`${to}.tmp`, 'prefix-layers.json'), `${JSON.stringify(layers, null, 1)}\n`);
  await exec('mv', [`${to}.tmp`, to]);
  return layers;
}

/** `; images pruned: tests, …` for the title of pruned figures (the env created at start is never pruned). */
function pruneNote(prune) {
  return prune.length > 0 ? `; images pruned: ${prune.join(', ')}, the env created at start not` : '';
}

/**
 * The build context of B9 and B10 (`--context`): `materialized` (the default), the realistic corpus
 * as prebuilt's materializer lays it out (bench/materialized-context.mjs: valid bytecode, noarch
 * files in site-packages), or `unpacked`, B8's cached context relocated (B8 unpacks the archives as
 * they are, which leaves noarch packages off sys.path; no valid pycs for pandas/scikit-learn), the
 * context of the figures measured before; each with a copy where one small package (`six`) has one
 * file changed.
 */
async function contexts(kind, prune) {
  if (kind === 'materialized') return materializedContexts({ prefix: PREFIX, prune });
  if (kind !== 'unpacked') fail(`--context ${kind}: expected materialized or unpacked.`);
  if (prune.length > 0) fail('--prune needs --context materialized (the unpacked context is B8\'s archives as they are).');
  const dirs = (await readdir('/var/tmp/prebuilt-bench').catch(() => [])).filter((n) => /^oci-compression-[0-9a-f]{16}$/.test(n));
  const b8 = dirs.map((n) => join('/var/tmp/prebuilt-bench', n)).find((d) => existsSync(join(d, 'prefix-layers.json')));
  if (!b8) fail('no cached realistic build context; run `node bench/oci-compression.mjs` once to make it.');
  const ctx = `${b8}-relocated`;
  if (!existsSync(join(ctx, 'prefix-layers.json'))) await relocatedCopy(b8, ctx);
  return { ctx, changed: await oneChangedCopy(ctx, `${ctx}-six-changed`, 'six') };
}

function ms(t0) {
  return performance.now() - t0;
}

/** `cmd args`: ms from the spawn to the first stdout line (which must start with `expect`); `onStderr` gets its stderr at the end. */
function firstLineOf(cmd, args, expect, onStderr = () => undefined) {
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
    child.on('close', (code) => (code === 0 && out.startsWith(expect) ? (onStderr(err), resolve(first)) : reject(new Error(`${cmd} ${args.slice(0, 4).join(' ')} exited ${code}: ${err.trim().split('\n').slice(-5).join(' | ')}`))));
  });
}

/** Snapshotter configs (config.toml of containerd-stargz-grpc) of the lazy variants. */
const STARGZ_CONFIGS = {
  // Only what the task reads, file by file.
  noprefetch: 'noprefetch = true\nno_background_fetch = true\nno_prometheus = true\n',
  // The snapshotter's defaults (prefetch up to the landmark, then the rest in the background), with room for the prefetch on a loaded machine.
  prefetch: 'prefetch_timeout_sec = 30\nno_prometheus = true\n',
  // Prefetch only (--no-background-fetch): nothing else fetched or decompressed while the task runs.
  'prefetch-only': 'prefetch_timeout_sec = 30\nno_background_fetch = true\nno_prometheus = true\n',
};

/** Whether the unix socket at `path` accepts a connection. */
function accepts(path) {
  return new Promise((resolve) => {
    const socket = connect(path);
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('error', () => resolve(false));
  });
}

/** `toml` (a snapshotter config) with FUSE passthrough on: `passthrough = true` in its `[fuse]` table (added at the end if it has none). */
function withPassthrough(toml) {
  return /^\[fuse\][ \t]*$/m.test(toml) ? toml.replace(/^\[fuse\][ \t]*$/m, '[fuse]\npassthrough = true') : `${toml.replace(/\n?$/, '\n')}[fuse]\npassthrough = true\n`;
}

/**
 * A private containerd (with `containerd-stargz-grpc` as its `stargz` proxy snapshotter when
 * `stargz`, or the snapshotter binary at that path when it is a string; `extraConfig`: more config.toml lines). `diagnose`: a path prefix where the snapshotter writes its CPU profile (`.pprof`),
 * its metrics (`.prom`, Prometheus on) and its debug log (`.log`) — scripts/stargz-grpc/main.go.
 */
async function startContainerd(dir, stargz, stargzConfig = STARGZ_CONFIGS.noprefetch, daemonEnv = process.env, diagnose = '', extraConfig = []) {
  await mkdir(join(dir, 'root'), { recursive: true });
  const sock = join(dir, 'containerd.sock');
  const conf = ['version = 2', `root = "${dir}/root"`, `state = "${dir}/state"`, 'disabled_plugins = ["io.containerd.grpc.v1.cri"]', '[grpc]', `  address = "${sock}"`, '[ttrpc]', `  address = "${sock}.ttrpc"`, ...extraConfig];
  if (stargz) conf.push('[proxy_plugins]', '  [proxy_plugins.stargz]', '    type = "snapshot"', `    address = "${dir}/stargz.sock"`);
  await writeFile(join(dir, 'config.toml'), `${conf.join('\n')}\n`);
  const procs = [spawn('containerd', ['-c', join(dir, 'config.toml')], { stdio: 'ignore', env: daemonEnv })];
  if (stargz) {
    await writeFile(join(dir, 'stargz.toml'), diagnose ? stargzConfig.replace('no_prometheus = true\n', '') : stargzConfig);
    const diag = diagnose ? ['--log-level', 'debug', '--cpu-profile', `${diagnose}.pprof`, '--metrics', `${diagnose}.prom`] : [];
    const stderr = diagnose ? openSync(`${diagnose}.log`, 'w') : 'ignore';
    procs.push(spawn(typeof stargz === 'string' ? stargz : 'containerd-stargz-grpc', ['--address', `${dir}/stargz.sock`, '--root', `${dir}/sroot`, '--config', `${dir}/stargz.toml`, ...diag], { stdio: ['ignore', 'ignore', stderr] }));
    if (diagnose) closeSync(stderr);
  }
  for (let i = 0; i < 100; i++) {
    if (await exec('ctr', ['-a', sock, 'version']).then(() => true, () => false)) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  // The snapshotter listens a little after it starts (a busy machine: seconds).
  for (let i = 0; stargz && i < 300 && !existsSync(`${dir}/stargz.sock`); i++) await new Promise((r) => setTimeout(r, 100));
  // The socket file exists from bind(), a moment before listen(): wait until it accepts a connection.
  for (let i = 0; stargz && i < 100 && !(await accepts(`${dir}/stargz.sock`)); i++) await new Promise((r) => setTimeout(r, 100));
  // CPU seconds (user + system) each daemon has used so far: [containerd, snapshotter].
  const cpu = async () => Promise.all(procs.map(async (p) => {
    const fields = (await readFile(`/proc/${p.pid}/stat`, 'utf8').catch(() => '')).replace(/^.*\) /s, '').split(' ');
    return (Number(fields[11] ?? 0) + Number(fields[12] ?? 0)) / 100;
  }));
  const stop = async () => {
    // Each daemon stopped in turn (the snapshotter first), given up to 10 s to exit (it writes its profile first with `diagnose`).
    for (const p of [...procs].reverse()) {
      const exited = p.exitCode !== null || p.signalCode !== null ? Promise.resolve() : new Promise((r) => p.once('exit', r));
      p.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
    }
    await exec('sh', ['-c', `grep -o " ${dir}[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l`]).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  };
  return { sock, stop, cpu };
}

async function main_(onCleanup) {
  const args = benchArgs({ runs: 2 }, { 'lazy-only': { type: 'boolean', default: false }, 'base-cached-only': { type: 'boolean', default: false }, 'empty-node-only': { type: 'boolean', default: false }, 'no-background-fetch': { type: 'boolean', default: false }, 'fuse-timeout': { type: 'string', default: '' }, 'lazy-layers': { type: 'string', default: 'grouped' }, 'pull-only': { type: 'boolean', default: false }, 'pull-layers': { type: 'string', default: 'grouped' }, 'pull-runtimes': { type: 'string', default: 'docker,ctr' }, 'estargz-base': { type: 'boolean', default: false }, 'stargz-extra': { type: 'string', default: '' }, context: { type: 'string', default: 'materialized' }, 'node-disk': { type: 'string', default: 'journal' }, settle: { type: 'string', default: 'sync' }, 'import-sync': { type: 'boolean', default: false }, 'pull-match': { type: 'string', default: '' }, 'zstd-chunked': { type: 'boolean', default: false }, 'lazy-match': { type: 'string', default: '' }, diagnose: { type: 'string', default: '' }, 'profile-exclude': { type: 'string', default: '' }, 'runtime-root': { type: 'string', default: '' }, 'stargz-bin': { type: 'string', default: '' }, 'async-prefetch': { type: 'boolean', default: false }, prune: { type: 'string', default: '' }, erofs: { type: 'boolean', default: false } });
  if (!['sync', 'none'].includes(args.settle)) fail(`--settle ${args.settle}: expected sync or none.`);
  const prune = await benchPrunePresets(args.prune);
  if (args['runtime-root'] && !args['pull-only'] && !args['lazy-only']) fail('--runtime-root applies to --pull-only (B10) and --lazy-only (B9\'s lazy Docker rows). Add one of them, or leave --runtime-root out.');
  if (args.erofs && !args['pull-only']) fail('--erofs applies to --pull-only (B10). Add it, or leave --erofs out.');
  if (args['stargz-bin'] && args['pull-only']) fail('--stargz-bin applies to B9\'s lazy rows, not --pull-only (B10). Leave one of them out.');
  if (args['async-prefetch'] && !args['stargz-bin']) fail('--async-prefetch applies to the --stargz-bin snapshotter\'s rows (Debian\'s 0.12 has no prefetch_async_size). Add --stargz-bin PATH, or leave --async-prefetch out.');
  // --stargz-bin: the snapshotter checked before anything is built or mounted.
  const passthrough = args['stargz-bin'] ? await passthroughSnapshotter(args['stargz-bin'], args.diagnose, args['async-prefetch']) : undefined;
  // The runtimes measured, checked before anything is built (the system's, and those under --runtime-root).
  const sets = args['pull-only'] || args['runtime-root'] ? await (await import('./oci-pull.mjs')).runtimeSets(args['runtime-root'], args.erofs) : undefined;
  // B9's lazy Docker rows: the snapshotter checked before anything is built or mounted.
  if (!args['pull-only'] && sets?.some((set) => set.docker.c8d)) await checkSnapshotterReadsImageLabels();
  const services = loadServices();
  const { ctx, changed } = await contexts(args.context, prune);
  const base = `${services.baseImage.ref.replace(/:[^:/]+$/, '')}@${services.baseImage.digest}`;
  const oci = await import(new URL('../packages/oci/dist/index.js', import.meta.url).href);
  const host = services.registries.plain.host;
  const cacheRoot = await mkdtemp('/var/tmp/prebuilt-bench/oci-layering-cache-');
  onCleanup(() => rm(cacheRoot, { recursive: true, force: true }));
  const build = async (env, contextDir, imageTag, cacheName, from = base, instructions = `COPY prefix ${PREFIX}\n`) => {
    const dockerfile = `FROM ${from}\n${instructions}`;
    let summary;
    const t0 = performance.now();
    const result = await oci.createOciBuildService({ env, layerCacheDir: join(cacheRoot, cacheName), onPushed: (s) => (summary = s) }).buildAndPush({ dockerfile, contextDir, imageTag, platform: 'linux/amd64' });
    if (!result.ok) throw new Error(`build failed: ${result.reason}`);
    return { ms: ms(t0), bytes: summary.bytesSent, layers: summary.layers.length, uploaded: summary.layers.filter((l) => l.status === 'uploaded').length, digests: summary.layers.map((l) => l.digest) };
  };
  // The private daemons' data: a journaled ext4 on a loop device by default (bench/node-disk.mjs).
  const disk = await nodeDisk(args['node-disk'], onCleanup);
  process.stderr.write(`[bench] node disk: ${disk.kind} (${disk.root})\n`);
  const setup = { args, services, ctx, changed, base, host, build, cacheRoot, oci, onCleanup, disk, sets, prune, passthrough };
  if (args['pull-only']) return output(args, ...(await pullOnly(setup)));
  const policies = args['lazy-only'] ? undefined : await policiesBench(setup);
  const haveStargz = await exec('sh', ['-c', 'command -v containerd-stargz-grpc && command -v ctr-remote']).then(() => true, () => false);
  // The lazy part's images and the env created at start share bench/base-image.sh's base (python3 with the full stdlib, pip, zstd), as B2's.
  const benchBase = haveStargz ? (await exec('bash', [join(ROOT, 'bench/base-image.sh'), host])).stdout.trim() : undefined;
  const b2lazy = haveStargz ? await lazyBench({ ...setup, base: benchBase }) : undefined;
  const result = { bench: 'oci-layering', context: ctx, prune, machine: machine(), loadAverage: loadavg(), ...(policies?.result ?? {}), b2lazy };
  const lines = [`B9 layering policies and eStargz, realistic env (${ctx}${pruneNote(prune)})`, ...(policies?.lines ?? []), ...(b2lazy ? lazyLines(b2lazy) : ['  B2 lazy: skipped (containerd-stargz-grpc or ctr-remote missing: bash scripts/build-stargz-grpc.sh)'])];
  lines.push(`  load average at the end: ${loadavg().map((l) => l.toFixed(1)).join(' ')}`);
  output(args, result, lines);
}

/** B3 and B2 (Docker, containerd) of each layering policy. */
async function policiesBench({ args, services, ctx, changed, base, host, build, onCleanup, disk }) {
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
  const cd = await startContainerd(await disk.dir('containerd'), false);
  onCleanup(cd.stop);
  await exec('ctr', ['-a', cd.sock, 'images', 'pull', '--plain-http', base], { maxBuffer: 1 << 26 });
  const ctrSamples = await alternate(args.runs, ...POLICIES.map((p) => ctrPullRun(cd.sock, tags[p])));
  const b2containerd = Object.fromEntries(POLICIES.map((p, i) => [p, summarize(ctrSamples[i])]));
  const lines = [
    ...POLICIES.map((p) => `  B3 ${p.padEnd(12)} ${b3[p].first.layers} layers; first ${fmtBytes(b3[p].first.bytes)} in ${(b3[p].first.ms / 1000).toFixed(1)} s; one-package rebuild ${fmtBytes(b3[p].rebuild.bytes)} (${(b3[p].bytesShare * 100).toFixed(2)} %) in ${(b3[p].rebuild.ms / 1000).toFixed(1)} s`),
    ...POLICIES.map((p) => `  B2 docker ${p.padEnd(12)} total ${fmtStats(b2docker[p].total)}; pull ${fmtStats(b2docker[p].pull)}`),
    ...POLICIES.map((p) => `  B2 ctr    ${p.padEnd(12)} total ${fmtStats(b2containerd[p].total)}; pull ${fmtStats(b2containerd[p].pull)}`),
    `  ratios to per-package (docker / ctr): grouped ${ratio(b2docker.grouped.total.median, b2docker['per-package'].total.median)} / ${ratio(b2containerd.grouped.total.median, b2containerd['per-package'].total.median)}; single ${ratio(b2docker.single.total.median, b2docker['per-package'].total.median)} / ${ratio(b2containerd.single.total.median, b2containerd['per-package'].total.median)}`,
  ];
  return { result: { b3, b2docker, b2containerd }, lines };
}

/**
 * --diagnose: the task run as `sh` printing the time the container's first process starts, then
 * python printing the time of its first statement and of the end of the import (ns since the epoch, on stderr).
 */
const DIAGNOSED_RUN = ['sh', '-c', `echo T_SH $(date +%s%N) >&2; exec ${PY} -c 'import time, sys; t = time.time_ns(); ${CODE}; sys.stderr.write("T_PY %d %d\\n" % (t, time.time_ns()))'`];

/** The run of a DIAGNOSED_RUN split (ms): container create and start (to `sh`), python's start (to its first statement), the import. */
function runSplit(stderr, spawnedMs) {
  const sh = Number(/T_SH (\d+)/.exec(stderr)?.[1]) / 1e6;
  const [, py, end] = (/T_PY (\d+) (\d+)/.exec(stderr) ?? []).map((n) => Number(n) / 1e6);
  if (!sh || !py) throw new Error(`--diagnose: no timestamps in the task's stderr: ${stderr.slice(-300)}`);
  return { create: sh - spawnedMs, pyStart: py - sh, import: end - py };
}

let runCount = 0;
const runName = () => `b9-${process.pid}-${runCount++}`;

/** `ctr images pull` + `ctr run` of `tag` on the containerd at `sock` (the image removed first); `diagnose`: the run split (runSplit). */
function ctrPullRun(sock, tag, diagnose = false) {
  return async () => {
    await exec('ctr', ['-a', sock, 'images', 'rm', '--sync', tag]).catch(() => undefined);
    const t0 = performance.now();
    await exec('ctr', ['-a', sock, 'images', 'pull', '--plain-http', tag], { maxBuffer: 1 << 26 });
    const pull = ms(t0);
    const spawned = performance.timeOrigin + performance.now();
    let stderr = '';
    const run = await firstLineOf('ctr', ['-a', sock, 'run', '--rm', '--net-host', tag, runName(), ...(diagnose ? DIAGNOSED_RUN : [PY, '-c', CODE])], 'ok', (e) => (stderr = e));
    return { pull, run, total: pull + run, ...(diagnose ? runSplit(stderr, spawned) : {}) };
  };
}

/**
 * The grouped image as eStargz in three prefetch orders — `off` (no landmark), `static` (the
 * default) and `profile` (recorded by running the `off` image once with PREFETCH_RECORDER_PY) —
 * with the bytes of the task's files each puts before its landmark.
 */
async function estargzImages({ args, host, ctx, build: buildFrom, base, cacheRoot, oci }) {
  const build = (env, contextDir, imageTag, cacheName) => buildFrom(env, contextDir, imageTag, cacheName, base);
  const repo = `${host}/prebuilt-bench/oci-layering-estargz-${randomBytes(4).toString('hex')}`;
  const env = (prefetch, compression = 'estargz') => ({ METAFLOW_PREBUILT_OCI_LAYERS: args['lazy-layers'], METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION: compression, METAFLOW_PREBUILT_OCI_PREFETCH: prefetch, ...(args['estargz-base'] ? { METAFLOW_PREBUILT_OCI_ESTARGZ_BASE: '1' } : {}) });
  // The base as the images carry it: re-layered as eStargz (an image of the base alone, no layer of its own), or the base itself.
  const baseOnly = (prefetch, tag, compression = 'estargz') => buildFrom(env(prefetch, compression), cacheRoot, tag, `${compression === 'estargz' ? 'estargz' : 'zc'}-${prefetch === 'off' ? 'off' : 'profile'}`, base, 'LABEL prebuilt.bench=base\n');
  const nodeBase = args['estargz-base'] ? `${repo}:base` : base;
  if (args['estargz-base']) await baseOnly('off', nodeBase);
  const off = await build(env('off'), ctx, `${repo}:off`, 'estargz-off');
  await exec('docker', ['pull', `${repo}:off`], { maxBuffer: 1 << 24 });
  const recorded = await exec('docker', ['run', '--rm', '--network=host', `${repo}:off`, PY, '-c', oci.PREFETCH_RECORDER_PY, CODE], { maxBuffer: 1 << 26 });
  await exec('docker', ['rmi', '-f', `${repo}:off`]).catch(() => undefined);
  const profile = join(cacheRoot, 'prefetch-profile.txt');
  await writeFile(profile, recorded.stdout);
  const statics = await build(env('static'), ctx, `${repo}:static`, 'estargz-static');
  // `profile`: the env's layers in profile order on the base as the node has it (eStargz layers are kept as they are: the base's plain order).
  const profiled = await buildFrom(env(profile), ctx, `${repo}:profile`, 'estargz-profile', nodeBase);
  // With an eStargz base, `profileBase`: the base re-layered with the same profile (its files the task read first, then the landmark).
  const baseProfiled = args['estargz-base'] ? await build(env(profile), ctx, `${repo}:profile-base`, 'estargz-profile') : undefined;
  if (baseProfiled) await baseOnly(profile, `${repo}:base-profile`);
  // --zstd-chunked: the profile image as zstd:chunked, on the base re-layered as zstd:chunked with the same profile (with --estargz-base), else on the base.
  const zc = args['zstd-chunked'] ? await build(env(profile, 'zstd:chunked'), ctx, `${repo}:zc-profile`, 'zc-profile') : undefined;
  if (zc && args['estargz-base']) await baseOnly(profile, `${repo}:zc-base-profile`, 'zstd:chunked');
  // --profile-exclude REGEXP (with --zstd-chunked): the zstd:chunked profile image again, the profile's paths matching left out of its prefetch.
  const trimmedProfile = join(cacheRoot, 'prefetch-profile-trimmed.txt');
  if (zc && args['profile-exclude']) await writeFile(trimmedProfile, recorded.stdout.split('\n').filter((l) => !new RegExp(args['profile-exclude']).test(l)).join('\n'));
  const zcTrimmed = zc && args['profile-exclude'] ? await build(env(trimmedProfile, 'zstd:chunked'), ctx, `${repo}:zc-trimmed`, 'zc-profile') : undefined;
  const files = recorded.stdout.split('\n').filter((l) => l.startsWith(`${PREFIX}/`));
  const bytesOf = async (paths) => (await Promise.all(paths.map((p) => exec('stat', ['-c', '%s', join(ctx, 'prefix', p.slice(PREFIX.length + 1))]).then((r) => Number(r.stdout), () => 0)))).reduce((a, b) => a + b, 0);
  const readBytes = await bytesOf(files);
  const staticFiles = (await exec('find', [join(ctx, 'prefix'), '-type', 'f', '-printf', '%P\t%s\n'], { maxBuffer: 1 << 26 })).stdout.split('\n').filter(Boolean).map((l) => l.split('\t'));
  const layerPaths = new Set(staticFiles.map(([p]) => `opt/prebuilt/envs/bench/${p}`));
  const staticBytes = staticFiles.filter(([p]) => oci.isStaticPrefetch(`opt/prebuilt/envs/bench/${p}`, layerPaths)).reduce((a, [, n]) => a + Number(n), 0);
  const staticRead = await bytesOf(files.filter((f) => oci.isStaticPrefetch(f.slice(1), layerPaths)));
  const envBytes = staticFiles.reduce((a, [, n]) => a + Number(n), 0);
  return {
    tags: { off: `${repo}:off`, static: `${repo}:static`, profile: `${repo}:profile`, ...(baseProfiled ? { profileBase: `${repo}:profile-base` } : {}), ...(zc ? { zc: `${repo}:zc-profile` } : {}), ...(zcTrimmed ? { zcTrimmed: `${repo}:zc-trimmed` } : {}) },
    nodeBase,
    nodeBaseProfiled: `${repo}:base-profile`,
    nodeBaseZc: args['estargz-base'] ? `${repo}:zc-base-profile` : base,
    builds: { off, static: statics, profile: profiled, ...(baseProfiled ? { profileBase: baseProfiled } : {}), ...(zc ? { zc } : {}) },
    selection: { envBytes, profileFiles: files.length, profileBytes: readBytes, staticBytes, staticCoversOfProfile: staticRead / readBytes },
  };
}
/**
 * The packages of the context's prefix-layers.json as the realistic corpus serves them (url,
 * sha256), for the env created at start (bench/cold-start-realistic.mjs's bootstrap).
 */
async function bootstrapFor({ ctx, services, onCleanup }) {
  const corpus = await startRealisticCorpus({ port: 0, services });
  onCleanup(() => corpus.close());
  const layers = JSON.parse(await readFile(join(ctx, 'prefix-layers.json'), 'utf8'));
  const byName = new Map(corpus.corpus.channel.artifacts.map((a) => [a.filename, a]));
  const packages = layers.packages.map((p) => {
    const a = byName.get(p.filename) ?? fail(`the realistic corpus has no ${p.filename}: the cached context is of another corpus`);
    // The corpus's current build of the same file (the cached context may be of an earlier build: same names and versions).
    return { kind: p.kind, filename: p.filename, sha256: createHash('sha256').update(a.bytes).digest('hex'), url: `${corpus.channelUrl}/${a.subdir}/${p.filename}` };
  });
  return bootstrapCommand({ prefix: PREFIX, pythonVersion: corpus.summary.python, packages, code: CODE });
}

/**
 * B2 with containerd, base cached and empty node, side by side: the eStargz image pulled fully
 * (`ctr images pull` + `run`, overlayfs), lazily without prefetch, lazily with prefetch (static and
 * profile orders; the snapshotter's default config), and the env created at start on the base.
 * Lazy samples each on a fresh containerd + snapshotter; bytes the registry sent counted by a proxy.
 */
async function lazyBench(setup) {
  const { args, base, host, onCleanup, disk, passthrough } = setup;
  if (args.diagnose) {
    const help = await exec('containerd-stargz-grpc', ['-h']).then((r) => r.stderr, (e) => String(e.stderr ?? ''));
    if (!help.includes('cpu-profile')) fail('--diagnose needs containerd-stargz-grpc with --cpu-profile (scripts/stargz-grpc/main.go): run `bash scripts/build-stargz-grpc.sh`.');
    await mkdir(args.diagnose, { recursive: true });
  }
  const images = await estargzImages(setup);
  process.stderr.write(`[b9] eStargz images built: ${JSON.stringify(images.builds)}; prefetch selection ${JSON.stringify(images.selection)}\n`);
  const bootstrap = await bootstrapFor(setup);
  const proxy = await countingProxy(host);
  onCleanup(proxy.close);
  const proxied = (tag) => tag.replace(host, proxy.host);
  const cd = await startContainerd(await disk.dir('containerd'), false);
  onCleanup(cd.stop);
  const ctr = (...a) => exec('ctr', ['-a', cd.sock, ...a], { maxBuffer: 1 << 26 });
  const baseOnNode = async (present, ref = base) => (present ? ctr('images', 'pull', '--plain-http', ref) : ctr('images', 'rm', '--sync', ref).catch(() => undefined));
  // --diagnose DIR: each lazy sample's snapshotter profile, metrics and log in DIR, and the run split by timestamps.
  let diagnosed = 0;
  const diagnoseAt = (tag, emptyNode) => (args.diagnose ? join(args.diagnose, `s${diagnosed++}-${tag.split(':').pop()}-${emptyNode ? 'empty' : 'cached'}`) : '');
  const lazySample = (node, tag, nodeBase, emptyNode, diagnose) => lazyPullRun({ node, ref: proxied(tag), nodeBase, emptyNode, diagnose, proxy });
  // Each ctr-remote lazy variant's image, config and node base (--stargz-bin runs it once more on that snapshotter).
  const lazySpecs = new Map();
  const lazy = (tag, config, nodeBase = images.nodeBase, bin = true) => {
    const sample = async (emptyNode) => {
      const diagnose = diagnoseAt(tag, emptyNode);
      // The previous sample's snapshotter root, removed, handed back to the host (bench/node-disk.mjs).
      await disk.trim();
      const sz = await startContainerd(await disk.dir('stargz'), bin, STARGZ_CONFIGS[config], process.env, diagnose);
      const node = {
        cpu: sz.cpu,
        pull: (ref) => exec('ctr-remote', ['-a', sz.sock, 'images', 'rpull', '--plain-http', ref], { maxBuffer: 1 << 26 }),
        run: (ref, cmd) => ['ctr-remote', ['-a', sz.sock, 'run', '--rm', '--net-host', '--snapshotter', 'stargz', ref, runName(), ...cmd]],
      };
      try {
        return await lazySample(node, tag, nodeBase, emptyNode, diagnose);
      } finally {
        await sz.stop();
      }
    };
    lazySpecs.set(sample, { tag, config, nodeBase });
    return sample;
  };
  const full = (tag = images.tags.off, nodeBase = images.nodeBase) => async (emptyNode) => {
    await ctr('images', 'rm', '--sync', proxied(tag)).catch(() => undefined);
    for (const other of new Set([images.nodeBase, images.nodeBaseZc])) if (other !== nodeBase) await baseOnNode(false, other);
    await baseOnNode(!emptyNode, nodeBase);
    proxy.state.received = 0;
    return { ...(await ctrPullRun(cd.sock, proxied(tag), Boolean(args.diagnose))()), fetched: proxy.state.received };
  };
  const atStart = async (emptyNode) => {
    for (const other of new Set([images.nodeBase, images.nodeBaseZc])) if (other !== base) await baseOnNode(false, other);
    await baseOnNode(!emptyNode);
    const t0 = performance.now();
    if (emptyNode) await ctr('images', 'pull', '--plain-http', base);
    const pull = ms(t0);
    const run = await firstLineOf('ctr', ['-a', cd.sock, 'run', '--rm', '--net-host', base, runName(), ...bootstrap], 'ok');
    return { pull, run, total: pull + run };
  };
  const prefetch = args['no-background-fetch'] ? 'prefetch-only' : 'prefetch';
  // --fuse-timeout N: the kernel keeps lookups and attributes of the (immutable) layers N s instead of 1 s.
  if (args['fuse-timeout']) for (const k of Object.keys(STARGZ_CONFIGS)) STARGZ_CONFIGS[k] += `[fuse]\nattr_timeout = ${Number(args['fuse-timeout'])}\nentry_timeout = ${Number(args['fuse-timeout'])}\n`;
  const variants = {
    'env created at start': atStart,
    'full pull (ctr, overlayfs)': full(),
    'lazy, no prefetch': lazy(images.tags.off, 'noprefetch'),
    'lazy + prefetch (static)': lazy(images.tags.static, prefetch),
    'lazy + prefetch (profile)': lazy(images.tags.profile, prefetch),
    ...(images.tags.profileBase ? { 'lazy + prefetch (profile, base too)': lazy(images.tags.profileBase, prefetch, images.nodeBaseProfiled) } : {}),
    ...(images.tags.zc ? { 'full pull zstd:chunked (ctr)': full(images.tags.zc, images.nodeBaseZc) } : {}),
    ...(images.tags.zc ? { [`lazy + prefetch (profile${args['estargz-base'] ? ', base too' : ''}), zstd:chunked`]: lazy(images.tags.zc, prefetch, images.nodeBaseZc) } : {}),
    ...(images.tags.zcTrimmed ? { 'lazy + prefetch (profile trimmed), zstd:chunked': lazy(images.tags.zcTrimmed, prefetch, images.nodeBaseZc) } : {}),
  };
  if (args['stargz-extra']) {
    // Top-level keys before the variant's config, tables (`[blob]` …) after it: TOML puts every key after a table header in that table.
    const extra = args['stargz-extra'].replace(/\\n/g, '\n');
    const table = extra.search(/^\s*\[/m);
    STARGZ_CONFIGS.extra = table < 0 ? `${extra}\n${STARGZ_CONFIGS[prefetch]}` : `${extra.slice(0, table)}\n${STARGZ_CONFIGS[prefetch]}${extra.slice(table)}\n`;
    // The best profile image: zstd:chunked with --zstd-chunked, else eStargz on the profile-ordered base with --estargz-base.
    const zcName = `lazy + prefetch (profile${args['estargz-base'] ? ', base too' : ''}), zstd:chunked + extra`;
    if (images.tags.zc) variants[zcName] = lazy(images.tags.zc, 'extra', images.nodeBaseZc);
    else if (images.tags.profileBase) variants['lazy + prefetch (profile, base too) + extra'] = lazy(images.tags.profileBase, 'extra', images.nodeBaseProfiled);
    else variants['lazy + prefetch (profile) + extra'] = lazy(images.tags.profile, 'extra');
  }
  // --runtime-root DIR: Docker (>= 24, from DIR) with the containerd image store on the stargz snapshotter, pulling lazily.
  const dockerSet = setup.sets?.find((set) => set.docker.c8d);
  if (dockerSet) Object.assign(variants, dockerLazyVariants({ ...setup, set: dockerSet, images, bootstrap, prefetch }, { lazySample, diagnoseAt }));
  if (args['lazy-match']) for (const name of Object.keys(variants)) if (!name.endsWith('env created at start') && !new RegExp(args['lazy-match']).test(name)) delete variants[name];
  if (passthrough) withPassthroughTwins(variants, lazySpecs, passthrough, lazy);
  const scenarios = {};
  const states = [['a base cached', false], ['b empty node', true]].slice(args['empty-node-only'] ? 1 : 0, args['base-cached-only'] ? 1 : 2);
  for (const [scenario, emptyNode] of states) {
    const samples = await alternate(args.runs, ...Object.values(variants).map((fn) => () => fn(emptyNode)));
    scenarios[scenario] = Object.fromEntries(Object.keys(variants).map((name, i) => [name, summarize(samples[i])]));
    process.stderr.write(`[b9] lazy scenario ${scenario} done (load ${loadavg()[0].toFixed(1)})\n`);
  }
  return { images: { layers: args['lazy-layers'], estargzBase: args['estargz-base'], stargzExtra: args['stargz-extra'], zstdChunked: args['zstd-chunked'], builds: images.builds, selection: images.selection }, stargzConfig: STARGZ_CONFIGS[prefetch], ...(passthrough ? { passthrough } : {}), scenarios };
}

/**
 * --stargz-bin PATH: the snapshotter binary checked before anything is built — it runs, says its
 * version (`-version`: upstream's containerd-stargz-grpc) and knows `[fuse]` `passthrough` (≥ v0.16).
 */
async function passthroughSnapshotter(path, diagnose, asyncPrefetch) {
  if (diagnose) fail('--stargz-bin and --diagnose: upstream\'s containerd-stargz-grpc has no --cpu-profile or --metrics. Leave one of them out.');
  const build = 'Give the path of a containerd-stargz-grpc built by bench/stargz-passthrough.sh.';
  const out = await exec(path, ['-version']).then((r) => r.stdout.trim(), (e) => fail(e.code === 'ENOENT' || e.code === 'EACCES' ? `--stargz-bin ${path}: no executable there (${e.code}). ${build}` : `--stargz-bin ${path}: \`${path} -version\` failed (exit ${e.code}), so it is not upstream's containerd-stargz-grpc. ${build}`));
  const version = /^containerd-stargz-grpc (\S+)/.exec(out)?.[1] ?? fail(`--stargz-bin ${path}: \`${path} -version\` printed "${out.slice(0, 80)}", not containerd-stargz-grpc's version. ${build}`);
  const binary = await readFile(path);
  if (!binary.includes('toml:"passthrough"')) fail(`--stargz-bin ${path}: containerd-stargz-grpc ${version} has no FUSE passthrough (it came in v0.16). Build a newer one: bash bench/stargz-passthrough.sh SRC_DIR OUT_DIR.`);
  if (asyncPrefetch && !binary.includes('toml:"prefetch_async_size"')) fail(`--async-prefetch: containerd-stargz-grpc ${version} (${path}) has no prefetch_async_size (upstream v0.18, commit 1d148296). Build one that has: bash bench/stargz-passthrough.sh SRC_DIR OUT_DIR.`);
  return { bin: path, version, asyncPrefetch };
}

/**
 * Each ctr-remote lazy variant in `variants` (those `lazySpecs` knows) followed by its twin on the
 * `passthrough` snapshotter with `[fuse]` `passthrough = true` in the same config: `NAME · VERSION passthrough`;
 * with `passthrough.asyncPrefetch`, a third with `prefetch_async_size = 1` too (a top-level key: before the tables).
 */
function withPassthroughTwins(variants, lazySpecs, passthrough, lazy) {
  const entries = Object.entries(variants);
  for (const name of Object.keys(variants)) delete variants[name];
  for (const [name, fn] of entries) {
    variants[name] = fn;
    const spec = lazySpecs.get(fn);
    if (!spec) continue;
    STARGZ_CONFIGS[`${spec.config} passthrough`] = withPassthrough(STARGZ_CONFIGS[spec.config]);
    variants[`${name} · ${passthrough.version} passthrough`] = lazy(spec.tag, `${spec.config} passthrough`, spec.nodeBase, passthrough.bin);
    if (!passthrough.asyncPrefetch) continue;
    STARGZ_CONFIGS[`${spec.config} passthrough async`] = `prefetch_async_size = 1\n${STARGZ_CONFIGS[`${spec.config} passthrough`]}`;
    variants[`${name} · ${passthrough.version} passthrough, async prefetch`] = lazy(spec.tag, `${spec.config} passthrough async`, spec.nodeBase, passthrough.bin);
  }
}

/**
 * One lazy sample on a fresh node (`node`: containerd + snapshotter, and the runtime pulling with
 * it): the base pulled where cached (untimed), then the pull and run of `ref` (through the counting
 * `proxy`) timed, with the bytes fetched and the snapshotter's CPU.
 */
async function lazyPullRun({ node, ref, nodeBase, emptyNode, diagnose, proxy }) {
  if (!emptyNode) await node.pull(nodeBase);
  proxy.state.received = 0;
  const [, cpu0] = await node.cpu();
  const t0 = performance.now();
  await node.pull(ref);
  const pull = ms(t0);
  const spawned = performance.timeOrigin + performance.now();
  let stderr = '';
  const run = await firstLineOf(...node.run(ref, diagnose ? DIAGNOSED_RUN : [PY, '-c', CODE]), 'ok', (e) => (stderr = e));
  const [, cpu1] = await node.cpu();
  // The snapshotter's CPU seconds during the pull and run (TOC, prefetch: fetch, decompress, verify, cache; the task's reads through FUSE).
  const sample = { pull, run, total: pull + run, fetched: proxy.state.received, snapshotterCpu: cpu1 - cpu0 };
  return diagnose ? { ...sample, ...runSplit(stderr, spawned) } : sample;
}

/**
 * Docker's pulls label each layer's snapshot with containerd's `cri.*` labels only: a
 * containerd-stargz-grpc built from an older scripts/stargz-grpc/main.go (one that reads only
 * ctr-remote's `stargz.*` labels) makes every Docker pull a full one ("reference hasn't been
 * passed" in its log). The binary on PATH is shared by every checkout on the machine.
 */
async function checkSnapshotterReadsImageLabels() {
  const path = (await exec('sh', ['-c', 'command -v containerd-stargz-grpc']).catch(() => ({ stdout: '' }))).stdout.trim();
  // Without it B9's lazy part is skipped, and says so.
  if (path && !(await readFile(path)).includes('containerd.io/snapshot/cri.image-ref')) fail(`${path} reads only ctr-remote's snapshot labels, so Docker would pull fully: run \`bash scripts/build-stargz-grpc.sh\` in this checkout (or put one built from its scripts/stargz-grpc/main.go first on PATH).`);
}

/**
 * A fresh lazy Docker node for one sample: a private containerd (the runtime set's, 1.7) with the
 * stargz snapshotter as its `stargz` proxy plugin (config `config`), and a private dockerd on it
 * (`--containerd`) with the containerd image store and `"storage-driver": "stargz"`, as
 * stargz-snapshotter's docs/INSTALL.md sets Docker up; `fn(node)` runs on it, then both are stopped.
 */
async function onLazyDocker({ disk, set }, config, diagnose, fn) {
  const { startDockerd, C8D_STORE } = await import('./oci-pull.mjs');
  const env = { ...process.env, PATH: set.PATH };
  await disk.trim();
  const sz = await startContainerd(await disk.dir('stargz-docker'), true, STARGZ_CONFIGS[config], env, diagnose);
  let d;
  try {
    d = await startDockerd(await disk.dir('dockerd-lazy'), env, set.docker.bin, { daemonJson: { ...C8D_STORE, 'storage-driver': 'stargz' }, containerd: sz.sock });
    const docker = ['-H', `unix://${d.sock}`];
    return await fn({
      cpu: sz.cpu,
      pull: (ref) => d.docker('pull', ref),
      run: (ref, cmd) => [d.bin, [...docker, 'run', '--rm', '--network=host', ref, ...cmd]],
    });
  } finally {
    await d?.stop();
    await sz.stop();
  }
}

/**
 * B9's lazy variants on Docker (`set`: a runtime set whose Docker has the containerd image store):
 * the env created at start on the same node setup (its base pulled on an empty node only), and the
 * eStargz static and profile images (with --estargz-base, on the eStargz base as the node has it,
 * and the profile image on the base re-layered with the profile too; zstd:chunked with
 * --zstd-chunked) pulled lazily by `docker pull` and run by `docker run`.
 */
function dockerLazyVariants(setup, { lazySample, diagnoseAt }) {
  const { set, images, bootstrap, prefetch, base } = setup;
  const label = set.docker.label;
  const lazy = (tag, nodeBase = images.nodeBase) => (emptyNode) => {
    const diagnose = diagnoseAt(tag, emptyNode);
    return onLazyDocker(setup, prefetch, diagnose, (node) => lazySample(node, tag, nodeBase, emptyNode, diagnose));
  };
  const atStart = (emptyNode) => onLazyDocker(setup, prefetch, '', async (node) => {
    if (!emptyNode) await node.pull(base);
    const t0 = performance.now();
    if (emptyNode) await node.pull(base);
    const pull = ms(t0);
    const run = await firstLineOf(...node.run(base, bootstrap), 'ok');
    return { pull, run, total: pull + run };
  });
  return {
    [`${label}: env created at start`]: atStart,
    [`${label}: lazy + prefetch (static)`]: lazy(images.tags.static),
    [`${label}: lazy + prefetch (profile)`]: lazy(images.tags.profile),
    ...(images.tags.profileBase ? { [`${label}: lazy + prefetch (profile, base too)`]: lazy(images.tags.profileBase, images.nodeBaseProfiled) } : {}),
    ...(images.tags.zc ? { [`${label}: lazy + prefetch (profile${setup.args['estargz-base'] ? ', base too' : ''}), zstd:chunked`]: lazy(images.tags.zc, images.nodeBaseZc) } : {}),
  };
}

const DOCKER_ROW = /^docker [\d.]+: /;

function lazyLines(b2lazy) {
  const { selection: sel, builds } = b2lazy.images;
  const lines = [
    `  eStargz images (${b2lazy.images.layers}), bytes each build pushed: off ${fmtBytes(builds.off.bytes)}, static ${fmtBytes(builds.static.bytes)}, profile ${fmtBytes(builds.profile.bytes)}${builds.zc ? `; zstd:chunked profile ${fmtBytes(builds.zc.bytes)} (with its base, converted to zstd:chunked by that build)` : ''}`,
    `  prefetch selection: env ${fmtBytes(sel.envBytes)}; profile ${sel.profileFiles} files ${fmtBytes(sel.profileBytes)}; static ${fmtBytes(sel.staticBytes)}, covering ${(sel.staticCoversOfProfile * 100).toFixed(0)} % of the profile's bytes`,
  ];
  for (const [scenario, figures] of Object.entries(b2lazy.scenarios)) {
    lines.push(`  B2 containerd${Object.keys(figures).some((n) => DOCKER_ROW.test(n)) ? ' and Docker' : ''} (${scenario})`);
    for (const [name, f] of Object.entries(figures)) {
      // Docker's rows against Docker's env created at start, the others against containerd's.
      const atStart = figures[`${DOCKER_ROW.exec(name)?.[0] ?? ''}env created at start`].total.median;
      const fetched = `${f.fetched ? `, fetched ${fmtBytes(f.fetched.median)}` : ''}${f.snapshotterCpu ? `, snapshotter CPU ${f.snapshotterCpu.median.toFixed(2)} s` : ''}`;
      const split = f.create ? ` (create ${fmtMs(f.create.median)}, python start ${fmtMs(f.pyStart.median)}, import ${fmtMs(f.import.median)})` : '';
      lines.push(`    ${name.padEnd(36)} total ${fmtStats(f.total)}; pull ${fmtMs(f.pull.median)}, run ${fmtMs(f.run.median)}${split}${fetched}; ×${ratio(f.total.median, atStart)} of env at start`);
    }
  }
  return lines;
}

function summarize(samples) {
  const pick = (k) => (samples[0][k] === undefined ? undefined : k === 'fetched' ? { median: median(samples.map((s) => s[k])) } : stats(samples.map((s) => s[k])));
  const split = samples[0].create === undefined ? {} : { create: pick('create'), pyStart: pick('pyStart'), import: pick('import') };
  return { total: pick('total'), pull: pick('pull'), run: pick('run'), ...split, ...(samples[0].fetched !== undefined ? { fetched: pick('fetched') } : {}), ...(samples[0].snapshotterCpu !== undefined ? { snapshotterCpu: { median: median(samples.map((s) => s.snapshotterCpu)) } } : {}) };
}

async function pullOnly(setup) {
  const { pullBench, pullLines } = await import('./oci-pull.mjs');
  const benchBase = (await exec('bash', [join(ROOT, 'bench/base-image.sh'), setup.host])).stdout.trim();
  const helpers = { startContainerd, firstLineOf, bootstrapFor, runName, CODE, PY };
  const b10 = await pullBench({ ...setup, base: benchBase }, helpers);
  return [{ bench: 'oci-pull', context: setup.ctx, prune: setup.prune, machine: machine(), loadAverage: loadavg(), b10 }, [`B10 non-lazy pulls, realistic env (${setup.ctx}${pruneNote(setup.prune)})`, ...pullLines(b10), `  load average at the end: ${loadavg().map((l) => l.toFixed(1)).join(' ')}`]];
}

await main(async (onCleanup) => {
  if (!existsSync(join(ROOT, 'packages/oci/dist/index.js'))) fail('packages/oci is not built; run `pnpm build` first.');
  await main_(onCleanup);
});
