// Installs prebuilt as users do: every public package is published by the release script
// (`pnpm release`: build, then `changeset publish`) to a verdaccio on 127.0.0.1 started here (its
// storage in a temp dir; packages that are not ours are proxied from the npm registry, which npm uses
// anyway), then, in fresh directories outside the workspace, the README's Install section:
// `npm i -g metaflow-prebuilt` and a backend beside it, `prebuilt backends --check` and
// `prebuilt build` of the example flow against the test registry and the fixture channel/index.
// The backend authors' example (examples/prebuilt-backend-example, private in the workspace) is
// published to the same verdaccio as its author would publish it, then installed beside the CLI —
// globally and in a project — listed, checked and used for a build.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { cliEnv, ROOT, startFixtures, stopFixtures, uniqueNamespace, type Fixtures } from '../e2e/harness.js';
import { describeWith, getServices } from '../services.js';
import { freePort } from '../free-port.js';

// A guard against heavy dependencies (the Kubernetes client, a second copy of a big one, an SDK), not
// a size target: 40.1 MB in round 27, of which ~17 MB were dockerode 5's tree (ssh2 + cpu-features,
// @grpc/grpc-js, protobufjs, @types/node), gone since @prebuilt/docker speaks the Engine API with its
// own client (round 28): 23.3 MB, ~7 MB of prebuilt's own packages (js, d.ts, maps and the sources
// they map to) and ~7 MB of rattler's wasm solver; 24.6 MB in round 39, ~7 MB of it the Bare runtime's
// modules (bare-fs, bare-url, bare-buffer, …) that tar-stream ≥ 3.1.8 depends on for its `fs` under Bare
// and Node never loads — gone with tar-stream pinned to 3.1.7 (its pack is the same code): ~18 MB. The
// guard: that + ~2 MB.
const MAX_INSTALL_MB = 20;

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

function exec(command: string, args: readonly string[], options: { cwd: string; env: NodeJS.ProcessEnv; timeoutMs?: number }): Promise<Ran> {
  return new Promise((done, fail) => {
    const child = spawn(command, args, { cwd: options.cwd, env: options.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      fail(new Error(`${command} ${args.join(' ')} did not finish in time; stderr:\n${stderr}`));
    }, options.timeoutMs ?? 240_000);
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', (error) => {
      clearTimeout(timer);
      fail(error);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      done({ code, stdout, stderr });
    });
  });
}


/** The environment npm and pnpm run with: only our registry config, none inherited from an outer pnpm. */
function npmEnv(base: NodeJS.ProcessEnv, userconfig: string, registry: string, cache: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(base)) if (!/^npm_|^pnpm_/i.test(key)) env[key] = value;
  return {
    ...env,
    NPM_CONFIG_USERCONFIG: userconfig,
    npm_config_registry: registry,
    npm_config_cache: cache,
    npm_config_update_notifier: 'false',
    npm_config_fund: 'false',
    npm_config_audit: 'false',
  };
}

/**
 * Publishes examples/prebuilt-backend-example as its author would outside this workspace: `pnpm pack`
 * (which turns the workspace: ranges into the real ones, e.g. the peer `@prebuilt/core >=0.1.0 <1`),
 * without the `private` flag that keeps our release from publishing it, then `npm publish`.
 */
async function publishExample(work: string, env: NodeJS.ProcessEnv): Promise<void> {
  const out = join(work, 'example-pack');
  await mkdir(out);
  const pack = await exec('pnpm', ['pack', '--pack-destination', out], { cwd: join(ROOT, 'examples', 'prebuilt-backend-example'), env });
  if (pack.code !== 0) throw new Error(`pnpm pack of the example failed:\n${pack.stderr}`);
  const [tarball] = (await readdir(out)).filter((f) => f.endsWith('.tgz'));
  const untar = await exec('tar', ['xzf', join(out, tarball!), '-C', out], { cwd: out, env });
  if (untar.code !== 0) throw new Error(`untar of ${tarball}: ${untar.stderr}`);
  const manifestPath = join(out, 'package', 'package.json');
  const manifest = JSON.parse(await readFile(manifestPath, 'utf8')) as Record<string, unknown>;
  expect(manifest['peerDependencies']).toEqual({ '@prebuilt/core': '>=0.1.0 <1' });
  delete manifest['private'];
  delete manifest['devDependencies'];
  await writeFile(manifestPath, JSON.stringify(manifest, null, 2));
  const publish = await exec('npm', ['publish', '--ignore-scripts'], { cwd: join(out, 'package'), env });
  if (publish.code !== 0) throw new Error(`npm publish of the example failed:\n${publish.stderr}`);
}

