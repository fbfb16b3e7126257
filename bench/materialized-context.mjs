/**
 * The realistic env's build context as prebuilt ships it, for B9 and B10 (bench/oci-layering.mjs):
 * the realistic corpus (bench/materialize-realistic.mjs's lock) materialized at `prefix` by the
 * conda package's `createMaterializedRecipeRunner` — noarch files where they belong, every pyc
 * stamped to match its source — with its prefix-layers.json, and a copy where one small package
 * (`six`) has one file changed (B3's rebuild). With prune presets (`prune`: e.g. ['tests'], as
 * METAFLOW_PREBUILT_PRUNE), the context prebuilt builds with them: the pruned files left out.
 *
 * Cached in $PREBUILT_BENCH_DIR (default /var/tmp/prebuilt-bench) as `oci-materialized-<key>`,
 * keyed by the corpus, the prefix, the prune presets (when any) and the built materializer
 * (packages/conda/dist and core's recipe runner), so a change of any builds it again. Each directory is made under `<dir>.tmp` and
 * renamed when complete.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { corpusDir, realisticLock } from './materialize-realistic.mjs';
import { fail, prunedText, ROOT } from './lib.mjs';

const STATE_DIR = process.env.PREBUILT_BENCH_DIR ?? '/var/tmp/prebuilt-bench';

/** The .js files under `dir`, recursively, sorted. */
async function jsFiles(dir) {
  const out = [];
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile() && entry.name.endsWith('.js') && !entry.name.endsWith('.test.js')) out.push(join(entry.parentPath ?? entry.path, entry.name));
  }
  return out.sort();
}

/** The cache key: the corpus, the prefix, the prune presets (when any) and every built file of the materializer and the recipe runner. */
async function contextKey(corpus, prefix, prune) {
  const hash = createHash('sha256').update(`materialized-context-v1\0${corpus}\0${prefix}\0`);
  if (prune.length > 0) hash.update(`prune\0${prune.join(',')}\0`);
  hash.update(await readFile(join(corpus, 'artifacts.json')));
  const dirs = [join(ROOT, 'packages/conda/dist'), join(ROOT, 'packages/core/dist/recipes')];
  for (const dir of dirs) {
    if (!existsSync(dir)) fail(`${dir} is missing; run \`pnpm build\` first.`);
    for (const file of await jsFiles(dir)) hash.update(`${file.slice(ROOT.length)}\0`).update(await readFile(file));
  }
  return hash.digest('hex').slice(0, 16);
}

/** Materializes the corpus at `prefix` into `to` (through `${to}.tmp`), leaving out what `prune` names. */
async function materializedCopy(corpus, prefix, prune, to, log) {
  const { createMaterializedRecipeRunner, PackageCache } = await import(new URL('../packages/conda/dist/index.js', import.meta.url).href);
  const work = `${to}.tmp`;
  await rm(work, { recursive: true, force: true });
  const cacheDir = join(work, 'cache');
  await mkdir(join(cacheDir, 'pkgs'), { recursive: true });
  const { lock, files } = await realisticLock(corpus);
  // Copies, not links: the package cache must never share inodes with the corpus.
  for (const f of files) await copyFile(f.file, join(cacheDir, 'pkgs', f.sha256));
  const t0 = performance.now();
  let pruned;
  const onMaterialized = (_envId, result) => (pruned = result.pruned);
  const runner = createMaterializedRecipeRunner({ cache: new PackageCache({ cacheDir }), tempDir: work, prune, onMaterialized });
  // The base only names the FROM of the recipe's Dockerfile, which the benches do not use (they
  // render their own: FROM their base, COPY prefix); a placeholder keeps the context base-free.
  const digest = `sha256:${'0'.repeat(64)}`;
  const prepared = await runner.prepare({ lock, envId: 'bench', prefix, base: { ref: 'bench-base', digest, pinned: `bench-base@${digest}` } });
  await rename(prepared.contextDir, to);
  await rm(work, { recursive: true, force: true });
  log(`materialized ${lock.packages.length} packages into ${to} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  if (prune.length > 0) log(`pruned (${prune.join(', ')}): ${prunedText(pruned)}`);
}

/** A hard-linked copy of `from` where one `.py` file of package `name` is replaced (a new inode, never written through a link). */
export async function oneChangedCopy(from, to, name) {
  if (existsSync(join(to, 'prefix-layers.json'))) return to;
  await rm(`${to}.tmp`, { recursive: true, force: true });
  execFileSync('cp', ['-al', from, `${to}.tmp`]);
  const layers = JSON.parse(await readFile(join(from, 'prefix-layers.json'), 'utf8'));
  const pkg = layers.packages.find((p) => p.name === name) ?? fail(`the context has no package ${name}`);
  const file = pkg.files.find((f) => f.endsWith('.py')) ?? fail(`${name} has no .py file`);
  const target = join(`${to}.tmp`, 'prefix', file);
  const text = await readFile(target);
  await rm(target);
  await writeFile(target, Buffer.concat([text, Buffer.from('\n# changed\n')]));
  await rename(`${to}.tmp`, to);
  return to;
}

/** The cached materialized context (built on first use, pruned by `prune` when given) and its `six`-changed copy. */
export async function materializedContexts({ prefix, prune = [], log = (m) => process.stderr.write(`[context] ${m}\n`) }) {
  const corpus = await corpusDir();
  const ctx = join(STATE_DIR, `oci-materialized-${await contextKey(corpus, prefix, prune)}`);
  if (!existsSync(join(ctx, 'prefix-layers.json'))) {
    log(`building ${ctx} (the realistic corpus ${corpus} materialized at ${prefix}${prune.length > 0 ? `, pruned: ${prune.join(', ')}` : ''}; once)`);
    await materializedCopy(corpus, prefix, prune, ctx, log);
  }
  return { ctx, changed: await oneChangedCopy(ctx, `${ctx}-six-changed`, 'six') };
}
