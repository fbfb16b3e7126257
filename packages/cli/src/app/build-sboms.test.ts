import { tmpdir } from 'node:os';
import { ConfigError, type ImageSbomRef } from '@prebuilt/core';
import { describe, expect, it } from 'vitest';
import { buildJson, sbomSummary } from '../build-report.js';
import type { DeployFlowResult } from './deploy-flow.js';
import { sbomJson, sbomsEnabled } from './build-sboms.js';
import { buildFlow } from './build-flow.js';

const ref = (n: string, via: ImageSbomRef['via'] = 'tag-scheme'): ImageSbomRef => ({ manifest: `sha256:${n.repeat(64)}`, document: `sha256:${n.repeat(63)}f`, via });

describe('the SBOM step of build', () => {
  it('METAFLOW_PREBUILT_SBOM turns it on (default) or off; anything else is a ConfigError', () => {
    expect(sbomsEnabled({})).toBe(true);
    expect(sbomsEnabled({ METAFLOW_PREBUILT_SBOM: '1' })).toBe(true);
    expect(sbomsEnabled({ METAFLOW_PREBUILT_SBOM: 'off' })).toBe(false);
    expect(sbomsEnabled({ METAFLOW_PREBUILT_SBOM: 'No' })).toBe(false);
    expect(() => sbomsEnabled({ METAFLOW_PREBUILT_SBOM: 'maybe' })).toThrow(ConfigError);
    expect(() => sbomsEnabled({ METAFLOW_PREBUILT_SBOM: 'maybe' })).toThrow(/METAFLOW_PREBUILT_SBOM='maybe' \(the SBOM step of build\) is neither on nor off/);
  });

  it('a bad METAFLOW_PREBUILT_SBOM stops a build before the flow is read or locked', async () => {
    const scope = { cwd: '/nonexistent-prebuilt-project', cliDir: '/nonexistent-prebuilt-cli', env: { METAFLOW_PREBUILT_SBOM: 'maybe' }, signal: new AbortController().signal };
    // The flow file does not exist either: the setting is what is reported, so nothing was read.
    await expect(buildFlow('flow.py', scope)).rejects.toThrow(/METAFLOW_PREBUILT_SBOM='maybe'/);
  });

  it('a METAFLOW_PREBUILT_STATE_FILE that is a directory stops a build before the flow is read (not after every image is built)', async () => {
    const scope = { cwd: tmpdir(), cliDir: '/nonexistent-prebuilt-cli', env: { METAFLOW_PREBUILT_STATE_FILE: '.' }, signal: new AbortController().signal };
    await expect(buildFlow('no-such-flow.py', scope)).rejects.toThrow("METAFLOW_PREBUILT_STATE_FILE='.' is a directory; the image map is a file.");
  });

  it('build --json names the SBOM of each image and of each platform of an index, renaming nothing', () => {
    const imageMap = {
      flow: 'F',
      images: {
        one: { image: 'r/x:env-one-amd64', digest: 'sha256:1', pinnedImage: 'p', python: '/p', status: 'built' as const, steps: ['start'], pullConfig: {} },
        idx: {
          image: 'r/x:env-idx', digest: 'sha256:2', pinnedImage: 'p', python: '/p', status: 'present' as const, steps: ['end'], pullConfig: {},
          platforms: { 'linux-64': { envId: 'a', image: 'r/x:env-a-amd64', digest: 'sha256:3' }, 'linux-aarch64': { envId: 'b', image: 'r/x:env-b-arm64', digest: 'sha256:4' } },
        },
      },
      steps: {},
    };
    const result = { imageMap, images: [], failures: [], settings: { prune: [] }, directUrls: [] } as unknown as DeployFlowResult;
    const json = buildJson(result, '/s.json', new Map([['one', ref('1')], ['idx', ref('2', 'present')], ['a', ref('3')]])) as { images: Record<string, Record<string, unknown> & { platforms?: Record<string, Record<string, unknown>> }>; stateFile: string };
    expect(json.stateFile).toBe('/s.json');
    expect(json.images['one']).toEqual({ ...imageMap.images.one, sbom: sbomJson(ref('1')) });
    expect(json.images['idx']!['sbom']).toEqual({ digest: ref('2').manifest, documentDigest: ref('2').document });
    expect(json.images['idx']!.platforms!['linux-64']!['sbom']).toEqual(sbomJson(ref('3')));
    expect(json.images['idx']!.platforms!['linux-aarch64']).toEqual(imageMap.images.idx.platforms['linux-aarch64']);
    expect(buildJson(result, null)['images']).toBe(imageMap.images);
  });

  it('the human summary counts pushed and kept SBOMs', () => {
    expect(sbomSummary(new Map([['a', ref('1')], ['b', ref('2', 'present')], ['c', ref('3', 'referrers-api')]]))).toBe('SBOMs (SPDX, referring to each image): 2 pushed, 1 already in the registry');
  });
});
