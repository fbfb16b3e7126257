/**
 * B10 — non-lazy pulls of the realistic env's image (issue 19: base cached ≤ 0.6×, empty node ≤
 * 0.8× the env created at start), run by `node bench/oci-layering.mjs --pull-only` (it builds on
 * B9's context and helpers). Side by side, interleaved, base cached and empty node:
 *
 * - the Docker daemon (Docker Engine 20.10 here: gzip only) — a private `dockerd` per node setting
 *   (its own data root, no bridge, host networking), one with `MOBY_DISABLE_PIGZ=1` (Go's gzip) and
 *   one with `unpigz` on its PATH (what installing the `pigz` package on a node does);
 * - containerd (`ctr`, overlayfs) — a private instance per node setting, `CONTAINERD_DISABLE_PIGZ=1`
 *   or `unpigz` on its PATH; the zstd image on the first;
 * - the env created at start (bench/cold-start-realistic.mjs's bootstrap) on each runtime;
 * - the floor: the same layer blobs decompressed (`gzip -dc`, `unpigz -dc`, `zstd -dc`) and
 *   unpacked by `tar -x` on the same disk, one layer after the other, and `tar -x` of the
 *   uncompressed tars with and without a final `sync`.
 *
 * The `unpigz` variants need `unpigz` on the PATH of the bench (Debian's `pigz`); without it they
 * are left out and said so.
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadavg } from 'node:os';
import { promisify } from 'node:util';
import { alternate, fmtBytes, fmtMs, fmtStats, ratio } from './lib.mjs';

const exec = promisify(execFile);
const SH = (script) => exec('sh', ['-c', script], { maxBuffer: 1 << 26 });

/** The daemons' environment: with `unpigz` on PATH, or with pigz disabled. */
function daemonEnv(pigz) {
  return pigz ? { ...process.env } : { ...process.env, MOBY_DISABLE_PIGZ: '1', CONTAINERD_DISABLE_PIGZ: '1' };
}

/** A private Docker daemon in `dir` (its own data root and managed containerd; no bridge, no iptables). */
async function startDockerd(dir, env) {
  await mkdir(dir, { recursive: true });
  const sock = join(dir, 'docker.sock');
  const args = ['-H', `unix://${sock}`, '--data-root', join(dir, 'data'), '--exec-root', join(dir, 'exec'), '--pidfile', join(dir, 'pid'), '--bridge=none', '--iptables=false', '--ip6tables=false', '--ip-masq=false', '--userland-proxy=false'];
  const proc = spawn('dockerd', args, { stdio: 'ignore', env });
  const docker = (...a) => exec('docker', ['-H', `unix://${sock}`, ...a], { maxBuffer: 1 << 26 });
  for (let i = 0; i < 300; i++) {
    if (await docker('version').then(() => true, () => false)) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const stop = async () => {
    const exited = new Promise((r) => proc.once('exit', r));
    proc.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 15000))]);
    await SH(`grep -o " ${dir}[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l`).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  };
  return { sock, docker, stop };
}

/** `docker pull` + `docker run` to the first line, the image (and on an empty node every image) removed first. */
function dockerPullRun(d, tag, base, h) {
  return async (emptyNode) => {
    await resetDocker(d, base, emptyNode);
    const t0 = performance.now();
    await d.docker('pull', tag);
    const pull = performance.now() - t0;
    const run = await h.firstLineOf('docker', ['-H', `unix://${d.sock}`, 'run', '--rm', '--network=host', tag, h.PY, '-c', h.CODE], 'ok');
    return { pull, run, total: pull + run };
  };
}

async function resetDocker(d, base, emptyNode) {
  const ids = (await d.docker('images', '-aq')).stdout.split('\n').filter(Boolean);
  if (ids.length) await d.docker('rmi', '-f', ...new Set(ids)).catch(() => undefined);
  if (!emptyNode) await d.docker('pull', base);
}

async function resetCtr(sock, base, emptyNode) {
  const ctr = (...a) => exec('ctr', ['-a', sock, ...a], { maxBuffer: 1 << 26 });
  const refs = (await ctr('images', 'ls', '-q')).stdout.split('\n').filter(Boolean);
  for (const ref of refs) await ctr('images', 'rm', '--sync', ref).catch(() => undefined);
  // Content and snapshots go with the images (garbage collected on rm --sync).
  if (!emptyNode) await ctr('images', 'pull', '--plain-http', base);
}

function ctrPullRun(sock, tag, base, h) {
  return async (emptyNode) => {
    await resetCtr(sock, base, emptyNode);
    const t0 = performance.now();
    await exec('ctr', ['-a', sock, 'images', 'pull', '--plain-http', tag], { maxBuffer: 1 << 26 });
    const pull = performance.now() - t0;
    const run = await h.firstLineOf('ctr', ['-a', sock, 'run', '--rm', '--net-host', tag, h.runName(), h.PY, '-c', h.CODE], 'ok');
    return { pull, run, total: pull + run };
  };
}

