import { describe, expect, it } from 'vitest';
import type { BuildRequest } from '@prebuilt/core/backend';
import { buildxArgs } from './buildx-build.js';
import type { BuildxSettings } from './buildx-settings.js';

const settings: BuildxSettings = { docker: 'docker', builder: undefined, network: 'host', timeoutSeconds: 60, extraArgs: [], killGraceMs: 1000, logTailLines: 30, keepImages: false };
const request = { imageTag: '127.0.0.1:5000/ns:env-1', contextDir: '/ctx' } as BuildRequest;

describe('buildxArgs', () => {
  it('pushes one tag for the platforms, without attestations, with the metadata file, reading the Dockerfile from stdin', () => {
    expect(buildxArgs(request, ['linux/amd64', 'linux/arm64'], settings, '/w/m.json')).toEqual([
      'buildx', 'build', '--push', '--tag', '127.0.0.1:5000/ns:env-1', '--platform', 'linux/amd64,linux/arm64', '--provenance=false',
      '--metadata-file', '/w/m.json', '--network', 'host', '--progress', 'plain', '-f', '-', '/ctx',
    ]);
  });

  it('names the builder, leaves --network out for `default`, and puts extra arguments before the Dockerfile', () => {
    const args = buildxArgs(request, ['linux/amd64'], { ...settings, builder: 'remote', network: 'default', extraArgs: ['--no-cache'] }, '/m');
    expect(args).toContain('--builder');
    expect(args[args.indexOf('--builder') + 1]).toBe('remote');
    expect(args).not.toContain('--network');
    expect(args.slice(-4)).toEqual(['--no-cache', '-f', '-', '/ctx']);
  });
});
