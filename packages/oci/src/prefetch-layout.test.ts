import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { PREFETCH_CHANGE, PREFETCH_LAYOUT_ANNOTATION, prefetchLayout, prefetchLayoutValue } from './prefetch-layout.js';
import { createOciBuildService } from './oci-build-service.js';
import { EROFS_LAYOUT_ANNOTATION } from '@prebuilt/core/backend';
import { erofsLayout } from './erofs-layout.js';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

describe('prefetch layout record', () => {
  it('static, off, or the digest of the paths in order: another order is another layout', () => {
    expect(prefetchLayoutValue({ mode: 'static' })).toBe('static');
    expect(prefetchLayoutValue({ mode: 'off' })).toBe('off');
    const digest = createHash('sha256').update('a/b\nc/d').digest('hex');
    expect(prefetchLayoutValue({ mode: 'profile', paths: ['a/b', 'c/d'] })).toBe(`profile sha256:${digest}`);
    expect(prefetchLayoutValue({ mode: 'profile', paths: ['c/d', 'a/b'] })).not.toBe(`profile sha256:${digest}`);
    expect(prefetchLayout({ mode: 'static' })).toEqual({ annotation: PREFETCH_LAYOUT_ANNOTATION, value: 'static', change: PREFETCH_CHANGE });
    expect(PREFETCH_LAYOUT_ANNOTATION).toBe('dev.prebuilt.prefetch');
  });

  it("the oci service reports each env's layout for lazily pulled layers only", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'prebuilt-prefetch-layout-'));
    try {
      await writeFile(join(dir, 'flow.prebuilt.prefetch'), '[env aaa]\n/opt/env/a.so\n[env bbb]\n/opt/env/b.so\n');
      const profile = join(dir, 'flow.prebuilt.prefetch');
      const lazy = createOciBuildService({ env: { METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION: 'estargz', METAFLOW_PREBUILT_OCI_PREFETCH: profile }, layerCacheDir: false });
      expect(lazy.imageLayout?.('aaa')?.value).toBe(prefetchLayoutValue({ mode: 'profile', paths: ['opt/env/a.so'] }));
      expect(lazy.imageLayout?.('bbb')?.value).toBe(prefetchLayoutValue({ mode: 'profile', paths: ['opt/env/b.so'] }));
      expect(lazy.imageLayout?.('ccc')?.value, 'an env the profile does not name').toBe('static');
      // Not lazily pulled: no prefetch order; the EROFS record instead (none for tar layers: an EROFS image is rebuilt).
      const plain = createOciBuildService({ env: { METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION: 'zstd', METAFLOW_PREBUILT_OCI_PREFETCH: profile }, layerCacheDir: false });
      expect(plain.imageLayout?.('aaa')).toEqual(erofsLayout(undefined));
      expect(plain.imageLayout?.('aaa')?.annotation).toBe(EROFS_LAYOUT_ANNOTATION);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
