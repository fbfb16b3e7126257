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
 * - containerd pulling as the CRI plugin (a Kubernetes node) does: bench/cri-pull/main.go, the
 *   containerd client's Pull with unpack, which unpacks each layer as soon as it is fetched while the
 *   next ones download (3 at a time), where `ctr images pull` (1.6) fetches every layer first; built
 *   with Debian's Go and containerd library (left out, and said so, where they are missing).
 *
 * Every sample starts from a settled disk: after the node's images are reset (untimed), `sync`
 * (`--settle sync`, the default; `--settle none` skips it) — a pull or an env created at start
 * leaves ~0.8 GB written back over the next seconds, which would otherwise slow the next sample
 * (measured: 0.1–1.0 GB dirty at a sample's start without it). Each sample records the bytes still
 * dirty or under writeback at its start and the CPU time the daemon (with its waited-for children,
 * Docker's untar processes) spent in the pull; `ctr images pull` samples split fetch and unpack
 * (its `done:` line).
 *
 * Then the first and the second import of the task in one container, right after a pull of the
 * zstd image by containerd (and of the gzip image by Docker where it runs), with the pycs the first
 * wrote, for each layering of --pull-layers (issue 19: first ≤ 1.1× the second); with --import-sync,
 * after a `sync` that settles the pull's writes (the first import otherwise shares the 2 cores with
 * their writeback).
 *
 * With --runtime-root DIR, all of it on two runtime sets side by side, in the same interleaved
 * rounds: the system's (Debian bookworm here: Docker 20.10, containerd 1.6) and the ones unpacked
 * under DIR (Debian trixie's: Docker 26.1, containerd 1.7 built with Go 1.24; their binaries from
 * DIR/usr/bin and DIR/usr/sbin, the daemons' PATH starting there so the shims and dockerd's own
 * containerd do too, the host's runc). Each variant is named after its runtime (`docker 20.10: …`,
 * `ctr 1.7: …`) and divided by that runtime's own env created at start; Docker from 23 on also pulls
 * the zstd image. Docker from 24 on runs a second time with the containerd image store (`docker
 * 26.1 c8d: …`: a private dockerd per pigz setting whose daemon.json turns the
 * `containerd-snapshotter` feature on, so that its managed containerd pulls and unpacks, with the
 * overlayfs snapshotter), against its own env created at start; a Docker sample's CPU is the
 * dockerd's and its managed containerd's. `ctr images pull` fetches in the client on both 1.6 and 1.7 (1.7's transfer
 * service is not used: its profile shows the client's Content.Write and Diff.Apply calls), so each
 * ctr and CRI-style sample records the client's CPU beside the daemon's; the CRI-style pull is the
 * same 1.6 client library on both.
 *
 * With --erofs, where a set's containerd is 2.1 or newer: containerd with its EROFS snapshotter and
 * differ (`ctr 2.1 erofs: …`: each committed layer an EROFS image the kernel mounts, not a directory
 * of files) and that set's Docker with the containerd image store on a second such containerd
 * (`docker 28.5 c8d erofs: …`), each against its own env created at start, pulling the zstd image
 * (the differ converts each layer with `mkfs.erofs --tar=f`) and the image with native EROFS layers
 * (built with METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION=erofs: copied into the snapshot as they are).
 *
 *   --pull-match REGEXP keeps the variants whose name matches (the env created at start stays).
 *   --pull-runtimes docker,ctr: kinds, or runtime labels (`ctr 1.7`).
 *
 * The `unpigz` variants need `unpigz` on the PATH of the bench (Debian's `pigz`); without it they
 * are left out and said so.
 */
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadavg } from 'node:os';
import { promisify } from 'node:util';
import { ROOT, alternate, fail, fmtBytes, fmtMs, fmtStats, median, ratio, stats } from './lib.mjs';

const exec = promisify(execFile);
const SH = (script) => exec('sh', ['-c', script], { maxBuffer: 1 << 26 });

/** The daemons' environment: the runtime set's PATH, with `unpigz` on it, or with pigz disabled. */
function daemonEnv(pigz, set) {
  const env = { ...process.env, PATH: set.PATH };
  return pigz ? env : { ...env, MOBY_DISABLE_PIGZ: '1', CONTAINERD_DISABLE_PIGZ: '1' };
}

/**
 * The Go version a binary was built with, from its build info (Go 1.18 on: the 32-byte header, its
 * flags' bit 2 for strings inline, then the version, length-prefixed); '' where it has none.
 */
async function goVersionOf(path) {
  const buf = await readFile(path).catch(() => undefined);
  const at = buf ? buf.indexOf('\xff Go buildinf:', 0, 'latin1') : -1;
  if (at < 0 || !(buf[at + 15] & 2) || buf[at + 32] > 127) return '';
  return buf.toString('latin1', at + 33, at + 33 + buf[at + 32]);
}

const RUNTIME_BINARIES = ['usr/bin/containerd', 'usr/bin/ctr', 'usr/bin/containerd-shim-runc-v2', 'usr/sbin/dockerd'];

/**
 * One set of runtimes: the system's (`root` empty: `dockerd`, `containerd`, `ctr`, `docker` from
 * PATH) or the ones unpacked under `root` (--runtime-root: root/usr/bin and root/usr/sbin first on
 * the daemons' PATH, so the shims and dockerd's own containerd come from there too; `runc` stays
 * the host's, the first on PATH that root does not have). Labels from the versions: `docker 26.1`, `ctr 1.7`.
 */
async function runtimeSet(root) {
  const missing = RUNTIME_BINARIES.filter((b) => root && !existsSync(join(root, b)));
  if (missing.length) fail(`--runtime-root ${root}: ${missing.join(', ')} missing there; expected Debian's containerd and docker.io packages unpacked into it (dpkg-deb -x PACKAGE.deb ${root}).`);
  const bin = (dir, name) => (root && existsSync(join(root, dir, name)) ? join(root, dir, name) : name);
  const version = async (cmd) => {
    const text = await exec(cmd, ['--version']).then((r) => r.stdout.trim(), (e) => fail(`${cmd} --version failed (${String(e.stderr || e.message).trim().split('\n')[0]}): it cannot run on this machine.`));
    const path = (await exec('sh', ['-c', 'command -v "$0"', cmd])).stdout.trim();
    const go = await goVersionOf(path);
    return go ? `${text} (${go})` : text;
  };
  const dockerd = await version(bin('usr/sbin', 'dockerd'));
  const containerd = await version(bin('usr/bin', 'containerd'));
  const [, dMajor, dMinor] = /version (\d+)\.(\d+)/.exec(dockerd) ?? fail(`unexpected \`dockerd --version\`: ${dockerd}`);
  const [, cMajor, cMinor] = /\sv?(\d+)\.(\d+)\.\d+/.exec(containerd) ?? fail(`unexpected \`containerd --version\`: ${containerd}`);
  const c8d = Number(dMajor) >= 24 ? `docker ${dMajor}.${dMinor} c8d` : '';
  return {
    root,
    PATH: root ? `${root}/usr/bin:${root}/usr/sbin:${process.env.PATH}` : process.env.PATH,
    // --erofs (runtimeSets): the rows on its containerd's EROFS snapshotter, and on its Docker with the containerd image store on it.
    erofsRows: { ctr: `ctr ${cMajor}.${cMinor} erofs`, docker: c8d ? `${c8d} erofs` : '', runners: `containerd@${cMajor}.${cMinor}`, containerd: [Number(cMajor), Number(cMinor)] },
    // Docker pulls zstd layers from Engine 23 on; from 24 on it can keep its images in containerd (the containerd image store: `c8d`).
    docker: { label: `docker ${dMajor}.${dMinor}`, bin: bin('usr/bin', 'docker'), version: dockerd, zstd: Number(dMajor) >= 23, c8d },
    ctr: { label: `ctr ${cMajor}.${cMinor}`, bin: bin('usr/bin', 'ctr'), version: containerd },
  };
}

/**
 * The runtime sets measured side by side: the system's, and with `runtimeRoot` the ones unpacked
 * there; with `erofs`, each set's `erofs` rows where its containerd has the EROFS snapshotter
 * (@prebuilt/oci's EROFS_SINCE), checked to find `mkfs.erofs` ≥ 1.8 on its daemons' PATH and a
 * kernel with erofs.
 */
export async function runtimeSets(runtimeRoot, erofs = false) {
  const all = [await runtimeSet('')];
  if (runtimeRoot) all.push(await runtimeSet(runtimeRoot));
  const labels = all.flatMap((s) => [s.docker.label, s.ctr.label]);
  if (new Set(labels).size < labels.length) fail(`--runtime-root ${runtimeRoot}: its runtimes have the system's versions (${labels.join(', ')}); nothing to compare.`);
  if (!erofs) return all.map(({ erofsRows, ...set }) => ({ ...set, erofs: undefined }));
  const { EROFS_SINCE, findMkfsErofs } = await import(new URL('../packages/oci/dist/index.js', import.meta.url).href);
  const [major, minor] = EROFS_SINCE.containerd;
  const sets = all.map(({ erofsRows, ...set }) => {
    const [m, n] = erofsRows.containerd;
    return { ...set, erofs: m > major || (m === major && n >= minor) ? erofsRows : undefined };
  });
  if (!sets.some((set) => set.erofs)) fail(`--erofs: no containerd here is ${major}.${minor} or newer (${labels.join(', ')}); give --runtime-root a directory with Debian forky's containerd, docker.io and docker-cli unpacked into it (bench/README.md, round 34, erofs).`);
  for (const set of sets.filter((s) => s.erofs)) {
    await findMkfsErofs({ PATH: set.PATH }).catch((error) => fail(`--erofs: containerd's erofs differ runs mkfs.erofs --tar=f: ${error.message}${error.hint ? `\n  ${error.hint}` : ''} (scripts/setup.sh builds it into /usr/local/bin)`));
  }
  if (!/\berofs$/m.test(await readFile('/proc/filesystems', 'utf8'))) fail('--erofs: the kernel has no erofs file system (/proc/filesystems): modprobe erofs, or a kernel with CONFIG_EROFS_FS.');
  return sets;
}

/**
 * A private Docker daemon with its data root in `dir` (no bridge, no iptables). Its sockets and
 * runtime state go in a short directory under /run, as a node's /var/run/docker: under the node
 * disk's long path, the managed containerd's debug socket would be over the 104-byte limit of a unix
 * socket's path and the daemon would not start. `daemonJson`: its daemon.json (e.g. the containerd
 * image store's `features`); `containerd`: the socket of a containerd to use instead of starting its
 * own (`--containerd`).
 */
export async function startDockerd(dir, env, bin, { daemonJson, containerd } = {}) {
  await mkdir(dir, { recursive: true });
  const run = await mkdtemp('/run/b10-');
  const sock = join(run, 'docker.sock');
  const args = ['-H', `unix://${sock}`, '--data-root', join(dir, 'data'), '--exec-root', join(run, 'exec'), '--pidfile', join(run, 'pid'), '--bridge=none', '--iptables=false', '--ip6tables=false', '--ip-masq=false', '--userland-proxy=false'];
  if (daemonJson) {
    await writeFile(join(dir, 'daemon.json'), `${JSON.stringify(daemonJson)}\n`);
    args.push('--config-file', join(dir, 'daemon.json'));
  }
  if (containerd) args.push('--containerd', containerd);
  const proc = spawn('dockerd', args, { stdio: 'ignore', env });
  const docker = (...a) => exec(bin, ['-H', `unix://${sock}`, ...a], { maxBuffer: 1 << 26 });
  let up = false;
  for (let i = 0; i < 300 && !up; i++) {
    up = await docker('version').then(() => true, () => false);
    if (!up) await new Promise((r) => setTimeout(r, 100));
  }
  if (!up) throw new Error(`the private dockerd (${dir}) did not answer within 30 s`);
  const stop = async () => {
    const exited = new Promise((r) => proc.once('exit', r));
    proc.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 15000))]);
    for (const d of [run, dir]) {
      await SH(`grep -o " ${d}[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l`).catch(() => undefined);
      await rm(d, { recursive: true, force: true });
    }
  };
  // Its managed containerd, where the containerd image store pulls and unpacks (with its CPU counted too).
  const child = (await exec('pgrep', ['-P', String(proc.pid), 'containerd']).catch(() => ({ stdout: '' }))).stdout.trim().split('\n')[0];
  return { sock, docker, stop, pid: proc.pid, pids: child ? [proc.pid, Number(child)] : [proc.pid], bin };
}

