import { createHash, randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';

/**
 * Test helper: puts a tiny image into a registry over the plain distribution API (monolithic blob
 * uploads, manifest PUT), independently of the client under test. Basic auth is sent up front;
 * for a Bearer registry the token is fetched from `token.realm` with push scope.
 */
export interface PushTarget {
  /** Registry host, e.g. 127.0.0.1:5100 (always plain HTTP). */
  host: string;
  username?: string;
  password?: string;
  token?: { realm: string; service: string };
}

export interface PushedImage {
  repository: string;
  tag: string;
  digest: string;
  mediaType: string;
  manifest: Uint8Array;
  layerDigest: string;
  layerSize: number;
  configDigest: string;
}

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';

export function sha256(bytes: Uint8Array): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/** A unique repository name per test run, so runs never see each other's content. */
export function uniqueRepo(prefix: string): string {
  return `prebuilt-test/${prefix}-${randomBytes(4).toString('hex')}`;
}

async function authHeader(target: PushTarget, repository: string): Promise<Record<string, string>> {
  if (!target.username || !target.password) return {};
  const basic = `Basic ${Buffer.from(`${target.username}:${target.password}`).toString('base64')}`;
  if (!target.token) return { authorization: basic };
  const url = new URL(target.token.realm);
  url.searchParams.set('service', target.token.service);
  url.searchParams.set('scope', `repository:${repository}:pull,push`);
  const res = await fetch(url, { headers: { authorization: basic } });
  if (!res.ok) throw new Error(`token for push failed: ${res.status} ${await res.text()}`);
  const data = (await res.json()) as { token?: string; access_token?: string };
  return { authorization: `Bearer ${data.token ?? data.access_token}` };
}

async function putBlob(target: PushTarget, repository: string, auth: Record<string, string>, bytes: Uint8Array): Promise<string> {
  const digest = sha256(bytes);
  const start = await fetch(`http://${target.host}/v2/${repository}/blobs/uploads/`, { method: 'POST', headers: auth });
  if (start.status !== 202) throw new Error(`blob upload start failed: ${start.status} ${await start.text()}`);
  const location = new URL(start.headers.get('location')!, `http://${target.host}`);
  location.searchParams.set('digest', digest);
  const put = await fetch(location, { method: 'PUT', headers: { ...auth, 'content-type': 'application/octet-stream' }, body: bytes });
  if (put.status !== 201) throw new Error(`blob upload failed: ${put.status} ${await put.text()}`);
  return digest;
}

async function putManifest(target: PushTarget, repository: string, reference: string, auth: Record<string, string>, mediaType: string, bytes: Uint8Array): Promise<string> {
  const res = await fetch(`http://${target.host}/v2/${repository}/manifests/${reference}`, {
    method: 'PUT',
    headers: { ...auth, 'content-type': mediaType },
    body: bytes,
  });
  if (res.status !== 201) throw new Error(`manifest upload failed: ${res.status} ${await res.text()}`);
  return res.headers.get('docker-content-digest') ?? sha256(bytes);
}

/** Pushes a one-layer OCI image for `architecture` and tags it. */
export async function pushImage(target: PushTarget, repository: string, tag: string, architecture = 'amd64'): Promise<PushedImage> {
  const auth = await authHeader(target, repository);
  const layer = gzipSync(Buffer.concat([Buffer.from(`prebuilt test layer ${architecture} ${randomBytes(8).toString('hex')}\n`), Buffer.alloc(1024)]));
  const layerDigest = await putBlob(target, repository, auth, layer);
  const config = Buffer.from(JSON.stringify({ architecture, os: 'linux', rootfs: { type: 'layers', diff_ids: [sha256(layer)] }, config: {} }));
  const configDigest = await putBlob(target, repository, auth, config);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configDigest, size: config.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: layerDigest, size: layer.length }],
    }),
  );
  const digest = await putManifest(target, repository, tag, auth, OCI_MANIFEST, manifest);
  return { repository, tag, digest, mediaType: OCI_MANIFEST, manifest, layerDigest, layerSize: layer.length, configDigest };
}

/** Pushes an amd64 and an arm64 image and an OCI index over both, tagged `tag`. */
export async function pushIndex(target: PushTarget, repository: string, tag: string): Promise<{ digest: string; amd64: PushedImage; arm64: PushedImage }> {
  const amd64 = await pushImage(target, repository, `${tag}-amd64`, 'amd64');
  const arm64 = await pushImage(target, repository, `${tag}-arm64`, 'arm64');
  const index = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: [
        { mediaType: OCI_MANIFEST, digest: amd64.digest, size: amd64.manifest.length, platform: { os: 'linux', architecture: 'amd64' } },
        { mediaType: OCI_MANIFEST, digest: arm64.digest, size: arm64.manifest.length, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
      ],
    }),
  );
  const auth = await authHeader(target, repository);
  const digest = await putManifest(target, repository, tag, auth, OCI_INDEX, index);
  return { digest, amd64, arm64 };
}
