/**
 * DOCKER_HOST=ssh://… without an ssh library, as the docker CLI does it: `ssh … -- host docker
 * system dial-stdio`. The `ssh` on PATH here is a FAKE: a script that records its arguments and
 * relays its stdin/stdout to a local unix socket (a fake daemon, or the real one of the test
 * services). Nothing connects anywhere but this machine's sockets.
 */
import { createServer, type Server } from 'node:http';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, UnreachableError } from '@prebuilt/core/backend';
import { DockerDaemon } from './docker-daemon.js';
import { resolveDockerSettings } from './docker-settings.js';
import { dockerConnection } from './docker-host.js';
import { EngineClient } from './engine-client.js';
import { engineVersion } from './engine-version.js';
import { runIsolatedContainer } from './isolated-container.js';
import { sshArguments } from './ssh-dial.js';
import { describeOrFailInCi, missingFor, testServices } from './__fixtures__/services.js';

const FAKE_SSH = `#!${process.execPath}
// FAKE ssh for prebuilt's tests: records its arguments, then relays stdin/stdout to FAKE_SSH_SOCKET.
const fs = require('node:fs');
const net = require('node:net');
fs.appendFileSync(process.env.FAKE_SSH_LOG, JSON.stringify(process.argv.slice(2)) + '\\n');
if (process.env.FAKE_SSH_FAIL) {
  process.stderr.write('ssh: connect to host 127.0.0.1 port 2222: Connection refused\\n');
  process.exit(255);
}
const socket = net.connect(process.env.FAKE_SSH_SOCKET);
socket.on('error', (error) => { process.stderr.write(String(error) + '\\n'); process.exit(1); });
process.stdin.pipe(socket);
socket.pipe(process.stdout);
socket.on('close', () => process.exit(0));
`;

let dir: string;
let fake: Server;
let fakeSocket: string;
const saved = { PATH: process.env['PATH'], FAKE_SSH_LOG: process.env['FAKE_SSH_LOG'], FAKE_SSH_SOCKET: process.env['FAKE_SSH_SOCKET'] };

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'prebuilt-ssh-dial-'));
  await writeFile(join(dir, 'ssh'), FAKE_SSH);
  await chmod(join(dir, 'ssh'), 0o755);
  fakeSocket = join(dir, 'fake-docker.sock');
  // A FAKE Docker daemon answering GET /version.
  fake = createServer((req, res) => {
    if (req.url === '/version') res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ Version: '27.0.0-fake', ApiVersion: '1.46' }));
    else res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ message: 'page not found' }));
  });
  fake.on('connection', (socket) => {
    openConnections.add(socket);
    socket.on('close', () => openConnections.delete(socket));
  });
  await new Promise<void>((resolve) => fake.listen(fakeSocket, resolve));
  process.env['PATH'] = `${dir}${delimiter}${saved.PATH ?? ''}`;
  process.env['FAKE_SSH_LOG'] = join(dir, 'ssh.log');
  process.env['FAKE_SSH_SOCKET'] = fakeSocket;
});
afterAll(async () => {
  for (const [key, value] of Object.entries(saved)) {
    if (value === undefined) delete process.env[key];
    else process.env[key] = value;
  }
  await new Promise((resolve) => fake.close(resolve));
  await rm(dir, { recursive: true, force: true });
});

/** The connections the fake daemon has open. */
const fakeConnections = (): number => openConnections.size;
const openConnections = new Set<unknown>();
async function waitFor(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 100 && !condition(); i++) await new Promise((resolve) => setTimeout(resolve, 20));
  expect(condition()).toBe(true);
}

const calls = async (): Promise<string[][]> => (await readFile(join(dir, 'ssh.log'), 'utf8')).trim().split('\n').map((line) => JSON.parse(line) as string[]);

