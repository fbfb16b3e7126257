import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { RegistryCredentials } from '@prebuilt/core';

const run = promisify(execFile);
const sha256 = (bytes: Buffer): string => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

/** Why skopeo cannot push here, or undefined when it can. */
export async function skopeoMissing(): Promise<string | undefined> {
  try {
    await run('skopeo', ['--version']);
    return undefined;
  } catch {
    return 'skopeo is not installed (apt-get install -y skopeo)';
  }
}

/**
 * Pushes a tiny single-layer image (a fresh random config, so every push is a new digest) to `tag`
 * over plain HTTP with skopeo, logged in with `credentials` (an auth file in a temp dir), and
 * returns the manifest digest skopeo pushed. A real client doing the registry's real auth flow.
 */
export async function skopeoPush(tag: string, credentials?: RegistryCredentials): Promise<{ digest: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'prebuilt-push-'));
  try {
    const layer = Buffer.from(`layer ${randomBytes(8).toString('hex')}\n`);
    const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [sha256(layer)] } }));
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
        layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256(layer), size: layer.length }],
      }),
    );
    const layout = join(dir, 'layout');
    await mkdir(join(layout, 'blobs', 'sha256'), { recursive: true });
    for (const blob of [layer, config, manifest]) await writeFile(join(layout, 'blobs', 'sha256', sha256(blob).slice(7)), blob);
    await writeFile(join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    await writeFile(
      join(layout, 'index.json'),
      JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: OCI_MANIFEST, digest: sha256(manifest), size: manifest.length, annotations: { 'org.opencontainers.image.ref.name': 'v1' } }] }),
    );
    const args = ['copy', '--quiet', '--dest-tls-verify=false', '--digestfile', join(dir, 'digest')];
    if (credentials?.password) {
      const auth = Buffer.from(`${credentials.username ?? ''}:${credentials.password.reveal()}`).toString('base64');
      await writeFile(join(dir, 'auth.json'), JSON.stringify({ auths: { [credentials.registry]: { auth } } }), { mode: 0o600 });
      args.push('--dest-authfile', join(dir, 'auth.json'));
    } else {
      args.push('--dest-no-creds');
    }
    args.push(`oci:${layout}:v1`, `docker://${tag}`);
    try {
      await run('skopeo', args, { timeout: 60_000 });
    } catch (error) {
      throw new Error(`skopeo copy to ${tag} failed: ${(error as { stderr?: string }).stderr ?? String(error)}`);
    }
    return { digest: (await readFile(join(dir, 'digest'), 'utf8')).trim() };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
