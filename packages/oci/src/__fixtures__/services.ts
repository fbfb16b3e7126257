// The shared test services (scripts/test-services.sh, provided by test/global-setup.ts).
import { randomBytes } from 'node:crypto';
import { RegistryClient, Secret, type RegistryCredentials } from '@prebuilt/core/backend';
import { getServices, missingFor, type TestServices } from '../../../../test/services.js';

export { getServices, missingFor, type TestServices };

export const services: TestServices = getServices();

/** The test base image pinned by digest, or undefined when the services lack it. */
export function pinnedBase(): string | undefined {
  const base = services.baseImage;
  return base ? `${base.ref.replace(/:[^:/]+$/, '')}@${base.digest}` : undefined;
}

export function uniqueRepo(prefix: string): string {
  return `prebuilt-test/oci-${prefix}-${randomBytes(4).toString('hex')}`;
}

export function credentialsFor(flavour: 'basic' | 'token'): RegistryCredentials {
  const r = services.registries![flavour];
  return { registry: r.host, username: r.username, password: new Secret(r.password), source: 'test services' };
}

/** The digest the registry has under a tag, or undefined. */
export async function headDigest(tag: string, credentials?: RegistryCredentials): Promise<string | undefined> {
  const client = new RegistryClient({ dockerConfig: false, ...(credentials ? { credentials } : {}) });
  const head = await client.headManifest(tag);
  return head.exists ? head.digest : undefined;
}
