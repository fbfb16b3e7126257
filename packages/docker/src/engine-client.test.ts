/**
 * prebuilt's Engine API client against a FAKE Docker daemon on a unix socket (a Node HTTP server
 * answering as dockerd does): what goes out (path, query, headers, body), what comes back (JSON,
 * streams, refusals), bounded answers, broken connections and the hijacked attach.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeOrFailInCi } from './__fixtures__/services.js';
import { EngineClient, MAX_JSON_BYTES, type EngineRequestError } from './engine-client.js';
import { DockerDaemon } from './docker-daemon.js';
import { resolveDockerSettings } from './docker-settings.js';
import { dockerConnection } from './docker-host.js';
import { EngineContainer } from './engine-container.js';
import { demuxStream } from './stream-demux.js';
import { readEvents } from './progress.js';

interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: Buffer;
}

let dir: string;
let socketPath: string;
let fake: Server;
let client: EngineClient;
const seen: Seen[] = [];

/** A frame of the multiplexed attach stream: `[stream, 0, 0, 0, size]` then the bytes. */
const frame = (stream: number, text: string): Buffer => {
  const payload = Buffer.from(text);
  const header = Buffer.alloc(8);
  header[0] = stream;
  header.writeUInt32BE(payload.length, 4);
  return Buffer.concat([header, payload]);
};

function answer(req: IncomingMessage, res: ServerResponse, body: Buffer): void {
  seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
  const url = new URL(req.url ?? '/', 'http://fake');
  const json = (status: number, value: unknown): void => void res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(value));
  switch (url.pathname) {
    case '/v1.41/images/json':
      return json(200, [{ Id: 'sha256:1' }]);
    case '/images/127.0.0.1:5000/team/app:v1/json':
      return json(404, { message: 'No such image: 127.0.0.1:5000/team/app:v1' });
    case '/images/create':
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"status":"Pulling from team/app","id":"v1"}\n{"status":"Down');
      return void setTimeout(() => res.end('loaded newer image"}\n'), 20);
    case '/build':
      return json(200, { stream: `got ${body.length} bytes\n` });
    case '/containers/create':
      return json(201, { Id: 'c0ffee', Warnings: [] });
    case '/containers/c0ffee/start':
      return void res.writeHead(204).end();
    case '/huge-error':
      res.writeHead(500, { 'content-type': 'application/json' });
      res.on('error', () => undefined);
      return void res.end(Buffer.alloc(MAX_JSON_BYTES + 1024, 0x20));
    case '/cut':
      // Headers and half an answer, then the connection drops.
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': '100' });
      res.write('{"Id":');
      return void setTimeout(() => res.socket?.destroy(), 10);
    default:
      return json(404, { message: 'page not found' });
  }
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'prebuilt-engine-client-'));
  socketPath = join(dir, 'fake-docker.sock');
  fake = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk)).on('end', () => answer(req, res, Buffer.concat(chunks)));
  });
  // The attach of dockerd: 101, then the raw multiplexed stream on the same connection.
  fake.on('upgrade', (req, socket) => {
    seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.alloc(0) });
    socket.write('HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n');
    socket.write(Buffer.concat([frame(1, 'out 1\n'), frame(2, 'err 1\n')]));
    setTimeout(() => socket.end(frame(1, 'out 2\n')), 20);
  });
  await new Promise<void>((resolve) => fake.listen(socketPath, resolve));
  client = new EngineClient({ socketPath });
});
afterAll(async () => {
  client.close();
  await new Promise((resolve) => fake.close(resolve));
  await rm(dir, { recursive: true, force: true });
});

