import { createServer, request as httpRequest, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/** What the proxy does with one request; requests past the script are forwarded to the registry. */
export type Fault =
  | { status: number; retryAfter?: string | (() => string) }
  | 'reset' // destroy the connection without answering
  | 'hang'; // never answer

export interface FlakyProxy {
  /** `127.0.0.1:<port>`: use it as the registry host. */
  host: string;
  /** Every request seen, in order (`METHOD path`). */
  requests: string[];
  /** Every Location the registry answered with, in order (upload sessions, when `keepHost`). */
  locations: string[];
  close(): Promise<void>;
}

export interface FlakyProxyOptions {
  /**
   * Forward the request's own Host (the proxy's), so the registry's upload Locations name the proxy
   * and every request of an upload passes through it. Default false: the registry's host is sent.
   */
  keepHost?: boolean;
  /** Which requests the faults are for (default every one); the others are forwarded. */
  faultOn?: (method: string, path: string) => boolean;
  /** Changes the headers of a forwarded answer (e.g. drops a HEAD's Docker-Content-Digest, as some registries do). */
  answerHeaders?: (method: string, path: string, headers: IncomingHttpHeaders) => IncomingHttpHeaders;
}

/**
 * A reverse proxy on 127.0.0.1 in front of a real registry that answers the first requests with
 * the given faults (503, 429 with Retry-After, a connection reset, silence) and forwards the rest.
 */
export async function startFlakyProxy(target: string, faults: Fault[], port = 0, options: FlakyProxyOptions = {}): Promise<FlakyProxy> {
  const queue = [...faults];
  const requests: string[] = [];
  const locations: string[] = [];
  const sockets = new Set<Socket>();
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    requests.push(`${req.method} ${req.url}`);
    const fault = !options.faultOn || options.faultOn(req.method ?? '', req.url ?? '') ? queue.shift() : undefined;
    if (fault === 'reset') {
      req.socket.destroy();
      return;
    }
    if (fault === 'hang') return;
    if (fault) {
      res.writeHead(fault.status, {
        'content-type': 'application/json',
        ...(fault.retryAfter === undefined ? {} : { 'retry-after': typeof fault.retryAfter === 'function' ? fault.retryAfter() : fault.retryAfter }),
      });
      res.end(JSON.stringify({ errors: [{ code: 'UNAVAILABLE', message: `injected ${fault.status}` }] }));
      return;
    }
    const upstream = httpRequest(
      { host: target.split(':')[0], port: Number(target.split(':')[1]), method: req.method, path: req.url, headers: options.keepHost ? req.headers : { ...req.headers, host: target } },
      (answer) => {
        if (answer.headers.location) locations.push(answer.headers.location);
        res.writeHead(answer.statusCode ?? 502, options.answerHeaders ? options.answerHeaders(req.method ?? '', req.url ?? '', { ...answer.headers }) : answer.headers);
        answer.pipe(res);
      },
    );
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  const address = server.address() as AddressInfo;
  return {
    host: `127.0.0.1:${address.port}`,
    requests,
    locations,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