describe('ssh:// Docker hosts through the ssh program (fake ssh on PATH)', () => {
  it('runs ssh as the docker CLI does: [-p port] [-l user] -- host docker system dial-stdio', () => {
    expect(sshArguments(dockerConnection('ssh://me@127.0.0.1:2222', {}), 60_000)).toEqual(['-o', 'ConnectTimeout=60', '-p', '2222', '-l', 'me', '--', '127.0.0.1', 'docker', 'system', 'dial-stdio']);
    expect(sshArguments(dockerConnection('ssh://127.0.0.1', {}), 60_000)).toEqual(['-o', 'ConnectTimeout=60', '--', '127.0.0.1', 'docker', 'system', 'dial-stdio']);
    // The connect limit is ssh's ConnectTimeout, in whole seconds (at least 1).
    expect(sshArguments(dockerConnection('ssh://127.0.0.1', {}), 200).slice(0, 2)).toEqual(['-o', 'ConnectTimeout=1']);
  });

  it('the daemon check and requests go over the ssh child\'s stdin/stdout (fake daemon), one ssh kept alive for them, ended by close()', async () => {
    const before = (await calls().catch(() => [])).length;
    const client = new EngineClient(dockerConnection('ssh://me@127.0.0.1:2222', {}));
    expect(await engineVersion(client)).toEqual({ Version: '27.0.0-fake', ApiVersion: '1.46' });
    await expect(client.json({ method: 'GET', path: '/nothing' })).rejects.toMatchObject({ statusCode: 404, json: { message: 'page not found' } });
    expect(await engineVersion(client)).toMatchObject({ Version: '27.0.0-fake' });
    // ssh's ConnectTimeout is the idle limit's (METAFLOW_PREBUILT_NETWORK_IDLE_TIMEOUT, 60 s by default).
    expect((await calls()).slice(before)).toEqual([['-o', 'ConnectTimeout=60', '-p', '2222', '-l', 'me', '--', '127.0.0.1', 'docker', 'system', 'dial-stdio']]);
    client.close();
    await waitFor(() => fakeConnections() === 0);
    const daemon = new DockerDaemon(resolveDockerSettings({ dockerHost: 'ssh://me@127.0.0.1:2222' }, {}), {});
    await daemon.check(undefined);
    daemon.close();
  });

  it('a kept-alive ssh connection the daemon closed is not reused: the next request dials again', async () => {
    const client = new EngineClient(dockerConnection('ssh://127.0.0.1', {}));
    try {
      await engineVersion(client);
      const before = (await calls()).length;
      fake.closeIdleConnections();
      await waitFor(() => fakeConnections() === 0);
      await new Promise((resolve) => setTimeout(resolve, 100)); // the relay and its ssh have exited
      expect(await engineVersion(client)).toMatchObject({ Version: '27.0.0-fake' });
      expect((await calls()).length).toBe(before + 1);
    } finally {
      client.close();
    }
  });

  it('an ssh that fails (exit 255) makes the daemon unreachable, quoting ssh\'s stderr', async () => {
    process.env['FAKE_SSH_FAIL'] = '1';
    try {
      const error = await new DockerDaemon(resolveDockerSettings({ dockerHost: 'ssh://127.0.0.1:2222' }, {}), {}).check(undefined).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(UnreachableError);
      expect((error as Error).message).toBe('The Docker daemon at ssh://127.0.0.1:2222 cannot be reached: ssh to 127.0.0.1 exited with 255: ssh: connect to host 127.0.0.1 port 2222: Connection refused.');
    } finally {
      delete process.env['FAKE_SSH_FAIL'];
    }
  });

  it('no ssh program: the daemon is unreachable, saying ssh cannot be started', async () => {
    const path = process.env['PATH'];
    process.env['PATH'] = join(dir, 'empty');
    try {
      const error = await new DockerDaemon(resolveDockerSettings({ dockerHost: 'ssh://127.0.0.1' }, {}), {}).check(undefined).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(UnreachableError);
      expect((error as Error).message).toMatch(/cannot be reached: ssh to 127\.0\.0\.1 cannot be started: there is no ssh program in PATH's directories/);
    } finally {
      process.env['PATH'] = path;
    }
  });

  it('never runs an ssh found only through an empty or relative PATH entry (the current directory): a ConfigError before any connection', async () => {
    const path = process.env['PATH'];
    const here = relative(process.cwd(), dir);
    process.env['PATH'] = `/nonexistent${delimiter}${here}`;
    const before = (await calls().catch(() => [])).length;
    try {
      const error = (() => {
        try {
          return new DockerDaemon(resolveDockerSettings({ dockerHost: 'ssh://127.0.0.1' }, {}), {});
        } catch (e) {
          return e;
        }
      })();
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as Error).message).toContain(`ssh (for DOCKER_HOST's ssh:// daemon) was found only in '${here}', a PATH entry relative to the current directory`);
    } finally {
      process.env['PATH'] = path;
    }
    expect((await calls().catch(() => [])).length).toBe(before);
  });
});

const services = testServices();
const realSocket = services.dockerHost?.startsWith('unix://') ? services.dockerHost.slice('unix://'.length) : undefined;
const missing = missingFor(['docker', 'baseImage'], services) ?? (realSocket ? undefined : `needs the test Docker daemon on a unix socket, not ${services.dockerHost}: run \`bash scripts/test-services.sh up\``);
describeOrFailInCi('ssh:// to the real Docker daemon through the fake ssh', missing, () => {
  it('an isolated run (create, hijacked attach, start, wait, remove) over ssh', async () => {
    process.env['FAKE_SSH_SOCKET'] = realSocket;
    try {
      const result = await runIsolatedContainer({ image: services.baseImage!.ref, command: ['/bin/sh', '-c', 'echo over ssh; echo err >&2; exit 4'], timeoutMs: 60_000, maxStdoutBytes: 4096, env: { DOCKER_HOST: 'ssh://me@127.0.0.1' } });
      expect(result).toMatchObject({ exitCode: 4, stdout: 'over ssh\n', stderrTail: 'err\n', pulled: false });
    } finally {
      process.env['FAKE_SSH_SOCKET'] = fakeSocket;
    }
  }, 60_000);
});
