import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ConfigError, EnvironmentError } from '@prebuilt/core/backend';
import { dockerLoginFor, dockerLoginLocalRegistryServer, dockerLoginState, localRegistryServerCredentials, localRegistryServerStatus, startLocalRegistryServer, stopLocalRegistryServer } from './index.js';
import { describeOrFailInCi, missingFor, testServices } from './__fixtures__/services.js';
import { pushTinyImage } from './__fixtures__/oci-push.js';
import { freePort } from '../../../test/free-port.js';

const run = promisify(execFile);

const noBinary = existsSync('/usr/bin/docker-registry') ? undefined : '/usr/bin/docker-registry is not installed: apt-get install docker-registry (scripts/test-services.sh up does)';

/** A `docker` that records its arguments, its standard input and DOCKER_CONFIG, says `said` and exits with `code`. */
async function recordingDocker(dir: string, code: number, said: string): Promise<string> {
  const file = join(dir, `docker-${code}`);
  await writeFile(
    file,
    `#!/bin/sh\nprintf '%s\\n' "$@" > '${dir}/argv'\ncat > '${dir}/stdin'\nprintf '%s' "$DOCKER_CONFIG" > '${dir}/docker-config'\necho '${said}' >&2\nexit ${code}\n`,
    { mode: 0o755 },
  );
  return file;
}

