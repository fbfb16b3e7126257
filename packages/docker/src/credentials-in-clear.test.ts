/**
 * Registry credentials sent to a Docker daemon over plain TCP on another host cross the network
 * unencrypted: the decision (credentialsInClear) is unit-tested on addresses; the note's travel
 * through a build request and an isolated run's pull (prebuilt profile) is tested against a FAKE
 * daemon on 127.0.0.1 with the decision injected
 * (a daemon on 127.0.0.1 is loopback, which rightly gets no note).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Secret, type BuildRequest } from '@prebuilt/core/backend';
import { DockerBuild } from './docker-build.js';
import { DockerDaemon } from './docker-daemon.js';
import { runIsolatedContainer } from './isolated-container.js';
import { credentialsInClear, credentialsInClearNote, dockerConnection } from './docker-host.js';
import { resolveDockerSettings } from './docker-settings.js';

const inClear = (host: string, env: Record<string, string> = {}): boolean => credentialsInClear(dockerConnection(host, env));

describe('credentialsInClear: which Docker hosts get registry credentials unencrypted', () => {
  it('plain TCP to another host: yes (tcp:// without DOCKER_TLS_VERIFY, http://, an IPv6 address)', () => {
    expect(inClear('tcp://build-host.example.com:2375')).toBe(true);
    expect(inClear('tcp://10.1.2.3:2375')).toBe(true);
    expect(inClear('http://10.1.2.3:2375')).toBe(true);
    expect(inClear('tcp://[2001:db8::1]:2375')).toBe(true);
    expect(inClear('tcp://10.1.2.3:2375', { DOCKER_TLS_VERIFY: '' })).toBe(true);
  });

  it('TLS, unix sockets, ssh and this machine (127.0.0.0/8, ::1, localhost): no', () => {
    // tcp:// with DOCKER_TLS_VERIFY is an https connection (its certificates read: here given, not read).
    expect(dockerConnection('https://10.1.2.3:2376', { DOCKER_CERT_PATH: '/nonexistent' }).protocol).toBe('https');
    expect(credentialsInClear({ host: '10.1.2.3', port: 2376, protocol: 'https', ca: Buffer.from('ca') })).toBe(false);
    expect(inClear('https://10.1.2.3:2376', { DOCKER_CERT_PATH: '/nonexistent' })).toBe(false);
    expect(inClear('unix:///var/run/docker.sock')).toBe(false);
    expect(inClear('/var/run/docker.sock')).toBe(false);
    expect(inClear('ssh://me@build-host.example.com')).toBe(false);
    for (const host of ['tcp://127.0.0.1:2375', 'tcp://127.8.9.10:2375', 'tcp://[::1]:2375', 'tcp://localhost:2375', 'tcp://LOCALHOST:2375', 'http://localhost:2375']) {
      expect(inClear(host), host).toBe(false);
    }
  });

  it('127.0.0.0/8 mapped into IPv6 is this machine, in both spellings; another mapped IPv4 address is not', () => {
    // The URL parser writes [::ffff:127.0.0.1] as [::ffff:7f00:1].
    for (const host of ['tcp://[::ffff:127.0.0.1]:2375', 'tcp://[::FFFF:7F00:1]:2375', 'tcp://[0:0:0:0:0:ffff:127.0.0.1]:2375', 'http://[::ffff:127.1.2.3]:2375']) {
      expect(inClear(host), host).toBe(false);
    }
    for (const host of ['::ffff:127.0.0.1', '::ffff:7f00:1', '[::ffff:7f00:1]', '[::ffff:127.0.0.1]', '::ffff:7fff:ffff']) {
      expect(credentialsInClear({ host, port: 2375, protocol: 'http' }), host).toBe(false);
    }
    for (const host of ['tcp://[::ffff:8.8.8.8]:2375', 'tcp://[::ffff:128.0.0.1]:2375', 'tcp://[::ffff:0:127.0.0.1]:2375', 'tcp://[::127.0.0.1]:2375']) {
      expect(inClear(host), host).toBe(true);
    }
    for (const host of ['::ffff:8.8.8.8', '::ffff:808:808', '[::ffff:808:808]', '::ffff:7e00:1', '::ffff:8000:1', '::ffff:7f00:1:1']) {
      expect(credentialsInClear({ host, port: 2375, protocol: 'http' }), host).toBe(true);
    }
  });
});

describe('the note travels through the build request, once per daemon', () => {
  let server: Server;
  let port: number;
  let dir: string;
  const auths: string[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'prebuilt-clear-'));
    // A FAKE daemon: answers /version, a build with an image id, a push with a digest, and image removals.
    server = createServer((req: IncomingMessage, res: ServerResponse) => {
      req.resume();
      req.on('end', () => {
        const path = new URL(req.url ?? '/', 'http://fake').pathname;
        if (req.headers['x-registry-auth']) auths.push(String(req.headers['x-registry-auth']));
        const send = (lines: unknown[]) => res.writeHead(200, { 'content-type': 'application/json' }).end(lines.map((line) => JSON.stringify(line)).join('\n'));
        const refuse = (status: number, message: string) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify({ message }));
        if (path.endsWith('/version')) send([{ Version: '27.0.0-fake', ApiVersion: '1.46' }]);
        else if (req.method === 'GET' && path.includes('/images/registry.example.com/ns/run')) refuse(404, 'No such image');
        else if (path.endsWith('/images/create')) send([{ status: 'Pulling from ns/run' }, { status: 'Downloaded newer image' }]);
        else if (path.endsWith('/containers/create')) refuse(500, 'this FAKE daemon runs no container');
        else if (path.endsWith('/build')) send([{ stream: 'Step 1/1 : FROM scratch\n' }, { aux: { ID: 'sha256:1111' } }]);
        else if (path.endsWith('/push')) send([{ status: 'pushed' }, { aux: { Tag: 'env-a', Digest: `sha256:${'2'.repeat(64)}`, Size: 1 } }]);
        else send([{}]);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as { port: number }).port;
  });
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
    await rm(dir, { recursive: true, force: true });
  });

  async function buildTwice(decision: boolean, withCredentials: boolean): Promise<string[]> {
    const env = { DOCKER_HOST: `tcp://127.0.0.1:${port}` };
    const settings = resolveDockerSettings({}, env);
    const daemon = new DockerDaemon(settings, env, () => decision);
    const notes: string[] = [];
    try {
      for (const tag of ['registry.example.com/ns:env-a', 'registry.example.com/ns:env-b']) {
        const request: BuildRequest = {
          dockerfile: 'FROM scratch\n',
          contextDir: dir,
          imageTag: tag,
          platform: 'linux/amd64',
          note: (message) => notes.push(message),
          ...(withCredentials ? { pushCredentials: { registry: 'registry.example.com', username: 'u', password: new Secret('p4ss-word'), source: 'the test' } } : {}),
        };
        expect(await new DockerBuild(daemon, settings, request).run()).toMatchObject({ ok: true });
      }
    } finally {
      daemon.close();
    }
    return notes;
  }

  it('credentials sent in clear: one note for two builds, naming the daemon and the fixes, never the password', async () => {
    const notes = await buildTwice(true, true);
    expect(auths.length).toBeGreaterThanOrEqual(2);
    expect(notes).toHaveLength(1);
    expect(notes[0]).toContain(`registry credentials go to the Docker daemon at tcp://127.0.0.1:${port} unencrypted`);
    expect(notes[0]).toContain('DOCKER_TLS_VERIFY=1 and DOCKER_CERT_PATH');
    expect(notes[0]).toContain('ssh://');
    expect(notes[0]).not.toContain('p4ss-word');
  });

  /** Two isolated runs of an image the daemon lacks (pulled, then the fake refuses the container), each its own connection: their notes. */
  async function runTwice(decision: boolean, withCredentials: boolean): Promise<string[]> {
    const notes: string[] = [];
    const credentials = { registry: 'registry.example.com', username: 'u', password: new Secret('p4ss-word'), source: 'the test' };
    for (let i = 0; i < 2; i++) {
      const before = auths.length;
      const run = runIsolatedContainer(
        {
          image: `registry.example.com/ns/run@sha256:${'3'.repeat(64)}`,
          command: ['true'],
          timeoutMs: 10_000,
          maxStdoutBytes: 100,
          env: { DOCKER_HOST: `tcp://127.0.0.1:${port}` },
          credentials: async () => (withCredentials ? credentials : undefined),
          note: (message) => notes.push(message),
        },
        () => decision,
      );
      await expect(run).rejects.toMatchObject({ statusCode: 500 }); // pulled, then refused: the note, if any, came before
      expect(auths.length - before, 'the pull sent the credentials').toBe(withCredentials ? 1 : 0);
    }
    return notes;
  }

  it('the pull of an isolated run (prebuilt profile) says it too, the same words, once per daemon connection', async () => {
    const notes = await runTwice(true, true);
    expect(notes).toHaveLength(2);
    expect(notes[0]).toBe(credentialsInClearNote(`tcp://127.0.0.1:${port}`));
    expect(notes[0]).not.toContain('p4ss-word');
    expect(await runTwice(true, false)).toEqual([]);
    expect(await runTwice(false, true)).toEqual([]);
  });

  it('no note without credentials, nor for a daemon the decision calls safe (the real one, for 127.0.0.1)', async () => {
    expect(await buildTwice(true, false)).toEqual([]);
    expect(await buildTwice(false, true)).toEqual([]);
    const env = { DOCKER_HOST: `tcp://127.0.0.1:${port}` };
    expect(new DockerDaemon(resolveDockerSettings({}, env), env).credentialsInClear).toBe(false);
  });
});