/** The containerd image store in a daemon.json (Docker Engine 24 on; the default for new installs from 29). */
export const C8D_STORE = { features: { 'containerd-snapshotter': true } };

/**
 * containerd ≥ 2.1 with its EROFS snapshotter and differ: layers applied by the erofs differ
 * (`mkfs.erofs --tar=f`, or a native EROFS layer copied as it is), and the transfer service, which
 * `ctr images pull` uses from 2.0 on, unpacking into the erofs snapshotter.
 */
const EROFS_CONFIG = [
  '[plugins."io.containerd.service.v1.diff-service"]', '  default = ["erofs", "walking"]',
  '[[plugins."io.containerd.transfer.v1.local".unpack_config]]', '  platform = "linux/amd64"', '  snapshotter = "erofs"', '  differ = "erofs"',
];

/**
 * A private containerd (bench/oci-layering.mjs's) on the node disk, with its process id;
 * `snapshotter` (`erofs`): with EROFS_CONFIG, and `ctr` pulls and runs with that snapshotter.
 */
async function startContainerd(setup, h, name, env, bin, snapshotter = '') {
  const dir = await setup.disk.dir(name);
  const c = await h.startContainerd(dir, false, undefined, env, '', snapshotter ? EROFS_CONFIG : []);
  setup.onCleanup(c.stop);
  const pid = Number((await exec('pgrep', ['-o', '-f', `^containerd -c ${dir}/config.toml$`])).stdout.trim());
  return { ...c, pid, bin, snapshotter };
}

