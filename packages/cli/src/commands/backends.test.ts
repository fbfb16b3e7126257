/**
 * `prebuilt backends` through the real CLI (node bin/prebuilt.js, after `pnpm build`), run in
 * temporary projects with real node_modules layouts.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const BIN = fileURLToPath(new URL('../../bin/prebuilt.js', import.meta.url));
const DIST = fileURLToPath(new URL('../../dist/main.js', import.meta.url));
const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function cleanEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (value === undefined || key.startsWith('METAFLOW_') || key === 'DEBUG') continue;
    env[key] = value;
  }
  return { ...env, ...extra };
}

/** Runs the CLI; `onStderr` sees stderr as it arrives (to send signals at the right moment). */
function prebuilt(
  args: string[],
  options: { cwd: string; env?: Record<string, string>; onStderr?: (text: string, child: ReturnType<typeof spawn>) => void },
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: options.cwd, env: cleanEnv(options.env), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      options.onStderr?.(stderr, child);
    });
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

function definitionModule(kind: string, name: string, preamble = ''): string {
  return `${preamble}
export default {
  apiVersion: 1,
  kind: ${JSON.stringify(kind)},
  name: ${JSON.stringify(name)},
  create() {
    return ${JSON.stringify(kind)} === 'build-service'
      ? { name: ${JSON.stringify(name)}, async buildAndPush() { return { ok: false, reason: 'a test backend builds nothing' }; }, async check() {} }
      : { name: ${JSON.stringify(name)}, imageTag: () => 'registry.test/x:tag', async imageExists() { return { exists: false }; } };
  },
};
`;
}

let project: string;

beforeAll(() => {
  if (!existsSync(DIST)) throw new Error(`${DIST} is missing: run \`pnpm build\` before these tests.`);
  project = mkdtempSync(join(tmpdir(), 'prebuilt-cli-backends-'));
  writeFileSync(
    join(project, 'package.json'),
    JSON.stringify({ name: 'cli-fixture', private: true, dependencies: { 'prebuilt-backend-acme': '1.2.3', 'left-pad': '1.0.0' } }),
  );
  const acme = join(project, 'node_modules/prebuilt-backend-acme');
  mkdirSync(acme, { recursive: true });
  writeFileSync(
    join(acme, 'package.json'),
    JSON.stringify({ name: 'prebuilt-backend-acme', version: '1.2.3', type: 'module', main: 'index.js', prebuilt: { kind: 'build-service', name: 'acme' } }),
  );
  writeFileSync(join(acme, 'index.js'), definitionModule('build-service', 'acme'));
  const leftPad = join(project, 'node_modules/left-pad');
  mkdirSync(leftPad, { recursive: true });
  writeFileSync(join(leftPad, 'package.json'), JSON.stringify({ name: 'left-pad', version: '1.0.0' }));
  mkdirSync(join(project, 'backends'));
  writeFileSync(join(project, 'backends/test-registry.mjs'), definitionModule('image-registry', 'test-registry'));
  writeFileSync(join(project, 'backends/future.mjs'), definitionModule('image-registry', 'future').replace('apiVersion: 1', 'apiVersion: 7'));
  // Announces itself on stderr, then takes its time to load: a window to send signals in.
  writeFileSync(
    join(project, 'backends/slow.mjs'),
    definitionModule('image-registry', 'slow', 'process.stderr.write("slow backend loading\\n");\nawait new Promise((r) => setTimeout(r, Number(process.env.SLOW_MS)));'),
  );
});

afterAll(() => {
  if (project) rmSync(project, { recursive: true, force: true });
});

const STACK_LINE = /\n\s+at .+\(.+:\d+:\d+\)/;

