import { describe, expect, it } from 'vitest';
import { tarLayersLayout, type BuildService, type ImageLayout } from '@prebuilt/core';
import { expectedImageLayout } from './expected-layout.js';

/** A build service factory that counts its calls (a plan must not create a service it need not ask). */
function serviceSource(extra: Partial<BuildService> = {}) {
  const created: string[] = [];
  const service = async (): Promise<BuildService> => {
    created.push('created');
    return { name: extra.name ?? 'docker', buildAndPush: async () => ({ ok: true, digest: 'sha256:0' }), ...extra };
  };
  return { created, service };
}

describe('the layout a deploy expects of present images', () => {
  it('a plan with a build service other than oci: tar layers, the service named, without creating it', async () => {
    for (const serviceName of ['docker', 'buildx', 'kaniko', 'codebuild', 'prebuilt-backend-acme']) {
      const { created, service } = serviceSource({ name: serviceName });
      const layout = expectedImageLayout({ serviceName, plan: true, service });
      expect(await layout('aaa')).toEqual(tarLayersLayout(`the ${serviceName} build service`));
      expect((await layout('bbb'))?.change).toBe(`built with EROFS layers; the ${serviceName} build service makes tar layers`);
      expect(created, serviceName).toEqual([]);
    }
  });

  it('a plan with oci asks the service (created once, by the deploy\'s factory)', async () => {
    const erofs: ImageLayout = { annotation: 'dev.prebuilt.erofs', value: 'application/vnd.erofs.layer.v1', change: 'erofs', reported: false };
    const { created, service } = serviceSource({ name: 'oci', imageLayout: () => erofs });
    const layout = expectedImageLayout({ serviceName: 'oci', plan: true, service });
    expect(await layout('aaa')).toBe(erofs);
    expect(created).toEqual(['created']);
  });

  it('a build asks the service it created: its own layout, or tar layers when it gives none', async () => {
    const own: ImageLayout = { annotation: 'acme.layout', value: 'v1', change: 'acme layout changed' };
    const plugin = serviceSource({ name: 'acme', imageLayout: () => own });
    expect(await expectedImageLayout({ serviceName: 'acme', plan: false, service: plugin.service })('aaa'), 'a third-party service keeps its own').toBe(own);
    const docker = serviceSource({ name: 'docker' });
    expect(await expectedImageLayout({ serviceName: 'docker', plan: false, service: docker.service })('aaa')).toEqual(tarLayersLayout('the docker build service'));
    const silent = serviceSource({ name: 'acme', imageLayout: () => undefined });
    expect(await expectedImageLayout({ serviceName: 'acme', plan: false, service: silent.service })('aaa'), 'a service that records none').toBeUndefined();
  });
});
