// The referrers API path, against a FAKE registry (node:http on 127.0.0.1): the real test registry
// (distribution 2.8) has no referrers API, so the path where a registry answers `OCI-Subject` and
// lists referrers itself is exercised here on a small fake of that part of the wire protocol.
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MediaType } from './media-types.js';
import { listReferrers, pushReferrer } from './referrers.js';
import { RegistryClient } from './registry-client.js';

const sha = (b: Uint8Array): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

async function body(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** Blobs, manifests by digest and tag, and referrers by subject: the part of a registry with the referrers API that pushReferrer uses. */
function fakeRegistry(): { server: Server; manifests: Map<string, Buffer>; referrers: Map<string, unknown[]> } {
  const blobs = new Set<string>();
  const manifests = new Map<string, Buffer>();
  const referrers = new Map<string, unknown[]>();
  const server = createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url!, 'http://x');
      const data = await body(req);
      const blob = /\/blobs\/(sha256:[0-9a-f]+)$/.exec(url.pathname);
      if (req.method === 'HEAD' && blob) return res.writeHead(blobs.has(blob[1]!) ? 200 : 404).end();
      if (req.method === 'POST' && url.pathname.endsWith('/blobs/uploads/')) return res.writeHead(202, { location: '/v2/upload/1' }).end();
      if (req.method === 'PUT' && url.pathname === '/v2/upload/1') {
        blobs.add(url.searchParams.get('digest')!);
        return res.writeHead(201).end();
      }
      const manifest = /\/manifests\/(.+)$/.exec(url.pathname);
      if (req.method === 'PUT' && manifest) {
        manifests.set(manifest[1]!, data);
        const parsed = JSON.parse(data.toString()) as { subject?: { digest: string }; artifactType?: string };
        const headers: Record<string, string> = { 'docker-content-digest': sha(data) };
        if (parsed.subject) {
          referrers.set(parsed.subject.digest, [...(referrers.get(parsed.subject.digest) ?? []), { mediaType: MediaType.ociManifest, digest: sha(data), size: data.length, artifactType: parsed.artifactType }]);
          headers['oci-subject'] = parsed.subject.digest;
        }
        return res.writeHead(201, headers).end();
      }
      const list = /\/referrers\/(sha256:[0-9a-f]+)$/.exec(url.pathname);
      if (req.method === 'GET' && list) {
        return res.writeHead(200, { 'content-type': MediaType.ociIndex }).end(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: referrers.get(list[1]!) ?? [] }));
      }
      res.writeHead(404).end();
    })();
  });
  return { server, manifests, referrers };
}

describe('referrers through the registry API (fake registry with the OCI referrers API)', () => {
  const fake = fakeRegistry();
  let host: string;
  beforeAll(async () => {
    await new Promise<void>((resolve) => fake.server.listen(0, '127.0.0.1', resolve));
    host = `127.0.0.1:${(fake.server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise((resolve) => fake.server.close(resolve));
  });

  it('uses the referrers API when the registry answers OCI-Subject, and keeps no referrers tag', async () => {
    const client = new RegistryClient({ dockerConfig: false, retry: { attempts: 1 } });
    const subject = { mediaType: MediaType.ociManifest, digest: `sha256:${'a'.repeat(64)}`, size: 10 };
    const pushed = await pushReferrer(client, { repository: `${host}/team/app`, subject, artifactType: 'application/spdx+json', blob: { bytes: Buffer.from('{}\n'), mediaType: 'application/spdx+json' } });
    expect(pushed.via).toBe('referrers-api');
    expect([...fake.manifests.keys()]).toEqual([pushed.digest]);
    expect(await listReferrers(client, `${host}/team/app`, subject.digest, { artifactType: 'application/spdx+json' })).toEqual([pushed.descriptor]);
    expect(await listReferrers(client, `${host}/team/app`, subject.digest, { artifactType: 'application/other' })).toEqual([]);
  });
});