/** `--snapshotter NAME` for `ctr` against containerd `c`, where it has one. */
const snapshotterArgs = (c) => (c.snapshotter ? ['--snapshotter', c.snapshotter] : []);

/**
 * The node's page cache settled (`sync` with --settle sync) and the bytes still dirty or under
 * writeback: a sample that starts while the previous one's files are written back shares the disk.
 */
async function settle(mode) {
  if (mode === 'sync') await SH('sync');
  const meminfo = await readFile('/proc/meminfo', 'utf8');
  const kB = (key) => Number(new RegExp(`^${key}:\\s+(\\d+)`, 'm').exec(meminfo)?.[1] ?? 0);
  return (kB('Dirty') + kB('Writeback')) * 1024;
}

/** The CPU ms (user + system) a shell's children used, from the last line `times` printed (its `stdout`). */
function timesCpuMs(stdout) {
  const [user, system] = stdout.trim().split('\n').at(-1).match(/(\d+)m([\d.]+)s/g).map((t) => Number(t.split('m')[0]) * 60000 + Number(t.split('m')[1].slice(0, -1)) * 1000);
  return user + system;
}

/** `cmd args` run by a shell that then prints `times`: its stdout and the CPU ms it used (a pull's client side). */
async function timed(cmd, args) {
  const { stdout } = await exec('sh', ['-c', '"$0" "$@" && times', cmd, ...args], { maxBuffer: 1 << 26 });
  return { stdout, clientCpu: timesCpuMs(stdout) };
}

