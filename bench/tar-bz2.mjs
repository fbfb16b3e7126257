#!/usr/bin/env node
/**
 * The streaming tar path (`readTarStream`: a `.tar.bz2`, or a `.conda` body too big to decompress
 * in one call) against an earlier built checkout's, alternated in one process: (1) the extraction
 * of the realistic corpus's biggest package made into a `.tar.bz2` (`extractCondaPackage`: bzip2,
 * tar reading, scratch files), wall and this process's CPU; (2) the tar reading alone, the same tar
 * from memory in 64 KiB chunks, every body read. Prints medians and paired ratios (this tree's over
 * the earlier one's).
 *
 *   pnpm build && node bench/tar-bz2.mjs --before <a built checkout> [--runs 7]
 *
 * Needs `unzip`, `zstd` and `bzip2` on the PATH, and the realistic corpus (bench/materialize.mjs --env realistic).
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { alternate, fail, machine, median } from './lib.mjs';
import { corpusDir } from './materialize-realistic.mjs';

const { values } = parseArgs({ options: { before: { type: 'string' }, runs: { type: 'string', default: '7' } } });
if (!values.before) fail('--before <a built checkout of an earlier prebuilt> is required.');
const runs = Number(values.runs);
const dir = await corpusDir();
const sizes = await Promise.all((await readdir(dir)).filter((n) => n.endsWith('.conda')).map(async (n) => ({ n, size: (await stat(join(dir, n))).size })));
const biggest = sizes.sort((a, b) => b.size - a.size)[0].n;
const work = await mkdtemp(join(tmpdir(), 'prebuilt-bench-tar-bz2-'));
const label = biggest.replace(/\.conda$/, '.tar.bz2');
const file = join(work, label);
// The info tar then the body tar, as one tar (the readers skip the end-of-archive blocks between them).
const tar = execFileSync('sh', ['-c', 'unzip -p "$1" "info-*.tar.zst" | zstd -dq; unzip -p "$1" "pkg-*.tar.zst" | zstd -dq', 'sh', join(dir, biggest)], { maxBuffer: 1 << 30 });
execFileSync('sh', ['-c', 'bzip2 -9 -c > "$1"', 'sh', file], { input: tar, maxBuffer: 1 << 30 });

const load = async (root) => ({
  ...(await import(join(resolve(root), 'packages/conda/dist/materialize/conda-extract.js'))),
  ...(await import(join(resolve(root), 'packages/conda/dist/materialize/archive.js'))),
});
const trees = [await load('.'), await load(values.before)];
const readAll = async (_header, content) => {
  for await (const chunk of content) void chunk;
};
async function* chunks() {
  for (let at = 0; at < tar.length; at += 65_536) yield tar.subarray(at, at + 65_536);
}

/** One extraction: wall and CPU ms. */
const extraction = (tree, name) => async (i) => {
  const scratch = join(work, `${name}-${i}`);
  const [start, cpu] = [performance.now(), process.cpuUsage()];
  await tree.extractCondaPackage(file, label, scratch);
  const used = process.cpuUsage(cpu);
  const wall = performance.now() - start;
  await rm(scratch, { recursive: true, force: true });
  return { wall, cpu: (used.user + used.system) / 1000 };
};
const reading = (tree) => async () => {
  const start = performance.now();
  await tree.readTarStream(chunks(), label, readAll);
  return { wall: performance.now() - start };
};

const report = (what, now, before, key) => {
  const ratios = now.map((s, i) => s[key] / before[i][key]);
  console.log(`  ${what}: this tree ${median(now.map((s) => s[key])).toFixed(0)} ms, before ${median(before.map((s) => s[key])).toFixed(0)} ms, paired ratio ${median(ratios).toFixed(2)} (${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)})`);
};
try {
  const entries = await trees[0].readTarStream(chunks(), label, readAll);
  console.log(`${label}: ${(tar.length / 1e6).toFixed(0)} MB of tar, ${entries} entries, ${runs} alternated runs (before: ${values.before})`);
  for (const [i, tree] of trees.entries()) await extraction(tree, `warm${i}`)(0);
  const [now, before] = await alternate(runs, extraction(trees[0], 'now'), extraction(trees[1], 'before'));
  report('extraction wall', now, before, 'wall');
  report('extraction CPU', now, before, 'cpu');
  const [readNow, readBefore] = await alternate(runs * 4, reading(trees[0]), reading(trees[1]));
  report('tar reading alone', readNow, readBefore, 'wall');
  console.log(`  machine: ${JSON.stringify(machine())}`);
} finally {
  await rm(work, { recursive: true, force: true });
}
