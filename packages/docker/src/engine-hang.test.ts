/**
 * A hung Docker daemon never hangs prebuilt. Every daemon here is a FAKE: a unix socket or a TCP
 * port on 127.0.0.1 that accepts and never answers, never reads the request, or answers the
 * headers and then stalls; the `ssh` of an ssh:// host is a FAKE that never answers. The limits
 * are set short in each test (the idle limit 0.2 s); without them each call would wait forever
 * (the test's own timeout).
 */
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { spawnSync, spawn } from 'node:child_process';
import { connect, createServer as createNetServer, type Server, type Socket } from 'node:net';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { itOrFailInCi } from './__fixtures__/services.js';
import { CancelledError, NetworkError, UnreachableError, type NetworkTimeouts } from '@prebuilt/core/backend';
import { pullThroughDaemon } from './daemon-pull.js';
import { DockerDaemon } from './docker-daemon.js';
import { createDockerBuildService } from './docker-build-service.js';
import { EngineClient } from './engine-client.js';
import { DockerRunError, runIsolatedContainer } from './isolated-container.js';
import { ProgressTracker } from './progress.js';

const LIMITS: NetworkTimeouts = { idleMs: 200, deadlineMs: 600 };
const noPython3 = spawnSync('python3', ['--version']).status === 0 ? undefined : 'needs python3 for a socket that never accepts: apt-get install python3.11 (scripts/setup.sh does)';
const LIMIT_ENV = { METAFLOW_PREBUILT_NETWORK_IDLE_TIMEOUT: '0.2', METAFLOW_PREBUILT_NETWORK_DEADLINE: '0.6' };

let dir: string;
const servers: Server[] = [];
const sockets = new Set<Socket>();

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'prebuilt-engine-hang-'));
});
afterAll(async () => {
  for (const socket of sockets) socket.destroy();
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  await rm(dir, { recursive: true, force: true });
});

/** Keeps a fake's server and connections for the clean-up. */
async function listen<T extends Server>(server: T, where: string | 0): Promise<T> {
  servers.push(server);
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => (where === 0 ? server.listen(0, '127.0.0.1', resolve) : server.listen(where, resolve)));
  return server;
}

/** A FAKE daemon on a unix socket that accepts connections and never reads or answers anything. */
async function silentSocket(name: string): Promise<string> {
  const path = join(dir, `${name}.sock`);
  await listen(createNetServer({ pauseOnConnect: true }, () => undefined), path);
  return path;
}

/** A FAKE daemon on a unix socket answering as `routes` say (a route that does nothing: never answers). */
async function fakeDaemon(name: string, routes: Record<string, (req: IncomingMessage, res: ServerResponse) => void>): Promise<string> {
  const path = join(dir, `${name}.sock`);
  const server = createHttpServer((req, res) => {
    const route = Object.entries(routes).find(([prefix]) => `${req.method} ${new URL(req.url ?? '/', 'http://fake').pathname}`.startsWith(prefix));
    req.resume();
    if (route) req.on('end', () => route[1](req, res));
    else res.writeHead(404, { 'content-type': 'application/json' }).end('{"message":"page not found"}');
  });
  server.on('upgrade', (req, socket) => (routes[`UPGRADE ${new URL(req.url ?? '/', 'http://fake').pathname}`] ? undefined : socket.destroy()));
  await listen(server, path);
  return path;
}

const json = (value: unknown) => (_req: IncomingMessage, res: ServerResponse) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(value));
const headersOnly = (_req: IncomingMessage, res: ServerResponse) => void res.writeHead(200, { 'content-type': 'application/json' }).flushHeaders();
const version = json({ Version: '27.0.0-fake', ApiVersion: '1.46' });

/** What a call rejected with, and after how long. */
async function timed(call: Promise<unknown>): Promise<{ error: unknown; ms: number }> {
  const started = Date.now();
  const error = await call.then(
    () => new Error('it did not fail'),
    (e: unknown) => e,
  );
  return { error, ms: Date.now() - started };
}

function expectStall(error: unknown, host: string): NetworkError {
  expect(error).toBeInstanceOf(NetworkError);
  const stall = error as NetworkError;
  expect(stall.exitCode).toBe(1);
  expect(stall.message).toContain(`The Docker daemon at ${host}`);
  expect(stall.hint).toContain('docker info');
  expect(stall.stack ?? '').not.toBe(''); // the CLI shows message and hint, never this
  return stall;
}

