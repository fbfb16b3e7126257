import { Agent as HttpAgent, request as httpRequest, type ClientRequest, type IncomingMessage, type RequestOptions } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { Duplex } from 'node:stream';
import { networkTimeouts, type NetworkTimeouts } from '@prebuilt/core/backend';
import { RequestClock, type AnswerSilence } from './engine-clock.js';
import { SshAgent } from './ssh-dial.js';

/**
 * How to reach a Docker daemon (see docker-host.ts): a unix socket, TCP with or without TLS, or
 * ssh (`docker system dial-stdio` on the remote host); `version` is the Engine API version to
 * speak (`v1.41`), none for the daemon's own.
 */
export interface EngineConnection {
  socketPath?: string;
  host?: string;
  port?: number;
  protocol?: 'http' | 'https' | 'ssh';
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  /** The ssh login (`ssh://user@host`). */
  username?: string;
  version?: string;
}

/** A refused request: the HTTP status and the daemon's JSON. A broken connection's error has no `statusCode`. */
export interface EngineRequestError extends Error {
  statusCode?: number;
  json?: unknown;
}

/** One request of the Engine API. */
export interface EngineRequest {
  method: 'GET' | 'POST' | 'DELETE';
  /** The path without the API version, e.g. `/images/create`. */
  path: string;
  /** Query parameters; an object value is sent as JSON (e.g. build labels), undefined ones are left out. */
  query?: Record<string, unknown>;
  /** A tar (Buffer, sent as application/x-tar) or a JSON value. */
  body?: Buffer | object;
  /** Sent as X-Registry-Auth (URL-safe base64 JSON): to the daemon only, never logged. */
  registryAuth?: Record<string, string> | undefined;
  /** Sent as X-Registry-Config (base64 JSON): to the daemon only, never logged. */
  registryConfig?: Record<string, unknown> | undefined;
  signal?: AbortSignal | undefined;
  /**
   * How long the answer may go silent once its headers came (see {@link AnswerSilence}): JSON
   * answers default to `idle`; a stream says which it is.
   */
  silence?: AnswerSilence;
}

/** A request whose answer is a stream: it says how long that stream may go silent. */
export type StreamRequest = EngineRequest & { silence: AnswerSilence };

/** The largest JSON answer (or error body) read; no answer of the calls prebuilt makes comes near it. */
export const MAX_JSON_BYTES = 1 << 20;

/** The client's limits and how its messages name the daemon. */
export interface EngineClientOptions {
  /** Default: METAFLOW_PREBUILT_NETWORK_IDLE_TIMEOUT's and _DEADLINE's defaults (60 s, 1800 s). */
  limits?: NetworkTimeouts;
  /** The daemon's address as messages show it (see shownDockerHost); default: made from the connection. */
  shownHost?: string;
}

/**
 * prebuilt's own Docker Engine API client over Node's HTTP client: JSON requests, streamed
 * requests (build, pull, push progress) and the hijacked connection of a container attach. Every
 * answer is read bounded, in size and in time (engine-clock.ts: connect, upload, headers and JSON
 * answers within the idle limit, a JSON call within the deadline, a stream as its
 * {@link AnswerSilence} says); a non-2xx answer rejects with {@link EngineRequestError}
 * (`statusCode` and the daemon's JSON), a connection failure with its own error (no `statusCode`),
 * a stalled daemon with a NetworkError. Keeps one keep-alive agent per client (for ssh:
 * kept-alive ssh processes), destroyed by {@link close}.
 */
export class EngineClient {
  readonly #agent: HttpAgent;
  readonly limits: NetworkTimeouts;
  readonly #shownHost: string;

