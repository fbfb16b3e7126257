/**
 * The materializer on the realistic env (`node bench/materialize.mjs --env realistic`): the
 * Debian scientific corpus (82 conda packages) read from its cache in
 * $PREBUILT_BENCH_DIR/corpus (generate it once with `node bench/cold-start.mjs --env realistic`
 * or `pnpm bench --only b2 --env realistic`), put into a fresh package cache (untimed), then,
 * interleaved in one run:
 *   full     — materializeEnv with an empty extraction cache (every package extracted and linked);
 *   rebuild  — materializeEnv with the extraction cache filled by an earlier build except for one
 *              package (as when one package of the lock changed);
 *   tar -x   — GNU tar extracting an uncompressed tar of the same materialized files (the floor:
 *              the same bytes written, without decompression, jail or bytecode);
 *   before   — with `--before DIR` (a built checkout of an earlier prebuilt), that checkout's
 *              materializeEnv on the same lock and package cache, its extraction cache empty too.
 * Everything a variant writes (its output, the package cache with the extraction cache, the tar and
 * `tar -x`'s output) is in `work`: on the node disk of `--node-disk` (materialize.mjs; a fresh
 * journaled ext4 by default). What a variant leaves (its output, the extraction cache it empties) is moved aside, not deleted,
 * until every run is done: ext4 without a journal (this machine's root file system) skips inodes
 * freed in the last 60–360 s when it allocates new ones (fs/ext4/ialloc.c, recently_deleted), so
 * deleting one variant's 17,000 files made the next variant's file creations in the same block
 * groups several times slower — the cleanup, not the variant, was measured.
 * Prints medians (min–max) and the ratios tar-x/full (the materializer's speed as a fraction of
 * `tar -x`) and rebuild/full, and each variant's CPU time (this process's threads and its
 * children's: on a loaded machine the wall times depend on the other load, the CPU far less), and
 * the main thread's and the extraction worker's shares of it (the rest: the libuv pool's, V8's).
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { copyFile, mkdir, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { materializeEnv, PackageCache } from '../packages/conda/dist/index.js';
import { alternate, fail, fmtMs, machine, prunedText, ratio, stats } from './lib.mjs';

const STATE_DIR = process.env.PREBUILT_BENCH_DIR ?? '/var/tmp/prebuilt-bench';
/** Clock ticks per second of /proc/<pid>/stat's times (USER_HZ, 100 on Linux). */
const CLOCK_TICKS = 100;

/** The newest cached corpus directory (one holding artifacts.json). */
export async function corpusDir() {
  const root = join(STATE_DIR, 'corpus');
  const dirs = [];
  for (const name of await readdir(root).catch(() => [])) {
    if (!name.startsWith('debian-scientific-')) continue;
    const info = await stat(join(root, name, 'artifacts.json')).catch(() => undefined);
    if (info) dirs.push({ dir: join(root, name), mtime: info.mtimeMs });
  }
  if (dirs.length === 0) fail(`no realistic corpus in ${root}; generate it once with \`node bench/cold-start.mjs --env realistic --runs 1\`.`);
  return dirs.sort((a, b) => b.mtime - a.mtime)[0].dir;
}

/** A lock over every artifact of the corpus (conda packages sorted by name, as locks are). */
export async function realisticLock(dir) {
  const artifacts = JSON.parse(await readFile(join(dir, 'artifacts.json'), 'utf8'));
  const python = artifacts.find((a) => a.record.name === 'python');
  const channel = 'http://127.0.0.1:5186/debian';
  const packages = artifacts
    .map((a) => ({
      kind: 'conda', name: a.record.name, version: a.record.version, build: a.record.build,
      url: `${channel}/${a.subdir}/${a.filename}`, sha256: a.record.sha256, size: a.record.size, filename: a.filename, subdir: a.subdir,
    }))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const lock = {
    specHash: 'bench-realistic',
    request: { python: '3.11', conda: {}, pypi: {}, channels: [channel], platform: 'linux-64' },
    platform: 'linux-64',
    pythonVersion: python.record.version,
    packages,
  };
  return { lock, files: artifacts.map((a) => ({ file: join(dir, a.filename), sha256: a.record.sha256, size: a.record.size })) };
}

