import { createLogger, createOciRegistry, type ImageRegistry } from '@prebuilt/core/backend';
import { describeAwsCredentialSource, loadEcrSdk } from './aws.js';
import { ecrAccount, ecrClientConfig, ecrRegion } from './ecr-location.js';
import { deleteEcrImage, listEcrImages } from './ecr-images.js';
import { ensureEcrRepository } from './ecr-repository.js';
import { ecrHost, ecrSettings, type EcrRegistryOptions } from './ecr-settings.js';
import { DEFAULT_TOKEN_REFRESH_MARGIN_MS, ecrTokenSource } from './ecr-token.js';

export { ECR_ENV, type EcrRegistryOptions } from './ecr-settings.js';
export { DEFAULT_TOKEN_REFRESH_MARGIN_MS } from './ecr-token.js';

const debug = createLogger('ecr');

/**
 * The `ecr` image registry: env images go to `<account>.dkr.ecr.<region>.amazonaws.com/<repository>`,
 * tagged `env-<envId>-<arch>`. The repository is created when missing (immutable tags and
 * scan-on-push configurable); push credentials come from GetAuthorizationToken and are cached
 * until shortly before they expire; the pull config is empty (IAM roles pull from ECR). For
 * `prebuilt gc`, images are listed with DescribeImages and deleted with BatchDeleteImage.
 */
export async function createEcrRegistry(options: EcrRegistryOptions = {}): Promise<ImageRegistry> {
  const env = options.env ?? process.env;
  const credentialSource = describeAwsCredentialSource(options.profile ? { AWS_PROFILE: options.profile } : env, options.credentials !== undefined);
  const settings = ecrSettings(options, env);
  const sdk = await loadEcrSdk();
  const clientConfig = ecrClientConfig(options, settings.endpoint);
  const region = await ecrRegion(options, env, sdk, clientConfig);
  const ecr = new sdk.ECRClient({ ...clientConfig, region });
  const account = await ecrAccount({ options, env, region, needed: settings.registryHost === undefined, credentialSource });
  const host = settings.registryHost ?? ecrHost(account, region);
  debug('ecr registry: %s/%s (region %s)', host, settings.repository, region);

  const marginMs = options.tokenRefreshMarginMs ?? DEFAULT_TOKEN_REFRESH_MARGIN_MS;
  const images = { ecr, sdk, host, account, repository: settings.repository, credentialSource };
  return createOciRegistry({
    name: 'ecr',
    host,
    repository: settings.repository,
    credentials: ecrTokenSource({ ecr, sdk, host, credentialSource, marginMs }),
    env,
    ...(options.client ? { client: options.client } : {}),
    pullConfig: settings.pullConfig,
    prepare: (signal) => ensureEcrRepository({ ecr, sdk, host, region, account, credentialSource, settings }, signal),
    listImages: (listOptions = {}) => listEcrImages(images, listOptions.signal),
    deleteImage: (digest, deleteOptions = {}) => deleteEcrImage(images, digest, deleteOptions.signal),
    close: async () => ecr.destroy(),
  });
}
