import { describe, expect, it } from 'vitest';
import { EROFS_LAYOUT_ANNOTATION, tarLayersLayout } from '@prebuilt/core/backend';
import { erofsLayout } from './erofs-layout.js';
import { createOciBuildService } from './oci-build-service.js';

const service = (env: Record<string, string>) => createOciBuildService({ env, layerCacheDir: false });

describe('EROFS layout record', () => {
  it('an erofs build expects its media type (it follows the runners); a gzip or zstd build expects none; neither is reported as a prefetch order', () => {
    expect(EROFS_LAYOUT_ANNOTATION).toBe('dev.prebuilt.erofs');
    const older = service({ METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION: 'erofs', METAFLOW_PREBUILT_OCI_RUNNERS: 'containerd@2.1' }).imageLayout?.('aaa');
    const newer = service({ METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION: 'erofs', METAFLOW_PREBUILT_OCI_RUNNERS: 'containerd@2.3' }).imageLayout?.('aaa');
    expect(older).toMatchObject({ annotation: EROFS_LAYOUT_ANNOTATION, value: 'application/vnd.oci.image.layer.v1.erofs', reported: false });
    expect(newer).toMatchObject({ annotation: EROFS_LAYOUT_ANNOTATION, value: 'application/vnd.erofs.layer.v1', reported: false });
    expect(older?.change).toContain('EROFS layers of type application/vnd.oci.image.layer.v1.erofs');
    for (const compression of ['gzip', 'zstd']) {
      const layout = service({ METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION: compression }).imageLayout?.('aaa');
      expect(layout).toEqual(erofsLayout(undefined));
      expect(layout, 'the tar layout every build service making tar layers expects (core\'s)').toEqual(tarLayersLayout('this build'));
      expect(layout?.value).toBeUndefined();
      expect(layout?.change).toBe('built with EROFS layers; this build makes tar layers');
    }
  });

  it('runners that cannot pull zstd (Docker 20.10): the layout refuses zstd layers, so an image pushed with them before is rebuilt, whatever this build writes; runners that all pull zstd, or none named: nothing refused', () => {
    const ZSTD = 'application/vnd.oci.image.layer.v1.tar+zstd';
    for (const compression of ['gzip', 'estargz']) {
      const layout = service({ METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION: compression, METAFLOW_PREBUILT_OCI_RUNNERS: 'containerd@1.7,docker@20.10' }).imageLayout?.('aaa');
      expect(layout?.refusedLayers?.mediaTypes).toContain(ZSTD);
      expect(layout?.refusedLayers?.change).toBe(`built with zstd layers, which docker@20.10 (METAFLOW_PREBUILT_OCI_RUNNERS) cannot pull; this build writes ${compression} layers`);
    }
    expect(service({ METAFLOW_PREBUILT_OCI_RUNNERS: 'docker@20.10' }).imageLayout?.('aaa')?.refusedLayers?.change, 'the default for such runners: gzip').toMatch(/this build writes gzip layers$/);
    expect(service({ METAFLOW_PREBUILT_OCI_RUNNERS: 'containerd@1.6,docker@23.0' }).imageLayout?.('aaa')?.refusedLayers).toBeUndefined();
    expect(service({ METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION: 'gzip' }).imageLayout?.('aaa')?.refusedLayers).toBeUndefined();
  });
});