  constructor(
    readonly connection: EngineConnection,
    options: EngineClientOptions = {},
  ) {
    const { protocol, ca, cert, key } = connection;
    this.limits = options.limits ?? networkTimeouts({ env: {} });
    if (protocol === 'https') this.#agent = new HttpsAgent({ keepAlive: true, ...(ca ? { ca } : {}), ...(cert ? { cert } : {}), ...(key ? { key } : {}) });
    else if (protocol === 'ssh') this.#agent = new SshAgent(connection, this.limits.idleMs); // ssh's ConnectTimeout: the idle limit's connect
    else this.#agent = new HttpAgent({ keepAlive: true });
    this.#shownHost = options.shownHost ?? shownConnection(connection);
  }

  /** A request whose answer is JSON (or empty: undefined). */
  async json<T>(request: EngineRequest): Promise<T> {
    const response = await this.#send(request);
    const text = await readBounded(response, request);
    if (text.trim() === '') return undefined as T;
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new Error(`its answer to ${request.method} ${request.path} is not JSON (is DOCKER_HOST a Docker daemon?)`);
    }
  }

  /** A request whose 2xx answer is a stream the caller reads (progress events) as it comes: an unread one counts as silent. */
  stream(request: StreamRequest): Promise<IncomingMessage> {
    return this.#send(request);
  }

  /**
   * A hijacked request (`Upgrade: tcp`, as for `POST /containers/{id}/attach`): the raw
   * connection after the daemon's 101 answer (a daemon that answers 200 instead: its body).
   * The answer's headers are timed; the connection then has no limit (a container may print
   * nothing for long: its run's time limit bounds it).
   */
  hijack(request: EngineRequest): Promise<Duplex | IncomingMessage> {
    return new Promise((resolve, reject) => {
      const { req, clock } = this.#open({ ...request, silence: 'open' }, { connection: 'Upgrade', upgrade: 'tcp' });
      req.on('upgrade', (_response, socket, head) => {
        clock.stop();
        if (head.length > 0) socket.unshift(head);
        resolve(socket);
      });
      req.on('response', (response) => this.#answer(request, response).then(resolve, reject));
      req.on('error', reject);
    });
  }

  /** Closes the keep-alive connections, so the process may exit. */
  close(): void {
    this.#agent.destroy();
  }

  /** A request and its 2xx answer (see {@link hijack} for the one that may be upgraded instead; the wiring is #open's and #answer's). */
  #send(request: EngineRequest): Promise<IncomingMessage> {
    return new Promise((resolve, reject) => {
      const { req } = this.#open(request, {});
      req.on('response', (response) => this.#answer(request, response).then(resolve, reject));
      req.on('error', reject);
    });
  }

  /** A 2xx answer as it is; any other read (bounded) into an {@link EngineRequestError}. */
  async #answer(request: EngineRequest, response: IncomingMessage): Promise<IncomingMessage> {
    const status = response.statusCode ?? 0;
    if (status >= 200 && status < 300) return response;
    const text = await readBounded(response, request);
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = text;
    }
    throw refused(status, response.statusMessage, json);
  }

  #open(request: EngineRequest, extra: Record<string, string>): { req: ClientRequest; clock: RequestClock } {
    const { connection } = this;
    const headers: Record<string, string> = { accept: 'application/json', ...extra };
    let body: Buffer | undefined;
    if (Buffer.isBuffer(request.body)) {
      body = request.body;
      headers['content-type'] = 'application/x-tar';
    } else if (request.body !== undefined) {
      body = Buffer.from(JSON.stringify(request.body));
      headers['content-type'] = 'application/json';
    }
    if (body) headers['content-length'] = String(body.length);
    // URL-safe base64 with its padding: the daemon decodes it strictly.
    if (request.registryAuth) headers['x-registry-auth'] = Buffer.from(JSON.stringify(request.registryAuth)).toString('base64').replace(/\+/g, '-').replace(/\//g, '_');
    if (request.registryConfig) headers['x-registry-config'] = Buffer.from(JSON.stringify(request.registryConfig)).toString('base64');
    const options: RequestOptions = {
      method: request.method,
      path: `${connection.version ? `/${connection.version}` : ''}${request.path}${queryString(request.query)}`,
      headers,
      ...(request.signal ? { signal: request.signal } : {}),
    };
    // ssh: the agent's connections are ssh processes, the host a name for the Host header only.
    const address = connection.protocol === 'ssh' ? { host: 'localhost' } : connection.socketPath ? { socketPath: connection.socketPath, host: 'localhost' } : { host: connection.host, port: connection.port };
    Object.assign(options, address, { agent: this.#agent });
    const req = (connection.protocol === 'https' ? httpsRequest : httpRequest)(options);
    const target = { shownHost: this.#shownHost, ssh: connection.protocol === 'ssh', method: request.method, path: request.path };
    const clock = new RequestClock(this.limits, target, req, request.silence ?? 'idle');
    // Registered first: the answer's own silence limit starts before any caller reads it.
    req.on('response', (response) => clock.answered(response));
    sendBody(req, body, () => clock.touch());
    return { req, clock };
  }
}

/** The largest piece of a request body written at once: each one flushed is the upload's sign of life. */
const BODY_CHUNK = 256 * 1024;

/** Writes the body in pieces, minding backpressure, `flushed` called as each leaves; then ends the request. */
function sendBody(req: ClientRequest, body: Buffer | undefined, flushed: () => void): void {
  let offset = 0;
  const next = (): void => {
    while (body && offset < body.length) {
      const chunk = body.subarray(offset, offset + BODY_CHUNK);
      offset += chunk.length;
      if (!req.write(chunk, flushed)) return void req.once('drain', next);
    }
    req.end();
  };
  next();
}

/** A connection's address for messages, when the caller gave none (it carries no password). */
function shownConnection(connection: EngineConnection): string {
  if (connection.socketPath) return `unix://${connection.socketPath}`;
  const login = connection.username ? `${connection.username}@` : '';
  return `${connection.protocol === 'ssh' ? 'ssh' : 'tcp'}://${login}${connection.host ?? ''}${connection.port ? `:${connection.port}` : ''}`;
}

/** `?a=1&labels={…}`: objects as JSON, arrays repeated, undefined left out; empty: ''. */
function queryString(query: Record<string, unknown> | undefined): string {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query ?? {})) {
    if (value === undefined || value === null) continue;
    if (Array.isArray(value)) for (const item of value) params.append(key, String(item));
    else params.append(key, typeof value === 'object' ? JSON.stringify(value) : String(value));
  }
  const text = params.toString();
  return text === '' ? '' : `?${text}`;
}

