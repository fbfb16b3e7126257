import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { CancelledError, NetworkError } from '../errors.js';
import { netFetch } from './net-fetch.js';
import { withNetworkWaits, type NetworkWait } from './network-wait.js';

type Handler = (req: IncomingMessage, res: ServerResponse, body: Buffer) => void;
interface Seen {
  method: string;
  url: string;
  authorization: string | undefined;
  bytes: number;
}

const servers: Server[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

async function serve(handler: Handler): Promise<{ origin: string; host: string; seen: Seen[] }> {
  const seen: Seen[] = [];
  const server = createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', () => {
      const body = Buffer.concat(parts);
      seen.push({ method: req.method!, url: req.url!, authorization: req.headers.authorization, bytes: body.length });
      handler(req, res, body);
    });
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { origin: `http://${host}`, host, seen };
}

/** Writes chunks of 64 KiB for as long as the client reads. */
function endless(res: ServerResponse): void {
  const chunk = Buffer.alloc(64 * 1024, 0x61);
  res.writeHead(200, { 'content-type': 'application/json' });
  const pump = (): void => {
    while (res.write(chunk));
  };
  res.on('drain', pump);
  res.on('close', () => res.off('drain', pump));
  pump();
}

const FAST = { idleMs: 400, deadlineMs: 5000 };

