import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { main } from '../main.js';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..');
const EXAMPLE = join(REPO, 'examples', 'hello_flow.py');

function capture() {
  const out = { stdout: '', stderr: '' };
  return {
    out,
    stdout: { write: (text: string) => ((out.stdout += text), true) },
    stderr: { write: (text: string) => ((out.stderr += text), true) },
  };
}

describe('prebuilt build checks its configuration before any work', () => {
  const dir = mkdtempSync(join(tmpdir(), 'prebuilt-config-first-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  copyFileSync(EXAMPLE, join(dir, 'hello_flow.py'));
  // Channels and index on a closed port: had the flow been locked first, the build would fail on the network.
  const env = {
    PATH: process.env['PATH'],
    HOME: dir,
    XDG_CACHE_HOME: join(dir, 'cache'),
    METAFLOW_PREBUILT_IMAGE_REGISTRY: 'local',
    METAFLOW_PREBUILT_LOCAL_REGISTRY: '127.0.0.1:1',
    METAFLOW_PREBUILT_CONDA_CHANNELS: 'http://127.0.0.1:1/channel',
    METAFLOW_PREBUILT_PYPI_INDEX_URL: 'http://127.0.0.1:1/simple',
  };

  it.each([
    ['an unknown build service', { METAFLOW_PREBUILT_BUILD_SERVICE: 'no-such-builder' }, "Cannot find the build service 'no-such-builder'"],
    ['a typo of a built-in build service', { METAFLOW_PREBUILT_BUILD_SERVICE: 'dokcer' }, 'Did you mean docker?'],
    ['a build service whose check() fails (docker with no daemon at DOCKER_HOST)', { METAFLOW_PREBUILT_BUILD_SERVICE: 'docker', DOCKER_HOST: 'unix:///nonexistent/prebuilt-test.sock' }, '/nonexistent/prebuilt-test.sock'],
  ])('%s: exit 2 before the flow is locked (no lock file, no network)', async (_what, selection, message) => {
    const io = capture();
    const code = await main(['build', 'hello_flow.py'], { cwd: dir, env: { ...env, ...selection }, stdout: io.stdout, stderr: io.stderr });
    expect(code, io.out.stderr).toBe(2);
    expect(io.out.stderr).toContain(message);
    expect(io.out.stderr).not.toMatch(/127\.0\.0\.1:1\/(channel|simple)/);
    expect(existsSync(join(dir, 'hello_flow.prebuilt.lock'))).toBe(false);
  });

  it.each([
    ['an unknown build service', { METAFLOW_PREBUILT_BUILD_SERVICE: 'no-such-builder' }, "Cannot find the build service 'no-such-builder'"],
    ['a typo of a built-in build service', { METAFLOW_PREBUILT_BUILD_SERVICE: 'dokcer' }, 'Did you mean docker?'],
  ])('plan with %s: exit 2 before the flow is locked, not a plan whose build then fails', async (_what, selection, message) => {
    const io = capture();
    const code = await main(['plan', 'hello_flow.py', '--json'], { cwd: dir, env: { ...env, ...selection }, stdout: io.stdout, stderr: io.stderr });
    expect(code, io.out.stderr).toBe(2);
    expect(JSON.parse(io.out.stdout)).toMatchObject({ ok: false, error: { code: 'backend-not-found' } });
    expect(io.out.stderr).toContain(message);
    expect(io.out.stderr).not.toMatch(/127\.0\.0\.1:1\/(channel|simple)/);
    expect(existsSync(join(dir, 'hello_flow.prebuilt.lock'))).toBe(false);
  });

  it('plan with a build service whose settings are unset (kaniko without its bucket) or whose daemon is down still plans: it is found, not created', async () => {
    // kaniko installed in the project, as `npm i -D @prebuilt/kaniko` would.
    mkdirSync(join(dir, 'node_modules', '@prebuilt'), { recursive: true });
    symlinkSync(join(REPO, 'packages', 'kaniko'), join(dir, 'node_modules', '@prebuilt', 'kaniko'));
    for (const selection of [{ METAFLOW_PREBUILT_BUILD_SERVICE: 'kaniko' }, { METAFLOW_PREBUILT_BUILD_SERVICE: 'docker', DOCKER_HOST: 'unix:///nonexistent/prebuilt-test.sock' }]) {
      const io = capture();
      const code = await main(['plan', 'hello_flow.py', '--json'], { cwd: dir, env: { ...env, ...selection }, stdout: io.stdout, stderr: io.stderr });
      // It gets as far as locking the flow: the closed channel port is its error.
      expect(code, io.out.stderr).toBe(2);
      expect(io.out.stderr).toMatch(/127\.0\.0\.1:1\/(channel|simple)/);
      expect(io.out.stderr).not.toContain('build service');
    }
  });
});
