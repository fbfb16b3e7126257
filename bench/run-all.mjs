#!/usr/bin/env node
/**
 * Runs the benchmarks one after the other (never two at once) and prints their figures: `pnpm bench`.
 *
 *   node bench/run-all.mjs [--runs 3] [--only b1,b2,b3,b4,b5,b6,b7] [--env small|realistic|both] [--clean] [--json]
 *
 * --clean: at the end, remove every image the benchmarks keep in the local registry
 * (`node bench/clean.mjs`: everything under prebuilt-bench/), so runs do not pile them up.
 *
 * --env: the env of B1, B2 and B3 — the small fixture envs (default), the realistic corpus
 * (bench/realistic.mjs; generated once, minutes, then cached), or both one after the other.
 *
 * Each benchmark is its own script (see bench/README.md); its report is printed as it comes, or,
 * with --json, collected into one JSON document. A benchmark that fails is reported with its reason
 * and the others still run (exit 1 at the end). B3 runs when its
 * script (bench/oci-vs-docker.mjs) is present.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { benchArgs, fail, fmtMachine, machine, ROOT, timed } from './lib.mjs';

const BENCHMARKS = [
  { id: 'b1', title: 'B1 no-op redeploy', script: 'noop-redeploy.mjs', envs: true },
  { id: 'b2', title: 'B2 cold start', script: 'cold-start.mjs', envs: true },
  { id: 'b3', title: 'B3 incremental rebuild', script: 'oci-vs-docker.mjs', optional: true, envs: true },
  { id: 'b4', title: 'B4 parallel builds', script: 'parallel-builds.mjs' },
  { id: 'b5', title: 'B5 resolution', script: 'plan-resolution.mjs' },
  { id: 'b6', title: 'B6 second platform', script: 'second-platform.mjs' },
  { id: 'b7', title: 'B7 package cache check', script: 'cache-verify.mjs' },
];

const args = benchArgs({ runs: 3 }, { only: { type: 'string' }, env: { type: 'string', default: 'small' }, clean: { type: 'boolean', default: false } });
if (!['small', 'realistic', 'both'].includes(args.env)) fail(`--env must be small, realistic or both (got ${args.env})`);
const envs = args.env === 'both' ? ['small', 'realistic'] : [args.env];
const only = args.only ? new Set(args.only.toLowerCase().split(',').map((s) => s.trim())) : undefined;
for (const id of only ?? []) if (!BENCHMARKS.some((b) => b.id === id)) fail(`--only: unknown benchmark '${id}' (known: ${BENCHMARKS.map((b) => b.id).join(', ')})`);
if (!existsSync(join(ROOT, 'packages/cli/dist/main.js'))) fail('the packages are not built; run `pnpm build` first.');

const started = machine();
const results = [];
const failed = [];
// B1, B2 and B3 run once per --env; the others have one env.
const plan = BENCHMARKS.flatMap((b) => (b.envs ? envs.map((env) => ({ ...b, env, title: env === 'small' ? b.title : `${b.title} (${env} env)` })) : [{ ...b, env: undefined }]));
for (const bench of plan) {
  if (only && !only.has(bench.id)) continue;
  const script = join(ROOT, 'bench', bench.script);
  if (!existsSync(script)) {
    if (!bench.optional) fail(`bench/${bench.script} is missing`);
    const skipped = `bench/${bench.script} is not in this checkout`;
    if (args.json) results.push({ id: bench.id, title: bench.title, skipped });
    else process.stdout.write(`\n== ${bench.title}: skipped (${skipped})\n`);
    continue;
  }
  if (!args.json) {
    // People: the script's own report, streamed as it comes.
    process.stdout.write(`\n== ${bench.title} (bench/${bench.script})\n`);
    const code = await new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [script, '--runs', String(args.runs), ...(bench.env ? ['--env', bench.env] : [])], { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'] });
      child.on('error', reject);
      child.on('close', resolve);
    });
    if (code !== 0) failed.push(bench.title);
    continue;
  }
  const r = await timed(process.execPath, [script, '--runs', String(args.runs), ...(bench.env ? ['--env', bench.env] : []), '--json'], { cwd: ROOT, allowFailure: true });
  if (r.code !== 0) {
    failed.push(bench.title);
    results.push({ id: bench.id, title: bench.title, error: (r.stderr.trim() || `exit ${r.code}`).split('\n').slice(-10).join('\n') });
    continue;
  }
  results.push({ id: bench.id, title: bench.title, result: JSON.parse(r.stdout) });
}

// What the benchmarks pushed, removed when asked (after the machine's figures are taken).
const ended = machine();
let cleaned;
if (args.clean) {
  const clean = join(ROOT, 'bench', 'clean.mjs');
  if (!args.json) process.stdout.write('\n== clean (bench/clean.mjs)\n');
  const r = args.json
    ? await timed(process.execPath, [clean, '--json'], { cwd: ROOT, allowFailure: true })
    : await new Promise((resolve, reject) => {
        const child = spawn(process.execPath, [clean], { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'] });
        child.on('error', reject);
        child.on('close', (code) => resolve({ code }));
      });
  if (r.code !== 0) failed.push('clean');
  cleaned = r.code === 0 ? (args.json ? JSON.parse(r.stdout) : true) : { error: (r.stderr?.trim() || `exit ${r.code}`).split('\n').slice(-10).join('\n') };
}

if (args.json) process.stdout.write(`${JSON.stringify({ machineAtStart: started, machineAtEnd: ended, results, ...(cleaned === undefined ? {} : { clean: cleaned }) }, null, 2)}\n`);
else {
  process.stdout.write(`\nmachine at start: ${fmtMachine(started)}\nmachine at end:   ${fmtMachine(ended)}\n`);
  if (failed.length > 0) process.stdout.write(`failed: ${failed.join(', ')}\n`);
}
if (failed.length > 0) process.exitCode = 1;
