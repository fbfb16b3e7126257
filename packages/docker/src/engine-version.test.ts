import { createServer, type Server } from 'node:http';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, UnreachableError } from '@prebuilt/core/backend';
import { DockerDaemon } from './docker-daemon.js';
import { resolveDockerSettings } from './docker-settings.js';
import { dockerConnection } from './docker-host.js';
import { EngineClient, type EngineConnection, type EngineRequestError } from './engine-client.js';
import { engineVersion as versionOf } from './engine-version.js';
import { describeWith, testServices } from './__fixtures__/services.js';

// A FAKE Docker daemon on a unix socket: answers GET /version, refuses API versions above 1.41 as dockerd does.
let dir: string;
let socketPath: string;
let fake: Server;
const seen: string[] = [];
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'prebuilt-engine-version-'));
  socketPath = join(dir, 'fake-docker.sock');
  fake = createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    const version = /^\/v(\d+\.\d+)\/version$/.exec(req.url ?? '')?.[1];
    if (version !== undefined && Number(version) > 1.41) {
      res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ message: `client version ${version} is too new. Maximum supported API version is 1.41` }));
    } else if (req.url === '/huge/version') {
      // Far more than any /version answer: the client must stop reading and close.
      res.writeHead(200, { 'content-type': 'application/json' });
      const chunk = Buffer.alloc(64 * 1024, 0x20);
      const write = (left: number): void => {
        if (left === 0 || res.destroyed) return void res.end();
        if (res.write(chunk)) write(left - 1);
        else res.once('drain', () => write(left - 1));
      };
      res.on('error', () => undefined);
      write(256);
    } else if (req.url === '/version' || version !== undefined) {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ Version: '20.10.24-fake', ApiVersion: '1.41' }));
    } else res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ message: 'page not found' }));
  });
  await new Promise<void>((resolve) => fake.listen(socketPath, resolve));
});
const clients: EngineClient[] = [];
/** `GET /version` through a client of `connection` (closed after the tests). */
const engineVersion = (connection: EngineConnection) => {
  const client = new EngineClient(connection);
  clients.push(client);
  return versionOf(client);
};
afterAll(async () => {
  for (const client of clients) client.close();
  await new Promise((resolve) => fake.close(resolve));
  await rm(dir, { recursive: true, force: true });
});

describe('engineVersion (fake daemon on a unix socket)', () => {
  it('asks GET /version, or /v1.41/version with an API version', async () => {
    expect(await engineVersion({ socketPath })).toEqual({ Version: '20.10.24-fake', ApiVersion: '1.41' });
    expect(await engineVersion({ socketPath, version: 'v1.41' })).toMatchObject({ Version: '20.10.24-fake' });
    expect(seen.slice(-2)).toEqual(['GET /version', 'GET /v1.41/version']);
  });

  it('a refused request carries the status and the daemon\'s JSON, as dockerode\'s errors do; a dead socket has no status', async () => {
    const refused = (await engineVersion({ socketPath, version: 'v1.99' }).catch((e: unknown) => e)) as EngineRequestError;
    expect(refused.statusCode).toBe(400);
    expect(refused.message).toMatch(/^\(HTTP code 400\) Bad Request - client version 1\.99 is too new/);
    const dead = (await engineVersion({ socketPath: join(dir, 'none.sock') }).catch((e: unknown) => e)) as EngineRequestError;
    expect(dead).toBeInstanceOf(Error);
    expect(dead.statusCode).toBeUndefined();
  });

  it('an answer larger than 1 MiB is refused and its connection closed, not read to the end', async () => {
    const huge = (await engineVersion({ socketPath, version: 'huge' }).catch((e: unknown) => e)) as EngineRequestError;
    expect(huge).toBeInstanceOf(Error);
    expect(huge.message).toBe('its answer to GET /version is larger than 1048576 bytes (is DOCKER_HOST a Docker daemon?)');
    expect(huge.statusCode).toBeUndefined();
  });

  it('the daemon check turns them into ConfigError (API version refused) and UnreachableError (nothing answers)', async () => {
    await new DockerDaemon(resolveDockerSettings({ dockerHost: `unix://${socketPath}` }, {}), {}).check(undefined);
    const tooNew = await new DockerDaemon(resolveDockerSettings({ dockerHost: `unix://${socketPath}`, apiVersion: 'v1.99' }, {}), {}).check(undefined).catch((e: unknown) => e);
    expect(tooNew).toBeInstanceOf(ConfigError);
    expect((tooNew as ConfigError).message).toContain('refused API version 1.99: client version 1.99 is too new');
    const none = await new DockerDaemon(resolveDockerSettings({ dockerHost: `unix://${join(dir, 'none.sock')}` }, {}), {}).check(undefined).catch((e: unknown) => e);
    expect(none).toBeInstanceOf(UnreachableError);
    expect((none as UnreachableError).message).toContain(`The Docker daemon at unix://${join(dir, 'none.sock')} cannot be reached`);
    expect((none as UnreachableError).hint).toMatch(/^Start the Docker daemon/);
    expect((none as UnreachableError).hint).toContain('(oci needs no Docker daemon)');
  });

  it('a socket this user may not open (not in the docker group) says so, not to start a daemon that runs', async () => {
    // The daemon runs: its socket answers, but only its owner may open it (docker.sock is root:docker 0660).
    const closedDir = await mkdtemp(join(tmpdir(), 'prebuilt-engine-eacces-'));
    const closedSocket = join(closedDir, 'docker.sock');
    const closed = createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{"Version":"20.10.24-fake","ApiVersion":"1.41"}'));
    await new Promise<void>((resolve) => closed.listen(closedSocket, resolve));
    await chmod(closedDir, 0o755);
    await chmod(closedSocket, 0o600);
    const daemon = new DockerDaemon(resolveDockerSettings({ dockerHost: `unix://${closedSocket}` }, {}), {});
    // root opens any socket: the check runs as nobody (a forked test worker may change its effective user).
    const asRoot = process.getuid?.() === 0;
    if (!asRoot) await chmod(closedSocket, 0o000);
    if (asRoot) process.seteuid!(65534);
    let error: unknown;
    try {
      error = await daemon.check(undefined).catch((e: unknown) => e);
    } finally {
      if (asRoot) process.seteuid!(0);
      daemon.close();
      await new Promise((resolve) => closed.close(resolve));
      await rm(closedDir, { recursive: true, force: true });
    }
    expect(error).toBeInstanceOf(UnreachableError);
    expect((error as UnreachableError).message).toBe(`The Docker daemon at unix://${closedSocket} cannot be reached: this user may not open its socket (connect EACCES ${closedSocket}).`);
    expect((error as UnreachableError).hint).toMatch(/^Add your user to the docker group \(`sudo usermod -aG docker \$USER`, then log in again\)/);
    expect((error as UnreachableError).hint).not.toContain('Start the Docker daemon');
    // A user who may not use Docker can still build: the oci service needs no daemon.
    expect((error as UnreachableError).hint).toMatch(/, or build without a Docker daemon: METAFLOW_PREBUILT_BUILD_SERVICE=oci\.$/);
  });
});

const services = testServices();
describeWith(['docker'], 'engineVersion against the real daemon', () => {
  it('answers what dockerode (a devDependency, for this cross-check) reads from the same daemon', async () => {
    const connection = dockerConnection(services.dockerHost!, {});
    const ours = await engineVersion(connection);
    const theirs = (await new Docker(connection).version()) as { Version?: string; ApiVersion?: string };
    expect(ours.Version).toBe(theirs.Version);
    expect(ours.ApiVersion).toBe(theirs.ApiVersion);
  });
});