const CLK_TCK = 100;
/** CPU ms (user + system, with waited-for children) of process `pid` so far. */
async function cpuMs(pid) {
  const fields = (await readFile(`/proc/${pid}/stat`, 'utf8')).replace(/^.*\) /, '').split(' ');
  // After the comm field: utime, stime, cutime, cstime are fields 12–15 (0-based 11–14).
  return ((Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14])) * 1000) / CLK_TCK;
}

/**
 * One timed sample: `reset` (untimed), the node disk's freed blocks handed back to the host
 * (`disk.trim`), the disk settled, `pull` timed with the daemon's CPU, then `run` (ms to the task's
 * first line). `pull` may return `{ unpack }` (ms).
 */
function sample({ reset, pull, run, pids }, settleMode, disk) {
  const cpu = async () => (await Promise.all(pids.map(cpuMs))).reduce((a, b) => a + b, 0);
  return async (emptyNode) => {
    await reset(emptyNode);
    await disk.trim();
    const dirty = await settle(settleMode);
    const cpu0 = await cpu();
    const t0 = performance.now();
    const pulled = await pull(emptyNode);
    const pullMs = performance.now() - t0;
    const daemonCpu = (await cpu()) - cpu0;
    const runMs = await run();
    const client = pulled?.clientCpu !== undefined ? { clientCpu: pulled.clientCpu } : {};
    return { pull: pullMs, run: runMs, total: pullMs + runMs, dirty, daemonCpu, ...client, ...(pulled?.unpack !== undefined ? { unpack: pulled.unpack, fetch: pullMs - pulled.unpack } : {}) };
  };
}

async function resetDocker(d, base, emptyNode) {
  const keep = emptyNode ? '' : (await d.docker('image', 'inspect', '-f', '{{.Id}}', base).catch(() => ({ stdout: '' }))).stdout.trim();
  const ids = (await d.docker('images', '-aq', '--no-trunc')).stdout.split('\n').filter((id) => id && id !== keep);
  if (ids.length) await d.docker('rmi', '-f', ...new Set(ids)).catch(() => undefined);
  if (!emptyNode && !keep) await d.docker('pull', base);
}

async function resetCtr(c, base, emptyNode) {
  const ctr = (...a) => exec(c.bin, ['-a', c.sock, ...a], { maxBuffer: 1 << 26 });
  const refs = (await ctr('images', 'ls', '-q')).stdout.split('\n').filter(Boolean);
  // Content and snapshots go with the images (garbage collected on rm --sync); the base stays where cached.
  for (const ref of refs) if (emptyNode || ref !== base) await ctr('images', 'rm', '--sync', ref).catch(() => undefined);
  if (!emptyNode) await ctr('images', 'pull', '--plain-http', ...snapshotterArgs(c), base);
}

/** Go's duration as `ctr` prints it (`6.9188s`, `912.3ms`) in ms. */
function goDurationMs(text) {
  const m = /done: ([\d.]+)(µs|ms|s)\b/.exec(text);
  if (!m) return undefined;
  return Number(m[1]) * { µs: 0.001, ms: 1, s: 1000 }[m[2]];
}

/** The runtimes' pulls and runs of `tag` (Docker `d`, or containerd `c` by `ctr` or the CRI-style puller). */
const runtimes = {
  docker: (d, tag, base, h) => ({
    pids: d.pids,
    reset: (emptyNode) => resetDocker(d, base, emptyNode),
    pull: () => d.docker('pull', tag),
    run: () => h.firstLineOf(d.bin, ['-H', `unix://${d.sock}`, 'run', '--rm', '--network=host', tag, h.PY, '-c', h.CODE], 'ok'),
  }),
  ctr: (c, tag, base, h) => ({
    pids: [c.pid],
    reset: (emptyNode) => resetCtr(c, base, emptyNode),
    // `ctr` fetches in the client (its CPU: clientCpu), then has the daemon unpack, from its `done:` line on.
    pull: async () => {
      const { stdout, clientCpu } = await timed(c.bin, ['-a', c.sock, 'images', 'pull', '--plain-http', ...snapshotterArgs(c), tag]);
      return { unpack: goDurationMs(stdout), clientCpu };
    },
    run: () => h.firstLineOf(c.bin, ['-a', c.sock, 'run', ...snapshotterArgs(c), '--rm', '--net-host', tag, h.runName(), h.PY, '-c', h.CODE], 'ok'),
  }),
  cri: (c, tag, base, h, criPull) => ({
    ...runtimes.ctr(c, tag, base, h),
    pull: async () => ({ clientCpu: (await timed(criPull, ['-address', c.sock, tag])).clientCpu }),
  }),
};

