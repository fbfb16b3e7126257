import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { LockedEnv } from '../env-model.js';
import { InputError, RegistryError } from '../errors.js';
import { pushImage, pushIndex, uniqueRepo } from '../registry/__fixtures__/push-image.js';
import { describeOrFailInCi, registriesMissing, testServices } from '../registry/__fixtures__/test-services.js';
import { MediaType } from '../registry/media-types.js';
import { listReferrers, pushReferrer, referrersTag } from '../registry/referrers.js';
import { RegistryClient } from '../registry/registry-client.js';
import { MAX_SBOM_BYTES, findImageSboms, pushImageSbom, readImageSbom } from './sbom-artifact.js';
import { createSbom, SPDX_JSON_MEDIA_TYPE } from './spdx-document.js';

const services = testServices();
const missing = registriesMissing(services);

const env: LockedEnv = {
  specHash: 'b'.repeat(64),
  request: { python: '3.11', conda: {}, pypi: {}, channels: [], indexUrl: null, platform: 'linux-64' },
  platform: 'linux-64',
  pythonVersion: '3.11.9',
  packages: [{ kind: 'pypi', name: 'six', version: '1.16.0', build: '', url: 'http://127.0.0.1:9/six-1.16.0-py2.py3-none-any.whl', sha256: '4'.repeat(64), size: 1, filename: 'six-1.16.0-py2.py3-none-any.whl' }],
};

