// The shared test services (scripts/test-services.sh, provided by test/global-setup.ts).
import { randomBytes } from 'node:crypto';
import { RegistryClient, type RegistryCredentials } from '@prebuilt/core/backend';
import { pinnedImage, testRegistryCredentials } from '@prebuilt/fixtures';
import { describeOrFailInCi, getServices, itOrFailInCi, missingFor, registerOrFailInCi, skipTitle, type TestServices } from '../../../../test/services.js';

export { describeOrFailInCi, getServices, itOrFailInCi, missingFor, registerOrFailInCi, skipTitle, type TestServices };

export const services: TestServices = getServices();

/** The test base image pinned by digest, or undefined when the services lack it. */
export function pinnedBase(): string | undefined {
  return services.baseImage ? pinnedImage(services.baseImage) : undefined;
}

/**
 * The test services' Docker daemons a pushed image is pulled and run on: the system's (graphdriver)
 * and Docker 26 with the containerd image store (its own pull and unpack); why one is missing.
 */
export function pullingDockers(): { name: string; host: string; missing: string | undefined }[] {
  return [
    { name: 'the Docker daemon', host: services.dockerHost ?? '', missing: missingFor(['registries', 'baseImage', 'docker']) },
    { name: 'Docker with the containerd image store', host: services.containerdStoreDocker?.host ?? '', missing: missingFor(['registries', 'baseImage', 'containerdStoreDocker']) },
  ];
}

export function uniqueRepo(prefix: string): string {
  return `prebuilt-test/oci-${prefix}-${randomBytes(4).toString('hex')}`;
}

export function credentialsFor(flavour: 'basic' | 'token'): RegistryCredentials {
  return testRegistryCredentials(services.registries![flavour]);
}

/** The digest the registry has under a tag, or undefined. */
export async function headDigest(tag: string, credentials?: RegistryCredentials): Promise<string | undefined> {
  const client = new RegistryClient({ dockerConfig: false, ...(credentials ? { credentials } : {}) });
  const head = await client.headManifest(tag);
  return head.exists ? head.digest : undefined;
}
