import { describe, expect, it } from 'vitest';
import { ConfigError } from '@prebuilt/core/backend';
import { ociSettings } from './oci-build-service.js';
import { compressionForRunners, parseRunners, pullsZstd } from './runners.js';
import { thrownConfigError } from './__fixtures__/config-error.js';

describe('runners: which runtimes pull zstd', () => {
  it('reads runtime@version lists (case, spaces and patch levels ignored)', () => {
    expect(parseRunners(' Containerd@1.6.20 , docker@20.10.24,docker@25')).toEqual([
      { runtime: 'containerd', version: [1, 6] },
      { runtime: 'docker', version: [20, 10] },
      { runtime: 'docker', version: [25, 0] },
    ]);
  });

  it('containerd from 1.5 and Docker Engine from 23.0 pull zstd, older ones do not', () => {
    const pulls = (s: string) => pullsZstd(parseRunners(s)[0]!);
    expect([pulls('containerd@1.4.13'), pulls('containerd@1.5'), pulls('containerd@2.0')]).toEqual([false, true, true]);
    expect([pulls('docker@20.10.24'), pulls('docker@22.06'), pulls('docker@23.0.0'), pulls('docker@27.3')]).toEqual([false, false, true, true]);
  });

  it('an unknown runtime, a missing version or an empty list is a ConfigError naming the setting and the syntax', () => {
    for (const raw of ['podman@4.0', 'containerd', 'docker@latest', ' , ']) {
      const error = thrownConfigError(() => parseRunners(raw));
      expect(error.setting).toBe('METAFLOW_PREBUILT_OCI_RUNNERS');
      expect(error.message).toContain(`'${raw}'`);
      expect(error.hint).toMatch(/containerd@1\.6,docker@20\.10.*containerd, docker/);
    }
  });

  it('zstd by default when every runner pulls it, gzip when one cannot or the runners are unknown; an explicit choice wins', () => {
    expect(compressionForRunners(undefined, parseRunners('containerd@1.6,docker@25.0'))).toBe('zstd');
    expect(compressionForRunners(undefined, parseRunners('containerd@1.6,docker@20.10'))).toBe('gzip');
    expect(compressionForRunners(undefined, undefined)).toBe('gzip');
    expect(compressionForRunners('estargz', parseRunners('containerd@1.6'))).toBe('estargz');
    expect(compressionForRunners('gzip', parseRunners('containerd@1.7'))).toBe('gzip');
  });

  it('zstd asked for while a runner cannot pull it is a ConfigError naming that runner', () => {
    const error = thrownConfigError(() => compressionForRunners('zstd', parseRunners('containerd@1.6,docker@20.10.24')));
    expect(error.message).toContain('docker@20.10 cannot pull them');
    expect(error.message).not.toContain('containerd@1.6 ');
    expect(error.setting).toBe('METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION');
  });

  it('ociSettings reads METAFLOW_PREBUILT_OCI_RUNNERS (the option wins) to pick the default compression', () => {
    expect(ociSettings({ env: { METAFLOW_PREBUILT_OCI_RUNNERS: 'containerd@1.6' } }).layerCompression).toBe('zstd');
    expect(ociSettings({ env: { METAFLOW_PREBUILT_OCI_RUNNERS: 'containerd@1.6' }, runners: 'docker@20.10' }).layerCompression).toBe('gzip');
    expect(ociSettings({ env: { METAFLOW_PREBUILT_OCI_RUNNERS: 'containerd@1.6', METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION: 'gzip' } }).layerCompression).toBe('gzip');
    expect(() => ociSettings({ env: { METAFLOW_PREBUILT_OCI_RUNNERS: 'docker@20.10', METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION: 'zstd' } })).toThrow(ConfigError);
  });
});
