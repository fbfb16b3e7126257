/**
 * Where an EROFS layer's first import goes: the realistic env's context (B9/B10's,
 * bench/materialized-context.mjs) made into EROFS images by mkfs.erofs with prebuilt's options
 * (MKFS_EROFS_OPTIONS, from the built oci package) and with other compressions and cluster sizes,
 * each mounted at the env's prefix the way containerd's erofs snapshotter mounts a layer on
 * Linux ≥ 6.12 (a file-backed mount: mount(2) on the image file, no loop device), right after its
 * file was read into the page cache (as after a pull). In each mount the task's imports run twice,
 * in two processes of the host's python3.11 (the corpus' Python version; no bytecode written): the
 * first reads the files from the image, the second from the page cache. Beside them: the same
 * files extracted by `tar -x` into a directory (a tar layer's files, in the page cache after the
 * unpack), and with --loop prebuilt's image through a loop device (`mount -o loop`: how kernels
 * before 6.12 mount it). Variants interleaved, the order rotating every round. The `prebuilt-raw-*`
 * variants are prebuilt's compression with some files stored uncompressed (mkfs.erofs
 * --compress-hints, a pcluster size of 0): pycs, `.py` and pycs, shared libraries, or both.
 *
 * Prints per variant: the image's size and mkfs time, the first and second import (medians,
 * min–max), their ratio and the median of the paired ratios first ÷ second (each round's). Needs root, the kernel's erofs, mkfs.erofs ≥ 1.8 on
 * PATH (scripts/setup.sh builds it), /usr/bin/python3.11 and the realistic corpus.
 *
 *   node bench/erofs-first-import.mjs [--runs 8] [--variants prebuilt,lz4-C16k,lz4hc-C64k,none] [--loop] [--json]
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { alternate, benchArgs, fail, fmtBytes, fmtMs, machine, median, output, ratio, stats } from './lib.mjs';
import { materializedContexts } from './materialized-context.mjs';

const PREFIX = '/opt/prebuilt/envs/bench';
const PYTHON = '/usr/bin/python3.11';
const SITE = `${PREFIX}/lib/python3.11/site-packages`;
const CODE = 'import time; t = time.perf_counter(); import pandas, sklearn, sklearn.linear_model; print((time.perf_counter() - t) * 1000)';
const STATE_DIR = process.env.PREBUILT_BENCH_DIR ?? '/var/tmp/prebuilt-bench';
// mount(2) of an image file with no loop device (what `mount` from util-linux does not do for a file).
const FILE_MOUNT = 'import ctypes, os, sys\nlibc = ctypes.CDLL(None, use_errno=True)\nif libc.mount(sys.argv[1].encode(), sys.argv[2].encode(), b"erofs", 1, None) != 0:\n    sys.exit("mount: " + os.strerror(ctypes.get_errno()))\n';

const args = benchArgs({ runs: 8 }, { variants: { type: 'string', default: 'prebuilt,lz4-C16k,lz4hc-C64k,none' }, loop: { type: 'boolean', default: false } });
const oci = await import(new URL('../packages/oci/dist/index.js', import.meta.url).href);
/** The compression arguments of prebuilt's own options, and the other variants'. */
const PREBUILT = oci.MKFS_EROFS_OPTIONS.filter((o) => /^-[zC]/.test(o));
const VARIANTS = {
  prebuilt: PREBUILT,
  'lz4-C16k': ['-zlz4', '-C16384'],
  'lz4-C64k': ['-zlz4', '-C65536'],
  'lz4hc-C64k': ['-zlz4hc', '-C65536'],
  none: [],
  // prebuilt's compression with some files left uncompressed (mkfs.erofs --compress-hints: a
  // pcluster size of 0 for the paths matching the pattern).
  'prebuilt-raw-pyc': { options: PREBUILT, hints: ['0 \\.pyc$'] },
  'prebuilt-raw-py': { options: PREBUILT, hints: ['0 \\.pyc?$'] },
  'prebuilt-raw-so': { options: PREBUILT, hints: ['0 \\.so(\\.[0-9]+)*$'] },
  'prebuilt-raw-pyc-so': { options: PREBUILT, hints: ['0 \\.pyc$', '0 \\.so(\\.[0-9]+)*$'] },
};
const names = args.variants.split(',').map((v) => v.trim()).filter(Boolean);
for (const name of names) if (!VARIANTS[name]) fail(`--variants: unknown '${name}'; known: ${Object.keys(VARIANTS).join(', ')}`);