export async function runRealistic({ runs, work, json, before, cacheDir: keptCache, nodeDisk = 'root', changed = 'six', prune = [] }) {
  // The threads there before any build (the main thread, V8's, the libuv pool's once a file was
  // read): a thread started later under the main thread's name is an extraction worker's
  // (extract-pool.ts starts them on demand; a native module's own threads, as napi-rs's tokio
  // runtime, have names of their own).
  await readdir(work);
  const startThreads = new Set(readdirSync('/proc/self/task'));
  const threadName = (tid) => readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').trim();
  const mainName = threadName(process.pid);
  const dir = await corpusDir();
  const { lock, files } = await realisticLock(dir);
  // The package cache (archives, extraction cache, bytecode cache) is in `work`, on the node disk
  // with the outputs (the extraction cache hard-links into them). --cache-dir: a package cache kept
  // between runs, elsewhere: its archives and bytecode cache are copied in (untimed; the bytecode
  // cache spares the untimed first build's compile) and the bytecode cache copied back at the end.
  const cacheDir = join(work, 'cache');
  await mkdir(join(cacheDir, 'pkgs'), { recursive: true });
  const copyTree = (from, to) => execFileSync('sh', ['-c', `mkdir -p "$2" && cp -a "$1/." "$2/"`, 'sh', from, to]);
  if (keptCache) {
    for (const name of ['pkgs', 'bytecode']) if (await stat(join(keptCache, name)).catch(() => undefined)) copyTree(join(keptCache, name), join(cacheDir, name));
  }
  for (const f of files) if (!(await stat(join(cacheDir, 'pkgs', f.sha256)).catch(() => undefined))) await copyFile(f.file, join(cacheDir, 'pkgs', f.sha256));
  const cache = () => new PackageCache({ cacheDir });
  const prefix = '/opt/prebuilt/envs/0123456789abcdef';
  const archiveBytes = files.reduce((sum, f) => sum + f.size, 0);

  // Moved aside (see the header), removed with `work` when every run is done.
  const trash = join(work, 'trash');
  await mkdir(trash, { recursive: true });
  let discarded = 0;
  const discard = async (path) => {
    if (!(await stat(path).catch(() => undefined))) return;
    discarded += 1;
    // Another file system (a --cache-dir elsewhere): removed at once.
    await rename(path, join(trash, String(discarded))).catch(() => rm(path, { recursive: true, force: true }));
  };
  // Untimed: verify the package cache, warm the bytecode cache, make the tar of the result.
  const first = join(work, 'env-first');
  await materializeEnv({ lock, prefix, outDir: first, cache: cache() });
  const tarFile = join(work, 'env.tar');
  execFileSync('tar', ['-cf', tarFile, '-C', first, '.']);
  const installedBytes = Number(execFileSync('du', ['-sb', first], { encoding: 'utf8' }).split('\t')[0]);
  const fileCount = Number(execFileSync('sh', ['-c', `find '${first}' -type f | wc -l`], { encoding: 'utf8' }).trim());
  await discard(first);

  const extractDir = join(cacheDir, 'extracted');
  const changedPkg = lock.packages.find((p) => p.name === changed) ?? lock.packages[0];
  const evict = async () => {
    for (const name of await readdir(extractDir).catch(() => [])) {
      if (name.includes(changedPkg.sha256)) await discard(join(extractDir, name));
    }
  };
  // CPU of a variant: this process's (every thread: the extraction workers too) and its children's
  // (tar, the bytecode compiler), from /proc/self/stat once they are waited for.
  const cpuNow = () => {
    const fields = readFileSync('/proc/self/stat', 'utf8').split(') ')[1].split(' ');
    const { user, system } = process.cpuUsage();
    return (user + system) / 1000 + ((Number(fields[13]) + Number(fields[14])) * 1000) / CLOCK_TICKS;
  };
  // The main thread's CPU alone (/proc/self/task/<pid>/stat): the rest of the process's is the
  // extraction worker's, the libuv pool's (zstd, large writes) and V8's (GC).
  const mainCpuNow = () => {
    const fields = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS;
  };
  // The extraction workers' CPU (user, system): the threads named as the main thread started since startThreads, by /proc/self/task/<tid>/stat.
  const workerCpuNow = () => {
    const now = new Map();
    for (const tid of readdirSync('/proc/self/task')) {
      if (startThreads.has(tid)) continue;
      const fields = (() => {
        try {
          return threadName(tid) === mainName ? readFileSync(`/proc/self/task/${tid}/stat`, 'utf8').split(') ')[1].split(' ') : undefined;
        } catch {
          return undefined; // ended meanwhile
        }
      })();
      if (fields) now.set(tid, { user: (Number(fields[11]) * 1000) / CLOCK_TICKS, system: (Number(fields[12]) * 1000) / CLOCK_TICKS });
    }
    return now;
  };
  const workerCpuSince = (then, now) => {
    let user = 0;
    let system = 0;
    for (const [tid, t] of now) {
      user += t.user - (then.get(tid)?.user ?? 0);
      system += t.system - (then.get(tid)?.system ?? 0);
    }
    return { user, system };
  };
  const cpu = new Map();
  const mainCpu = new Map();
  const workerCpu = new Map();
  const workerUser = new Map();
  const workerSystem = new Map();
  const push = (map, name, value) => (map.get(name) ?? map.set(name, []).get(name)).push(value);
  const timed = async (fn, name) => {
    const out = join(work, 'out');
    await discard(out);
    const c = cpuNow();
    const m = mainCpuNow();
    const w = workerCpuNow();
    const t = performance.now();
    await fn(out);
    const ms = performance.now() - t;
    push(cpu, name, cpuNow() - c);
    push(mainCpu, name, mainCpuNow() - m);
    const worker = workerCpuSince(w, workerCpuNow());
    push(workerCpu, name, worker.user + worker.system);
    push(workerUser, name, worker.user);
    push(workerSystem, name, worker.system);
    await discard(out);
    return ms;
  };
  const earlier = before ? await import(join(before, 'packages/conda/dist/index.js')) : undefined;
  // Untimed: the earlier checkout's bytecode cache (its keys differ) is warmed too.
  if (earlier) await earlier.materializeEnv({ lock, prefix, outDir: join(work, 'env-before'), cache: new earlier.PackageCache({ cacheDir }) }).then(() => discard(join(work, 'env-before')));
  const variants = [
    () => discard(extractDir).then(() => timed((out) => materializeEnv({ lock, prefix, outDir: out, cache: cache() }), 'full')),
    () => evict().then(() => timed((out) => materializeEnv({ lock, prefix, outDir: out, cache: cache() }), 'rebuild')),
    () => timed(async (out) => {
      await mkdir(out);
      execFileSync('tar', ['-xf', tarFile, '-C', out]);
    }, 'tarX'),
    ...(earlier ? [() => discard(extractDir).then(() => timed((out) => earlier.materializeEnv({ lock, prefix, outDir: out, cache: new earlier.PackageCache({ cacheDir }) }), 'before'))] : []),
  ];
  // --prune: the full build again with the prune presets (what it left out is the same every run).
  let pruned;
  if (prune.length > 0) {
    const runPruned = (out) => materializeEnv({ lock, prefix, outDir: out, cache: cache(), prune }).then((r) => (pruned = r.pruned));
    variants.push(() => discard(extractDir).then(() => timed(runPruned, 'pruned')));
  }
  const timings = await alternate(runs, ...variants);
  const [full, rebuild, tarX] = timings;
  const beforeFull = earlier ? timings[3] : undefined;
  const prunedFull = prune.length > 0 ? timings.at(-1) : undefined;
  if (keptCache) {
    copyTree(join(cacheDir, 'pkgs'), join(keptCache, 'pkgs'));
    copyTree(join(cacheDir, 'bytecode'), join(keptCache, 'bytecode'));
  }
  const result = {
    env: 'realistic',
    corpus: dir,
    packages: lock.packages.length,
    archiveMiB: +(archiveBytes / 2 ** 20).toFixed(1),
    installedMiB: +(installedBytes / 2 ** 20).toFixed(1),
    files: fileCount,
    changed: changedPkg.filename,
    nodeDisk,
    runs,
    fullMs: stats(full),
    rebuildMs: stats(rebuild),
    tarXMs: stats(tarX),
    ...(beforeFull ? { before, beforeMs: stats(beforeFull), beforeVsTarX: ratio(stats(tarX).median, stats(beforeFull).median) } : {}),
    cpuMs: Object.fromEntries([...cpu].map(([name, list]) => [name, stats(list)])),
    mainThreadCpuMs: Object.fromEntries([...mainCpu].filter(([name]) => name !== 'tarX').map(([name, list]) => [name, stats(list)])),
    workerThreadCpuMs: Object.fromEntries([...workerCpu].filter(([name]) => name !== 'tarX').map(([name, list]) => [name, { ...stats(list), user: stats(workerUser.get(name)).median, system: stats(workerSystem.get(name)).median }])),
    materializerVsTarX: ratio(stats(tarX).median, stats(full).median),
    materializerVsTarXCpu: ratio(stats(cpu.get('tarX')).median, stats(cpu.get('full')).median),
    rebuildVsFull: ratio(stats(rebuild).median, stats(full).median),
    ...(prunedFull ? { prune: pruned, prunedMs: stats(prunedFull), prunedVsFull: ratio(stats(prunedFull).median, stats(full).median) } : {}),
    machine: machine(),
  };
  if (json) console.log(JSON.stringify(result, null, 2));
  else {
    const s = (x) => `${fmtMs(x.median)} (${fmtMs(x.min)}–${fmtMs(x.max)})`;
    console.log(`materialize, realistic env: ${result.packages} packages, ${result.archiveMiB} MiB of archives, ${result.installedMiB} MiB / ${result.files} files installed, ${runs} interleaved runs, node disk: ${nodeDisk}`);
    console.log(`  full (empty extraction cache)       ${s(result.fullMs)}  = ${(installedBytes / 1e6 / (result.fullMs.median / 1000)).toFixed(0)} MB/s`);
    console.log(`  rebuild (${result.changed} changed)  ${s(result.rebuildMs)}  = ${result.rebuildVsFull}× full`);
    console.log(`  tar -x of the same files            ${s(result.tarXMs)}  → materializer = ${result.materializerVsTarX}× tar -x`);
    if (beforeFull) console.log(`  before (${before})  ${s(result.beforeMs)}  → ${result.beforeVsTarX}× tar -x`);
    if (prunedFull) console.log(`  full, pruned (${pruned.presets.join(', ')}: ${prunedText(pruned)})  ${s(result.prunedMs)}  = ${result.prunedVsFull}× full`);
    const c = result.cpuMs;
    console.log(`  cpu (process, all threads, and children): full ${s(c.full)}, rebuild ${s(c.rebuild)}, tar -x ${s(c.tarX)}${c.before ? `, before ${s(c.before)}` : ''}  → materializer = ${result.materializerVsTarXCpu}× tar -x in cpu`);
    const mt = result.mainThreadCpuMs;
    console.log(`  main thread's cpu: full ${s(mt.full)}, rebuild ${s(mt.rebuild)}${mt.before ? `, before ${s(mt.before)}` : ''}`);
    const wt = result.workerThreadCpuMs;
    const us = (x) => `${s(x)} [user ${fmtMs(x.user)}, system ${fmtMs(x.system)}]`;
    console.log(`  extraction worker's cpu (the rest: the libuv pool's, V8's compiler and GC): full ${us(wt.full)}, rebuild ${us(wt.rebuild)}${wt.before ? `, before ${us(wt.before)}` : ''}`);
    console.log(`  machine: ${JSON.stringify(result.machine)}`);
  }
}
