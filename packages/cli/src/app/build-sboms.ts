import { loadBooleanSetting, pushDeploySboms, registryClientFor, sourceDateEpoch, type DeployImage, type ImageMapSbom, type ImageSbomRef, type LockedPackage } from '@prebuilt/core';
import type { AppScope } from './app-scope.js';
import { createSelectedBackend } from './backends.js';
import type { DeployFlowResult } from './deploy-flow.js';

const SETTING = 'METAFLOW_PREBUILT_SBOM';

/** METAFLOW_PREBUILT_SBOM: on (default) pushes an SBOM with every image; off skips it. */
export function sbomsEnabled(env: Record<string, string | undefined>): boolean {
  return loadBooleanSetting({ envVar: SETTING, description: 'the SBOM step of build', default: true, meaning: { on: 'push an SBOM with every image, the default', off: 'push none' }, env });
}

/**
 * The SBOM step of `prebuilt build`, run after deploy() returns (beside the deploy, not inside it):
 * every image and index the deploy pushed or found gets its SBOM unless it has one; licences come
 * from the package files through the package cache. envId → its SBOM.
 */
export async function pushBuildSboms(result: DeployFlowResult, context: AppScope, onSbom?: (image: DeployImage, ref: ImageSbomRef) => void): Promise<Map<string, ImageSbomRef>> {
  if (!sbomsEnabled(context.env)) return new Map();
  const { backend: registry } = await createSelectedBackend('image-registry', context);
  const client = await registryClientFor(registry, { env: context.env, signal: context.signal });
  // The licences are read from the package files only for an SBOM to push: @prebuilt/conda (and
  // its package cache) is loaded then, never when every image already has its SBOM.
  type Licenses = (packages: readonly LockedPackage[]) => Promise<ReadonlyMap<string, string | undefined>>;
  let licensesFrom: Promise<Licenses> | undefined;
  const licenses: Licenses = async (packages) => {
    licensesFrom ??= import('@prebuilt/conda').then(({ lockedLicenses, PackageCache }) => {
      const cache = new PackageCache({ env: context.env });
      return (locked) => lockedLicenses(locked, cache, { signal: context.signal });
    });
    return (await licensesFrom)(packages);
  };
  return pushDeploySboms(
    {
      images: result.images,
      steps: result.lock.steps,
      client,
      licenses,
      createdEpoch: sourceDateEpoch(context.env),
      ...(onSbom ? { onSbom } : {}),
    },
    { signal: context.signal },
  );
}

/** What `build --json` says of an image's SBOM. */
export function sbomJson(ref: ImageSbomRef): ImageMapSbom {
  return { digest: ref.manifest, documentDigest: ref.document };
}

/** The image map's images, each with its SBOM (and each platform's of an index) when one was pushed or found. */
export function imagesWithSboms(result: DeployFlowResult, sboms: ReadonlyMap<string, ImageSbomRef>): DeployFlowResult['imageMap']['images'] {
  if (sboms.size === 0) return result.imageMap.images;
  const images: DeployFlowResult['imageMap']['images'] = {};
  for (const [key, image] of Object.entries(result.imageMap.images)) {
    const sbom = sboms.get(key);
    const platforms = image.platforms
      ? Object.fromEntries(Object.entries(image.platforms).map(([platform, member]) => [platform, { ...member, ...(sboms.has(member.envId) ? { sbom: sbomJson(sboms.get(member.envId)!) } : {}) }]))
      : undefined;
    images[key] = { ...image, ...(platforms ? { platforms } : {}), ...(sbom ? { sbom: sbomJson(sbom) } : {}) };
  }
  return images;
}