describe('a hung Docker daemon (FAKE daemons) fails each kind of call within its limit', () => {
  it('the daemon check on a unix socket that accepts and never answers: a NetworkError (exit 1) naming the address, the setting and `docker info`', async () => {
    const path = await silentSocket('check');
    const daemon = new DockerDaemon({ dockerHost: `unix://${path}`, apiVersion: undefined, timeouts: LIMITS }, {});
    const { error, ms } = await timed(daemon.check(undefined));
    daemon.close();
    const stall = expectStall(error, `unix://${path}`);
    expect(stall.message).toBe(`The Docker daemon at unix://${path} sent nothing for 0.2 s after GET /version (METAFLOW_PREBUILT_NETWORK_IDLE_TIMEOUT).`);
    expect(stall.reason).toBe('idle');
    expect(ms).toBeLessThan(3000);
  });

  it('a TCP peer that accepts and never answers: the same, the password of the address shown as ***', async () => {
    const server = await listen(createNetServer({ pauseOnConnect: true }, () => undefined), 0);
    const port = (server.address() as { port: number }).port;
    const daemon = new DockerDaemon({ dockerHost: `tcp://alice:hunter2@127.0.0.1:${port}`, apiVersion: undefined, timeouts: LIMITS }, {});
    const { error } = await timed(daemon.check(undefined));
    daemon.close();
    expectStall(error, `tcp://***@127.0.0.1:${port}`);
    expect(JSON.stringify({ ...(error as NetworkError), message: (error as Error).message, hint: (error as NetworkError).hint })).not.toContain('hunter2');
  });

  itOrFailInCi('a TCP port whose connect never completes (its accept queue full): an UnreachableError (exit 2) after the idle limit', noPython3, async () => {
    // A FAKE daemon that listens and never accepts: one connection fills its queue, the next SYN is dropped.
    const child = spawn('python3', ['-c', 'import socket,time\ns=socket.socket();s.bind(("127.0.0.1",0));s.listen(0)\nprint(s.getsockname()[1],flush=True)\ntime.sleep(60)'], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      const port = Number(await new Promise<string>((resolve) => child.stdout.once('data', (chunk: Buffer) => resolve(chunk.toString()))));
      const filler = connect(port, '127.0.0.1');
      await new Promise((resolve) => filler.once('connect', resolve));
      const daemon = new DockerDaemon({ dockerHost: `tcp://127.0.0.1:${port}`, apiVersion: undefined, timeouts: LIMITS }, {});
      const { error, ms } = await timed(daemon.check(undefined));
      daemon.close();
      filler.destroy();
      expect(error).toBeInstanceOf(UnreachableError);
      expect((error as UnreachableError).exitCode).toBe(2);
      expect((error as UnreachableError).message).toBe(
        `The Docker daemon at tcp://127.0.0.1:${port} cannot be reached: no connection to tcp://127.0.0.1:${port} within 0.2 s (METAFLOW_PREBUILT_NETWORK_IDLE_TIMEOUT) (ETIMEDOUT).`,
      );
      expect(ms).toBeLessThan(3000);
    } finally {
      child.kill();
    }
  });

  it('an ssh:// host whose ssh never answers (FAKE ssh on PATH): a NetworkError whose hint names the remote host; the ssh process is ended', async () => {
    const bin = join(dir, 'bin');
    await mkdir(bin, { recursive: true });
    await writeFile(join(bin, 'ssh'), `#!/bin/sh\n# FAKE ssh: never answers\necho $$ > "${join(dir, 'ssh.pid')}"\nexec sleep 600\n`);
    await chmod(join(bin, 'ssh'), 0o755);
    const savedPath = process.env['PATH'];
    process.env['PATH'] = `${bin}${delimiter}${savedPath ?? ''}`;
    try {
      const daemon = new DockerDaemon({ dockerHost: 'ssh://me@127.0.0.1:2222', apiVersion: undefined, timeouts: LIMITS }, {});
      const { error } = await timed(daemon.check(undefined));
      daemon.close();
      expect(expectStall(error, 'ssh://me@127.0.0.1:2222').hint).toContain('ssh <host> docker info');
      const pid = Number((await readFile(join(dir, 'ssh.pid'), 'utf8')).trim());
      const alive = (): boolean => existsSync(`/proc/${pid}`);
      for (let i = 0; i < 50 && alive(); i++) await new Promise((resolve) => setTimeout(resolve, 20));
      expect(alive()).toBe(false);
    } finally {
      process.env['PATH'] = savedPath;
    }
  });

  it('an ssh:// host whose TCP connect never completes (FAKE ssh that times out as its ConnectTimeout says): an UnreachableError (exit 2) quoting ssh, as for tcp://', async () => {
    const bin = join(dir, 'bin-connect');
    await mkdir(bin, { recursive: true });
    // FAKE ssh: its connect never completes; like ssh, it gives up after -o ConnectTimeout=N (without one, the system's TCP timeout: minutes).
    const fake = [
      '#!/bin/sh',
      '# FAKE ssh: a host whose connect never completes',
      'limit=',
      'for arg in "$@"; do case "$arg" in ConnectTimeout=*) limit="${arg#ConnectTimeout=}";; esac; done',
      '[ -n "$limit" ] || exec sleep 600',
      'sleep "$limit"',
      'echo "ssh: connect to host 127.0.0.1 port 2222: Connection timed out" >&2',
      'exit 255',
    ];
    await writeFile(join(bin, 'ssh'), `${fake.join('\n')}\n`);
    await chmod(join(bin, 'ssh'), 0o755);
    const savedPath = process.env['PATH'];
    process.env['PATH'] = `${bin}${delimiter}${savedPath ?? ''}`;
    try {
      const daemon = new DockerDaemon({ dockerHost: 'ssh://me@127.0.0.1:2222', apiVersion: undefined, timeouts: LIMITS }, {});
      const { error, ms } = await timed(daemon.check(undefined));
      daemon.close();
      expect(error).toBeInstanceOf(UnreachableError);
      expect((error as UnreachableError).exitCode).toBe(2);
      expect((error as UnreachableError).message).toBe(
        'The Docker daemon at ssh://me@127.0.0.1:2222 cannot be reached: ssh to 127.0.0.1 exited with 255: ssh: connect to host 127.0.0.1 port 2222: Connection timed out.',
      );
      expect(ms).toBeLessThan(5000); // ConnectTimeout=1: the idle limit (0.2 s) in whole seconds
    } finally {
      process.env['PATH'] = savedPath;
    }
  });

  it('a JSON answer whose headers come and then nothing: fails after the idle limit, saying it was in the answer', async () => {
    const path = await fakeDaemon('json-stall', { 'POST /containers/create': headersOnly });
    const client = new EngineClient({ socketPath: path }, { limits: LIMITS });
    const { error } = await timed(client.json({ method: 'POST', path: '/containers/create', body: { Image: 'x' } }));
    client.close();
    expect(expectStall(error, `unix://${path}`).message).toContain('sent nothing for 0.2 s in its answer to POST /containers/create');
  });

  it('a JSON answer dribbled a byte at a time: fails at the deadline (METAFLOW_PREBUILT_NETWORK_DEADLINE)', async () => {
    const path = await fakeDaemon('json-drip', {
      'GET /version': (_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        const drip = setInterval(() => (res.destroyed ? clearInterval(drip) : res.write(' ')), 50);
      },
    });
    const client = new EngineClient({ socketPath: path }, { limits: LIMITS });
    const { error, ms } = await timed(client.json({ method: 'GET', path: '/version' }));
    client.close();
    const stall = expectStall(error, `unix://${path}`);
    expect(stall.reason).toBe('deadline');
    expect(stall.message).toContain('did not finish its answer to GET /version within 0.6 s (METAFLOW_PREBUILT_NETWORK_DEADLINE)');
    expect(ms).toBeGreaterThanOrEqual(550);
  });

  it('a build context the daemon stops reading (8 MiB): the upload fails after the idle limit', async () => {
    const path = await silentSocket('upload');
    const client = new EngineClient({ socketPath: path }, { limits: LIMITS });
    const { error } = await timed(client.stream({ method: 'POST', path: '/build', body: Buffer.alloc(8 << 20), silence: 'open' }));
    client.close();
    expect(expectStall(error, `unix://${path}`).message).toContain('after POST /build');
  });

  it('build: a daemon that takes the build and never answers: buildAndPush rejects with the NetworkError (options idleTimeoutSeconds)', async () => {
    const path = await fakeDaemon('build-stall', { 'GET /version': version, 'POST /build': () => undefined });
    const service = createDockerBuildService({ dockerHost: `unix://${path}`, idleTimeoutSeconds: 0.2, env: {} });
    const { error } = await timed(service.buildAndPush({ dockerfile: 'FROM scratch\n', contextDir: dir, imageTag: '127.0.0.1:1/x:y', platform: 'linux/amd64' }));
    await service.close?.();
    expect(expectStall(error, `unix://${path}`).message).toContain('after POST /build');
  });

  it('a build silent for many idle limits after its headers is not cut (a RUN compiling): it is built and pushed', async () => {
    const digest = `sha256:${'b'.repeat(64)}`;
    const path = await fakeDaemon('build-silent', {
      'GET /version': version,
      'POST /build': (_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json' }).write('{"stream":"Step 1/2 : RUN make\\n"}\n');
        setTimeout(() => res.end('{"stream":"compiled\\n"}\n{"aux":{"ID":"sha256:1"}}\n'), 1200);
      },
      'POST /images/127.0.0.1:1/x/push': json({ aux: { Tag: 'y', Digest: digest, Size: 1 } }),
      'DELETE /images/': json([]),
    });
    const service = createDockerBuildService({ dockerHost: `unix://${path}`, idleTimeoutSeconds: 0.2, env: {} });
    const lines: string[] = [];
    const result = await service.buildAndPush({ dockerfile: 'FROM scratch\n', contextDir: dir, imageTag: '127.0.0.1:1/x:y', platform: 'linux/amd64', log: (line) => lines.push(line) });
    await service.close?.();
    expect(result).toEqual({ ok: true, digest });
    expect(lines).toContain('compiled');
  });

  it('pull progress: silent for ten idle limits fails with the NetworkError; silent for five is fine', async () => {
    const path = await fakeDaemon('pull', {
      'POST /images/create': (req, res) => {
        res.writeHead(200, { 'content-type': 'application/json' }).write('{"status":"Pulling from team/app"}\n');
        if (new URL(req.url ?? '/', 'http://fake').searchParams.get('tag') === 'slow') setTimeout(() => res.end('{"status":"Downloaded newer image"}\n'), 1000);
      },
    });
    const client = new EngineClient({ socketPath: path }, { limits: LIMITS });
    const pull = (image: string) => pullThroughDaemon(client, image, { tracker: new ProgressTracker(undefined, 5), what: 'The pull' });
    expect(await pull('team/app:slow')).toBeUndefined();
    const { error, ms } = await timed(pull('team/app:hung'));
    client.close();
    expect(expectStall(error, `unix://${path}`).message).toContain('sent nothing for 2 s in its answer to POST /images/create (10 × METAFLOW_PREBUILT_NETWORK_IDLE_TIMEOUT)');
    expect(ms).toBeGreaterThanOrEqual(1900);
  });

  it('push: a daemon whose push progress stalls: buildAndPush rejects with the NetworkError instead of retrying', async () => {
    let pushes = 0;
    const path = await fakeDaemon('push', {
      'GET /version': version,
      'POST /build': json({ aux: { ID: 'sha256:1' } }),
      'POST /images/127.0.0.1:1/x/push': (_req, res) => {
        pushes++;
        res.writeHead(200, { 'content-type': 'application/json' }).write('{"status":"The push refers to repository [127.0.0.1:1/x]"}\n');
      },
      'DELETE /images/': json([]),
    });
    const service = createDockerBuildService({ dockerHost: `unix://${path}`, idleTimeoutSeconds: 0.05, env: {} });
    const { error } = await timed(service.buildAndPush({ dockerfile: 'FROM scratch\n', contextDir: dir, imageTag: '127.0.0.1:1/x:y', platform: 'linux/amd64' }));
    await service.close?.();
    expect(expectStall(error, `unix://${path}`).message).toContain('in its answer to POST /images/127.0.0.1:1/x/push');
    expect(pushes).toBe(1);
  });
});