describeWith(['registries', 'baseImage'], 'install from an npm registry as users do (verdaccio on 127.0.0.1, pnpm release, npm i -g)', () => {
  let work: string;
  let verdaccio: ChildProcess | undefined;
  let registry: string;
  let env: NodeJS.ProcessEnv;
  let fixtures: Fixtures | undefined;
  let prefix: string;
  let prebuilt: string;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'prebuilt-install-'));
    const port = await freePort();
    registry = `http://127.0.0.1:${port}/`;
    const config = join(work, 'verdaccio.yaml');
    const ours = { access: '$all', publish: '$authenticated' };
    // Packages that are not ours come through the npm registry this machine's npm is set up for.
    const upstream = execFileSync('npm', ['config', 'get', 'registry'], { cwd: work, encoding: 'utf8' }).trim() || 'https://registry.npmjs.org/';
    await writeFile(
      config,
      [
        `storage: ${join(work, 'storage')}`,
        `auth: { htpasswd: { file: ${join(work, 'htpasswd')}, max_users: 10 } }`,
        `uplinks: { npmjs: { url: ${JSON.stringify(upstream)} } }`,
        'packages:',
        // Ours are served only from here (never proxied): what the release script published.
        ...['"@prebuilt/*"', 'metaflow-prebuilt', '"prebuilt-backend-*"'].map((name) => `  ${name}: { access: ${ours.access}, publish: ${ours.publish} }`),
        '  "**": { access: $all, proxy: npmjs }',
        'max_body_size: 200mb',
        `listen: 127.0.0.1:${port}`,
        'log: { type: stdout, format: pretty, level: error }',
      ].join('\n') + '\n',
    );
    verdaccio = spawn(process.execPath, [join(ROOT, 'node_modules', 'verdaccio', 'bin', 'verdaccio'), '-c', config], { stdio: 'ignore', env: { ...process.env, NODE_ENV: 'production' } });
    const deadline = Date.now() + 30_000;
    for (;;) {
      const ping = await fetch(`${registry}-/ping`).catch(() => undefined);
      if (ping?.ok) break;
      if (Date.now() > deadline) throw new Error(`verdaccio did not answer on ${registry} within 30 s`);
      await new Promise((r) => setTimeout(r, 250));
    }
    // A throwaway user; its token publishes.
    const user = await fetch(`${registry}-/user/org.couchdb.user:release-test`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'release-test', password: `pw-${Date.now()}` }),
    });
    const { token } = (await user.json()) as { token?: string };
    if (!token) throw new Error(`verdaccio created no user (HTTP ${user.status})`);
    const userconfig = join(work, 'npmrc');
    await writeFile(userconfig, `registry=${registry}\n//127.0.0.1:${port}/:_authToken=${token}\n`);
    env = npmEnv(process.env, userconfig, registry, join(work, 'npm-cache'));

    const release = await exec('pnpm', ['release', '--no-git-tag'], { cwd: ROOT, env, timeoutMs: 300_000 });
    if (release.code !== 0) throw new Error(`pnpm release failed (${release.code}):\n${release.stdout}\n${release.stderr}`);

    await publishExample(work, env);

    fixtures = await startFixtures();
    prefix = join(work, 'global');
    prebuilt = join(prefix, 'bin', 'prebuilt');
  }, 600_000);

  afterAll(async () => {
    verdaccio?.kill('SIGTERM');
    await stopFixtures(fixtures);
    if (work) await rm(work, { recursive: true, force: true });
  });

  it(`npm i -g metaflow-prebuilt installs the prebuilt command, at most ${MAX_INSTALL_MB} MB, without the Kubernetes client`, async () => {
    const install = await exec('npm', ['i', '-g', '--prefix', prefix, 'metaflow-prebuilt'], { cwd: work, env });
    expect(install.code, install.stderr).toBe(0);
    const du = await exec('du', ['-sk', join(prefix, 'lib', 'node_modules', 'metaflow-prebuilt')], { cwd: work, env });
    const mb = Number(du.stdout.split('\t')[0]) / 1024;
    process.stdout.write(`install size of metaflow-prebuilt (du): ${mb.toFixed(1)} MB\n`);
    expect(mb).toBeGreaterThan(1);
    expect(mb).toBeLessThanOrEqual(MAX_INSTALL_MB);
    const version = await exec(prebuilt, ['--version'], { cwd: work, env });
    expect(version.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
    const ls = await exec('npm', ['ls', '-g', '--prefix', prefix, '--all', '--parseable', '@kubernetes/client-node'], { cwd: work, env });
    expect(ls.stdout.trim()).toBe('');
    // No file system of another runtime: Bare's bare-fs (with bare-url, bare-buffer, …: ~7 MB) Node never loads.
    const all = await exec('npm', ['ls', '-g', '--prefix', prefix, '--all', '--parseable'], { cwd: work, env });
    expect(all.stdout.split('\n').filter((path) => /(^|\/)bare-(fs|url|buffer|path)$/.test(path.trim()))).toEqual([]);
  }, 300_000);

  it('a backend installed globally beside it is listed and selected (npm i -g @prebuilt/ecr)', async () => {
    // Before: the note names the global install command, as the CLI is global.
    const before = await exec(prebuilt, ['backends'], { cwd: work, env: { ...env, METAFLOW_PREBUILT_IMAGE_REGISTRY: 'ecr' } });
    expect(before.stdout).toContain("the selected image registry 'ecr' is not installed: npm i -g @prebuilt/ecr\n");
    const install = await exec('npm', ['i', '-g', '--prefix', prefix, '@prebuilt/ecr'], { cwd: work, env });
    expect(install.code, install.stderr).toBe(0);
    const listed = await exec(prebuilt, ['backends', '--json'], { cwd: work, env: { ...env, METAFLOW_PREBUILT_IMAGE_REGISTRY: 'ecr' } });
    expect(listed.code, listed.stderr).toBe(0);
    const out = JSON.parse(listed.stdout) as { backends: { name: string; installed: boolean; selected: boolean; version: string | null }[] };
    expect(out.backends.find((b) => b.name === 'ecr')).toMatchObject({ installed: true, selected: true, version: expect.stringMatching(/^\d+\.\d+\.\d+/) });
  }, 300_000);

  it('prebuilt backends --check, then prebuilt build of the example flow, against the test registry and fixtures', async () => {
    const services = getServices();
    const project = join(work, 'project');
    await mkdir(project);
    await copyFile(join(ROOT, 'examples', 'hello_flow.py'), join(project, 'hello_flow.py'));
    const buildEnv = { ...cliEnv(fixtures!, services, uniqueNamespace('install'), { METAFLOW_PREBUILT_BUILD_SERVICE: 'oci' }), ...env };
    const check = await exec(prebuilt, ['backends', '--check'], { cwd: project, env: buildEnv });
    expect(check.code, check.stderr).toBe(0);
    expect(check.stdout).toMatch(/build service\s+oci\s+ok\s+@prebuilt\/oci \d+\.\d+\.\d+ \(resolved from .*metaflow-prebuilt\)/);
    const build = await exec(prebuilt, ['build', 'hello_flow.py', '--json'], { cwd: project, env: buildEnv, timeoutMs: 300_000 });
    // With --json the failed images' reasons are in stdout's `failures`, not in stderr.
    expect(build.code, `${build.stderr}\n${build.stdout}`).toBe(0);
    const result = JSON.parse(build.stdout) as { failures?: unknown[]; steps: Record<string, { envId: string | null; image: string }> };
    expect(result.failures).toBeUndefined();
    expect(Object.keys(result.steps).sort()).toEqual(['end', 'fetch', 'report', 'start']);
    expect(result.steps['start']).toMatchObject({ envId: expect.stringMatching(/^[0-9a-f]+$/), image: expect.stringContaining(services.registries!.plain.host) });
  }, 400_000);

  it('a third-party backend installed globally beside it (npm i -g prebuilt-backend-example) is listed, checked and builds', async () => {
    const install = await exec('npm', ['i', '-g', '--prefix', prefix, 'prebuilt-backend-example'], { cwd: work, env });
    expect(install.code, install.stderr).toBe(0);
    const services = getServices();
    const project = join(work, 'example-project');
    await mkdir(project);
    await copyFile(join(ROOT, 'examples', 'hello_flow.py'), join(project, 'hello_flow.py'));
    const exampleEnv = {
      ...cliEnv(fixtures!, services, uniqueNamespace('install-example'), { METAFLOW_PREBUILT_BUILD_SERVICE: 'oci', METAFLOW_PREBUILT_IMAGE_REGISTRY: 'example' }),
      METAFLOW_PREBUILT_EXAMPLE_REGISTRY: services.registries!.plain.host,
      ...env,
    };
    const listed = await exec(prebuilt, ['backends', '--json'], { cwd: project, env: exampleEnv });
    expect(listed.code, listed.stderr).toBe(0);
    const out = JSON.parse(listed.stdout) as { backends: { name: string; source: string; packageName: string; installed: boolean; selected: boolean }[] };
    expect(out.backends.find((b) => b.name === 'example')).toMatchObject({ source: 'third-party', packageName: 'prebuilt-backend-example', installed: true, selected: true });
    const check = await exec(prebuilt, ['backends', '--check'], { cwd: project, env: exampleEnv });
    expect(check.code, `${check.stdout}\n${check.stderr}`).toBe(0);
    expect(check.stdout).toMatch(/image registry\s+example\s+ok\s+prebuilt-backend-example \d+\.\d+\.\d+ \(resolved from .*metaflow-prebuilt\)/);
    const build = await exec(prebuilt, ['build', 'hello_flow.py', '--json'], { cwd: project, env: exampleEnv, timeoutMs: 300_000 });
    expect(build.code, `${build.stderr}\n${build.stdout}`).toBe(0);
    const result = JSON.parse(build.stdout) as { steps: Record<string, { image: string }> };
    expect(result.steps['start']?.image).toContain(`${services.registries!.plain.host}/prebuilt-e2e/install-example-`);
  }, 400_000);

  it('as devDependencies of a project, a third-party backend (prebuilt-backend-example) is selected, with one @prebuilt/core', async () => {
    const project = join(work, 'example-dev-project');
    await mkdir(project);
    await writeFile(join(project, 'package.json'), JSON.stringify({ name: 'install-test-example-project', private: true }));
    const install = await exec('npm', ['i', '-D', 'metaflow-prebuilt', 'prebuilt-backend-example'], { cwd: project, env });
    expect(install.code, install.stderr).toBe(0);
    const ls = await exec('npm', ['ls', '--all', '--parseable', '@prebuilt/core'], { cwd: project, env });
    expect(ls.stdout.split('\n').filter((line) => line.trim() !== '')).toEqual([join(project, 'node_modules', '@prebuilt', 'core')]);
    const check = await exec(join(project, 'node_modules', '.bin', 'prebuilt'), ['backends', '--check'], {
      cwd: project,
      env: { ...env, METAFLOW_PREBUILT_BUILD_SERVICE: 'oci', METAFLOW_PREBUILT_IMAGE_REGISTRY: 'example', METAFLOW_PREBUILT_EXAMPLE_REGISTRY: '127.0.0.1:5000' },
    });
    expect(check.stdout).toMatch(/image registry\s+example\s+ok\s+prebuilt-backend-example/);
  }, 300_000);

  it('as devDependencies of a project (npm i -D metaflow-prebuilt @prebuilt/ecr): exactly one @prebuilt/core', async () => {
    const project = join(work, 'dev-project');
    await mkdir(project);
    await writeFile(join(project, 'package.json'), JSON.stringify({ name: 'install-test-project', private: true }));
    const install = await exec('npm', ['i', '-D', 'metaflow-prebuilt', '@prebuilt/ecr'], { cwd: project, env });
    expect(install.code, install.stderr).toBe(0);
    const ls = await exec('npm', ['ls', '--all', '--parseable', '@prebuilt/core'], { cwd: project, env });
    const copies = ls.stdout.split('\n').filter((line) => line.trim() !== '');
    expect(copies).toEqual([join(project, 'node_modules', '@prebuilt', 'core')]);
    const version = await exec(join(project, 'node_modules', '.bin', 'prebuilt'), ['backends', '--check'], {
      cwd: project,
      env: { ...env, METAFLOW_PREBUILT_BUILD_SERVICE: 'oci', METAFLOW_PREBUILT_IMAGE_REGISTRY: 'ecr', METAFLOW_PREBUILT_ECR_ACCOUNT: '123456789012', METAFLOW_PREBUILT_ECR_REGION: 'us-east-1' },
    });
    expect(version.stdout).toMatch(/image registry\s+ecr\s+ok\s+@prebuilt\/ecr/);
  }, 300_000);
});
