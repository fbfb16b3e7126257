// What npm would publish for every public package of the workspace (`npm pack --dry-run`, after
// `pnpm build`): no build caches or tests, source maps whose sources ship, metadata pointing at the
// one repository, READMEs that work on npm (no relative links), and the guard that refuses to pack
// a package that was not built.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, posix } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const GUARD = join(ROOT, 'scripts', 'prepack-guard.mjs');

interface PackageJson {
  name: string;
  private?: boolean;
  repository?: { type: string; url: string; directory?: string };
  homepage?: string;
  bugs?: { url: string };
  keywords?: string[];
  publishConfig?: { access?: string };
  scripts?: Record<string, string>;
  files?: string[];
  dependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
  prebuilt?: { kind: string; name: string };
}

const readJson = <T>(path: string): T => JSON.parse(readFileSync(path, 'utf8')) as T;
const rootPkg = readJson<PackageJson>(join(ROOT, 'package.json'));
const publicPackages = readdirSync(join(ROOT, 'packages'))
  .map((dir) => ({ dir: join(ROOT, 'packages', dir), name: dir, pkg: readJson<PackageJson>(join(ROOT, 'packages', dir, 'package.json')) }))
  .filter((p) => !p.pkg.private);

function packedFiles(dir: string): string[] {
  const out = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: dir, encoding: 'utf8', env: { ...process.env, npm_config_loglevel: 'silent' } });
  const [report] = JSON.parse(out) as Array<{ files: Array<{ path: string }> }>;
  return report!.files.map((f) => f.path);
}

