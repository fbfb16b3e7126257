import type { DeployImage } from '../contracts.js';
import type { LockedEnv, LockedPackage } from '../env-model.js';
import type { LockEntry } from '../lock-file.js';
import { mapLimit } from '../deploy/pool.js';
import { createLogger } from '../logger.js';
import { parseImageRef } from '../registry/image-ref.js';
import type { RegistryClient, RequestOptions } from '../registry/registry-client.js';
import { findImageSboms, pushImageSbom, type ImageSbomRef } from './sbom-artifact.js';
import { createSbom } from './spdx-document.js';

const log = createLogger('sbom');

export interface DeploySbomsInput {
  /** The deploy's images (platform images and indexes); those without a digest are skipped. */
  images: readonly DeployImage[];
  /** step → its locked env per platform (the lock the deploy used). */
  steps: Readonly<Record<string, readonly LockEntry[] | null>>;
  /** A client with push access to the images' repositories. */
  client: RegistryClient;
  /** The declared licences of packages (sha256 → licence); called only for an image that lacks its SBOM. */
  licenses?: (packages: readonly LockedPackage[]) => Promise<ReadonlyMap<string, string | undefined>>;
  /** `creationInfo.created` (the project's SOURCE_DATE_EPOCH). */
  createdEpoch?: number;
  onSbom?: (image: DeployImage, ref: ImageSbomRef) => void;
}

/** The locked env(s) an image holds: its platform's, or every platform's for an index. */
export function imageEnvs(image: DeployImage, steps: DeploySbomsInput['steps']): LockedEnv[] {
  const entries = steps[image.steps[0] ?? ''] ?? [];
  if (image.platforms) return image.platforms.map((member) => entries.find((entry) => entry.platform === member.platform)).filter((entry) => entry !== undefined);
  return entries.filter((entry) => entry.platform === image.platform);
}

/** How many images' SBOMs are looked up (and pushed) at once. */
const SBOM_CONCURRENCY = 4;

/**
 * Gives every pushed image (and image index) of a deploy its SBOM, after the deploy: an image that
 * already has one (one referrers lookup) keeps it; the others get one made from the lock and pushed
 * as an artifact referring to the image. envId → the SBOM. The document is named after the envId,
 * not the registry, so the same lock (base, recipe) gives the same SBOM bytes wherever it is pushed.
 * Up to SBOM_CONCURRENCY images at once, so a no-op redeploy pays one round of lookups, not one per image.
 */
export async function pushDeploySboms(input: DeploySbomsInput, options: RequestOptions = {}): Promise<Map<string, ImageSbomRef>> {
  const images = input.images.filter((image) => image.digest && (image.status === 'built' || image.status === 'present'));
  const found = await mapLimit(images, SBOM_CONCURRENCY, async (image) => {
    const sbom = await imageSbom(input, image, options);
    log('SBOM of %s: %s (%s)', image.pullTag, sbom.manifest, sbom.via);
    input.onSbom?.(image, sbom);
    return sbom;
  });
  return new Map(images.map((image, i) => [image.envId, found[i]!]));
}

/** The SBOM an image has, or the one made from the lock and pushed now. */
async function imageSbom(input: DeploySbomsInput, image: DeployImage, options: RequestOptions): Promise<ImageSbomRef> {
  const ref = `${image.tag}@${image.digest}`;
  const existing = (await findImageSboms(input.client, ref, { ...options, digest: image.digest })).at(-1);
  if (existing) {
    const artifact = await input.client.getManifest({ ...parseImageRef(image.tag), reference: existing.digest }, options);
    return { manifest: existing.digest, document: 'layers' in artifact.manifest ? artifact.manifest.layers[0]?.digest ?? '' : '', via: 'present' };
  }
  const envs = imageEnvs(image, input.steps);
  const licenses = input.licenses ? await input.licenses(envs.flatMap((env) => env.packages)) : undefined;
  const document = createSbom({ name: `env-${image.envId}`, envs, ...(licenses ? { licenses } : {}), ...(input.createdEpoch === undefined ? {} : { createdEpoch: input.createdEpoch }) });
  return pushImageSbom(input.client, ref, document, options);
}
