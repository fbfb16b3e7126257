import { createHash, randomBytes } from 'node:crypto';

const MANIFEST_TYPE = 'application/vnd.docker.distribution.manifest.v2+json';
const CONFIG_TYPE = 'application/vnd.docker.container.image.v1+json';

const sha256 = (bytes: Buffer) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

/**
 * Pushes a tiny image (one config blob, no layers) to a plain-HTTP registry with the OCI
 * distribution API, and returns the manifest digest the registry stored. Each call makes a new
 * image (a random label), so digests never collide between tests.
 */
export async function pushTinyImage(tag: string, auth?: { username: string; password: string }): Promise<{ digest: string }> {
  const slash = tag.indexOf('/');
  const colon = tag.lastIndexOf(':');
  const host = tag.slice(0, slash);
  const repository = tag.slice(slash + 1, colon);
  const reference = tag.slice(colon + 1);
  const base = `http://${host}`;
  const headers: Record<string, string> = {};
  if (auth) headers['Authorization'] = `Basic ${Buffer.from(`${auth.username}:${auth.password}`).toString('base64')}`;

  const config = Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      config: { Labels: { 'prebuilt.test': randomBytes(8).toString('hex') } },
      rootfs: { type: 'layers', diff_ids: [] },
    }),
  );
  const configDigest = sha256(config);
  const start = await fetch(`${base}/v2/${repository}/blobs/uploads/`, { method: 'POST', headers });
  if (start.status !== 202) throw new Error(`starting a blob upload to ${host}/${repository}: ${start.status}`);
  const location = new URL(start.headers.get('location') ?? '', base);
  location.searchParams.set('digest', configDigest);
  const put = await fetch(location, { method: 'PUT', headers: { ...headers, 'Content-Type': 'application/octet-stream' }, body: config });
  if (put.status !== 201) throw new Error(`uploading a blob to ${host}/${repository}: ${put.status}`);

  const manifest = Buffer.from(
    JSON.stringify({ schemaVersion: 2, mediaType: MANIFEST_TYPE, config: { mediaType: CONFIG_TYPE, size: config.length, digest: configDigest }, layers: [] }),
  );
  const response = await fetch(`${base}/v2/${repository}/manifests/${reference}`, {
    method: 'PUT',
    headers: { ...headers, 'Content-Type': MANIFEST_TYPE },
    body: manifest,
  });
  if (response.status !== 201) throw new Error(`putting the manifest ${tag}: ${response.status} ${await response.text()}`);
  const digest = sha256(manifest);
  if (response.headers.get('docker-content-digest') !== digest) throw new Error(`the registry stored another digest for ${tag}`);
  return { digest };
}
