import { describe, expect, it } from 'vitest';
import { layerFormat } from '@prebuilt/core';
import { ConfigError } from '@prebuilt/core/backend';
import { ociSettings } from './oci-build-service.js';
import { checkBaseForRunners, compressionForRunners, erofsMediaType, parseRunners, pullsZstd, zstdUnpullableBy } from './runners.js';
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

describe('runners that cannot pull zstd: the images for them carry no zstd layer', () => {
  it('zstdUnpullableBy names the runners that cannot pull zstd, as the setting gives them; none for unknown runners', () => {
    expect(zstdUnpullableBy(parseRunners('containerd@1.4,containerd@1.6,docker@20.10.24'))).toEqual(['containerd@1.4', 'docker@20.10']);
    expect(zstdUnpullableBy(parseRunners('containerd@1.6,docker@23.0'))).toEqual([]);
    expect(zstdUnpullableBy(undefined)).toEqual([]);
  });

  it('a base image with a zstd layer is a ConfigError naming the base and the runners (the image would carry it); gzip and tar bases, or runners that pull zstd, pass', () => {
    const GZIP = { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip' };
    const ZSTD = { mediaType: 'application/vnd.oci.image.layer.v1.tar+zstd' };
    const error = thrownConfigError(() => checkBaseForRunners('registry.example.com/base:1', [GZIP, ZSTD], ['docker@20.10']));
    expect(error.message).toBe('The base image registry.example.com/base:1 has zstd layers, which docker@20.10 (METAFLOW_PREBUILT_OCI_RUNNERS) cannot pull.');
    expect(error.setting).toBe('METAFLOW_PREBUILT_BASE_IMAGE');
    expect(error.hint).toContain('a base image with gzip layers');
    // A GPU step's FROM is the GPU base image: the hint names both settings.
    expect(error.hint).toContain('METAFLOW_PREBUILT_GPU_BASE_IMAGE for GPU steps');
    expect(() => checkBaseForRunners('b', [GZIP, { mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip' }], ['docker@20.10'])).not.toThrow();
    expect(() => checkBaseForRunners('b', [GZIP, ZSTD], [])).not.toThrow();
  });
});

describe('runners: which containerd mounts EROFS layers, under which media type', () => {
  const OLD = 'application/vnd.oci.image.layer.v1.erofs';
  const NEW = 'application/vnd.erofs.layer.v1';

  it('containerd 2.1 and 2.2 take application/vnd.oci.image.layer.v1.erofs, containerd ≥ 2.3 application/vnd.erofs.layer.v1', () => {
    expect(erofsMediaType(parseRunners('containerd@2.1'))).toBe(OLD);
    expect(erofsMediaType(parseRunners('containerd@2.1.9,containerd@2.2'))).toBe(OLD);
    expect(erofsMediaType(parseRunners('containerd@2.3'))).toBe(NEW);
    expect(erofsMediaType(parseRunners('containerd@2.4,containerd@3.0'))).toBe(NEW);
    // `prebuilt report` tells both as EROFS layers.
    expect(layerFormat({ mediaType: erofsMediaType(parseRunners('containerd@2.1')) })).toBe('erofs');
    expect(layerFormat({ mediaType: erofsMediaType(parseRunners('containerd@2.3')) })).toBe('erofs');
  });

  it('unknown runners: a ConfigError naming METAFLOW_PREBUILT_OCI_RUNNERS and what to set it to', () => {
    const error = thrownConfigError(() => erofsMediaType(undefined));
    expect(error.setting).toBe('METAFLOW_PREBUILT_OCI_RUNNERS');
    expect(error.message).toMatch(/erofs layers were asked for, but METAFLOW_PREBUILT_OCI_RUNNERS is not set/);
    expect(error.message).toContain('containerd ≥ 2.1');
    expect(error.hint).toContain("'containerd@2.1'");
    expect(thrownConfigError(() => erofsMediaType([])).setting).toBe('METAFLOW_PREBUILT_OCI_RUNNERS');
  });

  it('Docker, or a containerd before 2.1, among the runners: a ConfigError naming them (a Docker node is named by its containerd)', () => {
    const docker = thrownConfigError(() => erofsMediaType(parseRunners('containerd@2.1,docker@28.0')));
    expect(docker.message).toContain('docker@28.0 cannot pull them');
    expect(docker.message).toContain('Docker Engine pulls native EROFS layers only with the containerd image store');
    expect(docker.message).toContain('named by its containerd (containerd@2.1), not docker');
    expect(docker.message).not.toContain('containerd@2.1 ');
    expect(docker.setting).toBe('METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION');
    expect(docker.hint).toMatch(/zstd/);
    const old = thrownConfigError(() => erofsMediaType(parseRunners('containerd@2.0.5,containerd@2.1')));
    expect(old.message).toContain('containerd@2.0 cannot pull them');
    expect(old.message).not.toContain('Docker');
    expect(old.message).toContain('containerd ≥ 2.1 with the erofs snapshotter');
  });

  it('containerd 2.1/2.2 mixed with ≥ 2.3: a ConfigError, no media type both take', () => {
    const error = thrownConfigError(() => erofsMediaType(parseRunners('containerd@2.2,containerd@2.3')));
    expect(error.message).toContain('no EROFS layer media type is mounted by all of containerd@2.2, containerd@2.3');
    expect(error.message).toContain(`containerd ≥ 2.1 and < 2.3 takes only ${OLD}; containerd ≥ 2.3 takes only ${NEW}`);
    expect(error.hint).toMatch(/containerd ≥ 2\.3/);
  });

  it('ociSettings: erofs only when asked for (never a default), with the runners\' media type; the errors come from the settings', () => {
    expect(ociSettings({ env: { METAFLOW_PREBUILT_OCI_RUNNERS: 'containerd@2.3' } }).layerCompression).toBe('zstd');
    const settings = ociSettings({ env: { METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION: 'EROFS', METAFLOW_PREBUILT_OCI_RUNNERS: 'containerd@2.1' } });
    expect([settings.layerCompression, settings.layerMediaType, settings.prefetch]).toEqual(['erofs', OLD, { mode: 'off' }]);
    expect(ociSettings({ layerCompression: 'erofs', runners: 'containerd@2.3.4' }).layerMediaType).toBe(NEW);
    expect(ociSettings({ layerCompression: 'zstd' }).layerMediaType).toBe('application/vnd.oci.image.layer.v1.tar+zstd');
    expect(ociSettings({}).layerMediaType).toBeUndefined();
    expect(thrownConfigError(() => ociSettings({ env: { METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION: 'erofs' } })).setting).toBe('METAFLOW_PREBUILT_OCI_RUNNERS');
    expect(thrownConfigError(() => ociSettings({ env: { METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION: 'erofs', METAFLOW_PREBUILT_OCI_RUNNERS: 'docker@27.0' } })).message).toContain('docker@27.0 cannot pull them');
    // Not a lazy format: no re-layered base.
    expect(thrownConfigError(() => ociSettings({ env: { METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION: 'erofs', METAFLOW_PREBUILT_OCI_RUNNERS: 'containerd@2.1', METAFLOW_PREBUILT_OCI_ESTARGZ_BASE: '1' } })).message).toContain('the layer compression is erofs');
  });
});
