import { describe, expect, it } from 'vitest';
import { beforeContextFix } from './image-store.js';

describe('beforeContextFix (BuildKit of the containerd image store reads an uploaded context from Docker Engine 27.5 on)', () => {
  it('is true before 27.5, Debian and release-candidate suffixes included', () => {
    for (const version of ['20.10.24+dfsg1', '26.1.5+dfsg1', '27.4.1', '27.0.0-rc.1']) expect(beforeContextFix(version), version).toBe(true);
  });

  it('is false from 27.5 on, and for a version it cannot read (a development build: let it build)', () => {
    for (const version of ['27.5.0', '27.10.0', '28.0.4', '29.1.2', 'dev', '', undefined]) expect(beforeContextFix(version), String(version)).toBe(false);
  });
});
