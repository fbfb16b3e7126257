#!/usr/bin/env node
/**
 * Runs the benchmarks one after the other (never two at once) and prints their figures: `pnpm bench`.
 *
 *   node bench/run-all.mjs [--runs 3] [--only b1,b2,b3,b4,b5] [--json]
 *
 * Each benchmark is its own script (see bench/README.md) run with --json; a benchmark that fails
 * is reported with its reason and the others still run (exit 1 at the end). B3 runs when its
 * script (bench/oci-vs-docker.mjs) is present.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { benchArgs, fail, fmtMachine, fmtStats, machine, ROOT, timed } from './lib.mjs';

const BENCHMARKS = [
  { id: 'b1', title: 'B1 no-op redeploy', script: 'noop-redeploy.mjs' },
  { id: 'b2', title: 'B2 cold start', script: 'cold-start.mjs' },
  { id: 'b3', title: 'B3 incremental rebuild', script: 'oci-vs-docker.mjs', optional: true },
  { id: 'b4', title: 'B4 parallel builds', script: 'parallel-builds.mjs' },
  { id: 'b5', title: 'B5 resolution', script: 'plan-resolution.mjs' },
];

const args = benchArgs({ runs: 3 }, { only: { type: 'string' } });
const only = args.only ? new Set(args.only.toLowerCase().split(',').map((s) => s.trim())) : undefined;
for (const id of only ?? []) if (!BENCHMARKS.some((b) => b.id === id)) fail(`--only: unknown benchmark '${id}' (known: ${BENCHMARKS.map((b) => b.id).join(', ')})`);
if (!existsSync(join(ROOT, 'packages/cli/dist/main.js'))) fail('the packages are not built; run `pnpm build` first.');

/** The figures of one result, whatever the benchmark: every `…Ms` stats object and every ratio. */
function lines(result) {
  const out = [];
  for (const [key, value] of Object.entries(result)) {
    if (key.endsWith('Ms') && value && typeof value === 'object' && 'median' in value) out.push(`  ${key.padEnd(20)} ${fmtStats(value)}`);
    else if (/ratio/i.test(key) && typeof value === 'number') out.push(`  ${key.padEnd(20)} ${value}x`);
  }
  return out;
}

const started = machine();
const results = [];
let failed = 0;
for (const bench of BENCHMARKS) {
  if (only && !only.has(bench.id)) continue;
  const script = join(ROOT, 'bench', bench.script);
  if (!existsSync(script)) {
    if (!bench.optional) fail(`bench/${bench.script} is missing`);
    results.push({ id: bench.id, title: bench.title, skipped: `bench/${bench.script} is not in this checkout` });
    continue;
  }
  if (!args.json) process.stderr.write(`running ${bench.title} (bench/${bench.script}) …\n`);
  const r = await timed(process.execPath, [script, '--runs', String(args.runs), '--json'], { cwd: ROOT, allowFailure: true });
  if (r.code !== 0) {
    failed++;
    results.push({ id: bench.id, title: bench.title, error: (r.stderr.trim() || `exit ${r.code}`).split('\n').slice(-10).join('\n') });
    continue;
  }
  results.push({ id: bench.id, title: bench.title, result: JSON.parse(r.stdout) });
}

if (args.json) process.stdout.write(`${JSON.stringify({ machineAtStart: started, machineAtEnd: machine(), results }, null, 2)}\n`);
else {
  const out = [`prebuilt benchmarks, ${args.runs} runs each`, `machine at start: ${fmtMachine(started)}`, ''];
  for (const r of results) {
    if (r.skipped) out.push(`${r.title}: skipped (${r.skipped})`);
    else if (r.error) out.push(`${r.title}: FAILED\n  ${r.error.replace(/\n/g, '\n  ')}`);
    else out.push(`${r.title}  (load average at its end: ${r.result.machine?.loadAverage?.join(' ') ?? '?'})`, ...lines(r.result));
    out.push('');
  }
  out.push(`machine at end: ${fmtMachine(machine())}`);
  process.stdout.write(`${out.join('\n')}\n`);
}
if (failed > 0) process.exitCode = 1;
