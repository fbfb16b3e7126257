// A fault-injecting HTTP proxy on 127.0.0.1 in front of a real server (a registry, a channel).
// Every request is forwarded as it came (method, path, headers — including Host, so a registry
// builds its upload Location URLs on the proxy's address and the client stays behind the proxy),
// bodies streamed both ways. Rules inject faults into matching requests: an error status (with
// Retry-After), a dropped connection before or in the middle of the answer, or a stall.
import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export type ProxyFault =
  /** Answer with this status (and a registry-style JSON error body) without forwarding. */
  | { type: 'status'; status: number; retryAfter?: number | string; body?: string }
  /** Close the client connection without an answer (a reset), without forwarding. */
  | { type: 'reset' }
  /** Forward, send the answer's status and half its body, then drop the connection. */
  | { type: 'cut' }
  /** Hold the request `ms` before forwarding it (a stall; the client may time out first). */
  | { type: 'stall'; ms: number }
  /** Answer with a redirect to `to` (an origin such as another proxy's url, or '' for this one) + the request's path and query. */
  | { type: 'redirect'; status: 301 | 302 | 303 | 307 | 308; to: string }
  /** Answer `status` (default 200) with a body that never ends (as fast as the client reads). */
  | { type: 'endless'; status?: number }
  /** Forward, and set a header of the answer (a registry's lying Docker-Content-Digest). */
  | { type: 'header'; name: string; value: string }
  /** Forward, and point the answer's Location at another origin `to` (path and query kept). */
  | { type: 'location'; to: string }
  /** Forward the answer's headers and first chunk, then send nothing more (a stalled body). */
  | { type: 'stall-body' };

export interface ProxyRule {
  /** HTTP method to match (any when absent). */
  method?: string;
  /** Path (without query) to match: equal string or RegExp. */
  path: string | RegExp;
  fault: ProxyFault;
  /** Apply to this many matching requests only; default: until removed. */
  times?: number;
}

export interface ProxyLogEntry {
  method: string;
  path: string;
  /** The status the client got; 0 for a dropped connection. */
  status: number;
  /** The fault applied, if any. */
  fault?: ProxyFault['type'];
  /** The Authorization header the request came with. */
  authorization?: string;
}

export interface FaultProxyOptions {
  /** Answer 401 (Basic challenge) to every request without these credentials, and strip them before forwarding. */
  requireBasic?: { username: string; password: string };
}

export interface FaultProxy {
  /** `127.0.0.1:<port>` (what a registry setting takes). */
  host: string;
  url: string;
  /** Adds a rule; returns its remover. */
  fault(rule: ProxyRule): () => void;
  clearFaults(): void;
  readonly requests: readonly ProxyLogEntry[];
  clearRequests(): void;
  /** The requests a rule of type `fault` was applied to. */
  faulted(type?: ProxyFault['type']): ProxyLogEntry[];
  close(): Promise<void>;
}

interface ActiveRule extends ProxyRule {
  remaining: number;
}