describeOrFailInCi('docker login to the development registry (a docker that records what it is given)', noBinary, () => {
  let root: string;
  let stateDir: string;
  let port: number;
  let password: string;
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'prebuilt-devreg-login-'));
    stateDir = join(root, 'state');
    port = await freePort();
    await startLocalRegistryServer({ port, stateDir });
    password = localRegistryServerCredentials(`127.0.0.1:${port}`, { stateDir })!.password!.reveal();
  });
  afterAll(async () => {
    await stopLocalRegistryServer({ stateDir });
    await rm(root, { recursive: true, force: true });
  });

  it("gives docker the password on its standard input only (never in its arguments), with the caller's DOCKER_CONFIG; returns no secret", async () => {
    const dockerConfig = join(root, 'docker-config');
    const docker = await recordingDocker(root, 0, 'Login Succeeded');
    const result = await dockerLoginLocalRegistryServer({ stateDir, dockerCommand: docker, env: { ...process.env, DOCKER_CONFIG: dockerConfig } });
    expect(result).toEqual({ address: `127.0.0.1:${port}`, username: 'prebuilt', dockerConfig: join(dockerConfig, 'config.json') });
    expect(await readFile(join(root, 'argv'), 'utf8')).toBe(`login\n127.0.0.1:${port}\n--username\nprebuilt\n--password-stdin\n`);
    expect(await readFile(join(root, 'stdin'), 'utf8')).toBe(password);
    expect(await readFile(join(root, 'docker-config'), 'utf8')).toBe(dockerConfig);
    expect(JSON.stringify(result)).not.toContain(password);
  });

  it('a docker login that fails is an EnvironmentError (exit 2) with what docker said and what to check, without the password', async () => {
    const docker = await recordingDocker(root, 1, 'Error response from daemon: Get "http://127.0.0.1/v2/": dial tcp: connection refused');
    const error = await dockerLoginLocalRegistryServer({ stateDir, dockerCommand: docker }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(EnvironmentError);
    expect((error as EnvironmentError).exitCode).toBe(2);
    expect((error as Error).message).toBe(
      `docker login 127.0.0.1:${port} failed (exit 1):\nError response from daemon: Get "http://127.0.0.1/v2/": dial tcp: connection refused`,
    );
    expect((error as EnvironmentError).hint).toMatch(/^Check that the Docker daemon runs \(`docker info`\)/);
    expect(JSON.stringify({ message: (error as Error).message, hint: (error as EnvironmentError).hint })).not.toContain(password);
  });

  it('without a docker CLI, an EnvironmentError naming it', async () => {
    const error = await dockerLoginLocalRegistryServer({ stateDir, dockerCommand: join(root, 'no-docker') }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(EnvironmentError);
    expect((error as Error).message).toBe(`The docker CLI ('${join(root, 'no-docker')}') is not installed, so Docker cannot be logged in to 127.0.0.1:${port}.`);
  });

  it("a docker CLI that cannot be started (not executable: EACCES) is an EnvironmentError saying so, with docker login's hint, not the spawn's bare error", async () => {
    const docker = join(root, 'docker-unexecutable');
    await writeFile(docker, '#!/bin/sh\nexit 0\n', { mode: 0o644 });
    const error = await dockerLoginLocalRegistryServer({ stateDir, dockerCommand: docker }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(EnvironmentError);
    expect((error as Error).message).toBe(`docker login 127.0.0.1:${port} failed (it could not be started: spawn ${docker} EACCES).`);
    expect((error as EnvironmentError).hint).toMatch(/^Check that the Docker daemon runs/);
  });

  it('with no development registry running, a ConfigError (exit 2) saying to start it; docker is not run', async () => {
    const docker = await recordingDocker(root, 0, 'Login Succeeded');
    await rm(join(root, 'argv'), { force: true });
    const error = await dockerLoginLocalRegistryServer({ stateDir: join(root, 'other-state'), dockerCommand: docker }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toBe('The development registry is not running, so there is nothing to log in to.');
    expect((error as ConfigError).hint).toBe('Start it with `prebuilt local-registry start`, then log in.');
    expect(existsSync(join(root, 'argv'))).toBe(false);
  });

  it('dockerLoginState reads the Docker config DOCKER_CONFIG names: none, stale (another password), matching', async () => {
    const dockerConfig = join(root, 'state-config');
    const env = { ...process.env, DOCKER_CONFIG: dockerConfig };
    const address = `127.0.0.1:${port}`;
    expect(await dockerLoginState(address, { stateDir, env })).toBe('none');
    const auth = (p: string) => JSON.stringify({ auths: { [address]: { auth: Buffer.from(`prebuilt:${p}`).toString('base64') } } });
    await run('mkdir', ['-p', dockerConfig]);
    await writeFile(join(dockerConfig, 'config.json'), auth('an-earlier-start'));
    expect(await dockerLoginState(address, { stateDir, env })).toBe('stale');
    await writeFile(join(dockerConfig, 'config.json'), auth(password));
    expect(await dockerLoginState(address, { stateDir, env })).toBe('matching');
    await writeFile(join(dockerConfig, 'config.json'), '{not json');
    expect(await dockerLoginState(address, { stateDir, env })).toBe('unreadable');
  });

  it("dockerLoginFor (status and start's dockerLogin): the login's state for a running registry with a login, null for one not running or without a login; the Docker config either way", async () => {
    const dockerConfig = join(root, 'for-config');
    const env = { ...process.env, DOCKER_CONFIG: dockerConfig };
    const status = await localRegistryServerStatus({ stateDir, port });
    const config = join(dockerConfig, 'config.json');
    expect(await dockerLoginFor(status, { env })).toEqual({ dockerLogin: 'none', dockerConfig: config });
    await run('mkdir', ['-p', dockerConfig]);
    await writeFile(config, JSON.stringify({ auths: { [`127.0.0.1:${port}`]: { auth: Buffer.from(`prebuilt:${password}`).toString('base64') } } }));
    expect(await dockerLoginFor(status, { env })).toEqual({ dockerLogin: 'matching', dockerConfig: config });
    expect(await dockerLoginFor({ ...status, running: false }, { env })).toEqual({ dockerLogin: null, dockerConfig: config });
    expect(await dockerLoginFor({ ...status, authenticated: false }, { env })).toEqual({ dockerLogin: null, dockerConfig: config });
  });
});

const services = testServices();
describeOrFailInCi('docker login to the development registry (the Docker daemon of the test services)', missingFor(['docker'], services) ?? noBinary, () => {
  let root: string;
  let stateDir: string;
  let env: Record<string, string | undefined>;
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'prebuilt-devreg-dockerlogin-'));
    stateDir = join(root, 'state');
    env = { ...process.env, DOCKER_HOST: services.dockerHost ?? '', DOCKER_CONFIG: join(root, 'docker') };
  });
  afterAll(async () => {
    await stopLocalRegistryServer({ stateDir, env });
    await rm(root, { recursive: true, force: true });
  });

  it('after a login, docker pulls an image of the development registry; after a restart, the login is stale until the next login', async () => {
    const port = await freePort();
    const address = `127.0.0.1:${port}`;
    await startLocalRegistryServer({ port, stateDir, env });
    const credential = localRegistryServerCredentials(address, { stateDir })!;
    const tag = `${address}/prebuilt-test/login-${port}:latest`;
    await pushTinyImage(tag, { username: credential.username!, password: credential.password!.reveal() });
    const pull = () => run('docker', ['pull', tag], { env }).then(() => 'pulled', (error: { stderr?: string }) => error.stderr ?? 'failed');
    try {
      expect(await dockerLoginState(address, { stateDir, env })).toBe('none');
      expect(await pull()).toMatch(/no basic auth credentials|unauthorized|authentication required/i);

      expect(await dockerLoginLocalRegistryServer({ stateDir, env })).toEqual({ address, username: 'prebuilt', dockerConfig: join(root, 'docker', 'config.json') });
      expect(await dockerLoginState(address, { stateDir, env })).toBe('matching');
      expect(await pull()).toBe('pulled');
      // Docker keeps it in the config DOCKER_CONFIG names (no credential helper there).
      expect(Object.keys(JSON.parse(await readFile(join(root, 'docker', 'config.json'), 'utf8')).auths)).toEqual([address]);

      await stopLocalRegistryServer({ stateDir, env });
      await startLocalRegistryServer({ port, stateDir, env });
      expect(await dockerLoginState(address, { stateDir, env })).toBe('stale');
      await dockerLoginLocalRegistryServer({ stateDir, env });
      expect(await dockerLoginState(address, { stateDir, env })).toBe('matching');
    } finally {
      await run('docker', ['rmi', '-f', tag], { env }).catch(() => undefined);
    }
  });
});
