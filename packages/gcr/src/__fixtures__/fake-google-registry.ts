import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { listenOnLoopback } from '@prebuilt/fixtures';

/** An image the fake holds, with the figures Google's tags/list reports. */
export interface FakeGoogleImage {
  tags: Set<string>;
  mediaType: string;
  imageSizeBytes: number;
  timeCreatedMs: number;
  timeUploadedMs: number;
}

export interface FakeGoogleRegistry {
  /** `127.0.0.1:<port>`: a loopback registry host, spoken to over plain HTTP. */
  host: string;
  /** Images per repository path, by digest. */
  repositories: Map<string, Map<string, FakeGoogleImage>>;
  /** Every request: method, path (with query), and the token scope it carried (`-` for none). */
  requests: { method: string; path: string; scope: string }[];
  /** tags/list pages hold at most this many manifests (a Link header names the next page). */
  pageSize: number;
  /** DELETE answers 403 DENIED (a caller without the delete permission). */
  denyDelete: boolean;
  /** Every answer waits this long (to abort a request in flight). */
  delayMs: number;
  /** Answer tags/list with Google's manifest map (false: as a plain distribution registry does). */
  googleExtension: boolean;
  /** Every tags/list page names the first page as the next one (a broken or hostile registry's loop). */
  loopPages: boolean;
  close(): Promise<void>;
}

type State = Omit<FakeGoogleRegistry, 'host' | 'close'> & { tokens: Map<string, string>; user: string; password: string };

function send(res: ServerResponse, status: number, data: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(data));
}

const fail = (res: ServerResponse, status: number, code: string, message: string): void => send(res, status, { errors: [{ code, message }] });

/** The token endpoint: Basic auth with the OAuth user and access token gets a registry token for the scope asked. */
function issueToken(state: State, req: IncomingMessage, url: URL, res: ServerResponse): void {
  const basic = `Basic ${Buffer.from(`${state.user}:${state.password}`).toString('base64')}`;
  if (req.headers.authorization !== basic) return fail(res, 401, 'UNAUTHORIZED', 'bad credentials');
  const token = `fake-registry-token-${randomBytes(8).toString('hex')}`;
  state.tokens.set(token, url.searchParams.getAll('scope').join(' '));
  send(res, 200, { token, expires_in: 3600 });
}

/** Google's tags/list: the tags and the `manifest` map (digest → tags, media type, size, times), one page. */
function tagsList(state: State, name: string, url: URL, res: ServerResponse): void {
  const images = state.repositories.get(name);
  if (!images) return fail(res, 404, 'NAME_UNKNOWN', `repository ${name} not found`);
  const digests = [...images.keys()].sort();
  const last = url.searchParams.get('last');
  const from = last === null ? 0 : digests.findIndex((d) => d > last);
  const page = from === -1 ? [] : digests.slice(from, from + state.pageSize);
  const manifest = Object.fromEntries(
    page.map((digest) => {
      const image = images.get(digest)!;
      // Google sends the figures as strings.
      const entry = { imageSizeBytes: String(image.imageSizeBytes), layerId: '', mediaType: image.mediaType, tag: [...image.tags], timeCreatedMs: String(image.timeCreatedMs), timeUploadedMs: String(image.timeUploadedMs) };
      return [digest, entry];
    }),
  );
  const more = from !== -1 && from + state.pageSize < digests.length;
  const next = state.loopPages ? `/v2/${name}/tags/list` : `/v2/${name}/tags/list?n=${state.pageSize}&last=${page.at(-1)}`;
  const link: Record<string, string> = more || state.loopPages ? { link: `<${next}>; rel="next"` } : {};
  const extension = state.googleExtension ? { child: [], manifest } : {};
  send(res, 200, { ...extension, name, tags: page.flatMap((digest) => [...images.get(digest)!.tags]).sort() }, link);
}