/** The env created at start on the base, by Docker (`d`) or containerd (`sock`). */
function atStart(runtime, base, bootstrap, h) {
  return async (emptyNode) => {
    if (runtime.docker) await resetDocker(runtime, base, true);
    else await resetCtr(runtime.sock, base, true);
    const t0 = performance.now();
    if (runtime.docker) await runtime.docker('pull', base);
    else await exec('ctr', ['-a', runtime.sock, 'images', 'pull', '--plain-http', base], { maxBuffer: 1 << 26 });
    const pull = emptyNode ? performance.now() - t0 : 0;
    const run = runtime.docker
      ? await h.firstLineOf('docker', ['-H', `unix://${runtime.sock}`, 'run', '--rm', '--network=host', base, ...bootstrap], 'ok')
      : await h.firstLineOf('ctr', ['-a', runtime.sock, 'run', '--rm', '--net-host', base, h.runName(), ...bootstrap], 'ok');
    return { pull, run, total: pull + run };
  };
}

/** The env's layer blobs of `tag` (the build's `digests`) in `dir`, fetched from the registry. */
async function fetchBlobs(host, tag, digests, dir) {
  const repo = tag.slice(host.length + 1).replace(/:[^:/]+$/, '');
  await mkdir(dir, { recursive: true });
  const files = [];
  for (const [i, digest] of digests.entries()) {
    const res = await fetch(`http://${host}/v2/${repo}/blobs/${digest}`);
    if (!res.ok) throw new Error(`GET blob ${digest}: ${res.status}`);
    const file = join(dir, `${String(i).padStart(3, '0')}`);
    await writeFile(file, Buffer.from(await res.arrayBuffer()));
    files.push(file);
  }
  return files;
}

/** The floor: decompress, and decompress + `tar -x`, one layer after the other, into a fresh dir. */
async function floorVariants(blobs, scratch, haveUnpigz) {
  const tars = join(scratch, 'tars');
  await mkdir(tars, { recursive: true });
  await SH(blobs.gzip.map((b, i) => `gzip -dc ${b} > ${tars}/${i}.tar`).join(' && '));
  const extract = (pipe) => async () => {
    const out = await mkdtemp(join(scratch, 'x-'));
    const t0 = performance.now();
    await SH(pipe(out));
    const took = performance.now() - t0;
    await rm(out, { recursive: true, force: true });
    return { total: took };
  };
  const each = (files, cmd) => (out) => files.map((f) => `${cmd(f)} | tar -x -C ${out}`).join(' && ');
  const tarFiles = blobs.gzip.map((_, i) => `${tars}/${i}.tar`);
  const v = {
    'gzip -dc > /dev/null': extract(() => blobs.gzip.map((b) => `gzip -dc ${b} > /dev/null`).join(' && ')),
    'gzip -dc | tar -x': extract(each(blobs.gzip, (b) => `gzip -dc ${b}`)),
    'zstd -dc > /dev/null': extract(() => blobs.zstd.map((b) => `zstd -qdc ${b} > /dev/null`).join(' && ')),
    'zstd -dc | tar -x': extract(each(blobs.zstd, (b) => `zstd -qdc ${b}`)),
    'tar -x (uncompressed)': extract((out) => tarFiles.map((t) => `tar -x -C ${out} -f ${t}`).join(' && ')),
    'tar -x (uncompressed) + sync': extract((out) => `${tarFiles.map((t) => `tar -x -C ${out} -f ${t}`).join(' && ')} && sync`),
  };
  if (haveUnpigz) {
    v['unpigz -dc > /dev/null'] = extract(() => blobs.gzip.map((b) => `unpigz -dc ${b} > /dev/null`).join(' && '));
    v['unpigz -dc | tar -x'] = extract(each(blobs.gzip, (b) => `unpigz -dc ${b}`));
  }
  return v;
}

