import { getServices, type TestServices } from '../../../../test/services.js';

export type { TestServices };

/** The test services provided by test/global-setup.ts (everything missing when none were). */
export function testServices(): TestServices {
  return getServices();
}

const ACCEPT = [
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.oci.image.index.v1+json',
].join(', ');

/** HEAD of a manifest on a no-auth registry: its digest, or undefined on 404. */
export async function headDigest(reference: string, auth?: { username: string; password: string }): Promise<string | undefined> {
  const slash = reference.indexOf('/');
  const host = reference.slice(0, slash);
  const rest = reference.slice(slash + 1);
  const at = rest.indexOf('@');
  const colon = rest.lastIndexOf(':');
  const [repo, ref] = at >= 0 ? [rest.slice(0, at), rest.slice(at + 1)] : [rest.slice(0, colon), rest.slice(colon + 1)];
  const headers: Record<string, string> = { Accept: ACCEPT };
  if (auth) headers['Authorization'] = `Basic ${Buffer.from(`${auth.username}:${auth.password}`).toString('base64')}`;
  const response = await fetch(`http://${host}/v2/${repo}/manifests/${ref}`, { method: 'HEAD', headers });
  if (response.status === 404) return undefined;
  if (!response.ok) throw new Error(`HEAD ${reference}: ${response.status}`);
  return response.headers.get('docker-content-digest') ?? undefined;
}
