import { describe, expect, it } from 'vitest';
import { unknownSettings } from './unknown-settings.js';

const KNOWN = ['METAFLOW_PREBUILT_BASE_IMAGE', 'METAFLOW_PREBUILT_IMAGE_NAMESPACE', 'METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION', 'METAFLOW_PREBUILT_PLATFORM', 'METAFLOW_PREBUILT_CACHE_DIR'];
const FIRST_PARTY = ['docker', 'oci', 'local', 'dockerhub'];
const input = (selected: string[]) => ({ known: KNOWN, firstParty: FIRST_PARTY, selected });

describe('unknownSettings', () => {
  it('names a misspelt setting with the setting it most likely means (a letter missed, a word run together, two letters swapped)', () => {
    const env = {
      METAFLOW_PREBUILT_OCI_LAYER_COMPRESSON: 'zstd',
      METAFLOW_PREBUILT_BASEIMAGE: 'python:3.12',
      METAFLOW_PREBUILT_IMAGE_NAMESAPCE: 'team',
      METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION: 'zstd',
    };
    expect(unknownSettings(env, input(['docker', 'dockerhub']))).toEqual([
      { setting: 'METAFLOW_PREBUILT_BASEIMAGE', suggestion: 'METAFLOW_PREBUILT_BASE_IMAGE' },
      { setting: 'METAFLOW_PREBUILT_IMAGE_NAMESAPCE', suggestion: 'METAFLOW_PREBUILT_IMAGE_NAMESPACE' },
      { setting: 'METAFLOW_PREBUILT_OCI_LAYER_COMPRESSON', suggestion: 'METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION' },
    ]);
  });

  it('names an unknown setting with nothing close, without a suggestion; never a known, empty or other-prefix variable', () => {
    const env = { METAFLOW_PREBUILT_CHANNELS: 'conda-forge', METAFLOW_PREBUILT_PLATFORM: 'linux-64', METAFLOW_PREBUILT_TYPO_EMPTY: ' ', METAFLOW_DEFAULT_DATASTORE: 's3', PREBUILT_CLI: 'prebuilt' };
    expect(unknownSettings(env, input(['docker', 'dockerhub']))).toEqual([{ setting: 'METAFLOW_PREBUILT_CHANNELS' }]);
  });

  it("with a backend of another package selected (whose own settings it cannot know): only misspellings of known settings and names under a first-party backend's prefix", () => {
    const env = { METAFLOW_PREBUILT_ACMEBUILD_ZONE: 'eu', METAFLOW_PREBUILT_OCI_COMPRESSION: 'zstd', METAFLOW_PREBUILT_CACHE_DIRR: '/c' };
    expect(unknownSettings(env, input(['acmebuild', 'local']))).toEqual([
      { setting: 'METAFLOW_PREBUILT_CACHE_DIRR', suggestion: 'METAFLOW_PREBUILT_CACHE_DIR' },
      { setting: 'METAFLOW_PREBUILT_OCI_COMPRESSION' },
    ]);
    expect(unknownSettings(env, input(['oci', 'local'])).map((u) => u.setting)).toContain('METAFLOW_PREBUILT_ACMEBUILD_ZONE');
  });
});