/** Starts a proxy to `upstream` (`host:port`, plain HTTP). */
export async function startFaultProxy(upstream: string, options: FaultProxyOptions = {}): Promise<FaultProxy> {
  const [upHost = '127.0.0.1', upPort = '80'] = upstream.split(':');
  const rules: ActiveRule[] = [];
  const log: ProxyLogEntry[] = [];
  const sockets = new Set<Socket>();

  function take(method: string, path: string): ProxyFault | undefined {
    const index = rules.findIndex(
      (rule) => (rule.method === undefined || rule.method === method) && (typeof rule.path === 'string' ? rule.path === path : rule.path.test(path)),
    );
    if (index === -1) return undefined;
    const rule = rules[index]!;
    rule.remaining -= 1;
    if (rule.remaining <= 0) rules.splice(index, 1);
    return rule.fault;
  }

  function forward(req: IncomingMessage, res: ServerResponse, entry: ProxyLogEntry, cut: boolean, fault?: ProxyFault): void {
    const headers = { ...req.headers };
    if (options.requireBasic) delete headers.authorization;
    const upstreamReq = httpRequest(
      { host: upHost, port: Number(upPort), method: req.method, path: req.url, headers },
      (upstreamRes) => {
        entry.status = upstreamRes.statusCode ?? 0;
        const answer = { ...upstreamRes.headers };
        if (fault?.type === 'header') answer[fault.name.toLowerCase()] = fault.value;
        if (fault?.type === 'location' && typeof answer.location === 'string') {
          const old = new URL(answer.location, 'http://proxy');
          answer.location = `${fault.to}${old.pathname}${old.search}`;
        }
        res.writeHead(upstreamRes.statusCode ?? 502, answer);
        if (fault?.type === 'stall-body') {
          upstreamRes.once('data', (chunk: Buffer) => {
            res.write(chunk.subarray(0, Math.max(1, Math.floor(chunk.length / 2))));
            upstreamRes.pause();
          });
          return;
        }
        if (!cut) {
          upstreamRes.pipe(res);
          return;
        }
        const half = Math.floor(Number(upstreamRes.headers['content-length'] ?? 0) / 2);
        let sent = 0;
        const drop = (): void => {
          upstreamRes.destroy();
          res.socket?.destroy();
        };
        if (half === 0) return drop();
        upstreamRes.on('data', (chunk: Buffer) => {
          if (sent >= half) return;
          const part = chunk.subarray(0, half - sent);
          sent += part.length;
          res.write(part);
          if (sent >= half) drop();
        });
        upstreamRes.on('end', () => res.socket?.destroy());
      },
    );
    upstreamReq.on('error', () => {
      entry.status = 502;
      if (!res.headersSent) res.writeHead(502).end();
      else res.destroy();
    });
    req.pipe(upstreamReq);
  }

  const server = createServer((req, res) => {
    const method = req.method ?? 'GET';
    const path = new URL(req.url ?? '/', 'http://proxy').pathname;
    const fault = take(method, path);
    const entry: ProxyLogEntry = {
      method,
      path,
      status: 0,
      ...(fault ? { fault: fault.type } : {}),
      ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}),
    };
    log.push(entry);
    const basic = options.requireBasic;
    if (basic && req.headers.authorization !== `Basic ${Buffer.from(`${basic.username}:${basic.password}`).toString('base64')}`) {
      entry.status = 401;
      req.resume();
      res.writeHead(401, { 'www-authenticate': 'Basic realm="hostile"', 'content-length': 0 }).end();
      return;
    }
    if (fault?.type === 'redirect') {
      entry.status = fault.status;
      req.resume();
      res.writeHead(fault.status, { location: `${fault.to}${req.url ?? '/'}`, 'content-length': 0 }).end();
      return;
    }
    if (fault?.type === 'endless') {
      entry.status = fault.status ?? 200;
      req.resume();
      res.writeHead(fault.status ?? 200, { 'content-type': 'application/json' });
      const chunk = Buffer.alloc(64 * 1024, 0x20);
      chunk[0] = 0x7b;
      const pump = (): void => {
        while (!res.destroyed && res.write(chunk));
      };
      res.on('drain', pump);
      res.on('close', () => res.off('drain', pump));
      pump();
      return;
    }
    if (fault?.type === 'reset') {
      req.socket.destroy();
      return;
    }
    if (fault?.type === 'status') {
      entry.status = fault.status;
      req.resume();
      const body =
        fault.body ?? JSON.stringify({ errors: [{ code: 'UNAVAILABLE', message: `injected fault: status ${fault.status}` }] });
      const headers: Record<string, string | number> = { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) };
      if (fault.retryAfter !== undefined) headers['retry-after'] = String(fault.retryAfter);
      res.writeHead(fault.status, headers);
      res.end(method === 'HEAD' ? undefined : body);
      return;
    }
    if (fault?.type === 'stall') {
      req.pause();
      const timer = setTimeout(() => {
        req.resume();
        forward(req, res, entry, false);
      }, fault.ms);
      req.socket.once('close', () => clearTimeout(timer));
      return;
    }
    forward(req, res, entry, fault?.type === 'cut', fault);
  });
  server.keepAliveTimeout = 5000;
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  let closed: Promise<void> | undefined;
  return {
    host: `127.0.0.1:${port}`,
    url: `http://127.0.0.1:${port}`,
    fault(rule) {
      const active: ActiveRule = { ...rule, remaining: rule.times ?? Number.POSITIVE_INFINITY };
      rules.push(active);
      return () => {
        const i = rules.indexOf(active);
        if (i !== -1) rules.splice(i, 1);
      };
    },
    clearFaults() {
      rules.length = 0;
    },
    get requests() {
      return log;
    },
    clearRequests() {
      log.length = 0;
    },
    faulted(type) {
      return log.filter((entry) => entry.fault !== undefined && (type === undefined || entry.fault === type));
    },
    close() {
      return (closed ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      }));
    },
  };
}