describe('prebuilt (CLI basics)', () => {
  it('--version prints the package version', async () => {
    const r = await prebuilt(['--version'], { cwd: project });
    expect(r).toMatchObject({ code: 0, stdout: `${VERSION}\n`, stderr: '' });
  });

  it('--help lists the commands, the selection variables and the exit codes', async () => {
    const r = await prebuilt(['--help'], { cwd: project });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Usage: prebuilt [options] [command]');
    expect(r.stdout).toMatch(/backends \[options\]\s+list the build services and image registries/);
    expect(r.stdout).toContain('METAFLOW_PREBUILT_BUILD_SERVICE   build service to use (default: docker)');
    // The table of ExitCode / EXIT_CODE_MEANINGS, one code a line.
    expect(r.stdout).toMatch(/Exit codes:\n {2}0 {3}ok\n {2}1 {3}a build or push failed.*\n {2}2 {3}bad input or configuration/);
    const sub = await prebuilt(['backends', '--help'], { cwd: project });
    expect(sub.code).toBe(0);
    expect(sub.stdout).toContain('--check');
    expect(sub.stdout).toContain('acme → prebuilt-backend-acme');
    // An "ok" registry may still lack a login: the help says which command finds that out.
    expect(sub.stdout).toContain('--check contacts the build service (the Docker daemon of docker, for one) but not the\nregistry');
    expect(sub.stdout).toContain('`prebuilt plan <flow>`');
  });

  it('usage errors exit 2 with commander\'s message and no stack trace', async () => {
    const unknownOption = await prebuilt(['backends', '--bogus'], { cwd: project });
    expect(unknownOption.code).toBe(2);
    expect(unknownOption.stderr).toContain("error: unknown option '--bogus'");
    expect(unknownOption.stderr).not.toMatch(STACK_LINE);
    const unknownCommand = await prebuilt(['frobnicate'], { cwd: project });
    expect(unknownCommand.code).toBe(2);
    expect(unknownCommand.stderr).toContain("unknown command 'frobnicate'");
    // A word of a command's name, too far from the whole name for commander's suggestion: that command.
    const partial = await prebuilt(['registry', 'start', '--json'], { cwd: project });
    expect(partial.code).toBe(2);
    expect(partial.stderr).toBe("error: unknown command 'registry'\n(Did you mean local-registry?)\n(run with --help for usage)\n");
    expect(JSON.parse(partial.stdout)).toMatchObject({ ok: false, error: { code: 'usage', message: "unknown command 'registry'\n(Did you mean local-registry?)" } });
    expect((await prebuilt(['secret', '-n', 'x', '--name', 'y'], { cwd: project })).stderr).toContain('(Did you mean pull-secret?)');
  });
});