describe('published packages (npm pack --dry-run of the built workspace)', () => {
  it('the CLI is metaflow-prebuilt with the prebuilt bin, and no package depends on the unscoped "prebuilt"', () => {
    const cli = readJson<PackageJson & { bin: Record<string, string> }>(join(ROOT, 'packages/cli/package.json'));
    expect(cli.name).toBe('metaflow-prebuilt');
    expect(Object.keys(cli.bin)).toEqual(['prebuilt']);
    for (const { pkg } of [...publicPackages, { pkg: rootPkg }]) {
      for (const deps of [pkg.dependencies, pkg.devDependencies, pkg.peerDependencies]) expect(Object.keys(deps ?? {})).not.toContain('prebuilt');
    }
  });

  it.each(publicPackages.map((p) => [p.pkg.name, p] as const))('%s: metadata mirrors the root repository', (_name, { name, pkg }) => {
    expect(rootPkg.repository?.url).toMatch(/^git\+https:\/\/github\.com\/[^/]+\/[^/]+\.git$/);
    const web = rootPkg.repository!.url.replace(/^git\+/, '').replace(/\.git$/, '');
    expect(pkg.repository).toEqual({ type: 'git', url: rootPkg.repository!.url, directory: `packages/${name}` });
    expect(pkg.homepage).toBe(`${web}/tree/main/packages/${name}#readme`);
    expect(pkg.bugs).toEqual(rootPkg.bugs);
    expect(pkg.keywords?.length).toBeGreaterThan(0);
    expect(pkg.publishConfig?.access).toBe('public');
    expect(pkg.scripts?.['prepack']).toBe('node ../../scripts/prepack-guard.mjs');
    expect(pkg.files).toContain('CHANGELOG.md');
  });

  it.each(publicPackages.map((p) => [p.pkg.name, p] as const))('%s: internal dependencies are ranges; a backend peers on @prebuilt/core', (_name, { pkg }) => {
    for (const [dep, spec] of Object.entries(pkg.dependencies ?? {})) {
      if (dep.startsWith('@prebuilt/') || dep === 'metaflow-prebuilt') expect(spec, dep).toBe('workspace:^');
    }
    if (pkg.prebuilt) {
      expect(pkg.dependencies?.['@prebuilt/core']).toBeUndefined();
      expect(pkg.peerDependencies?.['@prebuilt/core']).toMatch(/^workspace:>=0\.\d+\.\d+ <1$/);
      expect(pkg.devDependencies?.['@prebuilt/core']).toBe('workspace:*');
    }
  });

  it.each(publicPackages.map((p) => [p.pkg.name, p] as const))('%s: ships dist without build caches or tests, maps whose sources ship, and a README without relative links', (_name, { dir }) => {
    const files = packedFiles(dir);
    const set = new Set(files);
    expect(files).toContain('README.md');
    expect(files).toContain('package.json');
    expect(files.some((f) => f.startsWith('dist/') && f.endsWith('.js'))).toBe(true);
    expect(files.filter((f) => f.endsWith('.tsbuildinfo'))).toEqual([]);
    expect(files.filter((f) => /\.test\.|__fixtures__|__testing__/.test(f))).toEqual([]);
    const maps = files.filter((f) => f.endsWith('.map'));
    for (const map of maps) {
      const { sources } = readJson<{ sources: string[] }>(join(dir, map));
      for (const source of sources) expect(set.has(posix.normalize(posix.join(posix.dirname(map), source))), `${map} → ${source}`).toBe(true);
    }
    const readme = readFileSync(join(dir, 'README.md'), 'utf8');
    const relative = [...readme.matchAll(/\]\(([^)\s]+)\)/g)].map((m) => m[1]!).filter((href) => !/^(https?:|mailto:|#)/.test(href));
    expect(relative).toEqual([]);
  });

  it("the CLI README (its npm page) has the install line, a quick start and the root README's configuration table", () => {
    const cli = readFileSync(join(ROOT, 'packages/cli/README.md'), 'utf8');
    const root = readFileSync(join(ROOT, 'README.md'), 'utf8');
    expect(cli).toContain('npm i -g metaflow-prebuilt');
    expect(cli).toContain('## Quick start');
    expect(root).toContain('npm i -g metaflow-prebuilt');
    // One quick start on both pages, with a registry of one's own (`local` by host) and its pull secret.
    const quickStart = (text: string) => text.slice(text.indexOf('## Quick start'), text.indexOf('```\n', text.indexOf('```sh', text.indexOf('## Quick start'))));
    expect(quickStart(root)).toBe(quickStart(cli));
    expect(quickStart(cli)).toContain('METAFLOW_PREBUILT_IMAGE_REGISTRY=local METAFLOW_PREBUILT_LOCAL_REGISTRY=registry.example.com/team');
    expect(quickStart(cli)).toContain('METAFLOW_PREBUILT_PULL_SECRET=prebuilt-pull');
    const rows = (text: string) => text.split('\n').filter((l) => l.startsWith('| `METAFLOW_PREBUILT_') || l.startsWith('| `DOCKER_HOST`')).map((l) => l.replace(/\]\([^)]*\)/g, ']()'));
    expect(rows(root).length).toBeGreaterThan(10);
    expect(rows(cli)).toEqual(rows(root));
  });

  it('changesets: no fixed or linked groups, internal ranges moved on minor, peer dependents only when out of range', () => {
    const config = readJson<Record<string, unknown>>(join(ROOT, '.changeset/config.json'));
    expect(config['fixed'] ?? []).toEqual([]);
    expect(config['linked'] ?? []).toEqual([]);
    expect(config['updateInternalDependencies']).toBe('minor');
    expect(config['___experimentalUnsafeOptions_WILL_CHANGE_IN_PATCH']).toMatchObject({ onlyUpdatePeerDependentsWhenOutOfRange: true });
  });
});

