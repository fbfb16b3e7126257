import { describe, expect, it } from 'vitest';
import type { BuildService, ImageLayout } from './contracts.js';
import { EROFS_LAYOUT_ANNOTATION, buildServiceLayout, tarLayersLayout } from './image-layout.js';

const service = (extra: Partial<BuildService> = {}): BuildService => ({ name: 'acme', buildAndPush: async () => ({ ok: true, digest: 'sha256:0' }), ...extra });

describe('image layouts: the EROFS record and tar layers', () => {
  it('tar layers record no EROFS layers (an image carrying the record is rebuilt), say who makes them, and are not the image\'s reported layout', () => {
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
});