/** The env created at start on the base, by Docker (`d`) or containerd (`c`): the base pulled on an empty node only. */
function atStart(kind, daemon, base, bootstrap, h) {
  const r = runtimes[kind](daemon, base, base, h);
  const pullBase = kind === 'docker' ? () => daemon.docker('pull', base) : () => exec(daemon.bin, ['-a', daemon.sock, 'images', 'pull', '--plain-http', ...snapshotterArgs(daemon), base], { maxBuffer: 1 << 26 });
  const run = kind === 'docker'
    ? () => h.firstLineOf(daemon.bin, ['-H', `unix://${daemon.sock}`, 'run', '--rm', '--network=host', base, ...bootstrap], 'ok')
    : () => h.firstLineOf(daemon.bin, ['-a', daemon.sock, 'run', ...snapshotterArgs(daemon), '--rm', '--net-host', base, h.runName(), ...bootstrap], 'ok');
  return { ...r, pull: (emptyNode) => (emptyNode ? pullBase() : undefined), run };
}

/**
 * bench/cri-pull/main.go built with Debian's Go and containerd library (GOPATH mode, offline), cached
 * by its source's hash under /var/tmp/prebuilt-bench; `{ reason }` where it cannot be built.
 */
async function criPullBinary() {
  const src = join(ROOT, 'bench/cri-pull/main.go');
  if (!existsSync('/usr/share/gocode/src/github.com/containerd/containerd/client.go')) return { reason: 'no containerd Go library (apt-get install golang-github-containerd-containerd-dev)' };
  if (!(await SH('command -v go').then(() => true, () => false))) return { reason: 'no Go (apt-get install golang-go)' };
  const hash = createHash('sha256').update(await readFile(src)).digest('hex').slice(0, 16);
  const bin = `/var/tmp/prebuilt-bench/cri-pull-${hash}`;
  if (existsSync(bin)) return { bin };
  const env = { ...process.env, GOPATH: '/usr/share/gocode', GO111MODULE: 'off', GOFLAGS: '', GOCACHE: '/var/tmp/prebuilt-bench/go-cache' };
  process.stderr.write('[b10] building bench/cri-pull (once, ~1 min)\n');
  await exec('go', ['build', '-o', `${bin}.tmp`, src], { env, maxBuffer: 1 << 26 });
  await rename(`${bin}.tmp`, bin);
  return { bin };
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
async function floorVariants(blobs, scratch, haveUnpigz, settleMode) {
  const tars = join(scratch, 'tars');
  await mkdir(tars, { recursive: true });
  await SH(blobs.gzip.map((b, i) => `gzip -dc ${b} > ${tars}/${i}.tar`).join(' && '));
  const extract = (pipe) => async () => {
    const out = await mkdtemp(join(scratch, 'x-'));
    await settle(settleMode);
    const t0 = performance.now();
    // `times`: the CPU the commands used (user and system), as the daemons' CPU of a pull.
    const cpu = timesCpuMs((await SH(`${pipe(out)} && times`)).stdout);
    const took = performance.now() - t0;
    await rm(out, { recursive: true, force: true });
    return { total: took, cpu };
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

/** The images of each policy as gzip and zstd, built and pushed. */
async function buildImages({ args, ctx, host, build, base, sets }) {
  const policies = args['pull-layers'].split(',').map((s) => s.trim()).filter(Boolean);
  const images = {};
  // --erofs: native EROFS layers too, for the containerd (≥ 2.1) of the sets that have one.
  const runners = sets.map((set) => set.erofs?.runners).filter(Boolean);
  for (const policy of policies) {
    for (const codec of ['gzip', 'zstd', ...(runners.length ? ['erofs'] : [])]) {
      const tag = `${host}/prebuilt-bench/oci-pull-${policy}-${codec}-${Math.random().toString(16).slice(2, 10)}:a`;
      const env = { METAFLOW_PREBUILT_OCI_LAYERS: policy, METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION: codec, ...(codec === 'erofs' ? { METAFLOW_PREBUILT_OCI_RUNNERS: runners.join(',') } : {}) };
      images[`${policy} ${codec}`] = { tag, ...(await build(env, ctx, tag, `pull-${policy}-${codec}`, base)) };
    }
  }
  process.stderr.write(`[b10] images built: ${JSON.stringify(Object.fromEntries(Object.entries(images).map(([k, v]) => [k, { layers: v.layers, bytes: v.bytes }])))}\n`);
  return { policies, images };
}

/** The variants of a Docker daemon per pigz setting (`dockerds`), labelled `dl`: the env created at start, gzip, and zstd where it pulls zstd. */
function dockerVariants(dl, dockerds, zstd, base, h, { policies, images, settings, bootstrap }) {
  const all = { [`${dl}: env created at start`]: atStart('docker', dockerds[0], base, bootstrap, h) };
  for (const policy of policies) {
    for (const [i, pigz] of settings.entries()) all[`${dl}: ${policy} gzip, ${pigz ? 'unpigz' : 'no unpigz'}`] = runtimes.docker(dockerds[i], images[`${policy} gzip`].tag, base, h);
    if (zstd) all[`${dl}: ${policy} zstd`] = runtimes.docker(dockerds[0], images[`${policy} zstd`].tag, base, h);
  }
  return all;
}

/**
 * --erofs: the variants on containerd with the EROFS snapshotter (`erofs.ctr`) and on Docker with the
 * containerd image store on it (`erofs.docker`), where started: the env created at start, the zstd
 * image (converted by the erofs differ at pull) and the native EROFS image.
 */
function erofsVariants(set, base, h, { policies, images, bootstrap }, erofs) {
  const all = {};
  for (const [label, kind, daemon] of [[set.erofs.ctr, 'ctr', erofs.ctr], [set.erofs.docker, 'docker', erofs.docker]]) {
    if (!daemon) continue;
    all[`${label}: env created at start`] = atStart(kind, daemon, base, bootstrap, h);
    for (const policy of policies) for (const codec of ['zstd', 'erofs']) all[`${label}: ${policy} ${codec}`] = runtimes[kind](daemon, images[`${policy} ${codec}`].tag, base, h);
  }
  return all;
}

/** One runtime set's variants (name → { reset, pull, run, pids }) on its private daemons (`c8ds`: Docker with the containerd image store, where started; `erofs`: with --erofs). */
function setVariants(set, base, h, built, { dockerds, containerds, c8ds, erofs }) {
  const { policies, images, settings, bootstrap, criPull } = built;
  const all = dockerVariants(set.docker.label, dockerds, set.docker.zstd, base, h, built);
  if (c8ds.length) Object.assign(all, dockerVariants(set.docker.c8d, c8ds, true, base, h, built));
  if (erofs) Object.assign(all, erofsVariants(set, base, h, built, erofs));
  const cl = set.ctr.label;
  all[`${cl}: env created at start`] = atStart('ctr', containerds[0], base, bootstrap, h);
  for (const policy of policies) {
    const zstd = images[`${policy} zstd`].tag;
    for (const [i, pigz] of settings.entries()) all[`${cl}: ${policy} gzip, ${pigz ? 'unpigz' : 'no unpigz'}`] = runtimes.ctr(containerds[i], images[`${policy} gzip`].tag, base, h);
    all[`${cl}: ${policy} zstd`] = runtimes.ctr(containerds[0], zstd, base, h);
    if (criPull.bin) all[`${cl}: ${policy} zstd, CRI-style pull`] = runtimes.cri(containerds[0], zstd, base, h, criPull.bin);
  }
  return all;
}

/** Whether --pull-runtimes selects `runtime` (a label, `ctr 1.7`): by its kind (`docker`, `ctr`) or by its label. */
function selected(args, runtime) {
  return args['pull-runtimes'].split(',').map((s) => s.trim()).some((k) => k === runtime || k === runtime.split(' ')[0]);
}

/** Every runtime set's variants, narrowed by --pull-runtimes and --pull-match (the env created at start stays). */
function variantsOf({ args, base, sets }, h, built, daemons) {
  const all = Object.assign({}, ...sets.map((set, i) => setVariants(set, base, h, built, daemons[i])));
  const match = new RegExp(args['pull-match'] || '.');
  return Object.fromEntries(Object.entries(all).filter(([name]) => selected(args, name.split(':')[0]) && (name.endsWith('env created at start') || match.test(name))));
}

/**
 * Each runtime set's private daemons, one Docker daemon and one containerd per pigz setting, and
 * where the set's Docker has it and --pull-runtimes selects it, one Docker daemon with the
 * containerd image store per pigz setting (its managed containerd unpacks, with `unpigz` or not).
 */
async function startDaemons({ sets, onCleanup, ...setup }, h, settings, scratch) {
  const daemons = [];
  for (const [s, set] of sets.entries()) {
    const [dockerds, containerds, c8ds] = [[], [], []];
    const c8d = set.docker.c8d && selected(setup.args, set.docker.c8d);
    for (const pigz of settings) {
      const name = `${s}-${pigz ? 'pigz' : 'go'}`;
      const d = await startDockerd(join(scratch, `dockerd-${name}`), daemonEnv(pigz, set), set.docker.bin);
      onCleanup(d.stop);
      dockerds.push(d);
      containerds.push(await startContainerd({ ...setup, onCleanup }, h, `containerd-${name}`, daemonEnv(pigz, set), set.ctr.bin));
      if (!c8d) continue;
      const c = await startDockerd(join(scratch, `dockerd-c8d-${name}`), daemonEnv(pigz, set), set.docker.bin, { daemonJson: C8D_STORE });
      onCleanup(c.stop);
      c8ds.push(c);
    }
    daemons.push({ dockerds, containerds, c8ds, erofs: set.erofs ? await startErofsDaemons({ ...setup, onCleanup }, h, set, scratch) : undefined });
  }
  return daemons;
}

/**
 * --erofs: a containerd with the EROFS snapshotter for `ctr`, and where the set's Docker has the
 * containerd image store, a dockerd on a second one (`--containerd`, `"storage-driver": "erofs"`: its
 * pulls unpack through that snapshotter) — two, so that neither finds the other's blobs in a shared
 * content store. Each where --pull-runtimes selects it.
 */
async function startErofsDaemons(setup, h, set, scratch) {
  const env = daemonEnv(false, set);
  const ctr = selected(setup.args, set.erofs.ctr) ? await startContainerd(setup, h, 'containerd-erofs-ctr', env, set.ctr.bin, 'erofs') : undefined;
  if (!set.erofs.docker || !selected(setup.args, set.erofs.docker)) return { ctr };
  const cd = await startContainerd(setup, h, 'containerd-erofs-docker', env, set.ctr.bin, 'erofs');
  const d = await startDockerd(join(scratch, 'dockerd-erofs'), env, set.docker.bin, { daemonJson: { ...C8D_STORE, 'storage-driver': 'erofs' }, containerd: cd.sock });
  setup.onCleanup(d.stop);
  return { ctr, docker: { ...d, pids: [d.pid, cd.pid] } };
}

/** Builds the images, starts the private daemons and measures every variant, base cached then empty node. */
export async function pullBench(setup, h) {
  const { args, host, onCleanup } = setup;
  const haveUnpigz = await SH('command -v unpigz').then(() => true, () => false);
  const { policies, images } = await buildImages(setup);
  const bootstrap = await h.bootstrapFor(setup);
  const criPull = await criPullBinary();
  if (criPull.reason) process.stderr.write(`[b10] the CRI-style pull is left out: ${criPull.reason}\n`);
  const settings = haveUnpigz ? [false, true] : [false];
  const scratch = await setup.disk.dir('oci-pull');
  onCleanup(() => rm(scratch, { recursive: true, force: true }));
  const daemons = await startDaemons(setup, h, settings, scratch);
  const variants = variantsOf(setup, h, { policies, images, settings, bootstrap, criPull }, daemons);
  const scenarios = {};
  for (const [scenario, emptyNode] of [['a base cached', false], ['b empty node', true]].slice(0, args['base-cached-only'] ? 1 : 2)) {
    const samples = await alternate(args.runs, ...Object.values(variants).map((v) => () => sample(v, args.settle, setup.disk)(emptyNode)));
    scenarios[scenario] = Object.fromEntries(Object.keys(variants).map((name, i) => [name, summarize(samples[i])]));
    process.stderr.write(`[b10] scenario ${scenario} done (load ${loadavg()[0].toFixed(1)})\n`);
  }
  const imports = await importTwice(setup, h, { policies, images }, daemons);
  const first = policies[0];
  const blobs = {
    gzip: await fetchBlobs(host, images[`${first} gzip`].tag, images[`${first} gzip`].digests, join(scratch, 'blobs-gzip')),
    zstd: await fetchBlobs(host, images[`${first} zstd`].tag, images[`${first} zstd`].digests, join(scratch, 'blobs-zstd')),
  };
  const floors = await floorVariants(blobs, scratch, haveUnpigz, args.settle);
  const floorSamples = await alternate(args.runs, ...Object.values(floors));
  const floor = Object.fromEntries(Object.keys(floors).map((name, i) => [name, summarize(floorSamples[i])]));
  const built = Object.fromEntries(Object.entries(images).map(([k, v]) => [k, { layers: v.layers, bytes: v.bytes }]));
  const versions = setup.sets.map((set) => ({ root: set.root || 'system', dockerd: set.docker.version, containerd: set.ctr.version }));
  return { versions, unpigz: haveUnpigz, settle: args.settle, criPull: criPull.reason ?? 'built', images: built, scenarios, imports, floor: { policy: first, ...floor } };
}

/** Medians (min–max) of each figure the samples have. */
function summarize(samples) {
  return Object.fromEntries(Object.keys(samples[0]).filter((k) => samples[0][k] !== undefined).map((k) => [k, stats(samples.map((s) => s[k]))]));
}

const IMPORT_TWICE = (py, code, prefix) => {
  const timer = `import time; t = time.perf_counter(); exec(${JSON.stringify(code.replace(/; print\(.*$/, ''))}); print("%.3f" % (time.perf_counter() - t), flush=True)`;
  return ['sh', '-c', `${py} -c '${timer}' && ${py} -c '${timer}' && find ${prefix} -name '*.pyc' -newer ${py} | wc -l`];
};

/**
 * The task's imports twice in one container (two processes), right after a pull of the zstd image
 * by containerd and by Docker from Engine 23 on (the gzip image by older ones), and with --erofs of
 * the native EROFS image on the erofs snapshotter (`ctr` and Docker), base cached, the
 * disk settled: first and second import (ms) and the pycs the first wrote, for each layering of
 * --pull-layers (alternated in each round). Issue 19: first ≤ 1.1× the second.
 */
async function importTwice({ args, base, sets, disk }, h, { policies, images }, daemons) {
  const prefix = h.PY.replace(/\/bin\/python$/, '');
  const cmd = IMPORT_TWICE(h.PY, h.CODE, prefix);
  const cases = sets.flatMap((set, i) => {
    const [d, c, c8d, erofs] = [daemons[i].dockerds[0], daemons[i].containerds[0], daemons[i].c8ds[0], daemons[i].erofs];
    const docker = (label, dd, codec) => ({ label, codec, r: (tag) => runtimes.docker(dd, tag, base, h), run: (tag) => dd.docker('run', '--rm', '--network=host', tag, ...cmd) });
    const ctr = (label, cc, codec) => ({ label, codec, r: (tag) => runtimes.ctr(cc, tag, base, h), run: (tag) => exec(cc.bin, ['-a', cc.sock, 'run', ...snapshotterArgs(cc), '--rm', '--net-host', tag, h.runName(), ...cmd]) });
    return [
      docker(set.docker.label, d, set.docker.zstd ? 'zstd' : 'gzip'),
      ...(c8d ? [docker(set.docker.c8d, c8d, 'zstd')] : []),
      ctr(set.ctr.label, c, 'zstd'),
      // --erofs: the native EROFS image, its files decompressed by the kernel as the first import reads them.
      ...(erofs?.ctr ? [ctr(set.erofs.ctr, erofs.ctr, 'erofs')] : []),
      ...(erofs?.docker ? [docker(set.erofs.docker, erofs.docker, 'erofs')] : []),
    ];
  });
  const out = {};
  for (const { label, codec, r, run } of cases.filter((k) => selected(args, k.label))) {
    // The layerings alternate in each round (--pull-layers grouped,single), the one that goes first changing from round to round.
    const samples = await alternate(args.runs, ...policies.map((policy) => async () => {
      const tag = images[`${policy} ${codec}`].tag;
      const v = r(tag);
      await v.reset(false);
      await disk.trim();
      await settle(args.settle);
      await v.pull();
      // --import-sync: the pull's writes settled before the first import, so the first/second gap is the image's alone.
      if (args['import-sync']) await settle('sync');
      const [first, second, written] = (await run(tag)).stdout.trim().split('\n').map(Number);
      return { first: first * 1000, second: second * 1000, written };
    }));
    policies.forEach((policy, i) => {
      const s = samples[i];
      out[`${label}: ${policy} ${codec}`] = { ...summarize(s), firstOverSecond: ratio(median(s.map((x) => x.first)), median(s.map((x) => x.second))) };
    });
  }
  return out;
}

const fmtPart = (f, k, label) => (f[k] ? `, ${label} ${fmtMs(f[k].median)}` : '');

export function pullLines(b10) {
  const lines = [`  images: ${Object.entries(b10.images).map(([k, v]) => `${k} ${v.layers} layers ${fmtBytes(v.bytes)}`).join('; ')}${b10.unpigz ? '' : ' (no unpigz on PATH: the unpigz variants are left out)'}`];
  for (const v of b10.versions) lines.push(`  runtimes (${v.root}): ${v.dockerd}; ${v.containerd}`);
  lines.push(`  each sample after \`${b10.settle === 'sync' ? 'sync' : 'no sync'}\`; CRI-style pull: ${b10.criPull}`);
  for (const [scenario, figures] of Object.entries(b10.scenarios)) {
    lines.push(`  B2 (${scenario})`);
    for (const [name, f] of Object.entries(figures)) {
      const atStart = figures[`${name.split(':')[0]}: env created at start`].total.median;
      const parts = `pull ${fmtMs(f.pull.median)}${fmtPart(f, 'fetch', 'fetch')}${fmtPart(f, 'unpack', 'unpack')}, run ${fmtMs(f.run.median)}; daemon CPU ${fmtMs(f.daemonCpu.median)}${fmtPart(f, 'clientCpu', 'client CPU')}; dirty at start ${fmtBytes(f.dirty.median)}`;
      lines.push(`    ${name.padEnd(36)} total ${fmtStats(f.total)}; ${parts}; ×${ratio(f.total.median, atStart)} of env at start`);
    }
  }
  lines.push('  first and second import in one container right after the pull (base cached); pycs the first wrote:');
  for (const [name, f] of Object.entries(b10.imports)) lines.push(`    ${name.padEnd(36)} first ${fmtStats(f.first)}; second ${fmtStats(f.second)}; first/second ${f.firstOverSecond}; pycs written ${f.written.median}`);
  lines.push(`  floor, the ${b10.floor.policy} image's env layers one after the other:`);
  for (const [name, s] of Object.entries(b10.floor)) if (name !== 'policy') lines.push(`    ${name.padEnd(30)} ${fmtStats(s.total)}; CPU ${fmtMs(s.cpu.median)}`);
  return lines;
}
