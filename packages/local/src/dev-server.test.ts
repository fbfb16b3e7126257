import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { chmod, chown, copyFile, lchown, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { hostname, tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, EnvironmentError, PrebuiltError, foreignSymlinks } from '@prebuilt/core/backend';
import { createLocalRegistry, defaultStateDir, dockerLoginLocalRegistryServer, localRegistryServerCredentials, localRegistryServerStatus, startLocalRegistryServer, stopLocalRegistryServer } from './index.js';
import { describeOrFailInCi, missingFor, testServices } from './__fixtures__/services.js';
import { pushTinyImage } from './__fixtures__/oci-push.js';
import { freePort } from '../../../test/free-port.js';

const run = promisify(execFile);

/** The credential `start` made for the registry on `port`, as user name and password (fails the test when there is none). */
function credentialOf(port: number, stateDir: string): { username: string; password: string } {
  const credentials = localRegistryServerCredentials(`127.0.0.1:${port}`, { stateDir });
  if (!credentials?.username || !credentials.password) throw new Error(`no credential for 127.0.0.1:${port} in ${stateDir}`);
  return { username: credentials.username, password: credentials.password.reveal() };
}

const basic = ({ username, password }: { username: string; password: string }) => `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;

/** What an anonymous request, one with `auth` and one with a wrong password get from the registry's API root. */
async function v2Statuses(port: number, auth: { username: string; password: string }): Promise<{ anonymous: number; challenge: string | null; login: number; wrong: number }> {
  const anonymous = await fetch(`http://127.0.0.1:${port}/v2/`);
  const login = await fetch(`http://127.0.0.1:${port}/v2/`, { headers: { authorization: basic(auth) } });
  const wrong = await fetch(`http://127.0.0.1:${port}/v2/`, { headers: { authorization: basic({ ...auth, password: `${auth.password}x` }) } });
  return { anonymous: anonymous.status, challenge: anonymous.headers.get('www-authenticate'), login: login.status, wrong: wrong.status };
}


/**
 * A program of another user (uid 65534, started with setpriv: the tests run as root) listening on
 * 127.0.0.1:`port` as a registry wanting a Basic login would: 401 without Authorization, 200 with
 * any. Each Authorization it is sent is appended to `<seenDir>/seen` (the directory is made
 * writable by all). Extra `args` end up in its command line.
 */
const SQUATTER_JS = `
const [port, seen] = process.argv.slice(-2);
require('http').createServer((req, res) => {
  if (req.headers.authorization) require('fs').appendFileSync(seen, req.headers.authorization + '\\n');
  res.writeHead(req.headers.authorization ? 200 : 401, { 'www-authenticate': 'Basic realm="x"', 'docker-distribution-api-version': 'registry/2.0' });
  res.end('{}');
}).listen(Number(port), '127.0.0.1');
`;
const notRoot = process.getuid?.() === 0 && existsSync('/usr/bin/setpriv') ? undefined : 'needs root and setpriv to run a listener as another user';

async function squatterFiles(): Promise<{ dir: string; seen: string; script: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'prebuilt-devreg-squatter-'));
  await chmod(dir, 0o777);
  const script = join(dir, 'squatter.js');
  await writeFile(script, SQUATTER_JS, { mode: 0o644 });
  return { dir, seen: join(dir, 'seen'), script };
}

async function waitForListener(port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if ((await fetch(`http://127.0.0.1:${port}/v2/`).then((r) => r.status, () => 0)) === 401) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`nothing answered on 127.0.0.1:${port}`);
}

const SETPRIV = ['--reuid=65534', '--regid=65534', '--clear-groups'];


