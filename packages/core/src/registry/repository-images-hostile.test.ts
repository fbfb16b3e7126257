// listRepositoryImages against a FAKE hostile registry: the referrers API is not content-addressed,
// so a registry can answer each referrers request with a manifest it makes up on the spot, whose
// own referrers name the next one — a listing (and prebuilt gc) that followed them would never end.
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegistryError } from '../errors.js';
import { MediaType } from './media-types.js';
import { RegistryClient } from './registry-client.js';
import { completeStoredImages, listRepositoryImages, MAX_LISTING_DEPTH, MAX_LISTING_MANIFESTS } from './repository-images.js';

const sha = (bytes: Buffer): string => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

describe('listRepositoryImages against a FAKE registry whose referrers never end', () => {
  let server: Server;
  let host: string;
  /** The manifests made up so far, by digest. */
  const made = new Map<string, Buffer>();
  let referrerRequests = 0;
  const manifest = (n: number): string => {
    const bytes = Buffer.from(JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.ociManifest,
      config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: `sha256:${'4'.repeat(64)}`, size: 2 },
      layers: [],
      annotations: { n: String(n) },
    }));
    const digest = sha(bytes);
    made.set(digest, bytes);
    return digest;
  };
  beforeAll(async () => {
    const first = manifest(0);
    server = createServer((req, res) => {
      const url = req.url ?? '';
      if (/^\/v2\/team\/(deep|wide)\/tags\/list/.test(url)) return res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ name: 'team/x', tags: ['env-a'] }));
      const read = /^\/v2\/team\/(?:deep|wide)\/manifests\/(.+)$/.exec(url);
      if (read) {
        const bytes = made.get(read[1] === 'env-a' ? first : read[1]!);
        if (!bytes) return res.writeHead(404).end();
        return res.writeHead(200, { 'content-type': MediaType.ociManifest, 'docker-content-digest': sha(bytes) }).end(bytes);
      }
      const referrers = /^\/v2\/team\/(deep|wide)\/referrers\//.exec(url);
      if (referrers) {
        // New manifests every time (one in team/deep, 20 in team/wide), with no subject: the listing asks for their referrers in turn.
        referrerRequests += 1;
        const count = referrers[1] === 'wide' ? 20 : 1;
        const next = Array.from({ length: count }, (_, i) => manifest(referrerRequests * 100 + i));
        const index = { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: next.map((digest) => ({ mediaType: MediaType.ociManifest, digest, size: made.get(digest)!.length })) };
        return res.writeHead(200, { 'content-type': MediaType.ociIndex }).end(JSON.stringify(index));
      }
      res.writeHead(404).end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
  });

  it('stops at its byte bound with a RegistryError naming the registry, having read no more than that', async () => {
    const client = new RegistryClient({ dockerConfig: false, retry: { attempts: 1 } });
    const before = made.size;
    const error = await listRepositoryImages(client, `${host}/team/wide`, { maxBytes: 16 * 1024 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RegistryError);
    expect((error as Error).message).toMatch(new RegExp(`^registry ${host.replace(/\./g, '\\.')} listed more than 16 KiB of manifests in team/wide \\((\\d+) manifests\\); stopped$`));
    // Each made-up manifest is some 230 bytes, and the digests its referrers name count too: the
    // listing read fewer manifests than 16 KiB of them.
    const sizes = [...made.values()].map((bytes) => bytes.length);
    const read = Number(/\((\d+) manifests\)/.exec((error as Error).message)![1]);
    expect(read).toBeGreaterThan(0);
    expect(read).toBeLessThanOrEqual(Math.floor((16 * 1024) / Math.min(...sizes)) + 1);
    // Nothing more is asked once the bound is past (no worker reads on).
    const made_ = made.size;
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(made.size).toBe(made_);
    expect(made.size).toBeGreaterThan(before);
  }, 20_000);

  it('within its byte bound, stops a chain deeper than any env image nests, after that many referrers requests', async () => {
    const client = new RegistryClient({ dockerConfig: false, retry: { attempts: 1 } });
    const before = referrerRequests;
    const error = await listRepositoryImages(client, `${host}/team/deep`).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RegistryError);
    expect((error as Error).message).toBe(`registry ${host} listed manifests in team/deep nested more than ${MAX_LISTING_DEPTH} levels deep through indexes and referrers (${MAX_LISTING_DEPTH + 1} manifests); stopped`);
    expect(referrerRequests - before).toBe(MAX_LISTING_DEPTH);
  }, 20_000);
});

describe('listRepositoryImages and completeStoredImages against a FAKE registry with a great many tags', () => {
  // Every tag names the same small manifest: the byte bound (256 MiB) would let a million tags be
  // read one request each — hours of gc. The number of manifests read is bounded on its own.
  let server: Server;
  let host: string;
  let manifestRequests = 0;
  const bytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociManifest, config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: `sha256:${'4'.repeat(64)}`, size: 2 }, layers: [] }));
  const tags = Array.from({ length: 500 }, (_, i) => `t${i}`);
  beforeAll(async () => {
    server = createServer((req, res) => {
      const url = req.url ?? '';
      if (url.startsWith('/v2/team/many/tags/list')) return res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ name: 'team/many', tags }));
      if (url.startsWith('/v2/team/many/manifests/')) {
        manifestRequests += 1;
        return res.writeHead(200, { 'content-type': MediaType.ociManifest, 'docker-content-digest': sha(bytes) }).end(bytes);
      }
      if (url.startsWith('/v2/team/many/referrers/')) return res.writeHead(200, { 'content-type': MediaType.ociIndex }).end(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [] }));
      res.writeHead(404).end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
  });

  it('stops before reading a manifest when the tags alone name more than its manifest bound, naming the bound', async () => {
    const client = new RegistryClient({ dockerConfig: false, retry: { attempts: 1 } });
    const before = manifestRequests;
    const error = await listRepositoryImages(client, `${host}/team/many`, { maxManifests: 100 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RegistryError);
    expect((error as Error).message).toBe(`registry ${host} lists more than 100 manifests to read in team/many (0 read, 500 more named); stopped`);
    expect((error as RegistryError).hint).toMatch(/far fewer/);
    expect(manifestRequests - before).toBe(0);
  });

  it('reads them all within the bound (the default is far above 500)', async () => {
    expect(MAX_LISTING_MANIFESTS).toBeGreaterThanOrEqual(10_000);
    const client = new RegistryClient({ dockerConfig: false, retry: { attempts: 1 } });
    const images = await listRepositoryImages(client, `${host}/team/many`);
    expect(images).toHaveLength(1);
    expect(images[0]!.tags).toHaveLength(500);
  });

  it('completeStoredImages (a cloud registry\'s own listing) is bounded the same way', async () => {
    const client = new RegistryClient({ dockerConfig: false, retry: { attempts: 1 } });
    const before = manifestRequests;
    const listed = tags.map((tag, i) => ({ digest: `sha256:${i.toString(16).padStart(64, '0')}`, tags: [tag] }));
    const error = await completeStoredImages(client, `${host}/team/many`, listed, { maxManifests: 100 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RegistryError);
    expect((error as Error).message).toBe(`registry ${host} lists more than 100 manifests to read in team/many (0 read, 500 more named); stopped`);
    expect(manifestRequests - before).toBe(0);
  });
});
