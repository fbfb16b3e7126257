import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { KNOWN_SETTINGS, unknownSettings } from './unknown-settings.js';

const FIRST_PARTY = ['docker', 'dockerhub'];

describe('unknownSettings', () => {
  it('names a misspelt setting with the setting it most likely means (a letter missed, a word run together, two letters swapped)', () => {
    const env = {
      METAFLOW_PREBUILT_OCI_LAYER_COMPRESSON: 'zstd',
      METAFLOW_PREBUILT_BASEIMAGE: 'python:3.12',
      METAFLOW_PREBUILT_IMAGE_NAMESAPCE: 'team',
      METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION: 'zstd',
    };
    expect(unknownSettings(env, FIRST_PARTY)).toEqual([
      { setting: 'METAFLOW_PREBUILT_BASEIMAGE', suggestion: 'METAFLOW_PREBUILT_BASE_IMAGE' },
      { setting: 'METAFLOW_PREBUILT_IMAGE_NAMESAPCE', suggestion: 'METAFLOW_PREBUILT_IMAGE_NAMESPACE' },
      { setting: 'METAFLOW_PREBUILT_OCI_LAYER_COMPRESSON', suggestion: 'METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION' },
    ]);
  });

  it('names an unknown setting with nothing close, without a suggestion; never a known, empty or other-prefix variable', () => {
    const env = { METAFLOW_PREBUILT_CHANNELS: 'conda-forge', METAFLOW_PREBUILT_PLATFORM: 'linux-64', METAFLOW_PREBUILT_TYPO_EMPTY: ' ', METAFLOW_DEFAULT_DATASTORE: 's3', PREBUILT_CLI: 'prebuilt' };
    expect(unknownSettings(env, FIRST_PARTY)).toEqual([{ setting: 'METAFLOW_PREBUILT_CHANNELS' }]);
  });

  it("with a third-party backend selected (whose own settings it cannot know): only misspellings of known settings and names under a first-party backend's prefix", () => {
    const env = { METAFLOW_PREBUILT_ACMEBUILD_ZONE: 'eu', METAFLOW_PREBUILT_OCI_COMPRESSION: 'zstd', METAFLOW_PREBUILT_CACHE_DIRR: '/c' };
    expect(unknownSettings(env, ['acmebuild', 'local'])).toEqual([
      { setting: 'METAFLOW_PREBUILT_CACHE_DIRR', suggestion: 'METAFLOW_PREBUILT_CACHE_DIR' },
      { setting: 'METAFLOW_PREBUILT_OCI_COMPRESSION' },
    ]);
    expect(unknownSettings(env, FIRST_PARTY).map((u) => u.setting)).toContain('METAFLOW_PREBUILT_ACMEBUILD_ZONE');
  });
});

/** Every file below `dir` whose name passes `keep`, skipping tests, fixtures, dist and node_modules. */
function sources(dir: string, keep: (name: string) => boolean): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (['node_modules', 'dist', '__fixtures__', 'python_tests'].includes(name)) return [];
    if (statSync(path).isDirectory()) return sources(path, keep);
    return keep(name) && !/\.test\.ts$|^test_/.test(name) ? [path] : [];
  });
}

it('KNOWN_SETTINGS is exactly the METAFLOW_PREBUILT_* names the packages\' sources and the Metaflow extension name (a new setting must be added, or it would be called unknown)', () => {
  const packages = new URL('../../../', import.meta.url).pathname;
  const files = readdirSync(packages).flatMap((pkg) => {
    const dirs = [join(packages, pkg, 'src'), join(packages, pkg, 'python')].filter((d) => statSync(d, { throwIfNoEntry: false })?.isDirectory());
    return dirs.flatMap((d) => sources(d, (name) => /\.(ts|py)$/.test(name)));
  });
  expect(files.length).toBeGreaterThan(100);
  const named = new Set<string>();
  for (const file of files) for (const match of readFileSync(file, 'utf8').matchAll(/METAFLOW_PREBUILT_[A-Z0-9_]*[A-Z0-9](?![A-Za-z0-9_…])/g)) named.add(match[0]);
  // A backend's prefix written alone in a comment (`METAFLOW_PREBUILT_OCI_…`) is no setting.
  for (const prefix of ['METAFLOW_PREBUILT_DOCKER', 'METAFLOW_PREBUILT_DOCKERHUB', 'METAFLOW_PREBUILT_ECR', 'METAFLOW_PREBUILT_GCR', 'METAFLOW_PREBUILT_OCI']) named.delete(prefix);
  expect([...KNOWN_SETTINGS].sort()).toEqual([...named].sort());
});
