import type { ECRClientConfig } from '@aws-sdk/client-ecr';
import { ConfigError, createLogger, errorMessage, orOption } from '@prebuilt/core/backend';
import { awsError, loadStsSdk, type EcrSdk } from './aws.js';
import { ACCOUNT, ECR_ENV, REGION, ecrSetting, type EcrRegistryOptions } from './ecr-settings.js';

const debug = createLogger('ecr');
type Env = Record<string, string | undefined>;

/** The AWS SDK client configuration the options give (endpoint, credentials, profile). */
export function ecrClientConfig(options: EcrRegistryOptions, endpoint: string | undefined): ECRClientConfig {
  return {
    ...(endpoint ? { endpoint } : {}),
    ...(options.credentials ? { credentials: options.credentials } : {}),
    ...(options.profile ? { profile: options.profile } : {}),
  };
}

/** Region: explicit → our env var → AWS_REGION / AWS_DEFAULT_REGION → the SDK's config chain (profile files). */
export async function ecrRegion(options: EcrRegistryOptions, env: Env, sdk: EcrSdk, clientConfig: ECRClientConfig): Promise<string> {
  let region = ecrSetting(options.region, ECR_ENV.region, 'region', env) ?? (env['AWS_REGION'] || env['AWS_DEFAULT_REGION'] || undefined);
  if (region === undefined) {
    try {
      region = await new sdk.ECRClient(clientConfig).config.region();
    } catch (error) {
      debug('no region from the AWS SDK config chain: %s', errorMessage(error));
    }
  }
  if (!region) {
    throw new ConfigError(`The ECR region is not set: ${ECR_ENV.region}${orOption('region')} is unset, and AWS_REGION, AWS_DEFAULT_REGION and the AWS config files name none.`, {
      setting: ECR_ENV.region,
      hint: `Set ${ECR_ENV.region}${orOption('region')} or AWS_REGION to the registry's region, e.g. us-east-1.`,
    });
  }
  if (!REGION.test(region)) {
    throw new ConfigError(`'${region}' is not an AWS region.`, { setting: ECR_ENV.region, hint: `Set ${ECR_ENV.region}${orOption('region')} to a region such as us-east-1.` });
  }
  return region;
}

/** Account: explicit → our env var → STS GetCallerIdentity (only when the registry host is not given). */
export async function ecrAccount(input: { options: EcrRegistryOptions; env: Env; region: string; needed: boolean; credentialSource: string }): Promise<string | undefined> {
  const { options, env, region, credentialSource } = input;
  let account = ecrSetting(options.account, ECR_ENV.account, 'account', env);
  if (account === undefined && input.needed) {
    const sts = await loadStsSdk();
    const stsClient = new sts.STSClient({ region, ...(options.credentials ? { credentials: options.credentials } : {}), ...(options.profile ? { profile: options.profile } : {}) });
    try {
      account = (await stsClient.send(new sts.GetCallerIdentityCommand({}))).Account;
    } catch (error) {
      const cause = awsError(error, 'Looking up the AWS account (STS GetCallerIdentity)', { registry: 'ecr', credentialSource, permission: 'sts:GetCallerIdentity' });
      throw new ConfigError(`The ECR account is not set: ${ECR_ENV.account}${orOption('account')} is unset and it could not be looked up: ${cause.message}`, {
        cause,
        setting: ECR_ENV.account,
        hint: `Set ${ECR_ENV.account}${orOption('account')} to the 12-digit account id. ${cause.hint ?? ''}`.trim(),
      });
    } finally {
      stsClient.destroy();
    }
    if (!account) throw new ConfigError(`STS GetCallerIdentity answered without an account id.`, { setting: ECR_ENV.account, hint: `Set ${ECR_ENV.account}${orOption('account')}.` });
    debug('account %s from STS GetCallerIdentity (%s)', account, credentialSource);
  }
  if (account !== undefined && !ACCOUNT.test(account)) {
    throw new ConfigError(`'${account}' is not an AWS account id (12 digits).`, { setting: ECR_ENV.account, hint: `Set ${ECR_ENV.account}${orOption('account')} to the 12-digit id.` });
  }
  return account;
}
