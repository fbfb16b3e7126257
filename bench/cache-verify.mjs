#!/usr/bin/env node
/**
 * B7 — what checking the package cache against the lock costs on the normal path.
 *
 *   no-op redeploy  — `prebuilt build flow.py --json` with every image present (4 envs, 10 steps,
 *                     as B1): nothing is materialized, so no package is checked or hashed at all.
 *   cache-hit check — `PackageCache.ensure()` over a ~500 MB package cache whose every entry is
 *                     present and unchanged: one lstat and one small record read per entry (the
 *                     record of its verified sha256, size, inode, mtime and ctime), no hashing.
 *                     This is what a build that must build an image adds before materializing.
 *   re-hash         — the same call after every entry's mtime changed (a cache copied with new
 *                     inodes, or the first build after upgrading): every entry is hashed once and
 *                     its record renewed. For reference; it is not on the normal path.
 *
 * The cache entries are files of random bytes named by their sha256 (the check reads neither
 * archive format: random bytes cost the same to stat and hash as packages do), spread over
 * sizes like a real env's (many small, a few large). The no-op redeploy needs the local registry
 * and the base image (`scripts/test-services.sh up`); its images are built once with the oci
 * build service, untimed.
 *
 *   pnpm build && bash scripts/test-services.sh up
 *   node bench/cache-verify.mjs [--runs 3] [--mb 500] [--port 5187] [--json]
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { benchArgs, benchDir, cliEnv, fmtBytes, fmtStats, loadServices, machine, main, NOOP_STEPS, output, prebuilt, ROOT, serveFixtures, stats, writeFlowProject } from './lib.mjs';

const args = benchArgs({ runs: 3 }, { port: { type: 'string', default: '5187' }, mb: { type: 'string', default: '500' } });
const NAMESPACE = 'prebuilt-bench/cache-verify';
const STEPS = NOOP_STEPS;

/** Entry sizes like a large env's: 300 small (16–200 KB), 60 medium (0.5–3 MB), the rest in ~20 MB files. */
function sizes(totalBytes) {
  const out = [];
  let left = totalBytes;
  for (let i = 0; i < 300 && left > 0; i++) left -= out[out.push(Math.min(left, 16_384 + ((i * 7919) % 184_000))) - 1];
  for (let i = 0; i < 60 && left > 0; i++) left -= out[out.push(Math.min(left, 512_000 + ((i * 104_729) % 2_500_000))) - 1];
  while (left > 0) left -= out[out.push(Math.min(left, 20_000_000)) - 1];
  return out;
}

await main(async (defer) => {
  const services = loadServices({ needDocker: false });
  if (!services.registries?.plain || !services.baseImage) throw new Error('the local registry and the base image are needed: run `bash scripts/test-services.sh up`');
  const dir = await benchDir(defer, 'cache-verify');
  const conda = await import(join(ROOT, 'packages/conda/dist/index.js'));

  // The synthetic cache: files named by their sha256, with file: URLs as a lock would name them.
  const pkgsDir = join(dir, 'cache', 'pkgs');
  await mkdir(pkgsDir, { recursive: true });
  const packages = [];
  for (const [i, size] of sizes(Number(args.mb) * 1_000_000).entries()) {
    const bytes = randomBytes(size);
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    await writeFile(join(pkgsDir, sha256), bytes);
    packages.push({ url: pathToFileURL(join(dir, `pkg-${i}.conda`)).href, sha256, size, filename: `pkg-${i}.conda` });
  }
  const totalBytes = packages.reduce((sum, p) => sum + p.size, 0);
  const cache = new conda.PackageCache({ cacheDir: join(dir, 'cache') });
  const timedEnsure = async () => {
    const started = process.hrtime.bigint();
    const result = await cache.ensure(packages);
    if (result.filesCached !== packages.length) throw new Error(`expected every entry cached, ${result.filesCached} of ${packages.length} were`);
    return Number(process.hrtime.bigint() - started) / 1e6;
  };
  await timedEnsure(); // untimed: writes the records (hashes every entry once)

  // The no-op redeploy (images built once, untimed).
  const { generated, server } = await serveFixtures(defer, dir, { port: Number(args.port) });
  const project = await writeFlowProject(dir, 'CacheVerifyFlow', STEPS);
  const env = cliEnv({ server, generated, services, cacheDir: join(dir, 'cli-cache'), extra: { METAFLOW_PREBUILT_IMAGE_NAMESPACE: NAMESPACE, METAFLOW_PREBUILT_BUILD_SERVICE: 'oci' } });
  await prebuilt(['build', 'flow.py', '--json'], { cwd: project, env });

  const noop = [];
  const hit = [];
  const rehash = [];
  for (let run = 0; run < args.runs; run++) {
    const r = await prebuilt(['build', 'flow.py', '--json'], { cwd: project, env });
    const statuses = Object.values(JSON.parse(r.stdout).images).map((i) => i.status);
    if (statuses.some((s) => s !== 'present')) throw new Error(`the no-op build built something: ${statuses.join(', ')}`);
    noop.push(r.ms);
    hit.push(await timedEnsure());
    const when = new Date(Date.now() - 1000 * (run + 1));
    for (const p of packages) await utimes(join(pkgsDir, p.sha256), when, when);
    rehash.push(await timedEnsure());
  }
  const result = {
    benchmark: 'B7 package cache check',
    cache: { entries: packages.length, bytes: totalBytes },
    runs: args.runs,
    noopRedeployMs: stats(noop),
    cacheHitCheckMs: stats(hit),
    rehashMs: stats(rehash),
    cacheHitShareOfNoop: Math.round((stats(hit).median / stats(noop).median) * 10_000) / 100,
    machine: machine(),
  };
  output(args, result, [
    `B7 package cache check: ${packages.length} entries, ${fmtBytes(totalBytes)} (${args.runs} runs)`,
    `  no-op redeploy (every image present, nothing checked): ${fmtStats(result.noopRedeployMs)}`,
    `  cache-hit check (record per entry, no hashing):        ${fmtStats(result.cacheHitCheckMs)}  = ${result.cacheHitShareOfNoop} % of the no-op redeploy`,
    `  re-hash (every entry's mtime changed; not the normal path): ${fmtStats(result.rehashMs)}`,
  ]);
});
