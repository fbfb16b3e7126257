import { copyFileSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { main } from '../main.js';

const EXAMPLE = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..', 'examples', 'hello_flow.py');

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
});
