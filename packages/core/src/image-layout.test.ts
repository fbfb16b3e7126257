import { describe, expect, it } from 'vitest';
import type { BuildService, ImageLayout } from './contracts.js';
import { EROFS_LAYOUT_ANNOTATION, buildServiceLayout, layoutChange, tarLayersLayout } from './image-layout.js';

const service = (extra: Partial<BuildService> = {}): BuildService => ({ name: 'acme', buildAndPush: async () => ({ ok: true, digest: 'sha256:0' }), ...extra });

describe('image layouts: the EROFS record and tar layers', () => {
  it("tar layers record no EROFS layers (an image carrying the record is rebuilt), say who makes them, refuse no layer media type (a zstd image the oci service pushed is kept: such a service names no runners), and are not the image's reported layout", () => {
    expect(EROFS_LAYOUT_ANNOTATION).toBe('dev.prebuilt.erofs');
    expect(tarLayersLayout('the docker build service')).toEqual({
      annotation: 'dev.prebuilt.erofs',
      change: 'built with EROFS layers; the docker build service makes tar layers',
      reported: false,
    });
  });

  it('a build service without imageLayout makes tar layers; one with its own keeps it, none included', () => {
    expect(buildServiceLayout(service(), 'aaa')).toEqual(tarLayersLayout('the acme build service'));
    const own: ImageLayout = { annotation: 'acme.layout', value: 'v2', change: 'acme layout changed' };
    const asked: string[] = [];
    expect(buildServiceLayout(service({ imageLayout: (envId) => (asked.push(envId), own) }), 'bbb')).toBe(own);
    expect(asked).toEqual(['bbb']);
    expect(buildServiceLayout(service({ imageLayout: () => undefined }), 'ccc'), 'a service that records none checks none').toBeUndefined();
  });

  it('why an image is rebuilt: an EROFS build says what the image was built with (tar layers, or the other media type, quoted up to 100 characters); any other layout its own change', () => {
    const erofs: ImageLayout = { annotation: EROFS_LAYOUT_ANNOTATION, value: 'application/vnd.erofs.layer.v1', change: 'this build writes EROFS layers of type application/vnd.erofs.layer.v1', reported: false };
    expect(layoutChange(erofs, undefined)).toBe('built with tar layers; this build writes EROFS layers of type application/vnd.erofs.layer.v1');
    expect(layoutChange(erofs, 'application/vnd.oci.image.layer.v1.erofs')).toBe(
      'built with EROFS layers of type application/vnd.oci.image.layer.v1.erofs; this build writes EROFS layers of type application/vnd.erofs.layer.v1',
    );
    expect(layoutChange(erofs, 'x'.repeat(5000))).toBe(`built with EROFS layers of type ${'x'.repeat(100)}…; ${erofs.change}`);
    const tar = tarLayersLayout('the docker build service');
    expect(layoutChange(tar, 'application/vnd.erofs.layer.v1')).toBe(tar.change);
    expect(layoutChange({ annotation: 'acme.layout', value: 'v2', change: 'acme layout changed' }, undefined)).toBe('acme layout changed');
  });
});