describe('EngineClient (fake Docker daemon on a unix socket)', () => {
  it('a JSON request: the API version before the path, objects in the query as JSON, undefined ones left out', async () => {
    const versioned = new EngineClient({ socketPath, version: 'v1.41' });
    try {
      expect(await versioned.json({ method: 'GET', path: '/images/json', query: { all: true, filters: { label: ['a=b'] }, skip: undefined } })).toEqual([{ Id: 'sha256:1' }]);
    } finally {
      versioned.close();
    }
    expect(seen.at(-1)).toMatchObject({ method: 'GET', url: `/v1.41/images/json?all=true&filters=${encodeURIComponent('{"label":["a=b"]}')}` });
  });

  it('registry credentials go only into X-Registry-Auth (URL-safe base64 JSON, padded) and X-Registry-Config (base64 JSON); a tar body as application/x-tar', async () => {
    const auth = { username: 'me', password: 'p4ss?>>word', serveraddress: '127.0.0.1:5101' };
    const stream = await client.stream({ method: 'POST', path: '/build', query: { t: 'x:y' }, body: Buffer.alloc(3000, 1), registryConfig: { '127.0.0.1:5101': { username: 'me', password: 'p4ss?>>word' } }, silence: 'open' });
    const events: unknown[] = [];
    await readEvents(stream, (event) => events.push(event));
    expect(events).toEqual([{ stream: 'got 3000 bytes\n' }]);
    const build = seen.at(-1)!;
    expect(build.headers['content-type']).toBe('application/x-tar');
    expect(JSON.parse(Buffer.from(build.headers['x-registry-config'] as string, 'base64').toString())).toEqual({ '127.0.0.1:5101': { username: 'me', password: 'p4ss?>>word' } });
    expect(build.url).toBe('/build?t=x%3Ay');
    await readEvents(await client.stream({ method: 'POST', path: '/images/create', query: { fromImage: 'team/app', tag: 'v1' }, registryAuth: auth, silence: 'progress' }), () => undefined);
    const header = seen.at(-1)!.headers['x-registry-auth'] as string;
    expect(header).toMatch(/^[A-Za-z0-9_-]+=*$/);
    expect(header.length % 4).toBe(0);
    expect(JSON.parse(Buffer.from(header.replace(/-/g, '+').replace(/_/g, '/'), 'base64').toString())).toEqual(auth);
    expect(seen.at(-1)!.url).not.toContain('p4ss');
  });

  it('a streamed answer is read as it comes, events split across chunks', async () => {
    const events: unknown[] = [];
    await readEvents(await client.stream({ method: 'POST', path: '/images/create', query: { fromImage: 'team/app', tag: 'v1' }, silence: 'progress' }), (event) => events.push(event));
    expect(events).toEqual([
      { status: 'Pulling from team/app', id: 'v1' },
      { status: 'Downloaded newer image' },
    ]);
  });

  it('a refusal carries the status and the daemon\'s JSON; the message is the daemon\'s, never the credentials sent', async () => {
    const error = (await client.json({ method: 'GET', path: '/images/127.0.0.1:5000/team/app:v1/json', registryAuth: { password: 'p4ss-word' } }).catch((e: unknown) => e)) as EngineRequestError;
    expect(error.statusCode).toBe(404);
    expect(error.json).toEqual({ message: 'No such image: 127.0.0.1:5000/team/app:v1' });
    expect(error.message).toBe('(HTTP code 404) Not Found - No such image: 127.0.0.1:5000/team/app:v1');
    expect(JSON.stringify({ ...error, message: error.message })).not.toContain('p4ss-word');
  });

  it('bounded: an error body larger than 1 MiB is refused and its connection closed', async () => {
    const error = (await client.json({ method: 'GET', path: '/huge-error' }).catch((e: unknown) => e)) as EngineRequestError;
    expect(error.message).toBe(`its answer to GET /huge-error is larger than ${MAX_JSON_BYTES} bytes (is DOCKER_HOST a Docker daemon?)`);
    expect(error.statusCode).toBeUndefined();
  });

  it('a connection that drops mid-answer, or a socket nobody listens on: an error without a status (the daemon did not answer)', async () => {
    const cut = (await client.json({ method: 'GET', path: '/cut' }).catch((e: unknown) => e)) as EngineRequestError;
    expect(cut).toBeInstanceOf(Error);
    expect(cut.statusCode).toBeUndefined();
    const dead = new EngineClient({ socketPath: join(dir, 'none.sock') });
    const error = (await dead.json({ method: 'GET', path: '/version' }).catch((e: unknown) => e)) as EngineRequestError;
    dead.close();
    expect(error.message).toMatch(/ENOENT/);
    expect(error.statusCode).toBeUndefined();
  });

  it('an aborted request rejects without a status', async () => {
    const controller = new AbortController();
    const pending = client.stream({ method: 'POST', path: '/images/create', signal: controller.signal, silence: 'progress' }).then((stream) => readEvents(stream, () => undefined));
    controller.abort();
    const error = (await pending.catch((e: unknown) => e)) as EngineRequestError;
    expect(error.name).toBe('AbortError');
    expect(error.statusCode).toBeUndefined();
  });

  it('a container: create (JSON body), start (204), attach hijacked with Upgrade: tcp, its frames demultiplexed', async () => {
    const container = await EngineContainer.create(client, { Image: 'img' } as Parameters<typeof EngineContainer.create>[1]);
    expect(container.id).toBe('c0ffee');
    expect(seen.at(-1)).toMatchObject({ method: 'POST', url: '/containers/create' });
    expect(JSON.parse(seen.at(-1)!.body.toString())).toEqual({ Image: 'img' });
    const stream = await container.attach();
    expect(seen.at(-1)).toMatchObject({ method: 'POST', url: '/containers/c0ffee/attach?stream=1&stdout=1&stderr=1' });
    expect(seen.at(-1)!.headers).toMatchObject({ connection: 'Upgrade', upgrade: 'tcp' });
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    demuxStream(stream, stdout, stderr);
    await new Promise((resolve) => stream.on('end', resolve));
    expect(stdout.read()?.toString()).toBe('out 1\nout 2\n');
    expect(stderr.read()?.toString()).toBe('err 1\n');
    await container.start();
    expect(seen.at(-1)).toMatchObject({ method: 'POST', url: '/containers/c0ffee/start' });
  });
});

