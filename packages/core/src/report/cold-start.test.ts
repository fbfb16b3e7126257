import { createHash, randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import type { ImageMap } from '../deploy/image-map.js';
import { uniqueRepo } from '../registry/__fixtures__/push-image.js';
import { describeOrFailInCi, registriesMissing, testServices } from '../registry/__fixtures__/test-services.js';
import { MediaType } from '../registry/media-types.js';
import type { OciDescriptor } from '../registry/platform.js';
import { RegistryError } from '../errors.js';
import { RegistryClient } from '../registry/registry-client.js';
import { parseBandwidth } from './bandwidth.js';
import { coldStartReport, MAX_REPORT_READS } from './cold-start.js';
import { gzipTrailerSize, layerFormat } from './layer-format.js';

const services = testServices();
const missing = registriesMissing(services);
const digestOf = (bytes: Uint8Array): string => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

describe('layer formats', () => {
  it('tells gzip, eStargz, zstd, EROFS and uncompressed layers apart by media type and annotations', () => {
    expect(layerFormat({ mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip' })).toBe('gzip');
    expect(layerFormat({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', annotations: { 'containerd.io/snapshot/stargz/toc.digest': 'sha256:1' } })).toBe('estargz');
    expect(layerFormat({ mediaType: 'application/vnd.oci.image.layer.v1.tar+zstd' })).toBe('zstd');
    // zstd:chunked as the stargz snapshotter reads it (the oci service's), and as containers/storage writes it.
    expect(layerFormat({ mediaType: 'application/vnd.oci.image.layer.v1.tar+zstd', annotations: { 'containerd.io/snapshot/stargz/toc.digest': 'sha256:1', 'io.containers.zstd-chunked.manifest-checksum': 'sha256:2' } })).toBe('zstd:chunked');
    expect(layerFormat({ mediaType: 'application/vnd.oci.image.layer.v1.tar+zstd', annotations: { 'io.github.containers.zstd-chunked.manifest-checksum': 'sha256:2' } })).toBe('zstd:chunked');
    expect(layerFormat({ mediaType: 'application/vnd.oci.image.layer.v1.tar' })).toBe('uncompressed');
    // Native EROFS layers under containerd 2.1/2.2's media type and 2.3's.
    expect(layerFormat({ mediaType: 'application/vnd.oci.image.layer.v1.erofs' })).toBe('erofs');
    expect(layerFormat({ mediaType: 'application/vnd.erofs.layer.v1' })).toBe('erofs');
    expect(layerFormat({ mediaType: 'application/x-something' })).toBe('unknown');
  });

  it('trusts a gzip trailer only where it can be the real size', () => {
    const tar = Buffer.alloc(100_000, 7);
    const gz = gzipSync(tar);
    expect(gzipTrailerSize(gz.subarray(-4), gz.length)).toBe(100_000);
    expect(gzipTrailerSize(Buffer.from([1, 0, 0, 0]), 5000)).toBeUndefined();
  });
});

interface Layer {
  bytes: Uint8Array;
  descriptor: OciDescriptor;
}

describe('coldStartReport of an index from a hostile registry', () => {
  it('follows an index entry only by its sha256 digest: one named by a tag is refused, never read', async () => {
    const index = { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [{ mediaType: MediaType.ociManifest, digest: 'latest', size: 2, platform: { os: 'linux', architecture: 'amd64' } }] };
    const indexDigest = `sha256:${'1'.repeat(64)}`;
    const asked: string[] = [];
    // Only getManifest is reached: the index by its pinned digest, then (before the fix) its entry by a tag.
    const client = {
      async getManifest(ref: { reference?: string }) {
        asked.push(String(ref.reference));
        return { digest: indexDigest, mediaType: MediaType.ociIndex, manifest: index, size: 2, bytes: new Uint8Array() };
      },
    } as unknown as RegistryClient;
    const map: ImageMap = { flow: 'F', images: {}, steps: { start: { envId: 'e', image: 'registry.test/app:e', pinnedImage: `registry.test/app:e@${indexDigest}`, python: '/x' } } };
    const error = await coldStartReport(map, client, { bandwidth: parseBandwidth('1Gbit/s') }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RegistryError);
    expect((error as RegistryError).message).toBe(`the linux/amd64 manifest in the image index ${indexDigest} of registry.test/app:e is named by a digest prebuilt cannot check ('latest'): only sha256 digests are verified`);
    expect(asked).toEqual([indexDigest]);
  });
});

describe('coldStartReport: the registry reads it makes are bounded', () => {
  const indexDigest = `sha256:${'1'.repeat(64)}`;
  const map: ImageMap = { flow: 'F', images: {}, steps: { start: { envId: 'e', image: 'registry.test/app:e', pinnedImage: `registry.test/app:e@${indexDigest}`, python: '/x' } } };
  /** A platform's manifest: `layers` gzip layers of its own (`platform` sets them apart). */
  const platformManifest = (layers: number, platform: number) => ({
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${'c'.repeat(64)}`, size: 2 },
    layers: Array.from({ length: layers }, (_, i) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: `sha256:${platform.toString(16).padStart(8, '0')}${i.toString(16).padStart(56, '0')}`, size: 1000 })),
  });
  /** A client whose index lists `entries` platforms, each with `layers` gzip layers; counts what is asked. */
  const fakeClient = (entries: number, layers: number) => {
    const asked = { manifests: 0, ranges: 0 };
    const index = { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: Array.from({ length: entries }, (_, i) => ({ mediaType: MediaType.ociManifest, digest: `sha256:f${(i + 1).toString(16).padStart(63, '0')}`, size: 2, platform: { os: 'linux', architecture: `arch${i}` } })) };
    const client = {
      async getManifest(ref: { reference?: string }) {
        asked.manifests += 1;
        if (ref.reference === indexDigest) return { digest: indexDigest, mediaType: MediaType.ociIndex, manifest: index, size: 2, bytes: new Uint8Array() };
        return { digest: String(ref.reference), mediaType: MediaType.ociManifest, manifest: platformManifest(layers, Number(`0x${String(ref.reference).slice(-4)}`)), size: 2, bytes: new Uint8Array() };
      },
      async getBlobRange() {
        asked.ranges += 1;
        return new Uint8Array([0, 16, 0, 0]);
      },
    } as unknown as RegistryClient;
    return { client, asked };
  };

  it('an index naming more platforms than it may read stops the report before one is read, naming the bound', async () => {
    const { client, asked } = fakeClient(50_000, 1);
    const error = await coldStartReport(map, client, { bandwidth: parseBandwidth('1Gbit/s'), maxReads: 1000 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RegistryError);
    expect((error as RegistryError).message).toBe(`the images of F name more than 1000 manifests and layers for the report to read (1 read, 50000 more named by the image index ${indexDigest} of registry.test/app:e); stopped`);
    expect((error as RegistryError).hint).toMatch(/^An env image has one manifest per platform/);
    expect(asked).toEqual({ manifests: 1, ranges: 0 });
  });

  it('so do more layers than it may read, before their trailers are read; within the bound every one is read', async () => {
    const { client, asked } = fakeClient(2, 600);
    const error = await coldStartReport(map, client, { bandwidth: parseBandwidth('1Gbit/s'), maxReads: 1000 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RegistryError);
    expect((error as RegistryError).message).toMatch(/^the images of F name more than 1000 manifests and layers for the report to read \(603 read, 600 more named by the linux\/arch1 manifest sha256:/);
    expect(asked).toEqual({ manifests: 3, ranges: 600 });
    const within = fakeClient(2, 600);
    const report = await coldStartReport(map, within.client, { bandwidth: parseBandwidth('1Gbit/s'), maxReads: 2000 });
    expect(report.steps[0]!.platforms.map((p) => p.layerCount)).toEqual([600, 600]);
    expect(within.asked).toEqual({ manifests: 3, ranges: 1200 });
    // A second step naming the same image reads nothing more, so counts nothing more.
    const twice = fakeClient(2, 600);
    const steps = { ...map.steps, end: map.steps.start! };
    await coldStartReport({ ...map, steps }, twice.client, { bandwidth: parseBandwidth('1Gbit/s'), maxReads: 1204 });
    expect(twice.asked).toEqual({ manifests: 4, ranges: 1200 });
    expect(MAX_REPORT_READS).toBeGreaterThanOrEqual(10_000);
  });
});

function gzLayer(content: Buffer, annotations?: Record<string, string>): Layer {
  const bytes = gzipSync(content);
  return { bytes, descriptor: { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: digestOf(bytes), size: bytes.length, ...(annotations ? { annotations } : {}) } };
}

async function pushImageOf(client: RegistryClient, repo: string, tag: string, layers: Layer[], architecture = 'amd64'): Promise<{ digest: string; size: number }> {
  const config = Buffer.from(JSON.stringify({ architecture, os: 'linux', rootfs: { type: 'layers', diff_ids: layers.map((l) => l.descriptor.digest) }, config: {} }));
  await client.uploadBlob(repo, digestOf(config), config);
  for (const layer of layers) await client.uploadBlob(repo, layer.descriptor.digest, layer.bytes);
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociManifest, config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: digestOf(config), size: config.length }, layers: layers.map((l) => l.descriptor) }));
  return { digest: await client.putManifest(`${repo}:${tag}`, manifest, MediaType.ociManifest), size: manifest.length };
}

describeOrFailInCi('coldStartReport on the real local registry', missing, () => {
  it('reports sizes, shared layers, formats and pull time per step and platform, from the manifests', async () => {
    const client = new RegistryClient({ dockerConfig: false });
    const repo = `${services.registries!.plain.host}/${uniqueRepo('report')}`;
    const base = gzLayer(Buffer.alloc(200_000, 1));
    const a = gzLayer(Buffer.concat([randomBytes(1000), Buffer.alloc(50_000, 2)]));
    const star = gzLayer(Buffer.alloc(30_000, 3), { 'containerd.io/snapshot/stargz/toc.digest': 'sha256:' + 'f'.repeat(64), 'io.containers.estargz.uncompressed-size': '30720' });
    const zstd: Layer = { bytes: Buffer.from('not really zstd'), descriptor: { mediaType: 'application/vnd.oci.image.layer.v1.tar+zstd', digest: digestOf(Buffer.from('not really zstd')), size: 15 } };
    const one = await pushImageOf(client, repo, 'one', [base, a]);
    const two = await pushImageOf(client, repo, 'two', [base, star, zstd]);
    const arm = await pushImageOf(client, repo, 'arm', [base], 'arm64');
    const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [
      { mediaType: MediaType.ociManifest, digest: one.digest, size: one.size, platform: { os: 'linux', architecture: 'amd64' } },
      { mediaType: MediaType.ociManifest, digest: arm.digest, size: arm.size, platform: { os: 'linux', architecture: 'arm64' } },
    ] }));
    const indexDigest = await client.putManifest(`${repo}:multi`, index, MediaType.ociIndex);
    const map: ImageMap = {
      flow: 'ReportFlow',
      images: {},
      steps: {
        start: { envId: 'one', image: `${repo}:one`, pinnedImage: `${repo}:one@${one.digest}`, python: '/x' },
        train: { envId: 'two', image: `${repo}:two`, pinnedImage: `${repo}:two@${two.digest}`, python: '/x' },
        end: { envId: 'multi', image: `${repo}:multi`, pinnedImage: `${repo}:multi@${indexDigest}`, python: '/x' },
        off: { envId: null, image: 'python:3.11', python: 'python' },
      },
    };
    const report = await coldStartReport(map, client, { bandwidth: parseBandwidth('1MB/s') });
    expect(report.steps.map((s) => s.step)).toEqual(['start', 'train', 'end']);
    const [start, train, end] = report.steps;
    expect(start).toMatchObject({ image: `${repo}:one`, digest: one.digest, index: false });
    expect(start!.platforms[0]).toMatchObject({
      platform: 'linux/amd64', compressedBytes: base.bytes.length + a.bytes.length, installedBytes: 200_000 + 51_000, layerCount: 2, formats: ['gzip'],
      // start's base layer is in train's image; its own layer is in end's amd64 image (the same manifest as start's is not "another image").
      sharedLayers: 1,
    });
    expect(start!.platforms[0]!.pullSeconds).toBeCloseTo((base.bytes.length + a.bytes.length) / 1e6, 6);
    expect(train!.platforms[0]).toMatchObject({ installedBytes: null, layerCount: 3, sharedLayers: 1, formats: ['estargz', 'gzip', 'zstd'] });
    expect(train!.platforms[0]!.layers.map((l) => [l.format, l.installedSize, l.installedFrom ?? null])).toEqual([['gzip', 200_000, 'gzip-trailer'], ['estargz', 30_720, 'annotation'], ['zstd', null, null]]);
    expect(end).toMatchObject({ digest: indexDigest, index: true });
    expect(end!.platforms.map((p) => [p.platform, p.digest, p.layerCount])).toEqual([['linux/amd64', one.digest, 2], ['linux/arm64', arm.digest, 1]]);
    // arm64 shares nothing: no other arm64 image in the flow.
    expect(end!.platforms[1]!.sharedLayers).toBe(0);
  });
});
