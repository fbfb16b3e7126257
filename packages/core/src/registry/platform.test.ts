import { describe, expect, it } from 'vitest';
import { InputError } from '../errors.js';
import { parsePlatform, selectPlatformManifest, type ImageIndex } from './platform.js';

const entry = (digit: string, architecture: string, variant?: string, os = 'linux') => ({
  mediaType: 'application/vnd.oci.image.manifest.v1+json',
  digest: `sha256:${digit.repeat(64)}`,
  size: 1,
  platform: { os, architecture, ...(variant ? { variant } : {}) },
});

const index: ImageIndex = {
  schemaVersion: 2,
  manifests: [entry('1', 'amd64'), entry('2', 'arm64', 'v8'), entry('3', 'arm', 'v7'), entry('4', 'unknown', undefined, 'unknown')],
};

describe('selectPlatformManifest', () => {
  it('selects by os and architecture, treating arm64 as arm64/v8', () => {
    expect(selectPlatformManifest(index, 'linux/amd64', 'x').digest).toBe(`sha256:${'1'.repeat(64)}`);
    expect(selectPlatformManifest(index, 'linux/arm64', 'x').digest).toBe(`sha256:${'2'.repeat(64)}`);
    expect(selectPlatformManifest(index, 'linux/arm64/v8', 'x').digest).toBe(`sha256:${'2'.repeat(64)}`);
    expect(selectPlatformManifest(index, 'linux/arm', 'x').digest).toBe(`sha256:${'3'.repeat(64)}`);
  });
  it('names the platforms on offer when none matches', () => {
    expect(() => selectPlatformManifest(index, 'linux/s390x', 'reg/app:1')).toThrow(
      'image reg/app:1 has no manifest for platform linux/s390x; it offers linux/amd64, linux/arm64/v8, linux/arm/v7',
    );
  });
  it('rejects a malformed platform', () => {
    expect(() => parsePlatform('amd64')).toThrow(InputError);
    expect(parsePlatform('linux/arm64/v8')).toEqual({ os: 'linux', architecture: 'arm64', variant: 'v8' });
  });
});