const openssl = spawnSync('openssl', ['version']).status === 0;
const noOpenssl = openssl ? undefined : 'needs openssl to make the certificates: apt-get install openssl (scripts/test-services.sh up does)';
describeOrFailInCi('EngineClient over TLS (fake Docker daemon on 127.0.0.1 asking for a client certificate)', noOpenssl, () => {
  it('DOCKER_TLS_VERIFY with DOCKER_CERT_PATH: ca.pem checks the daemon, cert.pem/key.pem identify us; another CA is refused', async () => {
    const certs = await mkdtemp(join(tmpdir(), 'prebuilt-engine-tls-'));
    const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: certs, stdio: 'ignore' });
    const key = (name: string) => ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', name];
    try {
      ssl('req', '-x509', ...key('ca-key.pem'), '-out', 'ca.pem', '-days', '1', '-subj', '/CN=fake docker CA');
      await writeFile(join(certs, 'server.ext'), 'subjectAltName=IP:127.0.0.1\n');
      for (const [name, ext] of [['server', ['-extfile', 'server.ext']], ['client', []]] as const) {
        ssl('req', ...key(`${name}-key.pem`), '-out', `${name}.csr`, '-subj', `/CN=${name}`);
        ssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca-key.pem', '-CAcreateserial', '-out', `${name}.pem`, '-days', '1', ...ext);
      }
      await writeFile(join(certs, 'cert.pem'), await readFile(join(certs, 'client.pem')));
      await writeFile(join(certs, 'key.pem'), await readFile(join(certs, 'client-key.pem')));
      const read = (name: string) => readFile(join(certs, name));
      const server = createTlsServer({ key: await read('server-key.pem'), cert: await read('server.pem'), ca: await read('ca.pem'), requestCert: true, rejectUnauthorized: true }, (req, res) => {
        const peer = (req.socket as import('node:tls').TLSSocket).getPeerCertificate();
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ Version: `tls-fake for ${peer.subject?.CN}`, ApiVersion: '1.41' }));
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const port = (server.address() as { port: number }).port;
      try {
        const env = { DOCKER_TLS_VERIFY: '1', DOCKER_CERT_PATH: certs };
        const tls = new EngineClient(dockerConnection(`tcp://127.0.0.1:${port}`, env));
        expect(await tls.json({ method: 'GET', path: '/version' })).toEqual({ Version: 'tls-fake for client', ApiVersion: '1.41' });
        tls.close();
        const daemon = new DockerDaemon(resolveDockerSettings({ dockerHost: `tcp://127.0.0.1:${port}` }, {}), env);
        await daemon.check(undefined);
        daemon.close();
        // Another CA: the daemon's certificate is not trusted, a connection error (no status).
        const other = new EngineClient({ ...dockerConnection(`tcp://127.0.0.1:${port}`, env), ca: await read('client.pem') });
        const error = (await other.json({ method: 'GET', path: '/version' }).catch((e: unknown) => e)) as EngineRequestError;
        other.close();
        expect(error).toBeInstanceOf(Error);
        expect(error.statusCode).toBeUndefined();
        // The right CA but another name: the certificate is for 127.0.0.1, not localhost; the hostname is checked.
        const renamed = new EngineClient(dockerConnection(`tcp://localhost:${port}`, env));
        const misnamed = (await renamed.json({ method: 'GET', path: '/version' }).catch((e: unknown) => e)) as NodeJS.ErrnoException;
        renamed.close();
        expect(misnamed.code).toBe('ERR_TLS_CERT_ALTNAME_INVALID');
      } finally {
        await new Promise((resolve) => server.close(resolve));
      }
    } finally {
      await rm(certs, { recursive: true, force: true });
    }
  }, 30_000);
});
