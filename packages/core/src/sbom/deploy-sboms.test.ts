import { describe, expect, it } from 'vitest';
import type { DeployImage } from '../contracts.js';
import type { LockEntry } from '../lock-file.js';
import { pushImage, uniqueRepo } from '../registry/__fixtures__/push-image.js';
import { describeOrFailInCi, registriesMissing, testServices } from '../registry/__fixtures__/test-services.js';
import { RegistryClient } from '../registry/registry-client.js';
import { imageEnvs, pushDeploySboms } from './deploy-sboms.js';
import { readImageSbom } from './sbom-artifact.js';

const services = testServices();
const missing = registriesMissing(services);

const entry = (platform: 'linux-64' | 'linux-aarch64'): LockEntry => ({
  specHash: 'c'.repeat(64),
  request: { python: '3.11', conda: {}, pypi: {}, channels: [], indexUrl: null, platform },
  platform,
  pythonVersion: '3.11.9',
  packages: [{ kind: 'pypi', name: 'six', version: '1.16.0', build: '', url: 'http://127.0.0.1:9/six-1.16.0-py2.py3-none-any.whl', sha256: '5'.repeat(64), size: 1, filename: 'six-1.16.0-py2.py3-none-any.whl' }],
  resolvedWith: { tool: 'test', version: '0' } as unknown as LockEntry['resolvedWith'],
});

const image = (tag: string, digest: string, extra: Partial<DeployImage> = {}): DeployImage => ({
  envId: 'e1', tag, pullTag: tag, platform: 'linux-64', base: { ref: 'b', digest: 'sha256:' + '0'.repeat(64), pinned: 'b' }, steps: ['start'], status: 'built', digest, python: '/opt/prebuilt/env/bin/python', packages: 1, elapsedMs: 1, ...extra,
});

describe('imageEnvs', () => {
  it("takes an image's platform entry, and every member platform's for an index", () => {
    const steps = { start: [entry('linux-64'), entry('linux-aarch64')] };
    expect(imageEnvs(image('t', 'd'), steps).map((e) => e.platform)).toEqual(['linux-64']);
    const index = image('t', 'd', { platforms: [{ platform: 'linux-64', envId: 'a', image: 'x' }, { platform: 'linux-aarch64', envId: 'b', image: 'y' }] });
    expect(imageEnvs(index, steps).map((e) => e.platform)).toEqual(['linux-64', 'linux-aarch64']);
  });
});

describeOrFailInCi('pushDeploySboms on the real local registry', missing, () => {
  it('pushes the SBOM of an image that lacks one (licences looked up), and keeps the one an image has (no lookup)', async () => {
    const host = services.registries!.plain.host;
    const repo = uniqueRepo('deploy-sbom');
    const pushed = await pushImage({ host }, repo, 'env-e1');
    const tag = `${host}/${repo}:env-e1`;
    const client = new RegistryClient({ dockerConfig: false });
    const lookups: number[] = [];
    const licenses = async (packages: readonly { sha256: string }[]) => {
      lookups.push(packages.length);
      return new Map(packages.map((p) => [p.sha256, 'MIT']));
    };
    const input = { images: [image(tag, pushed.digest), image(tag, '', { envId: 'failed', status: 'failed' as const })], steps: { start: [entry('linux-64')] }, client, licenses };
    const first = await pushDeploySboms(input);
    expect([...first.keys()]).toEqual(['e1']);
    expect(first.get('e1')!.via).toBe('tag-scheme');
    expect(lookups).toEqual([1]);
    const again = await pushDeploySboms(input);
    expect(again.get('e1')).toEqual({ ...first.get('e1'), via: 'present' });
    expect(lookups).toEqual([1]);
    const read = await readImageSbom(client, tag);
    expect(read.document).toMatchObject({ name: 'env-e1', packages: [{ SPDXID: 'SPDXRef-Env-linux-64' }, { name: 'six', licenseDeclared: 'MIT' }] });
  });
});