/** Builds the images, starts the private daemons and measures every variant, base cached then empty node. */
export async function pullBench(setup, h) {
  const { args, ctx, host, build, cacheRoot, onCleanup, base } = setup;
  const haveUnpigz = await SH('command -v unpigz').then(() => true, () => false);
  const policies = args['pull-layers'].split(',').map((s) => s.trim()).filter(Boolean);
  const images = {};
  for (const policy of policies) {
    for (const codec of ['gzip', 'zstd']) {
      const tag = `${host}/prebuilt-bench/oci-pull-${policy}-${codec}-${Math.random().toString(16).slice(2, 10)}:a`;
      const env = { METAFLOW_PREBUILT_OCI_LAYERS: policy, METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION: codec };
      images[`${policy} ${codec}`] = { tag, ...(await build(env, ctx, tag, `pull-${policy}-${codec}`, base)) };
    }
  }
  process.stderr.write(`[b10] images built: ${JSON.stringify(Object.fromEntries(Object.entries(images).map(([k, v]) => [k, { layers: v.layers, bytes: v.bytes }])))}\n`);
  const bootstrap = await h.bootstrapFor(setup);
  const settings = haveUnpigz ? [false, true] : [false];
  const scratch = await setup.disk.dir('oci-pull');
  onCleanup(() => rm(scratch, { recursive: true, force: true }));
  const dockerds = [];
  const containerds = [];
  for (const pigz of settings) {
    const d = await startDockerd(join(scratch, `dockerd-${pigz ? 'pigz' : 'go'}`), daemonEnv(pigz));
    onCleanup(d.stop);
    dockerds.push(d);
    const c = await h.startContainerd(await setup.disk.dir(`containerd-${pigz ? 'pigz' : 'go'}`), false, undefined, daemonEnv(pigz));
    onCleanup(c.stop);
    containerds.push(c);
  }
  const all = {};
  const label = (pigz) => (pigz ? 'unpigz' : 'no unpigz');
  all['docker: env created at start'] = atStart(dockerds[0], base, bootstrap, h);
  all['ctr: env created at start'] = atStart(containerds[0], base, bootstrap, h);
  for (const policy of policies) {
    for (const [i, pigz] of settings.entries()) {
      all[`docker: ${policy} gzip, ${label(pigz)}`] = dockerPullRun(dockerds[i], images[`${policy} gzip`].tag, base, h);
      all[`ctr: ${policy} gzip, ${label(pigz)}`] = ctrPullRun(containerds[i].sock, images[`${policy} gzip`].tag, base, h);
    }
    all[`ctr: ${policy} zstd`] = ctrPullRun(containerds[0].sock, images[`${policy} zstd`].tag, base, h);
  }
  // --pull-runtimes docker|ctr and --base-cached-only narrow the run (e.g. containerd alone on a quiet machine).
  const runtimes = args['pull-runtimes'].split(',').map((s) => s.trim());
  const variants = Object.fromEntries(Object.entries(all).filter(([name]) => runtimes.includes(name.split(':')[0])));
  const scenarios = {};
  for (const [scenario, emptyNode] of [['a base cached', false], ['b empty node', true]].slice(0, args['base-cached-only'] ? 1 : 2)) {
    const samples = await alternate(args.runs, ...Object.values(variants).map((fn) => () => fn(emptyNode)));
    scenarios[scenario] = Object.fromEntries(Object.keys(variants).map((name, i) => [name, h.summarize(samples[i])]));
    process.stderr.write(`[b10] scenario ${scenario} done (load ${loadavg()[0].toFixed(1)})\n`);
  }
  const first = policies[0];
  const blobs = {
    gzip: await fetchBlobs(host, images[`${first} gzip`].tag, images[`${first} gzip`].digests, join(scratch, 'blobs-gzip')),
    zstd: await fetchBlobs(host, images[`${first} zstd`].tag, images[`${first} zstd`].digests, join(scratch, 'blobs-zstd')),
  };
  const floors = await floorVariants(blobs, scratch, haveUnpigz);
  const floorSamples = await alternate(args.runs, ...Object.values(floors));
  const floor = Object.fromEntries(Object.keys(floors).map((name, i) => [name, h.summarize(floorSamples[i]).total]));
  const built = Object.fromEntries(Object.entries(images).map(([k, v]) => [k, { layers: v.layers, bytes: v.bytes }]));
  return { unpigz: haveUnpigz, images: built, scenarios, floor: { policy: first, ...floor } };
}

export function pullLines(b10) {
  const lines = [`  images: ${Object.entries(b10.images).map(([k, v]) => `${k} ${v.layers} layers ${fmtBytes(v.bytes)}`).join('; ')}${b10.unpigz ? '' : ' (no unpigz on PATH: the unpigz variants are left out)'}`];
  for (const [scenario, figures] of Object.entries(b10.scenarios)) {
    lines.push(`  B2 (${scenario})`);
    for (const [name, f] of Object.entries(figures)) {
      const atStart = figures[`${name.split(':')[0]}: env created at start`].total.median;
      lines.push(`    ${name.padEnd(34)} total ${fmtStats(f.total)}; pull ${fmtMs(f.pull.median)}, run ${fmtMs(f.run.median)}; ×${ratio(f.total.median, atStart)} of env at start`);
    }
  }
  lines.push(`  floor, the ${b10.floor.policy} image's env layers one after the other:`);
  for (const [name, s] of Object.entries(b10.floor)) if (name !== 'policy') lines.push(`    ${name.padEnd(30)} ${fmtStats(s)}`);
  return lines;
}
