import type { DescribeImagesCommandOutput, ECRClient, ImageDetail } from '@aws-sdk/client-ecr';
import { ListingBound, RegistryError, checkSignal, createLogger, type StoredImage } from '@prebuilt/core/backend';
import { awsError, type EcrSdk } from './aws.js';

const debug = createLogger('ecr');

export interface EcrImagesInput {
  ecr: ECRClient;
  sdk: EcrSdk;
  host: string;
  /** The registry id (account) to name in calls; undefined: the caller's own. */
  account: string | undefined;
  repository: string;
  credentialSource: string;
}

const isMissingRepository = (error: unknown): boolean => (error as { name?: string })?.name === 'RepositoryNotFoundException';

function storedImage(detail: ImageDetail & { imageDigest: string }): StoredImage {
  return {
    digest: detail.imageDigest,
    tags: [...(detail.imageTags ?? [])],
    ...(detail.imageManifestMediaType ? { mediaType: detail.imageManifestMediaType } : {}),
    ...(detail.imagePushedAt ? { pushedAt: detail.imagePushedAt } : {}),
    ...(detail.imageSizeInBytes === undefined ? {} : { size: detail.imageSizeInBytes }),
  };
}

/**
 * Every image of the repository, from ECR DescribeImages (page by page, nextToken): digest, tags,
 * manifest media type, push time and size as ECR records them. A repository that does not exist
 * (yet) holds no images. Needs the IAM permission ecr:DescribeImages.
 */
export async function listEcrImages(input: EcrImagesInput, signal: AbortSignal | undefined): Promise<StoredImage[]> {
  const { ecr, sdk, host, account, repository, credentialSource } = input;
  const images: StoredImage[] = [];
  // An API (the endpoint the setting names, a proxy) naming a page it already gave, or pages without end, would be asked forever.
  const bound = new ListingBound(`ECR DescribeImages listed the images of ${host}/${repository}`, host, {
    hint: 'ECR (or the endpoint METAFLOW_PREBUILT_ECR_ENDPOINT names) may be having trouble: try again later, or run with --verbose for details.',
  });
  let nextToken: string | undefined;
  do {
    checkSignal(signal);
    bound.page(nextToken === undefined ? '' : `nextToken ${nextToken}`);
    let page: DescribeImagesCommandOutput;
    try {
      const command = new sdk.DescribeImagesCommand({ ...(account ? { registryId: account } : {}), repositoryName: repository, maxResults: 1000, ...(nextToken ? { nextToken } : {}) });
      page = await ecr.send(command, signal ? { abortSignal: signal } : {});
    } catch (error) {
      checkSignal(signal);
      if (isMissingRepository(error)) return [];
      throw awsError(error, `Listing the images of ${host}/${repository} (ECR DescribeImages)`, { registry: host, credentialSource, permission: 'ecr:DescribeImages' });
    }
    for (const detail of page.imageDetails ?? []) if (detail.imageDigest) images.push(storedImage({ ...detail, imageDigest: detail.imageDigest }));
    nextToken = page.nextToken;
  } while (nextToken);
  debug('%s/%s holds %d images', host, repository, images.length);
  return images;
}

/** What to do about a BatchDeleteImage failure code. */
function failureHint(code: string | undefined): string {
  if (code === 'ImageReferencedByManifestList') return 'An image index in the repository still lists this image: delete the index first (its platform images go with it).';
  if (code === 'KmsError') return 'ECR could not use the repository\'s KMS key: check that the identity may use it (kms:Decrypt).';
  return 'Check the digest and the repository, and try again; run with --verbose for details.';
}

/**
 * Deletes one image (manifest or index) by digest with ECR BatchDeleteImage; its tags go with it.
 * An image (or repository) that is already gone is no error; any other per-image failure ECR
 * reports is a RegistryError with ECR's code and reason. Needs the IAM permission ecr:BatchDeleteImage.
 */
export async function deleteEcrImage(input: EcrImagesInput, digest: string, signal: AbortSignal | undefined): Promise<void> {
  const { ecr, sdk, host, account, repository, credentialSource } = input;
  checkSignal(signal);
  let failures: { failureCode?: string; failureReason?: string }[];
  try {
    const command = new sdk.BatchDeleteImageCommand({ ...(account ? { registryId: account } : {}), repositoryName: repository, imageIds: [{ imageDigest: digest }] });
    failures = (await ecr.send(command, signal ? { abortSignal: signal } : {})).failures ?? [];
  } catch (error) {
    checkSignal(signal);
    if (isMissingRepository(error)) return;
    throw awsError(error, `Deleting ${digest} from ${host}/${repository} (ECR BatchDeleteImage)`, { registry: host, credentialSource, permission: 'ecr:BatchDeleteImage' });
  }
  for (const failure of failures) {
    if (failure.failureCode === 'ImageNotFound') {
      debug('%s was already gone from %s/%s', digest, host, repository);
      continue;
    }
    throw new RegistryError(`ECR refused to delete ${digest} from ${host}/${repository}: ${failure.failureCode ?? 'unknown failure'}: ${failure.failureReason ?? 'no reason given'}`, { registry: host }, {
      hint: failureHint(failure.failureCode),
    });
  }
  debug('deleted %s from %s/%s', digest, host, repository);
}
