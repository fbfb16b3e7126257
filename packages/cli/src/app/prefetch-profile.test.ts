import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PREFETCH_SETTING, prefetchProfileOf, profileFilePath, profileUnusedBy, withPrefetchProfile } from './prefetch-profile.js';

describe('the prefetch profile a build uses', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'prebuilt-prefetch-profile-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('is named after the flow, beside it', () => {
    expect(profileFilePath('/p/flows/my_flow.py')).toBe('/p/flows/my_flow.prebuilt.prefetch');
    expect(profileFilePath('/p/flows/noext')).toBe('/p/flows/noext.prebuilt.prefetch');
  });

  it('none without a file beside the flow; the file when it exists, handed to the build service through the setting', async () => {
    const scope = { cwd: dir, env: { OTHER: '1' } };
    expect(prefetchProfileOf('flow.py', scope)).toBeUndefined();
    await writeFile(join(dir, 'flow.prebuilt.prefetch'), '/opt/prebuilt/env/bin/python3\n');
    const found = prefetchProfileOf('flow.py', scope);
    expect(found).toEqual({ file: join(dir, 'flow.prebuilt.prefetch'), from: 'flow' });
    expect(withPrefetchProfile(scope, found).env).toEqual({ OTHER: '1', [PREFETCH_SETTING]: join(dir, 'flow.prebuilt.prefetch') });
    expect(scope.env, 'the caller\'s scope is left as it is').toEqual({ OTHER: '1' });
    expect(prefetchProfileOf('other.py', scope), 'another flow has its own file').toBeUndefined();
  });

  it('an explicit setting wins: static and off use no profile, a file is used as named', async () => {
    await writeFile(join(dir, 'flow.prebuilt.prefetch'), '/opt/prebuilt/env/bin/python3\n');
    for (const value of ['static', ' OFF ']) {
      const scope = { cwd: dir, env: { [PREFETCH_SETTING]: value } };
      expect(prefetchProfileOf('flow.py', scope)).toBeUndefined();
      expect(withPrefetchProfile(scope, prefetchProfileOf('flow.py', scope))).toBe(scope);
    }
    const named = { cwd: dir, env: { [PREFETCH_SETTING]: 'mine.prefetch' } };
    const profile = prefetchProfileOf('flow.py', named);
    expect(profile).toEqual({ file: join(dir, 'mine.prefetch'), from: 'setting' });
    expect(withPrefetchProfile(named, profile), 'the setting is passed on unchanged').toBe(named);
    expect(prefetchProfileOf('flow.py', { cwd: dir, env: { [PREFETCH_SETTING]: '  ' } })).toEqual({ file: join(dir, 'flow.prebuilt.prefetch'), from: 'flow' });
  });
});

describe('whether a build with the current settings uses a profile', () => {
  it('only the oci service with estargz or zstd:chunked layers does; the default docker service and oci\'s gzip or zstd layers say why not', () => {
    expect(profileUnusedBy({})).toBe('the docker build service lays out no prefetch');
    expect(profileUnusedBy({ METAFLOW_PREBUILT_BUILD_SERVICE: 'buildx', METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION: 'estargz' })).toBe('the buildx build service lays out no prefetch');
    expect(profileUnusedBy({ METAFLOW_PREBUILT_BUILD_SERVICE: 'oci' })).toBe(
      'the oci build service lays out only estargz and zstd:chunked layers by a profile, and METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION is not set',
    );
    expect(profileUnusedBy({ METAFLOW_PREBUILT_BUILD_SERVICE: 'oci', METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION: 'zstd' })).toContain('METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION is zstd');
    expect(profileUnusedBy({ METAFLOW_PREBUILT_BUILD_SERVICE: 'oci', METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION: 'estargz' })).toBeUndefined();
    expect(profileUnusedBy({ METAFLOW_PREBUILT_BUILD_SERVICE: ' oci ', METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION: ' ZSTD:chunked ' })).toBeUndefined();
    expect(profileUnusedBy({ METAFLOW_PREBUILT_BUILD_SERVICE: '@prebuilt/oci', METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION: 'estargz' })).toBeUndefined();
  });
});