describe('prebuilt backends', () => {
  it('shows a table of every built-in and installed third-party backend, marking the selected ones', async () => {
    // ecr/gcr/kaniko are never dependencies of the CLI package, so they are missing here for sure.
    const r = await prebuilt(['backends'], { cwd: project, env: { METAFLOW_PREBUILT_BUILD_SERVICE: 'acme', METAFLOW_PREBUILT_IMAGE_REGISTRY: 'ecr' } });
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    const lines = r.stdout.split('\n');
    expect(lines[0]).toMatch(/^\s+NAME\s+KIND\s+PACKAGE\s+VERSION\s+INSTALLED$/);
    for (const name of ['docker', 'buildx', 'kaniko', 'codebuild', 'oci', 'local', 'dockerhub', 'ecr', 'gcr']) {
      expect(lines.some((l) => new RegExp(`^[ *]\\s+${name}\\s+(build service|image registry)\\s+@prebuilt/${name}\\s`).test(l)), name).toBe(true);
    }
    expect(lines).toContainEqual(expect.stringMatching(/^\*\s+acme\s+build service\s+prebuilt-backend-acme\s+1\.2\.3\s+yes$/));
    expect(lines).toContainEqual(expect.stringMatching(/^\*\s+ecr\s+image registry\s+@prebuilt\/ecr\s+-\s+no$/));
    expect(lines).toContainEqual(expect.stringMatching(/^\s+docker\s+build service/));
    expect(r.stdout).not.toContain('left-pad');
    expect(r.stdout).toContain('* selected: build service acme (from METAFLOW_PREBUILT_BUILD_SERVICE), image registry ecr (from METAFLOW_PREBUILT_IMAGE_REGISTRY)');
    expect(r.stdout).toContain("the selected image registry 'ecr' is not installed: npm i -D @prebuilt/ecr");
    const defaults = await prebuilt(['backends'], { cwd: project });
    expect(defaults.stdout).toContain('* selected: build service docker (default; set METAFLOW_PREBUILT_BUILD_SERVICE to change), image registry dockerhub (default;');
  });

  it('--json prints one JSON object with every backend and the selection', async () => {
    const r = await prebuilt(['backends', '--json'], { cwd: project, env: { METAFLOW_PREBUILT_IMAGE_REGISTRY: 'gcr' } });
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as {
      selected: Record<string, { name: string; from: string }>;
      backends: { name: string; kind: string; packageName: string; version: string | null; installed: boolean; selected: boolean; source: string }[];
    };
    expect(out.selected.buildService).toMatchObject({ name: 'docker', from: 'default' });
    expect(out.selected.imageRegistry).toMatchObject({ name: 'gcr', from: 'env' });
    expect((out as unknown as { ok: boolean }).ok).toBe(true);
    expect(out.backends).toHaveLength(10);
    expect(out.backends.find((b) => b.name === 'acme')).toMatchObject({
      kind: 'build-service',
      source: 'third-party',
      packageName: 'prebuilt-backend-acme',
      version: '1.2.3',
      installed: true,
      selected: false,
    });
    expect(out.backends.find((b) => b.name === 'gcr')).toMatchObject({ selected: true, installed: false, version: null, kind: 'image-registry' });
    expect(out.backends.filter((b) => b.selected).map((b) => b.name).sort()).toEqual(['docker', 'gcr']);
  });

  const cliDeps = Object.keys(
    (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { dependencies?: Record<string, string> }).dependencies ?? {},
  );
  const builtinDeps = ['docker', 'buildx', 'kaniko', 'codebuild', 'oci', 'local', 'dockerhub', 'ecr', 'gcr'].filter((n) => cliDeps.includes(`@prebuilt/${n}`));
  it.skipIf(builtinDeps.length === 0)(
    `lists and loads the built-ins the CLI package itself depends on, from the CLI's directory${builtinDeps.length === 0 ? ' (skipped: the CLI depends on no built-in backend)' : ''}`,
    async () => {
      const r = await prebuilt(['backends', '--json'], { cwd: project });
      const out = JSON.parse(r.stdout) as { backends: { name: string; installed: boolean; version: string | null }[] };
      for (const name of builtinDeps) {
        expect(out.backends.find((b) => b.name === name), name).toMatchObject({ installed: true, version: expect.stringMatching(/^\d+\.\d+\.\d+/) });
      }
      const name = builtinDeps[0]!;
      const kind = ['local', 'dockerhub', 'ecr', 'gcr'].includes(name) ? 'IMAGE_REGISTRY' : 'BUILD_SERVICE';
      const other: Record<string, string> = kind === 'IMAGE_REGISTRY' ? { METAFLOW_PREBUILT_BUILD_SERVICE: 'acme' } : { METAFLOW_PREBUILT_IMAGE_REGISTRY: './backends/test-registry.mjs' };
      const check = await prebuilt(['backends', '--check', '--json'], { cwd: project, env: { [`METAFLOW_PREBUILT_${kind}`]: name, ...other } });
      expect(check.code, check.stderr).toBe(0);
      const entry = (JSON.parse(check.stdout) as Record<string, { resolvedFrom?: string; packageName?: string }>)[kind === 'IMAGE_REGISTRY' ? 'imageRegistry' : 'buildService'];
      expect(entry).toMatchObject({ packageName: `@prebuilt/${name}` });
      expect(entry!.resolvedFrom).toMatch(/packages\/cli$/);
    },
  );

  it('--check exits 2 with the resolver\'s message when a selected backend is missing', async () => {
    const r = await prebuilt(['backends', '--check'], { cwd: project, env: { METAFLOW_PREBUILT_BUILD_SERVICE: 'acme', METAFLOW_PREBUILT_IMAGE_REGISTRY: 'gcr' } });
    expect(r.code).toBe(2);
    expect(r.stdout).toMatch(/build service\s+acme\s+ok\s+prebuilt-backend-acme 1\.2\.3/);
    expect(r.stdout).toMatch(/image registry\s+gcr\s+FAILED/);
    expect(r.stderr).toContain("error: Cannot find the image registry 'gcr' (selected by METAFLOW_PREBUILT_IMAGE_REGISTRY)");
    expect(r.stderr).toContain(`@prebuilt/gcr from ${project}: not installed`);
    expect(r.stderr).toMatch(/@prebuilt\/gcr from \/.*packages\/cli: not installed/);
    expect(r.stderr).toContain('hint: Install it in your project: npm i -D @prebuilt/gcr');
    expect(r.stderr).not.toMatch(STACK_LINE);
  });

  it('--check exits 0 when both selected backends load (a test backend selected by path)', async () => {
    const r = await prebuilt(['backends', '--check'], {
      cwd: project,
      env: { METAFLOW_PREBUILT_BUILD_SERVICE: 'acme', METAFLOW_PREBUILT_IMAGE_REGISTRY: './backends/test-registry.mjs' },
    });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/build service\s+acme\s+ok/);
    expect(r.stdout).toMatch(/image registry\s+\.\/backends\/test-registry\.mjs\s+ok\s+.*backends\/test-registry\.mjs/);
  });

  it('--check creates the backends as a build would: Docker Hub without a namespace is "FAILED" (exit 2), with the setting to fix', async () => {
    const home = join(project, 'empty-home');
    mkdirSync(home, { recursive: true });
    const env = { METAFLOW_PREBUILT_BUILD_SERVICE: 'acme', METAFLOW_PREBUILT_IMAGE_REGISTRY: 'dockerhub', HOME: home, DOCKER_CONFIG: join(home, '.docker') };
    const r = await prebuilt(['backends', '--check'], { cwd: project, env });
    expect(r.code).toBe(2);
    expect(r.stdout).toMatch(/image registry\s+dockerhub\s+FAILED\s+config/);
    expect(r.stderr).toContain('error: The Docker Hub namespace is not set: METAFLOW_PREBUILT_DOCKERHUB_NAMESPACE is unset and no logged-in user was found');
    expect(r.stderr).toContain("hint: Set METAFLOW_PREBUILT_DOCKERHUB_NAMESPACE to your Docker Hub user or organisation, or run 'docker login'.\n");
    // The library's option name is for code that creates the registry; a CLI user has the variable.
    expect(r.stderr).not.toContain('option');
    const json = await prebuilt(['backends', '--check', '--json'], { cwd: project, env });
    const parsed = JSON.parse(json.stdout) as { error: { message: string; hint: string }; imageRegistry: { error: { message: string; hint: string } } };
    expect(parsed.error.hint).toBe("Set METAFLOW_PREBUILT_DOCKERHUB_NAMESPACE to your Docker Hub user or organisation, or run 'docker login'.");
    expect(parsed.imageRegistry.error).toEqual(parsed.error);
    expect(json.stdout).not.toContain('option');
    const fixed = await prebuilt(['backends', '--check'], { cwd: project, env: { ...env, METAFLOW_PREBUILT_DOCKERHUB_NAMESPACE: 'someone' } });
    expect(fixed.stderr).toBe('');
    expect(fixed.code).toBe(0);
  });

  it('--check notes a misspelt setting with the one it most likely means: the likeliest reason a setting is missing', async () => {
    const home = join(project, 'empty-home');
    mkdirSync(home, { recursive: true });
    const env = { METAFLOW_PREBUILT_BUILD_SERVICE: 'oci', METAFLOW_PREBUILT_IMAGE_REGISTRY: 'dockerhub', METAFLOW_PREBUILT_DOCKERHUB_NAMESAPCE: 'someone', HOME: home, DOCKER_CONFIG: join(home, '.docker') };
    const r = await prebuilt(['backends', '--check', '--json'], { cwd: project, env });
    expect(r.code).toBe(2);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: false, imageRegistry: { ok: false } });
    expect(r.stderr).toContain('note: METAFLOW_PREBUILT_DOCKERHUB_NAMESAPCE is not a setting prebuilt knows, ignored: did you mean METAFLOW_PREBUILT_DOCKERHUB_NAMESPACE?\n');
  });

  it('--check prints a failed build service\'s message and hint (its daemon\'s words) without their escape sequences, also when the registry fails after it', async () => {
    // A build service whose check fails with the daemon's answer quoted: a PrebuiltError by its marker.
    const hostile = `Object.assign(new Error('the daemon answered: \\x1b]8;;https://evil.example/\\x07docs\\x1b]8;;\\x07\\x1b[2J'), { [Symbol.for('prebuilt.error')]: true, code: 'unreachable', exitCode: 2, hint: 'it said \\x1b[1A\\rok', toJSON() { return { code: this.code, message: this.message }; } })`;
    writeFileSync(join(project, 'backends/hostile-daemon.mjs'), definitionModule('build-service', 'hostile-daemon').replace('async check() {}', `async check() { throw ${hostile}; }`));
    const r = await prebuilt(['backends', '--check'], { cwd: project, env: { METAFLOW_PREBUILT_BUILD_SERVICE: './backends/hostile-daemon.mjs', METAFLOW_PREBUILT_IMAGE_REGISTRY: 'gcr' } });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('error: the daemon answered: \\x1b]8;;https://evil.example/\\x07docs\\x1b]8;;\\x07\\x1b[2J\nhint: it said \\x1b[1A\\x0dok\n');
    expect(r.stderr).toContain("error: Cannot find the image registry 'gcr'");
    expect(r.stderr).not.toMatch(/[\x07\x1b\r]/);
  });

  it('--check of a typo of a built-in (dokcer) says "did you mean docker?" and no npm i hint', async () => {
    const r = await prebuilt(['backends', '--check'], { cwd: project, env: { METAFLOW_PREBUILT_BUILD_SERVICE: 'dokcer', METAFLOW_PREBUILT_IMAGE_REGISTRY: './backends/test-registry.mjs' } });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('hint: Did you mean docker? Set METAFLOW_PREBUILT_BUILD_SERVICE=docker');
    expect(r.stderr).not.toContain('npm i');
  });

  it('--check --json prints one object with each result and exits 2 on a missing backend', async () => {
    const r = await prebuilt(['backends', '--check', '--json'], {
      cwd: project,
      env: { METAFLOW_PREBUILT_BUILD_SERVICE: 'kaniko', METAFLOW_PREBUILT_IMAGE_REGISTRY: './backends/test-registry.mjs' },
    });
    expect(r.code).toBe(2);
    const out = JSON.parse(r.stdout) as Record<string, { ok: boolean; error?: { code: string; hint: string } }> & { ok: boolean };
    expect(out.ok).toBe(false);
    expect(out.imageRegistry).toMatchObject({ ok: true, source: 'path' });
    expect(out.buildService).toMatchObject({ ok: false, name: 'kaniko', error: { code: 'backend-not-found' } });
    expect(out.buildService!.error!.hint).toContain('npm i -D @prebuilt/kaniko');
    // The envelope's error is the failure's, beside both entries.
    expect((out as unknown as { error: unknown }).error).toMatchObject({ name: 'BackendNotFoundError', code: 'backend-not-found', hint: expect.stringContaining('npm i -D @prebuilt/kaniko') });
  });

  it('--check reports an invalid backend (wrong apiVersion) with exit 2; stack traces only with --verbose or DEBUG', async () => {
    const env = { METAFLOW_PREBUILT_BUILD_SERVICE: 'acme', METAFLOW_PREBUILT_IMAGE_REGISTRY: './backends/future.mjs' };
    const quiet = await prebuilt(['backends', '--check'], { cwd: project, env });
    expect(quiet.code).toBe(2);
    expect(quiet.stderr).toContain("'apiVersion' is 7, this prebuilt supports apiVersion 1");
    expect(quiet.stderr).not.toMatch(STACK_LINE);
    expect(quiet.stderr).not.toContain('prebuilt:core');

    const verbose = await prebuilt(['backends', '--check', '--verbose'], { cwd: project, env });
    expect(verbose.code).toBe(2);
    expect(verbose.stderr).toMatch(/prebuilt:core:backends build-service acme: loaded prebuilt-backend-acme/);
    expect(verbose.stderr).toMatch(STACK_LINE);
    expect(verbose.stderr).toContain('BackendInvalidError');

    const debug = await prebuilt(['backends', '--check'], { cwd: project, env: { ...env, DEBUG: 'prebuilt:*' } });
    expect(debug.code).toBe(2);
    expect(debug.stderr).toMatch(STACK_LINE);
  });
});