describe('netFetch (servers on 127.0.0.1)', () => {
  it('follows a redirect to another host without the Authorization header, and keeps it on the same host', async () => {
    const foreign = await serve((_req, res) => res.end('ok'));
    const home = await serve((req, res) => {
      if (req.url === '/start') res.writeHead(302, { location: '/same' }).end();
      else res.writeHead(302, { location: `${foreign.origin}/elsewhere` }).end();
    });
    const authorize = (url: URL): string | undefined => (url.host === home.host ? 'Basic c2VjcmV0' : undefined);
    const response = await netFetch(`${home.origin}/start`, { what: 'test', timeouts: FAST, authorize });
    expect(Buffer.from(await response.bytes(100)).toString()).toBe('ok');
    expect(response.url).toBe(`${foreign.origin}/elsewhere`);
    expect(home.seen.map((s) => [s.url, s.authorization])).toEqual([
      ['/start', 'Basic c2VjcmV0'],
      ['/same', 'Basic c2VjcmV0'],
    ]);
    expect(foreign.seen).toEqual([{ method: 'GET', url: '/elsewhere', authorization: undefined, bytes: 0 }]);
  });

  it('re-sends the body on a 307 (the byte array given stays usable), and turns a 303 into a GET without body', async () => {
    const server = await serve((req, res) => {
      if (req.url === '/put') res.writeHead(307, { location: '/put-here' }).end();
      else if (req.url === '/post') res.writeHead(303, { location: '/result' }).end();
      else res.writeHead(201).end();
    });
    const body = new Uint8Array(Buffer.from('x'.repeat(1000)));
    const put = await netFetch(`${server.origin}/put`, { method: 'PUT', body, what: 'test', timeouts: FAST });
    await put.cancel();
    expect(put.status).toBe(201);
    expect(body.byteLength).toBe(1000);
    const post = await netFetch(`${server.origin}/post`, { method: 'POST', body, what: 'test', timeouts: FAST });
    await post.cancel();
    expect(server.seen.map((s) => `${s.method} ${s.url} ${s.bytes}`)).toEqual(['PUT /put 1000', 'PUT /put-here 1000', 'POST /post 1000', 'GET /result 0']);
  });

  it('refuses to carry a secret body to another origin on a 307 when told so', async () => {
    const foreign = await serve((_req, res) => res.end('{}'));
    const realm = await serve((_req, res) => res.writeHead(307, { location: `${foreign.origin}/token` }).end());
    const error = await netFetch(`${realm.origin}/token`, { method: 'POST', body: 'refresh_token=secret', what: 'token', timeouts: FAST, bodyToOtherOrigins: false }).catch((e: unknown) => e);
    expect((error as NetworkError).message).toBe(`token from ${realm.host}: a redirect would send the request's body to ${foreign.host}; refused`);
    expect(foreign.seen).toEqual([]);
  });

  it('bounds a body: an endless one fails as soon as it passes the bound, a prefix reads only what it needs', async () => {
    const server = await serve((_req, res) => endless(res));
    const response = await netFetch(server.origin, { what: 'manifest', timeouts: FAST });
    const error = await response.bytes(1024 * 1024).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(NetworkError);
    expect((error as NetworkError).message).toBe(`manifest from ${server.host} is larger than 1 MiB; refused`);
    const again = await netFetch(server.origin, { what: 'error answer', timeouts: FAST });
    expect((await again.prefix(64 * 1024)).byteLength).toBe(64 * 1024);
  });

  it('refuses a body whose Content-Length is over the bound without reading it', async () => {
    const server = await serve((_req, res) => res.writeHead(200, { 'content-length': String(10 * 1024 * 1024) }).write('x'));
    const response = await netFetch(server.origin, { what: 'manifest', timeouts: FAST });
    await expect(response.bytes(4 * 1024 * 1024)).rejects.toThrow(/larger than 4 MiB/);
  });

  it('fails a read that gets no byte for the idle timeout, naming the host and what it read; reports the wait while it lasts', async () => {
    const server = await serve((_req, res) => {
      res.writeHead(200);
      res.write('{');
    });
    const waits: NetworkWait[] = [];
    const started = Date.now();
    const error = await withNetworkWaits(
      (wait) => waits.push(wait),
      async () => {
        const response = await netFetch(server.origin, { what: 'repodata', timeouts: { idleMs: 700, deadlineMs: 10_000 }, reportEveryMs: 200 });
        return response.bytes(1000).catch((e: unknown) => e);
      },
    );
    expect(error).toBeInstanceOf(NetworkError);
    expect((error as NetworkError).message).toBe(`repodata from ${server.host}: no data for 0.7 s (METAFLOW_PREBUILT_NETWORK_IDLE_TIMEOUT)`);
    expect((error as NetworkError).reason).toBe('idle');
    expect(Date.now() - started).toBeLessThan(3000);
    const stalled = waits.filter((w) => w.seconds > 0);
    expect(stalled.length).toBeGreaterThanOrEqual(2);
    expect(stalled[0]).toMatchObject({ target: server.host, what: 'repodata' });
    expect(stalled.at(-1)!.seconds).toBeGreaterThan(stalled[0]!.seconds);
    // The wait is closed when the read ends.
    expect(waits.at(-1)!.seconds).toBe(0);
  });

  it('fails a read that trickles past the deadline', async () => {
    const server = await serve((_req, res) => {
      res.writeHead(200);
      const timer = setInterval(() => res.write('x'), 50);
      res.on('close', () => clearInterval(timer));
    });
    const response = await netFetch(server.origin, { what: 'package download', timeouts: { idleMs: 500, deadlineMs: 600 } });
    const error = await response.bytes(1_000_000).catch((e: unknown) => e);
    expect((error as NetworkError).reason).toBe('deadline');
    expect((error as NetworkError).message).toBe(`package download from ${server.host}: not finished within 0.6 s (METAFLOW_PREBUILT_NETWORK_DEADLINE)`);
  });

  it('the idle timeout and the deadline count elapsed time, not the wall clock: a clock stepped forward (NTP, date -s) fails no read, one stepped back leaves none hanging', async () => {
    const trickle = await serve((_req, res) => {
      res.writeHead(200);
      let sent = 0;
      const timer = setInterval(() => (++sent > 20 ? (clearInterval(timer), res.end()) : res.write('x')), 50);
      res.on('close', () => clearInterval(timer));
    });
    const stalled = await serve((_req, res) => {
      res.writeHead(200);
      res.write('{');
    });
    vi.useFakeTimers({ toFake: ['Date'], shouldAdvanceTime: true });
    try {
      // Stepped an hour forward mid-read: the read, a byte every 50 ms, goes on to its end.
      const response = await netFetch(trickle.origin, { what: 'package download', timeouts: { idleMs: 500, deadlineMs: 10_000 } });
      setTimeout(() => vi.setSystemTime(Date.now() + 3_600_000), 300);
      expect((await response.bytes(1000)).toString()).toBe('x'.repeat(20));
      // Stepped an hour back mid-read: a stalled read still fails after the idle timeout, not an hour later.
      const started = performance.now();
      const stalledResponse = await netFetch(stalled.origin, { what: 'repodata', timeouts: { idleMs: 500, deadlineMs: 10_000 } });
      setTimeout(() => vi.setSystemTime(Date.now() - 3_600_000), 100);
      const error = await stalledResponse.bytes(1000).catch((e: unknown) => e);
      expect((error as NetworkError).reason).toBe('idle');
      expect(performance.now() - started).toBeLessThan(3000);
    } finally {
      vi.useRealTimers();
    }
  }, 20_000);

  it("the caller's abort is a CancelledError, not a timeout", async () => {
    const server = await serve(() => undefined);
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 50);
    await expect(netFetch(server.origin, { what: 'manifest', timeouts: FAST, signal: controller.signal })).rejects.toBeInstanceOf(CancelledError);
  });

  it('follows no redirect into a cloud metadata service: link-local, EC2\'s IPv6 and unspecified addresses (a channel a flow names can redirect anywhere)', async () => {
    for (const target of ['http://169.254.169.254/latest/meta-data/iam/security-credentials/', 'http://[fe80::1]/x', 'http://[fd00:ec2::254]/latest/meta-data/', 'http://0.0.0.0:8080/admin']) {
      const asked: string[] = [];
      const transport = (async (url: URL) => {
        asked.push(url.href);
        return new Response(null, { status: 302, headers: { location: target } });
      }) as unknown as typeof fetch;
      const error = await netFetch('https://channel.example/linux-64/repodata.json', { what: 'repodata', timeouts: FAST, fetch: transport }).catch((e: unknown) => e);
      expect(error, target).toBeInstanceOf(NetworkError);
      expect((error as NetworkError).message).toMatch(/^repodata from channel\.example: a redirect to \S+ is not followed \((a link-local address|the EC2 instance metadata|an unspecified address)/);
      expect(asked).toEqual(['https://channel.example/linux-64/repodata.json']);
    }
  });

  it('stops after too many redirects and refuses a redirect to another scheme', async () => {
    const server = await serve((req, res) => {
      if (req.url === '/ftp') res.writeHead(302, { location: 'ftp://127.0.0.1/x' }).end();
      else res.writeHead(302, { location: '/loop' }).end();
    });
    await expect(netFetch(`${server.origin}/loop`, { what: 'test', timeouts: FAST, maxRedirects: 3 })).rejects.toThrow('more than 3 redirects');
    await expect(netFetch(`${server.origin}/ftp`, { what: 'test', timeouts: FAST })).rejects.toThrow('a redirect to ftp: is not followed');
  });
});