if (process.getuid?.() !== 0) fail('mounting EROFS images needs root.');
if (!/\berofs$/m.test(await readFile('/proc/filesystems', 'utf8'))) fail('the kernel has no erofs file system (/proc/filesystems): modprobe erofs.');
if (!existsSync(PYTHON)) fail(`${PYTHON} is missing (the corpus' Python): apt-get install python3.11 (scripts/setup.sh does).`);
await oci.findMkfsErofs(process.env).catch((error) => fail(`${error.message}${error.hint ? `\n  ${error.hint}` : ''}`));
if (spawnSync('mountpoint', ['-q', PREFIX]).status === 0) fail(`${PREFIX} is a mount point already: unmount it first.`);
await mkdir(PREFIX, { recursive: true });
if ((await readdir(PREFIX)).length > 0) fail(`${PREFIX} is not empty: the bench mounts the env there.`);

const { ctx } = await materializedContexts({ prefix: PREFIX });
const work = join(STATE_DIR, 'erofs-first-import');
await rm(work, { recursive: true, force: true });
await mkdir(work, { recursive: true });
const tarFile = join(work, 'env.tar');
execFileSync('tar', ['--sort=name', '-C', join(ctx, 'prefix'), '-cf', tarFile, '.']);

const images = {};
for (const name of names) {
  const file = join(work, `${name}.erofs`);
  const started = performance.now();
  const { options, hints } = Array.isArray(VARIANTS[name]) ? { options: VARIANTS[name], hints: [] } : VARIANTS[name];
  const hintArgs = [];
  if (hints.length > 0) {
    await writeFile(join(work, `${name}.hints`), `${hints.join('\n')}\n`);
    hintArgs.push(`--compress-hints=${join(work, `${name}.hints`)}`);
  }
  execFileSync('mkfs.erofs', ['--tar=f', ...options, ...hintArgs, '-T0', '--mkfs-time', '-Uclear', '--quiet', file, tarFile]);
  images[name] = { file, options: [...options, ...hints.map((h) => `hint '${h}'`)].join(' ') || '(uncompressed)', mkfsMs: Math.round(performance.now() - started), bytes: (await stat(file)).size };
}
const dir = join(work, 'dir');

/** The imports' time in ms, in a new python process, the env mounted at PREFIX. */
function importMs() {
  const out = execFileSync(PYTHON, ['-c', CODE], { encoding: 'utf8', env: { ...process.env, PYTHONPATH: SITE, PYTHONDONTWRITEBYTECODE: '1' } });
  return Number(out.trim());
}

/** Mounts with `mount`, runs the imports twice, unmounts: [first, second]. */
function twice(mount) {
  mount();
  try {
    return [importMs(), importMs()];
  } finally {
    execFileSync('umount', [PREFIX]);
  }
}

const runs = [
  ...names.map((name) => ({
    name: `erofs ${name}`,
    run: () => {
      execFileSync('cat', [images[name].file], { stdio: ['ignore', 'ignore', 'inherit'] });
      return twice(() => execFileSync(PYTHON, ['-c', FILE_MOUNT, images[name].file, PREFIX], { stdio: 'inherit' }));
    },
  })),
  ...(args.loop && names.includes('prebuilt')
    ? [{ name: 'erofs prebuilt, loop device', run: () => {
        execFileSync('cat', [images.prebuilt.file], { stdio: ['ignore', 'ignore', 'inherit'] });
        return twice(() => execFileSync('mount', ['-o', 'loop,ro', '-t', 'erofs', images.prebuilt.file, PREFIX]));
      } }]
    : []),
  {
    name: 'tar -x into a directory',
    run: () => {
      execFileSync('rm', ['-rf', dir]);
      execFileSync('mkdir', ['-p', dir]);
      execFileSync('tar', ['-C', dir, '-xf', tarFile]);
      execFileSync('sync');
      return twice(() => execFileSync('mount', ['--bind', dir, PREFIX]));
    },
  },
];
const samples = await alternate(args.runs, ...runs.map((r) => () => r.run()));
await rm(work, { recursive: true, force: true });

const rows = runs.map((r, i) => {
  const first = samples[i].map(([a]) => a);
  const second = samples[i].map(([, b]) => b);
  const paired = samples[i].map(([a, b]) => ratio(a, b));
  const variant = r.name.startsWith('erofs ') ? r.name.slice(6).replace(/, loop device$/, '') : null;
  return { name: r.name, ...(variant ? { image: images[variant] } : {}), first: stats(first), second: stats(second), ratio: ratio(stats(first).median, stats(second).median), paired, pairedMedian: Math.round(median(paired) * 100) / 100 };
});
const result = { machine: machine(), context: ctx, runs: args.runs, rows };
const range = (s) => `${fmtMs(s.median)} (${fmtMs(s.min)}–${fmtMs(s.max)})`;
output(args, result, [
  `first vs second import (pandas, sklearn) of the realistic env, ${args.runs} rounds, interleaved:`,
  ...rows.map((row) => `  ${row.name}${row.image ? ` [${row.image.options}; ${fmtBytes(row.image.bytes)}, mkfs ${fmtMs(row.image.mkfsMs)}]` : ''}: first ${range(row.first)}, second ${range(row.second)} → ${row.ratio}×; paired ${row.pairedMedian}× median [${row.paired.join(' ')}]`),
]);
