import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { listenOnLoopback } from '@prebuilt/fixtures';

/** A tag the fake holds, with the fields Docker Hub's API lists. */
export interface FakeHubTag {
  name: string;
  digest: string;
  last_pushed: string;
  full_size: number;
  media_type: string;
}

/** A request a server received: method, path, headers and body, to check where secrets went. */
export interface ReceivedRequest {
  method: string;
  path: string;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

export interface FakeDockerHubApi {
  /** Base URL, e.g. http://127.0.0.1:34567. */
  url: string;
  /** Tags per `namespace/repository`. */
  repositories: Map<string, FakeHubTag[]>;
  requests: ReceivedRequest[];
  /** JWTs handed out by the login. */
  jwts: string[];
  /** Results per tags page. */
  pageSize: number;
  /** Tag DELETE answers 403 (a token without the Read, Write, Delete scope). */
  denyDelete: boolean;
  /** The `detail` of a denied delete (default: Docker Hub's own words). */
  denyDetail?: string;
  /** Requests whose path starts with this are answered `redirect.status` to `redirect.to`. */
  redirect?: { path: string; status: number; to: string };
  /** The `next` page URLs point at this base instead of the fake's own. */
  nextBase?: string;
  /** Every page names the first page as `next` (a broken or hostile API's loop). */
  loopPages?: boolean;
  /** Every answer waits this long (to abort a request in flight). */
  delayMs: number;
  /** The next this many requests are answered 429 with Retry-After: 0 (Docker Hub's rate limit). */
  busy: number;
  close(): Promise<void>;
}

type State = Omit<FakeDockerHubApi, 'url' | 'close'> & { url: string; username: string; password: string };

function send(res: ServerResponse, status: number, data?: unknown): void {
  if (data === undefined) return void res.writeHead(status).end();
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(data));
}

function login(state: State, body: string, res: ServerResponse): void {
  const given = JSON.parse(body || '{}') as { username?: string; password?: string };
  if (given.username !== state.username || given.password !== state.password) return send(res, 401, { detail: `Incorrect authentication credentials for ${String(given.username)}` });
  const token = `fake-hub-jwt-${randomBytes(12).toString('hex')}`;
  state.jwts.push(token);
  send(res, 200, { token });
}

function listTags(state: State, key: string, url: URL, res: ServerResponse): void {
  const tags = state.repositories.get(key);
  if (!tags) return send(res, 404, { message: 'object not found', errinfo: {} });
  const page = Number(url.searchParams.get('page') ?? 1);
  const size = Math.min(Number(url.searchParams.get('page_size') ?? 10), state.pageSize);
  const results = tags.slice((page - 1) * size, page * size).map((tag) => ({ ...tag, images: [{ digest: tag.digest, size: tag.full_size, architecture: 'amd64', os: 'linux' }], tag_status: 'active' }));
  const more = page * size < tags.length;
  const next = state.loopPages ? `${state.url}${url.pathname}?page=1&page_size=${size}` : more ? `${state.nextBase ?? state.url}${url.pathname}?page=${page + 1}&page_size=${size}` : null;
  send(res, 200, { count: tags.length, next, previous: null, results });
}

function route(state: State, req: IncomingMessage, body: string, res: ServerResponse): void {
  const url = new URL(req.url ?? '/', state.url);
  if (state.busy > 0) {
    state.busy--;
    res.writeHead(429, { 'content-type': 'application/json', 'retry-after': '0' });
    return void res.end(JSON.stringify({ detail: 'too many requests' }));
  }
  if (state.redirect && url.pathname.startsWith(state.redirect.path)) {
    res.writeHead(state.redirect.status, { location: state.redirect.to });
    return void res.end();
  }
  if (req.method === 'POST' && url.pathname === '/v2/users/login') return login(state, body, res);
  const jwt = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
  if (jwt === undefined || !state.jwts.includes(jwt)) return send(res, 401, { detail: 'Authentication credentials were not provided.' });
  const match = /^\/v2\/namespaces\/([^/]+)\/repositories\/([^/]+)\/tags(?:\/([^/]+))?$/.exec(url.pathname);
  if (!match) return send(res, 404, { message: 'page not found' });
  const key = `${decodeURIComponent(match[1]!)}/${decodeURIComponent(match[2]!)}`;
  if (req.method === 'GET' && match[3] === undefined) return listTags(state, key, url, res);
  if (req.method === 'GET') {
    const tag = state.repositories.get(key)?.find((one) => one.name === decodeURIComponent(match[3]!));
    return tag ? send(res, 200, { ...tag, tag_status: 'active' }) : send(res, 404, { message: 'object not found', errinfo: {} });
  }
  if (req.method !== 'DELETE' || match[3] === undefined) return send(res, 405, { detail: 'method not allowed' });
  if (state.denyDelete) return send(res, 403, { detail: state.denyDetail ?? 'access to the resource is forbidden with personal access token' });
  const tags = state.repositories.get(key) ?? [];
  const index = tags.findIndex((tag) => tag.name === decodeURIComponent(match[3]!));
  if (index === -1) return send(res, 404, { message: 'tag not found' });
  tags.splice(index, 1);
  send(res, 204);
}

/** Starts a server on 127.0.0.1 that records requests and answers each with `answer` (default 404 JSON). */
export async function startRecordingServer(
  answer: (state: { requests: ReceivedRequest[] }, req: IncomingMessage, body: string, res: ServerResponse) => void = (_s, _q, _b, res) => send(res, 404, { message: 'nothing here' }),
  delay: () => number = () => 0,
): Promise<{ url: string; requests: ReceivedRequest[]; close(): Promise<void> }> {
  const state = { requests: [] as ReceivedRequest[] };
  const server: Server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (body += chunk));
    req.on('end', () => {
      state.requests.push({ method: req.method ?? 'GET', path: req.url ?? '/', headers: req.headers, body });
      setTimeout(() => answer(state, req, body, res), delay());
    });
  });
  const { url, close } = await listenOnLoopback(server);
  return { url, requests: state.requests, close };
}

/**
 * A FAKE of Docker Hub's API (hub.docker.com) on 127.0.0.1: `POST /v2/users/login` (user name and
 * password for a JWT), a repository's tags (`GET …/tags`, paged by `next`), one tag
 * (`GET …/tags/<tag>`) and tag deletion (`DELETE …/tags/<tag>`), with switches for a refused
 * delete and a redirect.
 */
export async function startFakeDockerHubApi(credentials: { username: string; password: string }): Promise<FakeDockerHubApi> {
  const state = { repositories: new Map(), jwts: [], pageSize: 100, denyDelete: false, delayMs: 0, busy: 0, url: '', ...credentials } as unknown as State;
  const server = await startRecordingServer(
    (_recorded, req, body, res) => route(state, req, body, res),
    () => state.delayMs,
  );
  state.url = server.url;
  state.requests = server.requests;
  return Object.assign(state, { close: server.close });
}