describeOrFailInCi('SBOM artifacts on the real local registry (distribution 2.8: referrers tag scheme)', missing, () => {
  const client = new RegistryClient({ dockerConfig: false });
  const host = (): string => services.registries!.plain.host;

  it('pushes an SBOM that refers to the image, through the sha256-<hex> tag, and reads the same bytes back', async () => {
    const repo = uniqueRepo('sbom');
    const image = await pushImage({ host: host() }, repo, 'v1');
    const ref = `${host()}/${repo}:v1`;
    const sbom = createSbom({ name: ref, envs: [env] });
    const pushed = await pushImageSbom(client, ref, sbom);
    expect(pushed.via).toBe('tag-scheme');
    expect(pushed.document).toBe(sbom.digest);
    const tag = await client.getManifest(`${host()}/${repo}:${referrersTag(image.digest)}`);
    expect(tag.mediaType).toBe(MediaType.ociIndex);
    const artifact = await client.getManifest(`${host()}/${repo}@${pushed.manifest}`);
    expect(artifact.manifest).toMatchObject({ artifactType: SPDX_JSON_MEDIA_TYPE, subject: { digest: image.digest, mediaType: image.mediaType }, layers: [{ mediaType: SPDX_JSON_MEDIA_TYPE, digest: sbom.digest }] });
    const read = await readImageSbom(client, ref);
    expect(Buffer.from(read.bytes).equals(Buffer.from(sbom.bytes))).toBe(true);
    expect(read.ref.manifest).toBe(pushed.manifest);
  });

  it('finds an SBOM already there instead of pushing it again, and the same lock gives the same artifact digest', async () => {
    const repo = uniqueRepo('sbom-again');
    await pushImage({ host: host() }, repo, 'v1');
    const ref = `${host()}/${repo}:v1`;
    const first = await pushImageSbom(client, ref, createSbom({ name: ref, envs: [env] }));
    const again = await pushImageSbom(client, ref, createSbom({ name: ref, envs: [structuredClone(env)] }));
    expect(again).toEqual({ manifest: first.manifest, document: first.document, via: 'present' });
    expect(await findImageSboms(client, ref)).toHaveLength(1);
  });

  it('merges with the referrers already under the tag (another artifact type is kept)', async () => {
    const repo = uniqueRepo('sbom-merge');
    const image = await pushImage({ host: host() }, repo, 'v1');
    const ref = `${host()}/${repo}:v1`;
    const subject = { mediaType: image.mediaType, digest: image.digest, size: image.manifest.length };
    const signature = await pushReferrer(client, { repository: ref, subject, artifactType: 'application/vnd.example.signature', blob: { bytes: Buffer.from('sig'), mediaType: 'application/octet-stream' } });
    const pushed = await pushImageSbom(client, ref, createSbom({ name: ref, envs: [env] }));
    const all = await listReferrers(client, ref, image.digest);
    expect(all.map((d) => d.digest)).toEqual([signature.digest, pushed.manifest]);
    expect((await findImageSboms(client, ref)).map((d) => d.digest)).toEqual([pushed.manifest]);
  });

  it('refers an SBOM to an image index', async () => {
    const repo = uniqueRepo('sbom-index');
    const index = await pushIndex({ host: host() }, repo, 'multi');
    const ref = `${host()}/${repo}:multi`;
    const pushed = await pushImageSbom(client, ref, createSbom({ name: ref, envs: [env, { ...env, platform: 'linux-aarch64' }] }));
    const artifact = await client.getManifest(`${host()}/${repo}@${pushed.manifest}`);
    expect(artifact.manifest).toMatchObject({ subject: { digest: index.digest, mediaType: MediaType.ociIndex } });
    expect((await readImageSbom(client, ref)).ref.manifest).toBe(pushed.manifest);
  });

  it('an SBOM whose manifest states more than 64 MiB is a RegistryError naming the size, not read', async () => {
    const repo = uniqueRepo('sbom-huge');
    const image = await pushImage({ host: host() }, repo, 'v1');
    const ref = `${host()}/${repo}:v1`;
    const pushed = await pushImageSbom(client, ref, createSbom({ name: ref, envs: [env] }));
    // The same artifact, its document's descriptor claiming one byte over the bound; the referrers tag names it alone.
    const artifact = (await client.getManifest(`${host()}/${repo}@${pushed.manifest}`)).manifest as { layers: { size: number }[] };
    const lying = Buffer.from(JSON.stringify({ ...artifact, layers: [{ ...artifact.layers[0], size: MAX_SBOM_BYTES + 1 }] }));
    const digest = `sha256:${createHash('sha256').update(lying).digest('hex')}`;
    await client.putManifest(`${host()}/${repo}@${digest}`, lying, MediaType.ociManifest);
    const index = { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [{ mediaType: MediaType.ociManifest, digest, size: lying.length, artifactType: SPDX_JSON_MEDIA_TYPE }] };
    await client.putManifest(`${host()}/${repo}:${referrersTag(image.digest)}`, Buffer.from(JSON.stringify(index)), MediaType.ociIndex);
    const error = await readImageSbom(client, ref).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RegistryError);
    expect((error as RegistryError).message).toContain(`states ${MAX_SBOM_BYTES + 1} bytes in its manifest (an SBOM is read up to 64 MiB); it was not read`);
    expect((error as RegistryError).hint).toContain('prebuilt build');
  });

  it('an image without an SBOM is an InputError that says how to get one', async () => {
    const repo = uniqueRepo('sbom-none');
    await pushImage({ host: host() }, repo, 'v1');
    const error = await readImageSbom(client, `${host()}/${repo}:v1`).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InputError);
    expect((error as InputError).message).toContain('has no SBOM');
    expect((error as InputError).hint).toContain('prebuilt build');
    // A build with METAFLOW_PREBUILT_SBOM=0 made the image without one: building again the same way would not help.
    expect((error as InputError).hint).toContain('METAFLOW_PREBUILT_SBOM unset or 1');
  });
});

describe('readImageSbom from a hostile registry', () => {
  it('reads an SBOM the referrers list names only by its sha256 digest: one named by a tag is refused, never read', async () => {
    const subject = `sha256:${'2'.repeat(64)}`;
    const asked: string[] = [];
    // The subject's manifest, then a referrers API listing an SPDX artifact by the tag `latest`.
    const client = {
      async getManifest(ref: string | { reference?: string }) {
        asked.push(typeof ref === 'string' ? ref : String(ref.reference));
        return { digest: subject, mediaType: MediaType.ociManifest, manifest: { schemaVersion: 2, config: { digest: subject, size: 2 }, layers: [] }, size: 2, bytes: new Uint8Array() };
      },
      async getReferrers() {
        return { supported: true, index: { schemaVersion: 2, manifests: [{ mediaType: MediaType.ociManifest, digest: 'latest', size: 2, artifactType: 'application/spdx+json' }] } };
      },
    } as unknown as RegistryClient;
    const error = await readImageSbom(client, 'registry.test/app:e').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RegistryError);
    expect((error as RegistryError).message).toBe("the SBOM of registry.test/app:e is named by a digest prebuilt cannot check ('latest'): only sha256 digests are verified");
    expect(asked).toEqual(['registry.test/app:e']);
  });
});