describe("the backend authors' example (examples/prebuilt-backend-example)", () => {
  const dir = join(ROOT, 'examples', 'prebuilt-backend-example');
  const pkg = readJson<PackageJson & { prebuilt?: { kind: string; name: string } }>(join(dir, 'package.json'));

  it('is private: the release never publishes it (its name follows the third-party convention, not our scope)', () => {
    expect(pkg.name).toBe('prebuilt-backend-example');
    expect(pkg.private).toBe(true);
    expect(readFileSync(join(ROOT, 'pnpm-workspace.yaml'), 'utf8')).toContain('"examples/*"');
  });

  it('declares itself as a third-party backend does: the "prebuilt" field, @prebuilt/core as a peer range only', () => {
    expect(pkg.prebuilt).toEqual({ kind: 'image-registry', name: 'example' });
    expect(pkg.dependencies?.['@prebuilt/core']).toBeUndefined();
    expect(pkg.peerDependencies?.['@prebuilt/core']).toBe('workspace:>=0.1.0 <1');
  });

  it('imports only from @prebuilt/core/backend (the guide\'s promise) and is under 80 lines', () => {
    const source = readFileSync(join(dir, 'src', 'index.ts'), 'utf8');
    const imports = [...source.matchAll(/from '([^']+)'/g)].map((m) => m[1]);
    expect(imports).toEqual(['@prebuilt/core/backend']);
    expect(source.split('\n').length).toBeLessThan(80);
  });
});

describe('pending changesets', () => {
  it('every changeset names workspace packages only (a renamed package left in one breaks `changeset version`)', () => {
    const names = new Set(readdirSync(join(ROOT, 'packages')).map((dir) => readJson<PackageJson>(join(ROOT, 'packages', dir, 'package.json')).name));
    const files = readdirSync(join(ROOT, '.changeset')).filter((f) => f.endsWith('.md') && f !== 'README.md');
    expect(files.length).toBeGreaterThan(0);
    const unknown: string[] = [];
    for (const file of files) {
      const front = /^---\n([\s\S]*?)\n---/.exec(readFileSync(join(ROOT, '.changeset', file), 'utf8'))?.[1] ?? '';
      for (const line of front.split('\n').filter((l) => l.trim() !== '')) {
        const name = /^["']?([^"':]+)["']?\s*:/.exec(line)?.[1];
        if (!name || !names.has(name)) unknown.push(`${file}: ${line}`);
      }
    }
    expect(unknown).toEqual([]);
  });
});

describe('prepack guard (scripts/prepack-guard.mjs)', () => {
  const temp = mkdtempSync(join(tmpdir(), 'prebuilt-prepack-'));
  afterAll(() => rmSync(temp, { recursive: true, force: true }));

  function fakePackage(name: string): string {
    const dir = join(temp, name);
    mkdirSync(join(dir, 'src'), { recursive: true });
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: `@example/${name}`, exports: { '.': './dist/index.js' } }));
    writeFileSync(join(dir, 'src', 'index.ts'), 'export const a = 1;\n');
    return dir;
  }
  const guard = (dir: string) => spawnSync(process.execPath, [GUARD], { cwd: dir, encoding: 'utf8' });

  it('refuses (exit 2, with the fix) a package that was never built', () => {
    const r = guard(fakePackage('unbuilt'));
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('@example/unbuilt cannot be packed: ./dist/index.js (named in package.json) does not exist');
    expect(r.stderr).toContain('hint: build it first');
  });

  it('refuses a package whose src/ is newer than its build, and passes once it is rebuilt', () => {
    const dir = fakePackage('stale');
    mkdirSync(join(dir, 'dist'));
    writeFileSync(join(dir, 'dist', 'index.js'), 'export const a = 1;\n');
    writeFileSync(join(dir, 'dist', '.tsbuildinfo'), '{}');
    const past = new Date(Date.now() - 60_000);
    utimesSync(join(dir, 'dist', '.tsbuildinfo'), past, past);
    const stale = guard(dir);
    expect(stale.status).toBe(2);
    expect(stale.stderr).toContain('dist/ is older than src/index.ts');
    writeFileSync(join(dir, 'dist', '.tsbuildinfo'), '{}');
    const fresh = guard(dir);
    expect(fresh.stderr).toBe('');
    expect(fresh.status).toBe(0);
  });

  it('passes for every built package of the workspace', () => {
    for (const { dir, pkg } of publicPackages) expect(guard(dir).stderr, pkg.name).toBe('');
  });
});