describe('an isolated run on a hung Docker daemon (FAKE daemons)', () => {
  const image = '127.0.0.1:1/x@sha256:' + 'a'.repeat(64);
  const base = { 'GET /version': version, 'GET /images/': json({ Id: 'sha256:1' }), 'POST /containers/create': (_req: IncomingMessage, res: ServerResponse) => res.writeHead(201, { 'content-type': 'application/json' }).end('{"Id":"c0ffee"}'), 'DELETE /containers/c0ffee': json(null) };
  const run = (path: string, fields: { timeoutMs?: number; signal?: AbortSignal; idle?: string } = {}) =>
    runIsolatedContainer({
      image,
      command: ['/bin/true'],
      timeoutMs: fields.timeoutMs ?? 60_000,
      maxStdoutBytes: 1024,
      env: { DOCKER_HOST: `unix://${path}`, ...LIMIT_ENV, ...(fields.idle ? { METAFLOW_PREBUILT_NETWORK_IDLE_TIMEOUT: fields.idle } : {}) },
      ...(fields.signal ? { signal: fields.signal } : {}),
    });

  it('an attach the daemon never answers: a NetworkError after the idle limit', async () => {
    const path = await fakeDaemon('attach', { ...base, 'UPGRADE /containers/c0ffee/attach': () => undefined });
    const { error } = await timed(run(path));
    expect(expectStall(error, `unix://${path}`).message).toContain('after POST /containers/c0ffee/attach');
  });

  it('a start the daemon never answers: a NetworkError after the idle limit', async () => {
    const path = await fakeDaemon('start', { ...base, 'POST /containers/c0ffee/start': () => undefined, 'POST /containers/c0ffee/wait': headersOnly });
    attachAnswered(path);
    const { error } = await timed(run(path));
    expect(expectStall(error, `unix://${path}`).message).toContain('after POST /containers/c0ffee/start');
  });

  it('a wait that never ends, the kill unanswered: a DockerRunError once the time limit and the idle limit have passed', async () => {
    const path = await fakeDaemon('wait', { ...base, 'POST /containers/c0ffee/start': (_req, res) => res.writeHead(204).end(), 'POST /containers/c0ffee/wait': headersOnly, 'POST /containers/c0ffee/kill': () => undefined });
    attachAnswered(path);
    const { error, ms } = await timed(run(path, { timeoutMs: 300 }));
    expect(error).toBeInstanceOf(DockerRunError);
    expect((error as DockerRunError).message).toContain(`did not end the run of ${image} within 0.2 s of its time limit (0.3 s)`);
    expect((error as DockerRunError).hint).toContain('docker info');
    expect(ms).toBeGreaterThanOrEqual(450);
  });

  it('Ctrl-C while the daemon hangs in the wait (idle limit 60 s): CancelledError at once', async () => {
    const path = await fakeDaemon('cancel', { ...base, 'POST /containers/c0ffee/start': (_req, res) => res.writeHead(204).end(), 'POST /containers/c0ffee/wait': headersOnly, 'DELETE /containers/c0ffee': () => undefined });
    attachAnswered(path);
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 300);
    const { error, ms } = await timed(run(path, { signal: controller.signal, idle: '60' }));
    expect(error).toBeInstanceOf(CancelledError);
    expect(ms).toBeLessThan(3500); // the abort, then at most the 2 s clean-up bound for the remove nobody answers
  });
});

describe('Ctrl-C during a build the daemon never answers (idle limit 60 s)', () => {
  it('rejects with CancelledError at once', async () => {
    const path = await fakeDaemon('build-cancel', { 'GET /version': version, 'POST /build': () => undefined, 'DELETE /images/': () => undefined });
    const service = createDockerBuildService({ dockerHost: `unix://${path}`, env: {} });
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 300);
    const { error, ms } = await timed(service.buildAndPush({ dockerfile: 'FROM scratch\n', contextDir: dir, imageTag: '127.0.0.1:1/x:y', platform: 'linux/amd64', signal: controller.signal }));
    await service.close?.();
    expect(error).toBeInstanceOf(CancelledError);
    expect(ms).toBeLessThan(3500);
  });
});

/** The fake's attach answers 101 and then keeps the connection open, silent. */
function attachAnswered(path: string): void {
  const server = servers.find((s) => (s.address() as string | null) === path)!;
  server.removeAllListeners('upgrade');
  server.on('upgrade', (_req, socket: Socket) => {
    socket.write('HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n');
  });
}