describe('interrupts', () => {
  const slowEnv = (ms: number): Record<string, string> => ({
    METAFLOW_PREBUILT_BUILD_SERVICE: 'acme',
    METAFLOW_PREBUILT_IMAGE_REGISTRY: './backends/slow.mjs',
    SLOW_MS: String(ms),
  });
  const sendOnce = (signal: NodeJS.Signals, times = 1) => {
    let sent = false;
    return (text: string, child: ReturnType<typeof spawn>): void => {
      if (sent || !text.includes('slow backend loading')) return;
      sent = true;
      for (let i = 0; i < times; i++) setTimeout(() => child.kill(signal), 50 + i * 100);
    };
  };

  it('SIGINT exits 130 and SIGTERM exits 143 once the running work stops', { timeout: 30_000 }, async () => {
    const int = await prebuilt(['backends', '--check'], { cwd: project, env: slowEnv(1500), onStderr: sendOnce('SIGINT') });
    expect(int.code).toBe(130);
    // The slow loading cannot be cut short: the check ends, and the line says it had finished.
    expect(int.stderr).toContain('\ninterrupted (SIGINT): prebuilt backends had finished its work when the interrupt came. Its result stands');
    const json = await prebuilt(['backends', '--check', '--json'], { cwd: project, env: slowEnv(1500), onStderr: sendOnce('SIGINT') });
    expect(json.code).toBe(130);
    // stdout stays one object: the interrupted envelope with the check's fields, never ok: true beside exit 130; the line goes to stderr.
    expect(JSON.parse(json.stdout)).toMatchObject({ ok: false, interrupted: true, completed: true, error: { code: 'cancelled' }, buildService: { name: 'acme' } });
    expect(json.stderr).toContain('interrupted (SIGINT): prebuilt backends had finished its work when the interrupt came.');
    const term = await prebuilt(['backends', '--check'], { cwd: project, env: slowEnv(1500), onStderr: sendOnce('SIGTERM') });
    expect(term.code).toBe(143);
  });

  it('a second SIGINT exits 130 at once', { timeout: 30_000 }, async () => {
    const started = Date.now();
    const r = await prebuilt(['backends', '--check'], { cwd: project, env: slowEnv(20_000), onStderr: sendOnce('SIGINT', 2) });
    expect(r.code).toBe(130);
    expect(Date.now() - started).toBeLessThan(10_000);
  });
});
