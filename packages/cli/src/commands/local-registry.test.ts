/**
 * `prebuilt local-registry start|status|stop` through the real CLI (node bin/prebuilt.js, after
 * `pnpm build`), on a free port, with its state in a temporary $XDG_STATE_HOME.
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeOrFailInCi, getServices, missingFor } from '../../../../test/services.js';
import { freePort } from '../../../../test/free-port.js';

const BIN = fileURLToPath(new URL('../../bin/prebuilt.js', import.meta.url));
const DIST = fileURLToPath(new URL('../../dist/main.js', import.meta.url));
const HAVE_REGISTRY = existsSync('/usr/bin/docker-registry');

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

function prebuilt(args: string[], env: Record<string, string>): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { env: { ...process.env, ...env } as NodeJS.ProcessEnv }, (error, stdout, stderr) => {
      const code = error ? (typeof (error as { code?: unknown }).code === 'number' ? (error as { code: number }).code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}


const missing = !existsSync(DIST)
  ? 'the CLI is not built (run pnpm build)'
  : !HAVE_REGISTRY
    ? '/usr/bin/docker-registry is not installed: apt-get install docker-registry (scripts/test-services.sh up does)'
    : undefined;

describeOrFailInCi('prebuilt local-registry', missing, () => {
  let state: string;
  let env: Record<string, string>;

  beforeAll(async () => {
    state = await mkdtemp(join(tmpdir(), 'prebuilt-cli-localreg-'));
    env = { XDG_STATE_HOME: state, METAFLOW_PREBUILT_LOCAL_REGISTRY: '' };
  });
  afterAll(async () => {
    await prebuilt(['local-registry', 'stop'], env);
    await rm(state, { recursive: true, force: true });
  });

  it('start repairs, with a note on stderr, a state directory an older prebuilt made 0777; one of another user is refused (exit 2, what, why and the fix)', async () => {
    const xdg = await mkdtemp(join(tmpdir(), 'prebuilt-cli-localreg-mode-'));
    const own = { XDG_STATE_HOME: xdg, METAFLOW_PREBUILT_LOCAL_REGISTRY: '' };
    const stateDir = join(xdg, 'prebuilt', 'local-registry');
    try {
      await mkdir(stateDir, { recursive: true });
      await chmod(stateDir, 0o777);
      const start = await prebuilt(['local-registry', 'start', '--port', String(await freePort())], own);
      expect(start.code, start.stderr).toBe(0);
      expect(start.stderr).toBe(
        `note: ${stateDir} (yours) could be written by every user (mode 0777), so they could rename the development registry's credential away and plant their own: prebuilt made it 0700.\n`,
      );
      expect((await stat(stateDir)).mode & 0o7777).toBe(0o700);
      await prebuilt(['local-registry', 'stop'], own);
      if (process.getuid?.() !== 0) return;
      await chown(join(xdg, 'prebuilt'), 65534, 65534);
      const refused = await prebuilt(['local-registry', 'start', '--json'], own);
      expect(refused.code).toBe(2);
      expect(JSON.parse(refused.stdout)).toMatchObject({
        ok: false,
        error: {
          message:
            `The development registry's state directory ${stateDir} is not safe for its credential: ` +
            `${join(xdg, 'prebuilt')} belongs to another user (uid 65534), who can rename what is in it away and plant their own htpasswd and credential.`,
          hint: `Remove it (its owner or root can: \`rm -r ${join(xdg, 'prebuilt')}\`) so prebuilt makes it again as yours, or set XDG_STATE_HOME to a directory only you can write.`,
        },
      });
      expect(refused.stderr).not.toMatch(/\bat .*\.js:\d+/);
    } finally {
      await prebuilt(['local-registry', 'stop'], own);
      await rm(xdg, { recursive: true, force: true });
    }
  });

  it('start → status → start (idempotent) → stop → status → stop (idempotent)', async () => {
    const port = await freePort();
    const before = await prebuilt(['local-registry', 'status'], env);
    expect(before).toMatchObject({ code: 0 });
    expect(before.stdout).toContain('not running');
    // A registry of the user's own named by the setting: builds use it; status says it shows prebuilt's alone.
    const named = await prebuilt(['local-registry', 'status'], { ...env, METAFLOW_PREBUILT_LOCAL_REGISTRY: 'registry.example.com/team' });
    expect(named.stdout).toBe(
      'local registry not running\n  start it with: prebuilt local-registry start\n' +
        '  METAFLOW_PREBUILT_LOCAL_REGISTRY names registry.example.com/team: prebuilt pushes to whatever registry answers there; this command shows only the one `prebuilt local-registry start` runs\n',
    );

    const start = await prebuilt(['local-registry', 'start', '--port', String(port)], env);
    expect(start.stderr).toBe('');
    expect(start.code).toBe(0);
    expect(start.stdout).toContain(`running at 127.0.0.1:${port}`);
    expect(start.stdout).toContain(`METAFLOW_PREBUILT_LOCAL_REGISTRY=127.0.0.1:${port}`);
    const credentialsFile = join(state, 'prebuilt', 'local-registry', 'credentials.json');
    expect(start.stdout).toContain(`  auth: login required (htpasswd); prebuilt uses the credential in ${credentialsFile}\n`);
    // Anonymous requests are refused; the credential start made is accepted, and no output shows its password.
    expect((await fetch(`http://127.0.0.1:${port}/v2/`)).status).toBe(401);
    const { username, password } = JSON.parse(await readFile(credentialsFile, 'utf8')) as { username: string; password: string };
    const authorization = `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
    expect((await fetch(`http://127.0.0.1:${port}/v2/`, { headers: { authorization } })).status).toBe(200);
    expect(start.stdout).not.toContain(password);

    const status = await prebuilt(['local-registry', 'status', '--json'], env);
    expect(status.code).toBe(0);
    expect(status.stdout).not.toContain(password);
    const json = JSON.parse(status.stdout) as Record<string, unknown>;
    expect(json).toMatchObject({ ok: true, running: true, healthy: true, authenticated: true, credentialsFile, address: `127.0.0.1:${port}`, port, mode: 'binary' });
    const human = await prebuilt(['local-registry', 'status'], env);
    expect(human.stdout).toContain('auth: login required (htpasswd)');
    expect(json['pid']).toEqual(expect.any(Number));
    expect(json['stateDir']).toBe(join(state, 'prebuilt', 'local-registry'));

    const again = await prebuilt(['local-registry', 'start', '--json'], env);
    expect(again.code).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ alreadyRunning: true, pid: json['pid'], port });

    const stop = await prebuilt(['local-registry', 'stop'], env);
    expect(stop).toMatchObject({ code: 0, stdout: 'local registry stopped\n' });
    await expect(fetch(`http://127.0.0.1:${port}/v2/`)).rejects.toThrow();
    const after = JSON.parse((await prebuilt(['local-registry', 'status', '--json'], env)).stdout) as Record<string, unknown>;
    expect(after).toMatchObject({ running: false, healthy: false, address: null });
    const stopAgain = await prebuilt(['local-registry', 'stop', '--json'], env);
    expect(JSON.parse(stopAgain.stdout)).toMatchObject({ ok: true, stopped: false });
  });

  it('a registry an older prebuilt started without a login: status says it is open, start restarts it with one and says so in a note', async () => {
    const port = await freePort();
    const stateDir = join(state, 'prebuilt', 'local-registry');
    const configFile = join(stateDir, 'config.yml');
    await mkdir(join(stateDir, 'data'), { recursive: true });
    await writeFile(configFile, `version: 0.1\nstorage: {filesystem: {rootdirectory: ${JSON.stringify(join(stateDir, 'data'))}}}\nhttp: {addr: 127.0.0.1:${port}}\n`);
    const old = spawn('/usr/bin/docker-registry', ['serve', configFile], { detached: true, stdio: 'ignore' });
    old.unref();
    await writeFile(join(stateDir, 'state.json'), JSON.stringify({ mode: 'binary', port, pid: old.pid, container: null, configFile, logFile: null, startedAt: '2026-01-01T00:00:00Z' }));
    try {
      for (let tries = 0; (await fetch(`http://127.0.0.1:${port}/v2/`).then((r) => r.status, () => 0)) !== 200; tries++) {
        if (tries > 50) throw new Error('the older registry did not answer');
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      const status = await prebuilt(['local-registry', 'status'], env);
      expect(status.stdout).toContain('  auth: NONE — any user of this machine can push to it (started by an older prebuilt); `prebuilt local-registry start` restarts it with a login\n');
      expect(JSON.parse((await prebuilt(['local-registry', 'status', '--json'], env)).stdout)).toMatchObject({ running: true, authenticated: false, credentialsFile: null });
      const start = await prebuilt(['local-registry', 'start'], env);
      expect(start.code, start.stderr).toBe(0);
      expect(start.stderr).toBe(
        `note: The development registry at 127.0.0.1:${port} ran without authentication (started by an older prebuilt): any user of this machine could push to it. ` +
          'It was restarted with a login that prebuilt uses by itself; its images are kept.\n',
      );
      expect(start.stdout).toContain(`local registry running at 127.0.0.1:${port}`);
      expect(start.stdout).toContain('  auth: login required (htpasswd)');
      expect((await fetch(`http://127.0.0.1:${port}/v2/`)).status).toBe(401);
    } finally {
      await prebuilt(['local-registry', 'stop'], env);
      try {
        process.kill(old.pid!, 'SIGKILL');
      } catch {
        // stopped by start, as it should be
      }
    }
  });

  it('takes the port from METAFLOW_PREBUILT_LOCAL_REGISTRY when it names this machine', async () => {
    const port = await freePort();
    const start = await prebuilt(['local-registry', 'start', '--json'], { ...env, METAFLOW_PREBUILT_LOCAL_REGISTRY: `127.0.0.1:${port}` });
    expect(start.code).toBe(0);
    expect(JSON.parse(start.stdout)).toMatchObject({ running: true, port });
    expect((await prebuilt(['local-registry', 'stop'], env)).code).toBe(0);
  });

  it('status and stop take the --port start took; another port exits 2 and stops nothing', async () => {
    const port = await freePort();
    expect((await prebuilt(['local-registry', 'start', '--port', String(port)], env)).code).toBe(0);
    const wrongStop = await prebuilt(['local-registry', 'stop', '--port', String(port + 1)], env);
    expect(wrongStop.code).toBe(2);
    expect(wrongStop.stderr).toContain(`runs at 127.0.0.1:${port}, not on port ${port + 1}; nothing was stopped`);
    expect(wrongStop.stderr).not.toMatch(/\n\s+at /);
    expect((await fetch(`http://127.0.0.1:${port}/v2/`)).status).toBe(401);
    const wrongStatus = await prebuilt(['local-registry', 'status', '--port', String(port + 1), '--json'], env);
    expect(wrongStatus.code).toBe(2);
    expect(JSON.parse(wrongStatus.stdout)).toMatchObject({ ok: false, error: { code: 'config' } });
    const status = await prebuilt(['local-registry', 'status', '--port', String(port), '--json'], env);
    expect(JSON.parse(status.stdout)).toMatchObject({ running: true, port });
    const stop = await prebuilt(['local-registry', 'stop', '--port', String(port)], env);
    expect(stop).toMatchObject({ code: 0, stdout: 'local registry stopped\n' });
    expect(await prebuilt(['local-registry', 'stop', '--port', String(port)], env)).toMatchObject({ code: 0, stdout: 'local registry was not running\n' });
    expect((await prebuilt(['local-registry', 'stop', '--port', 'abc'], env)).code).toBe(2);
  });

  it('a bad --port exits 2 with a message; a busy port exits 2 saying to pick another', async () => {
    const bad = await prebuilt(['local-registry', 'start', '--port', 'abc'], env);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--port abc is not a TCP port');
    expect(bad.stderr).not.toMatch(/\n\s+at /);

    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as { port: number }).port;
    try {
      const busy = await prebuilt(['local-registry', 'start', '--port', String(port), '--json'], env);
      expect(busy.code).toBe(2);
      expect(JSON.parse(busy.stdout)).toMatchObject({ ok: false, error: { code: 'environment' } });
      expect(busy.stderr).toContain(`Port ${port}`);
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
    }
  });
});

describe('local-registry help constants', () => {
  it('the setting and default port the help names are those of @prebuilt/local (which --help does not load)', async () => {
    const { DEFAULT_LOCAL_REGISTRY_PORT, LOCAL_REGISTRY_ENV } = await import('./local-registry.js');
    const local = await import('@prebuilt/local');
    expect(LOCAL_REGISTRY_ENV).toBe(local.LOCAL_ENV.registry);
    expect(DEFAULT_LOCAL_REGISTRY_PORT).toBe(local.DEFAULT_REGISTRY_PORT);
  });
});

const services = getServices();
describeOrFailInCi('prebuilt local-registry login (the Docker daemon of the test services)', missing ?? missingFor(['docker'], services), () => {
  it('login logs Docker in (scratch DOCKER_CONFIG) so docker pulls from it, never printing the password; status says whether Docker has this start\'s login; --json; exit 2 when none runs', async () => {
    const root = await mkdtemp(join(tmpdir(), 'prebuilt-cli-localreg-login-'));
    const dockerConfig = join(root, 'docker');
    const env = { XDG_STATE_HOME: join(root, 'state'), DOCKER_CONFIG: dockerConfig, DOCKER_HOST: services.dockerHost ?? '', METAFLOW_PREBUILT_LOCAL_REGISTRY: '' };
    const port = await freePort();
    const address = `127.0.0.1:${port}`;
    try {
      const none = await prebuilt(['local-registry', 'login'], env);
      expect(none.code).toBe(2);
      expect(none.stderr).toContain('The development registry is not running, so there is nothing to log in to.');
      expect(none.stderr).toContain('Start it with `prebuilt local-registry start`, then log in.');

      const start = await prebuilt(['local-registry', 'start', '--port', String(port)], env);
      expect(start.code, start.stderr).toBe(0);
      expect(start.stdout).toContain(`  docker: not logged in (${join(dockerConfig, 'config.json')}): run \`prebuilt local-registry login\` for docker pull or run of its images\n`);
      const password = JSON.parse(await readFile(join(root, 'state', 'prebuilt', 'local-registry', 'credentials.json'), 'utf8')).password as string;
      expect(JSON.parse((await prebuilt(['local-registry', 'status', '--json'], env)).stdout)).toMatchObject({ ok: true, running: true, dockerLogin: 'none', dockerConfig: join(dockerConfig, 'config.json') });

      const login = await prebuilt(['local-registry', 'login'], env);
      expect(login.code, login.stderr).toBe(0);
      expect(login.stdout).toBe(
        `docker logged in to ${address} as prebuilt (${join(dockerConfig, 'config.json')})\n` +
          '  the next `prebuilt local-registry start` makes a new credential: log in again after it\n',
      );
      expect(`${login.stdout}${login.stderr}`).not.toContain(password);
      const config = JSON.parse(await readFile(join(dockerConfig, 'config.json'), 'utf8')) as { auths: Record<string, { auth: string }> };
      expect(Buffer.from(config.auths[address]!.auth, 'base64').toString('utf8')).toBe(`prebuilt:${password}`);
      const status = await prebuilt(['local-registry', 'status'], env);
      expect(status.stdout).toContain(`  docker: logged in with this start's credential (${join(dockerConfig, 'config.json')}): docker pull and run of its images work\n`);

      // Docker itself now gets in: a pull of a missing tag is "not found", no longer "unauthorized".
      const pull = await new Promise<string>((resolve) =>
        execFile('docker', ['pull', `${address}/prebuilt-test/none:missing`], { env: { ...process.env, ...env } }, (_error, _stdout, stderr) => resolve(String(stderr))),
      );
      expect(pull).toMatch(/not found|manifest unknown/i);
      expect(pull).not.toMatch(/no basic auth credentials|unauthorized/i);

      expect(JSON.parse((await prebuilt(['local-registry', 'login', '--json'], env)).stdout)).toEqual({ ok: true, address, username: 'prebuilt', dockerConfig: join(dockerConfig, 'config.json') });
      const wrongPort = await prebuilt(['local-registry', 'login', '--port', String(port + 1)], env);
      expect(wrongPort.code).toBe(2);
      // Without --port, login follows METAFLOW_PREBUILT_LOCAL_REGISTRY's port: another one running is exit 2, naming both.
      const other = `127.0.0.1:${port + 1}`;
      const setting = await prebuilt(['local-registry', 'login', '--json'], { ...env, METAFLOW_PREBUILT_LOCAL_REGISTRY: other });
      expect(setting.code, setting.stderr).toBe(2);
      const refused = (JSON.parse(setting.stdout) as { error: { message: string; hint: string } }).error;
      expect(refused.message).toBe(`The development registry runs at ${address}, but METAFLOW_PREBUILT_LOCAL_REGISTRY names ${other}: Docker was not logged in.`);
      expect(refused.hint).toContain(`prebuilt local-registry login --port ${port}`);
      expect(refused.hint).toContain(`METAFLOW_PREBUILT_LOCAL_REGISTRY=${address}`);
      const followed = await prebuilt(['local-registry', 'login', '--json'], { ...env, METAFLOW_PREBUILT_LOCAL_REGISTRY: `localhost:${port}` });
      expect(followed.code, followed.stderr).toBe(0);
      // status reports the running one, saying that the setting names another.
      const elsewhere = await prebuilt(['local-registry', 'status'], { ...env, METAFLOW_PREBUILT_LOCAL_REGISTRY: other });
      expect(elsewhere.code, elsewhere.stderr).toBe(0);
      expect(elsewhere.stdout).toContain(`running at ${address}`);
      expect(elsewhere.stderr).toContain(`note: METAFLOW_PREBUILT_LOCAL_REGISTRY names ${other}, not this registry: prebuilt uses the address the setting names (export METAFLOW_PREBUILT_LOCAL_REGISTRY=${address} to use this one).`);
      expect((await prebuilt(['local-registry', 'status'], env)).stderr).not.toContain('not this registry');

      await prebuilt(['local-registry', 'stop'], env);
      await prebuilt(['local-registry', 'start', '--port', String(port)], env);
      expect(JSON.parse((await prebuilt(['local-registry', 'status', '--json'], env)).stdout)).toMatchObject({ dockerLogin: 'stale' });
      const help = await prebuilt(['local-registry', '--help'], env);
      expect(help.stdout).toContain('`prebuilt local-registry login`: it runs docker login 127.0.0.1:<port> --username prebuilt');
      expect(help.stdout).toMatch(/login \[options\]\s+log Docker in to the development registry/);
    } finally {
      await prebuilt(['local-registry', 'stop'], env);
      await rm(root, { recursive: true, force: true });
    }
  });
});
