/**
 * The DELETE of an abandoned upload session keeps its own 2 s bound when it needs a registry token
 * another request is already fetching for the same scope (an in-process Bearer registry on
 * 127.0.0.1 whose token server is slow to answer that fetch): the failed upload rejects within the
 * DELETE's bound, and the other request still gets its token and finishes.
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, expect, it } from 'vitest';
import { RegistryError } from '../errors.js';
import { RegistryClient } from './registry-client.js';

const servers: Server[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

const digestOf = (bytes: Uint8Array): string => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

/** How long the token server takes to answer every token request after the first. */
const SLOW_TOKEN_MS = 6000;

it('a failed upload’s DELETE waits on another request’s token fetch no longer than its 2 s; that fetch goes on for the other request', async () => {
  const first = Buffer.from('first blob');
  const second = Buffer.from('second blob');
  const times: Record<string, number> = {};
  const events: string[] = [];
  let tokens = 0;
  let revoked = false;
  let releasePut: (() => void) | undefined;
  let putArrived: (() => void) | undefined;
  const putSeen = new Promise<void>((resolve) => (putArrived = resolve));
  const stored = new Set<string>();
  let host = '';
  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const url = new URL(req.url!, 'http://registry');
    events.push(`${req.method} ${url.pathname}`);
    if (url.pathname === '/token') {
      tokens += 1;
      if (tokens === 1) {
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token: 't1', expires_in: 300 }));
        return;
      }
      // The second fetch (the other upload's): the held PUT now fails, and this token comes late.
      releasePut?.();
      setTimeout(() => {
        times['token'] = Date.now();
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token: 't2', expires_in: 300 }));
      }, SLOW_TOKEN_MS);
      return;
    }
    const auth = req.headers.authorization;
    if (auth !== 'Bearer t2' && (auth !== 'Bearer t1' || revoked)) {
      res.writeHead(401, { 'www-authenticate': `Bearer realm="http://${host}/token",service="test"`, 'content-type': 'application/json' }).end('{"errors":[{"code":"UNAUTHORIZED"}]}');
      return;
    }
    if (req.method === 'HEAD') {
      res.writeHead(stored.has(url.pathname.split('/').at(-1)!) ? 200 : 404).end();
      return;
    }
    if (req.method === 'POST') {
      res.writeHead(202, { location: `/v2/repo/blobs/uploads/${events.length}` }).end();
      return;
    }
    if (req.method === 'PUT') {
      const digest = url.searchParams.get('digest')!;
      if (digest === digestOf(first)) {
        // The first upload's PUT: t1 stops being accepted, and the PUT fails once the other upload asks for a new token.
        revoked = true;
        releasePut = () => {
          times['put failed'] = Date.now();
          res.writeHead(500, { 'content-type': 'application/json' }).end('{"errors":[{"code":"UNKNOWN","message":"disk on fire"}]}');
        };
        putArrived?.();
        return;
      }
      stored.add(digest);
      res.writeHead(201, { 'docker-content-digest': digest }).end();
      return;
    }
    if (req.method === 'DELETE') {
      res.writeHead(204).end();
      return;
    }
    res.writeHead(405).end();
  };
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => handle(req, res));
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  host = `127.0.0.1:${(server.address() as AddressInfo).port}`;

  const client = new RegistryClient({ dockerConfig: false, retry: { attempts: 1 }, timeoutMs: 30_000 });
  const failed = client.uploadBlob(`${host}/repo`, digestOf(first), first).then(
    () => undefined,
    (error: unknown) => {
      times['failed upload rejected'] = Date.now();
      return error;
    },
  );
  await putSeen;
  // The other upload: t1 refused, so it fetches a token for the same scope (pull,push on repo) — slowly.
  const other = client.uploadBlob(`${host}/repo`, digestOf(second), second).catch((e: unknown) => e);
  const error = await failed;
  expect(error).toBeInstanceOf(RegistryError);
  expect((error as Error).message).toMatch(/PUT .* failed: 500 Internal Server Error \(UNKNOWN: disk on fire\)/);
  expect(await other).toEqual({ status: 'uploaded', bytesSent: second.length });
  // The DELETE gave up waiting for the token within its bound, before the token came; the other upload got it.
  expect(times['failed upload rejected']! - times['put failed']!).toBeLessThan(2000 + 1500);
  expect(times['failed upload rejected']!).toBeLessThan(times['token']!);
  expect(tokens).toBe(2);
  expect(stored.has(digestOf(second))).toBe(true);
}, 30_000);