describe('development registry server: settings', () => {
  it('keeps its state under $XDG_STATE_HOME/prebuilt, else ~/.local/state/prebuilt', () => {
    expect(defaultStateDir({ XDG_STATE_HOME: '/x/state', HOME: '/home/u' })).toBe('/x/state/prebuilt/local-registry');
    expect(defaultStateDir({ HOME: '/home/u' })).toBe('/home/u/.local/state/prebuilt/local-registry');
  });

  it('under umask 000, the state directories it makes under XDG_STATE_HOME are private (0700); XDG_STATE_HOME itself, already there, keeps its mode', async () => {
    const root = await mkdtemp(join(tmpdir(), 'prebuilt-devreg-umask-'));
    const previous = process.umask(0);
    try {
      const xdg = join(root, 'state');
      await mkdir(xdg, { mode: 0o755 });
      const error = await startLocalRegistryServer({
        port: await freePort(),
        env: { ...process.env, XDG_STATE_HOME: xdg },
        registryBinary: join(root, 'no-registry'),
        dockerCommand: join(root, 'no-docker'),
      }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(EnvironmentError);
      // Made 0777, any user could rename local-registry away and plant their own htpasswd and credential.
      expect((await stat(join(xdg, 'prebuilt'))).mode & 0o7777).toBe(0o700);
      expect((await stat(join(xdg, 'prebuilt', 'local-registry'))).mode & 0o7777).toBe(0o700);
      expect((await stat(join(xdg, 'prebuilt', 'local-registry', 'data'))).mode & 0o7777).toBe(0o700);
      expect((await stat(xdg)).mode & 0o7777).toBe(0o755);
    } finally {
      process.umask(previous);
      await rm(root, { recursive: true, force: true });
    }
  });

  it.skipIf(process.getuid?.() !== 0)('XDG_STATE_HOME in a sticky shared directory (like /tmp): a symlink another user planted at `prebuilt` is refused (exit 2) by start and stop before anything is made through it', async () => {
    const root = await mkdtemp(join(tmpdir(), 'prebuilt-devreg-symlink-'));
    try {
      const shared = join(root, 'tmp');
      await mkdir(shared, { mode: 0o1777 });
      await chmod(shared, 0o1777);
      const elsewhere = join(root, 'theirs');
      await mkdir(elsewhere, { mode: 0o700 });
      await symlink(elsewhere, join(shared, 'prebuilt'));
      await lchown(join(shared, 'prebuilt'), 65534, 65534);
      const options = { port: await freePort(), env: { ...process.env, XDG_STATE_HOME: shared }, registryBinary: join(root, 'no-registry'), dockerCommand: join(root, 'no-docker') };
      // start; then stop, with a state directory planted behind the link (stop with none there has nothing to do and makes nothing).
      const plantState = async (): Promise<void> => void (await mkdir(join(elsewhere, 'local-registry'), { mode: 0o700 }));
      for (const [run, before] of [[() => startLocalRegistryServer(options), async () => undefined], [() => stopLocalRegistryServer(options), plantState]] as const) {
        await before();
        const error = await run().catch((e: unknown) => e);
        expect(error).toBeInstanceOf(EnvironmentError);
        expect((error as EnvironmentError).exitCode).toBe(2);
        expect((error as Error).message).toBe(
          `The development registry's state directory ${join(shared, 'prebuilt', 'local-registry')} is not safe for its credential: ` +
            `${join(shared, 'prebuilt')} belongs to another user (uid 65534), who can rename what is in it away and plant their own htpasswd and credential.`,
        );
        expect((error as EnvironmentError).hint).toBe(`Remove it (its owner or root can: \`rm -r ${join(shared, 'prebuilt')}\`) so prebuilt makes it again as yours, or set XDG_STATE_HOME to a directory only you can write.`);
        // Nothing was made through it (securePrivatePath alone refuses only after makeDirectory followed it).
        expect(await readdir(elsewhere, { recursive: true })).toEqual(existsSync(join(elsewhere, 'local-registry')) ? ['local-registry'] : []);
      }
      // The same link of your own: followed (nothing refused on its account).
      await lchown(join(shared, 'prebuilt'), process.getuid!(), process.getgid!());
      expect(await foreignSymlinks(join(shared, 'prebuilt', 'local-registry'), shared)).toEqual([]);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  it.skipIf(process.getuid?.() !== 0)('refuses (exit 2, before writing a credential) a state directory of another user, or below a directory every user may write in that is not ours to repair', async () => {
    const root = await mkdtemp(join(tmpdir(), 'prebuilt-devreg-foreign-'));
    try {
      const xdg = join(root, 'state');
      const options = { port: await freePort(), env: { ...process.env, XDG_STATE_HOME: xdg }, registryBinary: join(root, 'no-registry'), dockerCommand: join(root, 'no-docker') };
      // `prebuilt` under XDG_STATE_HOME belongs to another user (uid 65534): they can swap local-registry in it.
      await mkdir(join(xdg, 'prebuilt', 'local-registry'), { recursive: true, mode: 0o700 });
      await chown(join(xdg, 'prebuilt'), 65534, 65534);
      const owner = await startLocalRegistryServer(options).catch((e: unknown) => e);
      expect(owner).toBeInstanceOf(EnvironmentError);
      expect((owner as EnvironmentError).exitCode).toBe(2);
      expect((owner as Error).message).toBe(
        `The development registry's state directory ${join(xdg, 'prebuilt', 'local-registry')} is not safe for its credential: ` +
          `${join(xdg, 'prebuilt')} belongs to another user (uid 65534), who can rename what is in it away and plant their own htpasswd and credential.`,
      );
      expect((owner as EnvironmentError).hint).toBe(
        `Remove it (its owner or root can: \`rm -r ${join(xdg, 'prebuilt')}\`) so prebuilt makes it again as yours, or set XDG_STATE_HOME to a directory only you can write.`,
      );
      expect(existsSync(join(xdg, 'prebuilt', 'local-registry', 'credentials.json'))).toBe(false);
      // XDG_STATE_HOME every user may write in (no sticky bit), of another user: not ours to repair.
      await chown(join(xdg, 'prebuilt'), 0, 0);
      await chmod(xdg, 0o777);
      await chown(xdg, 65534, 65534);
      const writable = await startLocalRegistryServer(options).catch((e: unknown) => e);
      expect(writable).toBeInstanceOf(EnvironmentError);
      expect((writable as Error).message).toBe(
        `The development registry's state directory ${join(xdg, 'prebuilt', 'local-registry')} is not safe for its credential: ` +
          `every user may write in ${xdg} (mode 0777, uid 65534), so they can rename what is in it away and plant their own htpasswd and credential.`,
      );
      expect((writable as EnvironmentError).hint).toBe(
        `Ask its owner to run \`chmod o-w ${xdg}\` (or \`chmod +t ${xdg}\`), or set XDG_STATE_HOME to a directory only you can write.`,
      );
      expect((await stat(xdg)).mode & 0o7777).toBe(0o777);
      expect(existsSync(join(xdg, 'prebuilt', 'local-registry', 'credentials.json'))).toBe(false);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  it('without the registry program and without docker, says what to install', async () => {
    const stateDir = await mkdtemp(join(tmpdir(), 'prebuilt-devreg-none-'));
    try {
      const error = await startLocalRegistryServer({
        port: await freePort(),
        stateDir,
        registryBinary: join(stateDir, 'no-registry'),
        dockerCommand: join(stateDir, 'no-docker'),
      }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(EnvironmentError);
      expect((error as EnvironmentError).hint).toContain('apt-get install docker-registry');
    } finally {
      await rm(stateDir, { recursive: true, force: true });
    }
  });

  it('never runs docker-registry or docker found only through an empty or relative PATH entry (the current directory): a ConfigError', async () => {
    const stateDir = await mkdtemp(join(tmpdir(), 'prebuilt-devreg-relative-'));
    try {
      const marker = join(stateDir, 'ran');
      for (const name of ['docker-registry', 'docker']) {
        await writeFile(join(stateDir, name), `#!/bin/sh\n: > '${marker}'\n`);
        await chmod(join(stateDir, name), 0o755);
      }
      const here = relative(process.cwd(), stateDir);
      const env = { PATH: `/nonexistent:${here}` };
      const registry = await startLocalRegistryServer({ port: await freePort(), stateDir, registryBinary: 'docker-registry', env }).catch((e: unknown) => e);
      expect(registry).toBeInstanceOf(ConfigError);
      expect((registry as ConfigError).message).toContain(`the registry program was found only in '${here}', a PATH entry relative to the current directory`);
      const docker = await startLocalRegistryServer({ port: await freePort(), stateDir, registryBinary: join(stateDir, 'no-registry'), env }).catch((e: unknown) => e);
      expect(docker).toBeInstanceOf(ConfigError);
      expect((docker as ConfigError).message).toContain(`the docker CLI 'docker' was found only in '${here}'`);
      expect(existsSync(marker)).toBe(false);
    } finally {
      await rm(stateDir, { recursive: true, force: true });
    }
  });

  it('stop --port stops the registry it checked the port of, even when the state changes meanwhile (the state is read once)', async () => {
    const stateDir = await mkdtemp(join(tmpdir(), 'prebuilt-devreg-once-'));
    try {
      const state = (port: number) => ({ mode: 'container', port, pid: null, container: `prebuilt-local-registry-${port}`, configFile: null, logFile: null, startedAt: '2026-01-01T00:00:00Z' });
      await writeFile(join(stateDir, 'state.json'), JSON.stringify(state(5601)));
      // A FAKE docker: every container runs; answering whether one runs, it lets another start (a
      // concurrent \`start\` writes its state); \`rm -f <name>\` is recorded.
      const docker = join(stateDir, 'docker');
      await writeFile(
        docker,
        `#!/bin/sh\ncase "$1" in\n  inspect) printf '%s' '${JSON.stringify(state(5602))}' > '${join(stateDir, 'state.json')}'; echo true ;;\n  rm) echo "$3" >> '${join(stateDir, 'removed')}' ;;\nesac\n`,
        { mode: 0o755 },
      );
      const result = await stopLocalRegistryServer({ stateDir, port: 5601, dockerCommand: docker });
      expect(result.stopped).toBe(true);
      expect((await readFile(join(stateDir, 'removed'), 'utf8')).trim().split('\n')).toEqual(['prebuilt-local-registry-5601']);
    } finally {
      await rm(stateDir, { recursive: true, force: true });
    }
  });

  it("a container named as the state's that is not the one its start ran (a user of the Docker daemon ran one so named after ours was gone) is neither reported running nor removed: status and stop name the container by the id docker run gave", async () => {
    const stateDir = await mkdtemp(join(tmpdir(), 'prebuilt-devreg-ctrid-'));
    try {
      const id = 'a1'.repeat(32);
      await writeFile(
        join(stateDir, 'state.json'),
        JSON.stringify({ mode: 'container', port: 5607, pid: null, container: 'prebuilt-local-registry-5607', containerId: id, configFile: null, logFile: null, startedAt: '2026-01-01T00:00:00Z', auth: 'htpasswd' }),
      );
      // A FAKE docker: the container so named runs, ours (the id) is gone; every rm is recorded.
      const docker = join(stateDir, 'docker');
      await writeFile(
        docker,
        `#!/bin/sh\ncase "$1" in\n  inspect) [ "$4" = prebuilt-local-registry-5607 ] && echo true && exit 0; echo "Error: No such object: $4" >&2; exit 1 ;;\n  rm) echo "$3" >> '${join(stateDir, 'removed')}'; [ "$3" = prebuilt-local-registry-5607 ] || exit 1 ;;\nesac\n`,
        { mode: 0o755 },
      );
      expect(await localRegistryServerStatus({ stateDir, dockerCommand: docker })).toMatchObject({ running: false, container: null });
      expect((await stopLocalRegistryServer({ stateDir, dockerCommand: docker })).stopped).toBe(false);
      expect((await readFile(join(stateDir, 'removed'), 'utf8')).trim().split('\n')).toEqual([id]);
      // A state of an older prebuilt (no id): the name, as before.
      await writeFile(join(stateDir, 'state.json'), JSON.stringify({ mode: 'container', port: 5607, pid: null, container: 'prebuilt-local-registry-5607', configFile: null, logFile: null, startedAt: '2026-01-01T00:00:00Z' }));
      expect(await localRegistryServerStatus({ stateDir, dockerCommand: docker })).toMatchObject({ running: true, container: 'prebuilt-local-registry-5607' });
    } finally {
      await rm(stateDir, { recursive: true, force: true });
    }
  });

  it("sends the credential only to 127.0.0.1:<port>, the address the registry listens on: localhost:<port> is a ConfigError naming it (localhost may be ::1, where any user can listen)", async () => {
    const stateRoot = await mkdtemp(join(tmpdir(), 'prebuilt-devreg-localhost-'));
    const stateDir = join(stateRoot, 'prebuilt', 'local-registry');
    try {
      await mkdir(stateDir, { recursive: true });
      await writeFile(join(stateDir, 'state.json'), JSON.stringify({ mode: 'binary', port: 5603, pid: 1, container: null, configFile: null, logFile: null, startedAt: '2026-01-01T00:00:00Z', auth: 'htpasswd' }));
      const password = 'p'.repeat(43);
      await writeFile(join(stateDir, 'credentials.json'), JSON.stringify({ username: 'prebuilt', password }), { mode: 0o600 });
      expect(localRegistryServerCredentials('127.0.0.1:5603', { stateDir })?.password?.reveal()).toBe(password);
      for (const host of ['localhost:5603', 'LOCALHOST:5603']) {
        const error = (() => {
          try {
            return localRegistryServerCredentials(host, { stateDir });
          } catch (e) {
            return e;
          }
        })();
        expect(error, host).toBeInstanceOf(ConfigError);
        expect((error as ConfigError).message).toBe(
          `The local registry ${host} is the development registry, whose credential prebuilt sends only to 127.0.0.1:5603, the address it listens on: localhost may resolve to ::1, where any user of this machine can listen and would be sent it.`,
        );
        expect((error as ConfigError).hint).toBe('Set METAFLOW_PREBUILT_LOCAL_REGISTRY=127.0.0.1:5603.');
        expect(String((error as ConfigError).message)).not.toContain(password);
      }
      // Another port of localhost is not the development registry: no credential, no error.
      expect(localRegistryServerCredentials('localhost:5604', { stateDir })).toBeUndefined();
      // The `local` image registry says so when made; explicit credentials still win.
      const env = { XDG_STATE_HOME: stateRoot };
      expect(() => createLocalRegistry({ registry: 'localhost:5603', env, dockerConfig: false })).toThrow(ConfigError);
      expect(() => createLocalRegistry({ registry: 'localhost:5603', username: 'u', password: 'p', env, dockerConfig: false })).not.toThrow();
    } finally {
      await rm(stateRoot, { recursive: true, force: true });
    }
  });

  it('a state directory that cannot be made (a file in the way) is an EnvironmentError naming it for start, not a bare ENOTDIR; stop has nothing to stop', async () => {
    const root = await mkdtemp(join(tmpdir(), 'prebuilt-devreg-blocked-'));
    await writeFile(join(root, 'prebuilt'), 'a file where the state directory goes');
    const stateDir = join(root, 'prebuilt', 'local-registry');
    try {
      const error = await startLocalRegistryServer({ stateDir }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(EnvironmentError);
      expect((error as EnvironmentError).message).toMatch(new RegExp(`^Cannot write ${root}/prebuilt(/local-registry(/data)?)? while preparing local-registry start: a file is in the way \\(ENOTDIR\\)\\.$`));
      expect(await stopLocalRegistryServer({ stateDir })).toMatchObject({ stopped: false, status: { running: false } });
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  it("a process of this user with the state's pid that is not the registry serving our config (a pid reused by \`less config.yml\`, or a state naming no config) is not taken for it: status says not running, stop signals nothing", async () => {
    const stateDir = await mkdtemp(join(tmpdir(), 'prebuilt-devreg-ownpid-'));
    const configFile = join(stateDir, 'config.yml');
    // The config in its arguments, but not as `serve <config>`: an editor or pager of this user.
    const viewer = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)', configFile, '--readonly'], { stdio: 'ignore' });
    const other = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
    try {
      await Promise.all([viewer, other].map((child) => new Promise((resolve) => child.once('spawn', resolve))));
      const state = (pid: number, config: string | null) => ({ mode: 'binary', port: 5606, pid, container: null, configFile: config, logFile: null, startedAt: '2026-01-01T00:00:00Z', auth: 'htpasswd' });
      for (const [child, config] of [[viewer, configFile], [other, null]] as const) {
        await writeFile(join(stateDir, 'state.json'), JSON.stringify(state(child.pid!, config)));
        expect(await localRegistryServerStatus({ stateDir }), String(config)).toMatchObject({ running: false, authenticated: false });
        expect((await stopLocalRegistryServer({ stateDir })).stopped, String(config)).toBe(false);
        await new Promise((resolve) => setTimeout(resolve, 200));
        expect(child.exitCode, String(config)).toBeNull();
        expect(child.signalCode, String(config)).toBeNull();
      }
    } finally {
      viewer.kill('SIGKILL');
      other.kill('SIGKILL');
      await rm(stateDir, { recursive: true, force: true });
    }
  });

  it('rejects a port that is not a TCP port', async () => {
    await expect(startLocalRegistryServer({ port: 70000, stateDir: join(tmpdir(), 'unused') })).rejects.toBeInstanceOf(ConfigError);
  });
});

describe.skipIf(notRoot !== undefined)('development registry server: a program of another user on the port (%s)'.replace('%s', notRoot ?? 'run as root'), () => {
  it('after the registry stopped without prebuilt (a reboot, a crash), its credential is not offered to what another user listens with on its port: an EnvironmentError', async () => {
    const files = await squatterFiles();
    const stateRoot = await mkdtemp(join(tmpdir(), 'prebuilt-devreg-squat-'));
    const stateDir = join(stateRoot, 'prebuilt', 'local-registry');
    const port = await freePort();
    const squatter = spawn('/usr/bin/setpriv', [...SETPRIV, process.execPath, files.script, String(port), files.seen], { stdio: 'ignore' });
    try {
      await waitForListener(port);
      await mkdir(stateDir, { recursive: true });
      // What a registry started before the reboot left: its state and its credential.
      await writeFile(join(stateDir, 'state.json'), JSON.stringify({ mode: 'binary', port, pid: 999999, container: null, configFile: join(stateDir, 'config.yml'), logFile: null, startedAt: '2026-01-01T00:00:00Z', auth: 'htpasswd' }));
      await writeFile(join(stateDir, 'credentials.json'), JSON.stringify({ username: 'prebuilt', password: 'q'.repeat(43) }), { mode: 0o600 });
      const error = (() => {
        try {
          return localRegistryServerCredentials(`127.0.0.1:${port}`, { stateDir });
        } catch (e) {
          return e;
        }
      })();
      expect(error).toBeInstanceOf(EnvironmentError);
      expect((error as EnvironmentError).message).toBe(
        `127.0.0.1:${port} is served by a program of another user of this machine (uid 65534), not by the development registry prebuilt started there: its credential is not sent to it, and nothing is pushed to or pulled from it.`,
      );
      expect((error as EnvironmentError).hint).toContain('prebuilt local-registry start');
      expect(() => createLocalRegistry({ registry: `127.0.0.1:${port}`, env: { XDG_STATE_HOME: stateRoot }, dockerConfig: false })).toThrow(EnvironmentError);
      expect(existsSync(files.seen)).toBe(false);
    } finally {
      squatter.kill('SIGKILL');
      await rm(files.dir, { recursive: true, force: true });
      await rm(stateRoot, { recursive: true, force: true });
    }
  });

  it("another user's process with the state's pid and our config in its arguments is not taken for the registry: status says not running, stop signals nothing", async () => {
    const stateDir = await mkdtemp(join(tmpdir(), 'prebuilt-devreg-pid-'));
    const configFile = join(stateDir, 'config.yml');
    const other = spawn('/usr/bin/setpriv', [...SETPRIV, process.execPath, '-e', 'setTimeout(() => {}, 60000)', 'serve', configFile], { stdio: 'ignore' });
    try {
      await new Promise((resolve) => other.once('spawn', resolve));
      // setpriv (root, naming the config too) becomes the other user and execs node: wait for that.
      const switched = async () => /^Uid:\s+65534\b/m.test(await readFile(`/proc/${other.pid}/status`, 'utf8')) && (await readFile(`/proc/${other.pid}/cmdline`, 'utf8')).startsWith(process.execPath);
      for (let i = 0; i < 250 && !(await switched()); i++) await new Promise((resolve) => setTimeout(resolve, 20));
      expect(await switched()).toBe(true);
      await writeFile(join(stateDir, 'state.json'), JSON.stringify({ mode: 'binary', port: 5605, pid: other.pid, container: null, configFile, logFile: null, startedAt: '2026-01-01T00:00:00Z', auth: 'htpasswd' }));
      expect(await localRegistryServerStatus({ stateDir })).toMatchObject({ running: false, authenticated: false });
      expect((await stopLocalRegistryServer({ stateDir })).stopped).toBe(false);
      expect(other.exitCode).toBeNull();
      expect(other.signalCode).toBeNull();
    } finally {
      other.kill('SIGKILL');
      await rm(stateDir, { recursive: true, force: true });
    }
  });

  it("stop refuses a state directory others can swap, as start does, before it reads the state: a state planted there named the container docker rm -f removed (any container of the daemon)", async () => {
    // XDG_STATE_HOME is another user's directory every user may write in: they planted prebuilt/local-registry.
    const root = await mkdtemp(join(tmpdir(), 'prebuilt-devreg-planted-'));
    const xdg = join(root, 'shared');
    const stateDir = defaultStateDir({ XDG_STATE_HOME: xdg });
    try {
      await mkdir(stateDir, { recursive: true });
      await chown(xdg, 65534, 65534);
      await chmod(xdg, 0o777);
      const victim = 'f'.repeat(64);
      await writeFile(join(stateDir, 'state.json'), JSON.stringify({ mode: 'container', port: 5608, pid: null, container: 'prebuilt-local-registry-5608', containerId: victim, configFile: null, logFile: null, startedAt: '2026-01-01T00:00:00Z', auth: 'htpasswd' }));
      const docker = join(root, 'docker');
      await writeFile(docker, `#!/bin/sh\necho "$*" >> '${join(root, 'ran')}'\n[ "$1" = inspect ] && echo true\nexit 0\n`, { mode: 0o755 });
      const error = await stopLocalRegistryServer({ env: { ...process.env, XDG_STATE_HOME: xdg }, dockerCommand: docker }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(EnvironmentError);
      expect((error as EnvironmentError).message).toBe(
        `The development registry's state directory ${stateDir} is not safe for its credential: every user may write in ${xdg} (mode 0777, uid 65534), so they can rename what is in it away and plant their own htpasswd and credential.`,
      );
      expect(existsSync(join(root, 'ran'))).toBe(false);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  it("status, login and the `local` registry's credential refuse a state directory others can swap, as start and stop do: a state planted there named a port they listen on and a credential of theirs, which login gave docker login", async () => {
    // XDG_STATE_HOME is another user's directory every user may write in: they planted prebuilt/local-registry.
    const root = await mkdtemp(join(tmpdir(), 'prebuilt-devreg-planted-read-'));
    const xdg = join(root, 'shared');
    const stateDir = defaultStateDir({ XDG_STATE_HOME: xdg });
    const port = await freePort();
    // Their "registry": answers /v2/ (so the state reads as healthy) on the port the planted state names.
    const sockets = new Set<Socket>();
    const theirs = createServer((socket) => {
      sockets.add(socket);
      socket.end('HTTP/1.1 401 Unauthorized\r\nwww-authenticate: Basic realm="x"\r\ncontent-length: 0\r\n\r\n');
    });
    await new Promise<void>((resolve) => theirs.listen(port, '127.0.0.1', resolve));
    try {
      await mkdir(stateDir, { recursive: true });
      await chown(xdg, 65534, 65534);
      await chmod(xdg, 0o777);
      await writeFile(join(stateDir, 'state.json'), JSON.stringify({ mode: 'container', port, pid: null, container: `prebuilt-local-registry-${port}`, containerId: 'f'.repeat(64), configFile: null, logFile: null, startedAt: '2026-01-01T00:00:00Z', auth: 'htpasswd' }));
      await writeFile(join(stateDir, 'credentials.json'), JSON.stringify({ username: 'prebuilt', password: 'theirs' }));
      const docker = join(root, 'docker');
      await writeFile(docker, `#!/bin/sh\necho "$*" >> '${join(root, 'ran')}'\n[ "$1" = inspect ] && echo true\nexit 0\n`, { mode: 0o755 });
      const env = { ...process.env, XDG_STATE_HOME: xdg, DOCKER_CONFIG: join(root, 'docker-config') };
      const message = `The development registry's state directory ${stateDir} is not safe for its credential: every user may write in ${xdg} (mode 0777, uid 65534), so they can rename what is in it away and plant their own htpasswd and credential.`;
      const refused = (error: unknown): void => {
        expect(error).toBeInstanceOf(EnvironmentError);
        expect((error as EnvironmentError).exitCode).toBe(2);
        expect((error as EnvironmentError).message).toBe(message);
      };
      refused(await localRegistryServerStatus({ env, dockerCommand: docker }).catch((e: unknown) => e));
      refused(await dockerLoginLocalRegistryServer({ env, dockerCommand: docker }).catch((e: unknown) => e));
      refused((() => { try { return localRegistryServerCredentials(`127.0.0.1:${port}`, { env }); } catch (e) { return e; } })());
      refused((() => { try { return createLocalRegistry({ env: { ...env, METAFLOW_PREBUILT_LOCAL_REGISTRY: `127.0.0.1:${port}` } }); } catch (e) { return e; } })());
      // Docker was asked nothing: neither whether the planted container runs, nor a login.
      expect(existsSync(join(root, 'ran'))).toBe(false);
      expect((await stat(xdg)).mode & 0o7777).toBe(0o777);
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => theirs.close(resolve));
      await rm(root, { recursive: true, force: true });
    }
  });

  it("status repairs, with a note, this user's state directories an older prebuilt made 0777 before it reads the state, as start does", async () => {
    const root = await mkdtemp(join(tmpdir(), 'prebuilt-devreg-repair-status-'));
    const xdg = join(root, 'state');
    const stateDir = defaultStateDir({ XDG_STATE_HOME: xdg });
    try {
      await mkdir(stateDir, { recursive: true, mode: 0o700 });
      await chmod(stateDir, 0o777);
      await writeFile(join(stateDir, 'state.json'), JSON.stringify({ mode: 'binary', port: 5609, pid: null, container: null, configFile: null, logFile: null, startedAt: '2026-01-01T00:00:00Z', auth: 'htpasswd' }));
      const status = await localRegistryServerStatus({ env: { ...process.env, XDG_STATE_HOME: xdg } });
      expect(status).toMatchObject({ running: false });
      expect(status.notes).toEqual([
        `${stateDir} (yours) could be written by every user (mode 0777), so they could rename the development registry's credential away and plant their own: prebuilt made it 0700.`,
      ]);
      expect((await stat(stateDir)).mode & 0o7777).toBe(0o700);
      // Repaired once: nothing to say the next time.
      expect((await localRegistryServerStatus({ env: { ...process.env, XDG_STATE_HOME: xdg } })).notes).toBeUndefined();
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  it('start never sends the new credential to a program of another user answering on the port (bound before the registry): it is stopped, an EnvironmentError', async () => {
    const files = await squatterFiles();
    const stateDir = await mkdtemp(join(tmpdir(), 'prebuilt-devreg-squat-start-'));
    const port = await freePort();
    // A FAKE registry program: it runs (as this user, like the real one) but what answers on the
    // port is another user's program, which bound it first.
    const binary = join(files.dir, 'docker-registry');
    const squatterPid = join(files.dir, 'squatter.pid');
    const ourPid = join(files.dir, 'ours.pid');
    await writeFile(
      binary,
      `#!/bin/sh\n/usr/bin/setpriv ${SETPRIV.join(' ')} '${process.execPath}' '${files.script}' ${port} '${files.seen}' &\necho $! > '${squatterPid}'\necho $$ > '${ourPid}'\nexec '${process.execPath}' -e 'setTimeout(() => {}, 60000)' "$@"\n`,
      { mode: 0o755 },
    );
    try {
      const error = await startLocalRegistryServer({ port, stateDir, registryBinary: binary }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(EnvironmentError);
      expect((error as EnvironmentError).message).toContain(`127.0.0.1:${port} is served by a program of another user of this machine (uid 65534)`);
      expect(existsSync(files.seen)).toBe(false);
      // The registry it started was stopped (the other user's program is not prebuilt's to stop), and no credential is left behind.
      const ours = Number((await readFile(ourPid, 'utf8')).trim());
      expect(() => process.kill(ours, 0)).toThrow();
      expect(existsSync(join(stateDir, 'credentials.json'))).toBe(false);
      expect(existsSync(join(stateDir, 'state.json'))).toBe(false);
    } finally {
      await stopLocalRegistryServer({ stateDir }).catch(() => undefined);
      const squatter = await readFile(squatterPid, 'utf8').catch(() => '');
      if (squatter.trim() !== '') process.kill(Number(squatter.trim()), 'SIGKILL');
      await rm(files.dir, { recursive: true, force: true });
      await rm(stateDir, { recursive: true, force: true });
    }
  });
});

const noBinary = existsSync('/usr/bin/docker-registry') ? undefined : '/usr/bin/docker-registry is not installed: apt-get install docker-registry (scripts/test-services.sh up does)';

describeOrFailInCi("development registry server: Debian's docker-registry", noBinary, () => {
  let stateRoot: string;
  let stateDir: string;
  beforeAll(async () => {
    // $XDG_STATE_HOME/prebuilt/local-registry, so the `local` registry given XDG_STATE_HOME finds it.
    stateRoot = await mkdtemp(join(tmpdir(), 'prebuilt-devreg-'));
    stateDir = defaultStateDir({ XDG_STATE_HOME: stateRoot });
  });
  afterAll(async () => {
    await stopLocalRegistryServer({ stateDir });
    await rm(stateRoot, { recursive: true, force: true });
  });

  it('repairs, with a note, the state directories an older prebuilt made under umask 000 (0777: others could swap local-registry and plant a credential), and an XDG_STATE_HOME of ours every user may write in', async () => {
    const root = await mkdtemp(join(tmpdir(), 'prebuilt-devreg-repair-'));
    const previous = process.umask(0);
    const xdg = join(root, 'state');
    const dir = defaultStateDir({ XDG_STATE_HOME: xdg });
    try {
      await mkdir(join(dir, 'data'), { recursive: true, mode: 0o777 });
      const started = await startLocalRegistryServer({ port: await freePort(), env: { ...process.env, XDG_STATE_HOME: xdg } });
      expect(started).toMatchObject({ running: true, authenticated: true, stateDir: dir });
      expect((await stat(dir)).mode & 0o7777).toBe(0o700);
      expect((await stat(join(xdg, 'prebuilt'))).mode & 0o7777).toBe(0o700);
      // XDG_STATE_HOME is the user's, not prebuilt's: only the write bit of every user is taken away.
      expect((await stat(xdg)).mode & 0o7777).toBe(0o775);
      expect(started.notes).toEqual([
        `${dir} (yours) could be written by every user (mode 0777), so they could rename the development registry's credential away and plant their own: prebuilt made it 0700.`,
        `${join(xdg, 'prebuilt')} (yours) could be written by every user (mode 0777), so they could rename the development registry's credential away and plant their own: prebuilt made it 0700.`,
        `${xdg} (yours) could be written by every user (mode 0777), so they could rename the development registry's credential away and plant their own: prebuilt made it 0775.`,
      ]);
      // Repaired once: the next start has nothing to say.
      await stopLocalRegistryServer({ env: { ...process.env, XDG_STATE_HOME: xdg } });
      const again = await startLocalRegistryServer({ env: { ...process.env, XDG_STATE_HOME: xdg }, port: started.port! });
      expect(again.notes).toBeUndefined();
    } finally {
      process.umask(previous);
      await stopLocalRegistryServer({ env: { ...process.env, XDG_STATE_HOME: xdg } });
      await rm(root, { recursive: true, force: true });
    }
  });

  it("the registry program's configuration is its config file only: REGISTRY_* variables of the user's environment (REGISTRY_HTTP_ADDR=0.0.0.0:<port>, a realm) do not reach it — they would override the file, e.g. open it to the network", async () => {
    const root = await mkdtemp(join(tmpdir(), 'prebuilt-devreg-env-'));
    const port = await freePort();
    const dir = join(root, 'local-registry');
    try {
      const env = { ...process.env, REGISTRY_HTTP_ADDR: `0.0.0.0:${port}`, REGISTRY_AUTH_HTPASSWD_REALM: 'from-the-environment' };
      const started = await startLocalRegistryServer({ port, stateDir: dir, env });
      expect(started).toMatchObject({ running: true, authenticated: true });
      const tcp = (await readFile('/proc/net/tcp', 'utf8')) + (await readFile('/proc/net/tcp6', 'utf8').catch(() => ''));
      const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
      const listening = tcp.split('\n').map((line) => line.trim().split(/\s+/)).filter((f) => f[3] === '0A' && f[1]?.endsWith(`:${hexPort}`)).map((f) => f[1]);
      expect(listening).toEqual([`0100007F:${hexPort}`]);
      expect((await v2Statuses(port, credentialOf(port, dir))).challenge).toBe('Basic realm="prebuilt-local-registry"');
    } finally {
      await stopLocalRegistryServer({ stateDir: dir });
      await rm(root, { recursive: true, force: true });
    }
  });

  it('start → status → start again (idempotent) → stop → stop again', async () => {
    const port = await freePort();
    const options = { port, stateDir };
    expect(await localRegistryServerStatus(options)).toMatchObject({ running: false, healthy: false, address: null });

    const started = await startLocalRegistryServer(options);
    expect(started).toMatchObject({
      running: true,
      healthy: true,
      authenticated: true,
      credentialsFile: join(stateDir, 'credentials.json'),
      address: `127.0.0.1:${port}`,
      mode: 'binary',
      alreadyRunning: false,
    });
    expect(started.pid).toBeGreaterThan(0);
    expect(started.notes).toBeUndefined();
    const auth = credentialOf(port, stateDir);
    expect(auth.username).toBe('prebuilt');
    expect(auth.password).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(await v2Statuses(port, auth)).toEqual({ anonymous: 401, challenge: 'Basic realm="prebuilt-local-registry"', login: 200, wrong: 401 });
    // Another user of the machine can neither push nor pull; the credential can.
    await expect(pushTinyImage(`127.0.0.1:${port}/metaflow-prebuilt:env-poisoned-amd64`)).rejects.toThrow(/starting a blob upload .*: 401/);
    const { digest } = await pushTinyImage(`127.0.0.1:${port}/metaflow-prebuilt:env-0123456789abcdef-amd64`, auth);
    expect((await fetch(`http://127.0.0.1:${port}/v2/metaflow-prebuilt/manifests/${digest}`)).status).toBe(401);
    // prebuilt's `local` registry uses the credential by itself, for this host: its pushes and existence checks log in.
    const tag = `127.0.0.1:${port}/metaflow-prebuilt:env-0123456789abcdef-amd64`;
    const registry = createLocalRegistry({ registry: `127.0.0.1:${port}`, env: { XDG_STATE_HOME: stateRoot }, dockerConfig: false });
    const pushCredentials = await registry.pushCredentials();
    expect(pushCredentials).toMatchObject({ registry: `127.0.0.1:${port}`, username: 'prebuilt', source: `the development registry's credential (${join(stateDir, 'credentials.json')})` });
    expect(pushCredentials?.password?.reveal()).toBe(auth.password);
    expect(JSON.stringify(pushCredentials)).not.toContain(auth.password);
    expect(await registry.imageExists(tag)).toEqual({ exists: true, digest });
    // Explicit credentials still win; without the state directory there is none (the Docker config's, here off).
    const explicit = createLocalRegistry({ registry: `127.0.0.1:${port}`, username: 'u', password: 'p', env: { XDG_STATE_HOME: stateRoot }, dockerConfig: false });
    expect((await explicit.pushCredentials())?.username).toBe('u');
    const elsewhere = createLocalRegistry({ registry: `127.0.0.1:${port}`, env: { XDG_STATE_HOME: join(stateRoot, 'elsewhere') }, dockerConfig: false });
    expect(await elsewhere.pushCredentials()).toBeUndefined();
    await expect(elsewhere.imageExists(tag)).rejects.toBeInstanceOf(PrebuiltError);
    // The state directory is private to its user, the credential and its hash too; neither the state nor the config holds the password.
    expect((await stat(stateDir)).mode & 0o777).toBe(0o700);
    for (const file of ['credentials.json', 'htpasswd', 'state.json']) expect((await stat(join(stateDir, file))).mode & 0o777, file).toBe(0o600);
    const htpasswd = await readFile(join(stateDir, 'htpasswd'), 'utf8');
    expect(htpasswd).toMatch(/^prebuilt:\$2[aby]\$10\$[./A-Za-z0-9]{53}\n$/);
    for (const file of ['htpasswd', 'state.json', 'config.yml']) expect(await readFile(join(stateDir, file), 'utf8'), file).not.toContain(auth.password);
    expect(Number((await readFile(join(stateDir, 'registry.pid'), 'utf8')).trim())).toBe(started.pid);
    const config = await readFile(join(stateDir, 'config.yml'), 'utf8');
    expect(config).toContain(`addr: 127.0.0.1:${port}`);
    expect(config).toContain(`auth:\n  htpasswd:\n    realm: prebuilt-local-registry\n    path: ${JSON.stringify(join(stateDir, 'htpasswd'))}`);
    // For this registry's host only: not another port, not another host.
    expect(() => localRegistryServerCredentials(`localhost:${port}`, { stateDir })).toThrow(ConfigError);
    expect(localRegistryServerCredentials(`127.0.0.1:${port + 1}`, { stateDir })).toBeUndefined();
    expect(localRegistryServerCredentials(`registry.example.com:${port}`, { stateDir })).toBeUndefined();

    const again = await startLocalRegistryServer(options);
    expect(again).toMatchObject({ alreadyRunning: true, pid: started.pid });
    await expect(startLocalRegistryServer({ ...options, port: port + 1 })).rejects.toThrow(/already runs at/);

    expect(await localRegistryServerStatus({ stateDir })).toMatchObject({ running: true, healthy: true, pid: started.pid, port });

    const stopped = await stopLocalRegistryServer({ stateDir });
    expect(stopped.stopped).toBe(true);
    expect(stopped.status).toMatchObject({ running: false, authenticated: false, credentialsFile: null });
    await expect(fetch(`http://127.0.0.1:${port}/v2/`)).rejects.toThrow();
    expect(existsSync(join(stateDir, 'registry.pid'))).toBe(false);
    // A credential left behind would go to whatever listens on the port next.
    expect(existsSync(join(stateDir, 'credentials.json'))).toBe(false);
    expect(existsSync(join(stateDir, 'htpasswd'))).toBe(false);
    expect(localRegistryServerCredentials(`127.0.0.1:${port}`, { stateDir })).toBeUndefined();
    expect((await stopLocalRegistryServer({ stateDir })).stopped).toBe(false);
  });

  it('status and stop given another port than the running one refuse it (ConfigError), and stop stops nothing', async () => {
    const port = await freePort();
    const started = await startLocalRegistryServer({ port, stateDir });
    try {
      const status = await localRegistryServerStatus({ stateDir, port: port + 1 }).catch((e: unknown) => e);
      expect(status).toBeInstanceOf(ConfigError);
      expect((status as ConfigError).message).toBe(`The development registry runs at 127.0.0.1:${port}, not on port ${port + 1}.`);
      expect((status as ConfigError).hint).toContain(`prebuilt local-registry status --port ${port}`);
      const stop = await stopLocalRegistryServer({ stateDir, port: port + 1 }).catch((e: unknown) => e);
      expect(stop).toBeInstanceOf(ConfigError);
      expect((stop as ConfigError).message).toBe(`The development registry runs at 127.0.0.1:${port}, not on port ${port + 1}; nothing was stopped.`);
      expect(await localRegistryServerStatus({ stateDir, port })).toMatchObject({ running: true, pid: started.pid, port });
      expect((await stopLocalRegistryServer({ stateDir, port })).stopped).toBe(true);
    } finally {
      await stopLocalRegistryServer({ stateDir });
    }
  });

  it('a stale state (the process is gone) reads as not running, and start replaces it', async () => {
    const port = await freePort();
    const started = await startLocalRegistryServer({ port, stateDir });
    process.kill(started.pid!, 'SIGKILL');
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect((await localRegistryServerStatus({ stateDir })).running).toBe(false);
    const before = credentialOf(port, stateDir);
    const restarted = await startLocalRegistryServer({ port, stateDir });
    expect(restarted).toMatchObject({ running: true, healthy: true, authenticated: true, alreadyRunning: false });
    expect(restarted.pid).not.toBe(started.pid);
    // Each start makes a new credential: the old one is refused.
    const after = credentialOf(port, stateDir);
    expect(after.password).not.toBe(before.password);
    expect((await v2Statuses(port, before)).login).toBe(401);
    expect((await v2Statuses(port, after)).login).toBe(200);
    await stopLocalRegistryServer({ stateDir });
  });

  it('a start killed (kill -9, Ctrl-C) after it ran the registry program and before it wrote the state: the next start stops the registry it left and starts anew; so does stop', async () => {
    // What such a start leaves: the registry program running with the config of this state
    // directory (and the credential files), no state.json, no registry.pid.
    const leaveOrphan = async (port: number): Promise<number> => {
      const { pid } = await startLocalRegistryServer({ port, stateDir });
      await rm(join(stateDir, 'state.json'));
      await rm(join(stateDir, 'registry.pid'));
      // …and its lock, held by a process now gone: taken over.
      const dead = spawn('true');
      await new Promise((resolve) => dead.once('exit', resolve));
      await writeFile(join(stateDir, 'start-stop.lock'), JSON.stringify({ pid: dead.pid, host: hostname(), since: new Date().toISOString(), purpose: 'local-registry start', heartbeatMs: 5000 }));
      expect(await localRegistryServerStatus({ stateDir })).toMatchObject({ running: false });
      return pid!;
    };
    const gone = (pid: number): boolean => {
      try {
        process.kill(pid, 0);
        return false;
      } catch {
        return true;
      }
    };
    const port = await freePort();
    const orphan = await leaveOrphan(port);
    try {
      const restarted = await startLocalRegistryServer({ port, stateDir });
      expect(restarted).toMatchObject({ running: true, healthy: true, authenticated: true, port, alreadyRunning: false });
      expect(restarted.pid).not.toBe(orphan);
      expect(gone(orphan)).toBe(true);
      expect(restarted.notes).toEqual([`A registry left running by an interrupted \`prebuilt local-registry start\` (pid ${orphan}) was stopped.`]);
      expect((await v2Statuses(port, credentialOf(port, stateDir))).login).toBe(200);
      await stopLocalRegistryServer({ stateDir });

      const second = await leaveOrphan(port);
      const stopped = await stopLocalRegistryServer({ stateDir });
      expect(stopped.stopped).toBe(true);
      expect(gone(second)).toBe(true);
      await expect(fetch(`http://127.0.0.1:${port}/v2/`)).rejects.toThrow();
      expect(existsSync(join(stateDir, 'start-stop.lock'))).toBe(false);
    } finally {
      await stopLocalRegistryServer({ stateDir });
    }
  });

  it('two starts at once (two terminals): one starts the registry, the other reports it running; one registry program, and the credential in the state directory is the one it takes', async () => {
    const port = await freePort();
    try {
      const both = await Promise.allSettled([startLocalRegistryServer({ port, stateDir }), startLocalRegistryServer({ port, stateDir })]);
      expect(both.map((r) => (r.status === 'rejected' ? String(r.reason) : r.status))).toEqual(['fulfilled', 'fulfilled']);
      const [a, b] = both.map((r) => (r as PromiseFulfilledResult<Awaited<ReturnType<typeof startLocalRegistryServer>>>).value);
      expect([a!.alreadyRunning, b!.alreadyRunning].sort()).toEqual([false, true]);
      expect(a!.pid).toBe(b!.pid);
      expect(await localRegistryServerStatus({ stateDir })).toMatchObject({ running: true, healthy: true, authenticated: true, pid: a!.pid });
      expect((await v2Statuses(port, credentialOf(port, stateDir))).login).toBe(200);
      const config = join(stateDir, 'config.yml');
      const { stdout } = await run('ps', ['-eo', 'pid=,args=']);
      expect(stdout.split('\n').filter((line) => line.trim().endsWith(`serve ${config}`))).toHaveLength(1);
      // Released by both.
      expect(existsSync(join(stateDir, 'start-stop.lock'))).toBe(false);
    } finally {
      await stopLocalRegistryServer({ stateDir });
    }
  });

  it('a registry started without a login by an older prebuilt: status says so and prebuilt pushes anonymously; start restarts it with one, keeping its images', async () => {
    const port = await freePort();
    // What an older prebuilt left: a config without auth, a state without `auth`, the program running.
    const configFile = join(stateDir, 'config.yml');
    await mkdir(join(stateDir, 'data'), { recursive: true });
    await writeFile(configFile, `version: 0.1\nlog: {level: warn}\nstorage: {filesystem: {rootdirectory: ${JSON.stringify(join(stateDir, 'data'))}}}\nhttp: {addr: 127.0.0.1:${port}}\n`);
    const old = spawn('/usr/bin/docker-registry', ['serve', configFile], { detached: true, stdio: 'ignore' });
    old.unref();
    const oldState = { mode: 'binary', port, pid: old.pid, container: null, configFile, logFile: null, startedAt: '2026-01-01T00:00:00Z' };
    await writeFile(join(stateDir, 'state.json'), JSON.stringify(oldState));
    try {
      for (let tries = 0; (await fetch(`http://127.0.0.1:${port}/v2/`).then((r) => r.status, () => 0)) !== 200; tries++) {
        if (tries > 50) throw new Error('the older registry did not answer');
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      expect(await localRegistryServerStatus({ stateDir })).toMatchObject({ running: true, authenticated: false, credentialsFile: null, pid: old.pid });
      expect(localRegistryServerCredentials(`127.0.0.1:${port}`, { stateDir })).toBeUndefined();
      expect(await createLocalRegistry({ registry: `127.0.0.1:${port}`, env: { XDG_STATE_HOME: stateRoot }, dockerConfig: false }).pushCredentials()).toBeUndefined();
      const tag = `127.0.0.1:${port}/metaflow-prebuilt:env-fedcba9876543210-amd64`;
      const { digest } = await pushTinyImage(tag);

      const restarted = await startLocalRegistryServer({ stateDir });
      expect(restarted).toMatchObject({ running: true, healthy: true, authenticated: true, port, alreadyRunning: false });
      expect(restarted.pid).not.toBe(old.pid);
      expect(restarted.notes).toEqual([
        `The development registry at 127.0.0.1:${port} ran without authentication (started by an older prebuilt): any user of this machine could push to it. ` +
          'It was restarted with a login that prebuilt uses by itself; its images are kept.',
      ]);
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(() => process.kill(old.pid!, 0)).toThrow();
      const auth = credentialOf(port, stateDir);
      expect((await v2Statuses(port, auth)).anonymous).toBe(401);
      // prebuilt's local registry finds the image pushed before, with the new credential.
      const registry = createLocalRegistry({ registry: `127.0.0.1:${port}`, env: { XDG_STATE_HOME: stateRoot }, dockerConfig: false });
      expect(await registry.imageExists(tag)).toEqual({ exists: true, digest });
    } finally {
      await stopLocalRegistryServer({ stateDir });
      try {
        process.kill(old.pid!, 'SIGKILL');
      } catch {
        // gone, as it should be
      }
    }
  });

  it('a port already taken by another program is an EnvironmentError suggesting another port', async () => {
    const blocker: Server = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as { port: number }).port;
    try {
      const error = await startLocalRegistryServer({ port, stateDir }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(EnvironmentError);
      expect((error as EnvironmentError).hint).toContain('--port');
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
    }
  });

  it('a registry program that ignores the login in its config is stopped, an EnvironmentError: never reported as authenticated while open', async () => {
    // Serves the port its config names, to anyone (HTTP 200), as a registry without auth would.
    const script = join(stateRoot, 'open-registry.cjs');
    await writeFile(
      script,
      `#!${process.execPath}\nconst { readFileSync } = require('node:fs');\n` +
        "const port = Number(/addr: 127\\.0\\.0\\.1:(\\d+)/.exec(readFileSync(process.argv[3], 'utf8'))[1]);\n" +
        "require('node:http').createServer((req, res) => { res.writeHead(200); res.end('{}'); }).listen(port, '127.0.0.1');\n",
      { mode: 0o755 },
    );
    const port = await freePort();
    const error = await startLocalRegistryServer({ port, stateDir, registryBinary: script }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(EnvironmentError);
    expect((error as Error).message).toBe(
      `The registry started on 127.0.0.1:${port} was stopped: it answers an anonymous request with HTTP 200 instead of 401: it ignored the htpasswd login in its configuration.`,
    );
    expect(await localRegistryServerStatus({ stateDir })).toMatchObject({ running: false, authenticated: false });
    await expect(fetch(`http://127.0.0.1:${port}/v2/`)).rejects.toThrow();
    expect(existsSync(join(stateDir, 'credentials.json'))).toBe(false);
  });

  it('a registry program that exits at once is reported with its log', async () => {
    const script = join(stateRoot, 'broken-registry.sh');
    await writeFile(script, '#!/bin/sh\necho "config is broken on purpose" >&2\nexit 3\n', { mode: 0o755 });
    const error = await startLocalRegistryServer({ port: await freePort(), stateDir, registryBinary: script }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(EnvironmentError);
    expect((error as Error).message).toMatch(/exited right after starting[\s\S]*broken on purpose/);
    expect((await localRegistryServerStatus({ stateDir })).running).toBe(false);
  });
});

const services = testServices();
describeOrFailInCi(
  "development registry server: container fallback (stand-in for registry:2 built from Debian's registry)",
  missingFor(['docker'], services) ?? (noBinary && `${noBinary}, to build the stand-in registry image from`),
  () => {
    const env = { ...process.env, DOCKER_HOST: services.dockerHost ?? '' };
    const image = `prebuilt-test/registry-standin:${randomBytes(4).toString('hex')}`;
    let stateDir: string;

    beforeAll(async () => {
      stateDir = await mkdtemp(join(tmpdir(), 'prebuilt-devreg-ctr-'));
      // A registry:2 look-alike: the same program, entrypoint and config path, REGISTRY_* overrides.
      const rootfs = join(stateDir, 'rootfs');
      const files = ['/usr/bin/docker-registry'];
      const { stdout } = await run('ldd', ['/usr/bin/docker-registry']);
      for (const match of stdout.matchAll(/(\/\S+)/g)) files.push(match[1]!);
      for (const file of files) {
        await mkdir(join(rootfs, dirname(file)), { recursive: true });
        await copyFile(file, join(rootfs, file));
      }
      await mkdir(join(rootfs, 'etc/docker/registry'), { recursive: true });
      await writeFile(
        join(rootfs, 'etc/docker/registry/config.yml'),
        'version: 0.1\nlog: {level: warn}\nstorage: {filesystem: {rootdirectory: /var/lib/registry}}\nhttp: {addr: ":5000"}\n',
      );
      await mkdir(join(rootfs, 'var/lib/registry'), { recursive: true });
      await run('sh', [
        '-c',
        `tar -C '${rootfs}' -c . | docker import --change 'ENTRYPOINT ["/usr/bin/docker-registry", "serve"]' --change 'CMD ["/etc/docker/registry/config.yml"]' - ${image}`,
      ], { env });
    });
    afterAll(async () => {
      await stopLocalRegistryServer({ stateDir, env });
      await run('docker', ['rmi', '-f', image], { env }).catch(() => undefined);
      await rm(stateDir, { recursive: true, force: true });
    });

    it('without the registry program, runs the image with --network=host; status and stop work', async () => {
      const port = await freePort();
      const options = { port, stateDir, env, registryBinary: join(stateDir, 'not-installed'), containerImage: image };
      const started = await startLocalRegistryServer(options);
      expect(started).toMatchObject({ running: true, healthy: true, authenticated: true, mode: 'container', container: `prebuilt-local-registry-${port}`, pid: null });
      // The htpasswd file is mounted read-only and named by REGISTRY_AUTH_*: the container wants the login too.
      expect(await v2Statuses(port, credentialOf(port, stateDir))).toEqual({ anonymous: 401, challenge: 'Basic realm="prebuilt-local-registry"', login: 200, wrong: 401 });
      const { stdout } = await run('docker', ['inspect', '--format', '{{.HostConfig.NetworkMode}} {{.Id}}', started.container!], { env });
      const [network, id] = stdout.trim().split(' ');
      expect(network).toBe('host');
      // The state names the container by the id docker run gave it too (status and stop use it).
      expect(JSON.parse(await readFile(join(stateDir, 'state.json'), 'utf8'))).toMatchObject({ container: started.container, containerId: id });
      expect((await startLocalRegistryServer(options)).alreadyRunning).toBe(true);
      expect(await localRegistryServerStatus(options)).toMatchObject({ running: true, healthy: true, address: `127.0.0.1:${port}` });
      expect((await stopLocalRegistryServer(options)).stopped).toBe(true);
      expect((await localRegistryServerStatus(options)).running).toBe(false);
      const inspect = await run('docker', ['inspect', started.container!], { env }).then(() => 'exists', () => 'gone');
      expect(inspect).toBe('gone');
    });
  },
);