/** The answer's body as text; one larger than {@link MAX_JSON_BYTES} is refused and its connection closed. */
function readBounded(response: IncomingMessage, request: EngineRequest): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    const fail = (error: Error): void => {
      if (settled) return;
      settled = true;
      reject(error);
      response.destroy();
    };
    response.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_JSON_BYTES) chunks.push(chunk);
      else fail(new Error(`its answer to ${request.method} ${request.path} is larger than ${MAX_JSON_BYTES} bytes (is DOCKER_HOST a Docker daemon?)`));
    });
    response.on('end', () => {
      settled = true;
      resolve(Buffer.concat(chunks).toString('utf8'));
    });
    response.on('error', fail);
    response.on('close', () => {
      if (!response.complete) fail(new Error(`the Docker daemon closed the connection during its answer to ${request.method} ${request.path}`));
    });
  });
}

function refused(status: number, reason: string | undefined, json: unknown): EngineRequestError {
  const message = typeof json === 'object' && json !== null && typeof (json as { message?: unknown }).message === 'string' ? (json as { message: string }).message : String(json ?? '');
  const error: EngineRequestError = new Error(`(HTTP code ${status}) ${reason ?? 'unexpected'} - ${message.trim()}`);
  error.statusCode = status;
  error.json = json;
  return error;
}
