#!/usr/bin/env node
// `prepack` of every published package (run by npm/pnpm in the package directory before packing or
// publishing): refuses to pack a package whose build output is missing or older than its sources,
// so a release can never ship an empty or stale package. Exit 2 with the fix.
//
//   node ../../scripts/prepack-guard.mjs [packageDir]
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

/** Files of src/ that the build compiles (tests and test fixtures are not built). */
function builtSources(dir) {
  const out = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      if (entry.name !== '__fixtures__') out.push(...builtSources(path));
    } else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts')) {
      out.push(path);
    }
  }
  return out;
}

/** Files the package.json `exports` and `bin` fields point at. */
function entryFiles(pkg) {
  const targets = [];
  const walk = (value) => {
    if (typeof value === 'string') targets.push(value);
    else if (value && typeof value === 'object') for (const v of Object.values(value)) walk(v);
  };
  walk(pkg.exports);
  walk(pkg.bin);
  if (typeof pkg.main === 'string') targets.push(pkg.main);
  return targets.filter((t) => !t.endsWith('package.json'));
}

/** Problems that make the package in `dir` unfit to pack (empty when it may be packed). */
export function prepackProblems(dir) {
  const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
  const problems = [];
  for (const target of entryFiles(pkg)) {
    if (!existsSync(join(dir, target))) problems.push(`${target} (named in package.json) does not exist`);
  }
  const srcDir = join(dir, 'src');
  const buildInfo = join(dir, 'dist', '.tsbuildinfo');
  if (existsSync(srcDir)) {
    if (!existsSync(buildInfo)) {
      problems.push('dist/.tsbuildinfo does not exist: the package was never built');
    } else {
      const built = statSync(buildInfo).mtimeMs;
      const newer = builtSources(srcDir).filter((file) => statSync(file).mtimeMs > built);
      if (newer.length > 0) {
        const names = newer.slice(0, 3).map((f) => relative(dir, f));
        problems.push(`dist/ is older than ${names.join(', ')}${newer.length > 3 ? ` and ${newer.length - 3} more` : ''}`);
      }
    }
  }
  return { name: pkg.name, problems };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const dir = process.argv[2] ?? process.cwd();
  const { name, problems } = prepackProblems(dir);
  if (problems.length > 0) {
    process.stderr.write(
      `error: ${name} cannot be packed: ${problems.join('; ')}\n` +
        'hint: build it first: pnpm build from the repository root (pnpm build --force when turbo replayed an older build); pnpm release builds, then publishes\n',
    );
    process.exit(2);
  }
}