/** DELETE of a tag (removes the tag) or of a digest (refused while a tag points at it, as Google does). */
function deleteManifest(state: State, name: string, reference: string, res: ServerResponse): void {
  if (state.denyDelete) return fail(res, 403, 'DENIED', `Permission "artifactregistry.repositories.deleteArtifacts" denied on resource "${name}"`);
  const images = state.repositories.get(name);
  if (!reference.startsWith('sha256:')) {
    const tagged = [...(images?.values() ?? [])].find((image) => image.tags.has(reference));
    if (!tagged) return fail(res, 404, 'MANIFEST_UNKNOWN', `tag ${reference} not found`);
    tagged.tags.delete(reference);
    return send(res, 202, {});
  }
  const image = images?.get(reference);
  if (!image) return fail(res, 404, 'MANIFEST_UNKNOWN', `manifest ${reference} not found`);
  if (image.tags.size > 0) return fail(res, 400, 'GOOGLE_MANIFEST_DANGLING_TAG', `Manifest is still referenced by tag: ${[...image.tags].join(',')}`);
  images!.delete(reference);
  send(res, 202, {});
}

/** HEAD of a manifest by tag or digest: its digest and media type in the headers, as a registry answers. */
function headManifest(state: State, name: string, reference: string, res: ServerResponse): void {
  const images = state.repositories.get(name);
  const found = reference.startsWith('sha256:') ? (images?.has(reference) ? reference : undefined) : [...(images ?? [])].find(([, image]) => image.tags.has(reference))?.[0];
  if (found === undefined) return fail(res, 404, 'MANIFEST_UNKNOWN', `manifest ${reference} not found`);
  res.writeHead(200, { 'content-type': images!.get(found)!.mediaType, 'docker-content-digest': found, 'content-length': '0' });
  res.end();
}

function route(state: State, req: IncomingMessage, res: ServerResponse, base: string): void {
  const url = new URL(req.url ?? '/', base);
  if (url.pathname === '/v2/token') return issueToken(state, req, url, res);
  const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
  const scope = bearer === undefined ? undefined : state.tokens.get(bearer);
  state.requests.push({ method: req.method ?? 'GET', path: url.pathname + url.search, scope: scope ?? '-' });
  const tags = /^\/v2\/(.+)\/tags\/list$/.exec(url.pathname);
  const manifest = /^\/v2\/(.+)\/manifests\/([^/]+)$/.exec(url.pathname);
  const name = tags?.[1] ?? manifest?.[1] ?? '';
  const needed = req.method === 'DELETE' ? 'pull,push' : 'pull';
  if (scope === undefined || !scope.split(' ').includes(`repository:${name}:${needed}`)) {
    const challenge = `Bearer realm="${base}/v2/token",service="fake-google-registry",scope="repository:${name}:${needed}"`;
    return send(res, 401, { errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] }, { 'www-authenticate': challenge });
  }
  if (tags && req.method === 'GET') return tagsList(state, name, url, res);
  if (manifest && req.method === 'DELETE') return deleteManifest(state, name, decodeURIComponent(manifest[2]!), res);
  if (manifest && req.method === 'HEAD') return headManifest(state, name, decodeURIComponent(manifest[2]!), res);
  fail(res, 405, 'UNSUPPORTED', `the fake does not serve ${req.method} ${url.pathname}`);
}

/**
 * A FAKE of Google's registry API (Container Registry / Artifact Registry) on 127.0.0.1: the
 * Bearer token exchange (the OAuth access token as the password of `oauth2accesstoken`), tags/list
 * with Google's `manifest` map (paged with a Link header), manifest HEAD, and manifest DELETE by
 * tag and by digest, refusing a digest a tag still points at.
 */
export async function startFakeGoogleRegistry(credentials: { user: string; password: string }): Promise<FakeGoogleRegistry> {
  const state: State = { repositories: new Map(), requests: [], pageSize: 1000, denyDelete: false, delayMs: 0, googleExtension: true, loopPages: false, tokens: new Map(), ...credentials };
  let base = '';
  const server: Server = createServer((req, res) => {
    req.resume();
    req.on('end', () => setTimeout(() => route(state, req, res, base), state.delayMs));
  });
  const { port, url, close } = await listenOnLoopback(server);
  base = url;
  return Object.assign(state, { host: `127.0.0.1:${port}`, close });
}

/** A digest for a fake image (the sha256 of `seed`). */
export function fakeDigest(seed: string): string {
  return `sha256:${createHash('sha256').update(seed).digest('hex')}`;
}
