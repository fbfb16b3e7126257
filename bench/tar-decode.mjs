#!/usr/bin/env node
/**
 * The materializer's tar reading alone: `readTarBuffer` (conda's in-memory reader, its headers
 * decoded by core's strict tar reader) with a handler that does nothing, over the package tars of
 * the realistic corpus (each `.conda`'s `pkg-*.tar.zst`, decompressed once before timing), against
 * an earlier built checkout's, passes alternated in one process. Prints medians and the paired
 * ratio (this tree's pass over the earlier one's).
 *
 *   pnpm build && node bench/tar-decode.mjs --before <a built checkout> [--runs 30]
 *
 * Needs `unzip` and `zstd` on the PATH, and the realistic corpus (bench/materialize.mjs --env realistic).
 */
import { execFileSync } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { readTarBuffer } from '../packages/conda/dist/materialize/tar-buffer.js';
import { alternate, fail, machine, median } from './lib.mjs';
import { corpusDir } from './materialize-realistic.mjs';

const { values } = parseArgs({ options: { before: { type: 'string' }, runs: { type: 'string', default: '30' } } });
if (!values.before) fail('--before <a built checkout of an earlier prebuilt> is required.');
const dir = await corpusDir();
const names = (await readdir(dir)).filter((n) => n.endsWith('.conda')).sort();
const tars = names.map((n) => execFileSync('sh', ['-c', 'unzip -p "$1" "pkg-*.tar.zst" | zstd -dq', 'sh', join(dir, n)], { maxBuffer: 1 << 30 }));
const earlier = (await import(join(resolve(values.before), 'packages/conda/dist/materialize/tar-buffer.js'))).readTarBuffer;
const noop = async () => undefined;

/** One pass over every tar: its time in ms. */
const pass = (read) => async () => {
  const start = performance.now();
  for (const tar of tars) await read(tar, 'bench', noop);
  return performance.now() - start;
};
let entries = 0;
for (const tar of tars) entries += await readTarBuffer(tar, 'bench', noop);
// Warm both (JIT) before timing.
for (let i = 0; i < 3; i++) await Promise.all([pass(readTarBuffer)(), pass(earlier)()]);
const [now, before] = await alternate(Number(values.runs), pass(readTarBuffer), pass(earlier));
const ratios = now.map((ms, i) => ms / before[i]);
const mb = tars.reduce((n, t) => n + t.length, 0) / 1e6;
console.log(`tar reading: ${tars.length} package tars, ${mb.toFixed(0)} MB, ${entries} entries, ${now.length} alternated passes`);
console.log(`  this tree     ${median(now).toFixed(1)} ms per pass`);
console.log(`  before        ${median(before).toFixed(1)} ms per pass (${values.before})`);
console.log(`  paired ratio  ${median(ratios).toFixed(2)} (${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)})`);
console.log(`  machine: ${JSON.stringify(machine())}`);
