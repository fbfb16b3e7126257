import type { ECRClientConfig } from '@aws-sdk/client-ecr';
import {
  ConfigError,
  DEFAULT_REPOSITORY,
  PULL_ENV,
  checkRepository,
  loadBooleanSetting,
  loadOptionalSetting,
  normalizeDockerConfigKey,
  parseHost,
  pullConfigFromSettings,
  type PullConfig,
  type ImageRegistryOptions,
} from '@prebuilt/core/backend';

export const ECR_ENV = {
  account: 'METAFLOW_PREBUILT_ECR_ACCOUNT',
  region: 'METAFLOW_PREBUILT_ECR_REGION',
  repository: 'METAFLOW_PREBUILT_IMAGE_NAMESPACE',
  createRepository: 'METAFLOW_PREBUILT_ECR_CREATE_REPOSITORY',
  tagImmutability: 'METAFLOW_PREBUILT_ECR_TAG_IMMUTABILITY',
  scanOnPush: 'METAFLOW_PREBUILT_ECR_SCAN_ON_PUSH',
  endpoint: 'METAFLOW_PREBUILT_ECR_ENDPOINT',
  registryHost: 'METAFLOW_PREBUILT_ECR_REGISTRY_HOST',
  pullSecret: PULL_ENV.pullSecret,
} as const;

export interface EcrRegistryOptions extends ImageRegistryOptions {
  /** AWS account id (12 digits). Env `METAFLOW_PREBUILT_ECR_ACCOUNT`; default: STS GetCallerIdentity. */
  account?: string;
  /** AWS region. Env `METAFLOW_PREBUILT_ECR_REGION`, then AWS_REGION / AWS_DEFAULT_REGION, then the AWS SDK's config chain. */
  region?: string;
  /** Repository of the env images. Env `METAFLOW_PREBUILT_IMAGE_NAMESPACE`; default `metaflow-prebuilt`. */
  repository?: string;
  /** Create the repository when it is missing. Env `METAFLOW_PREBUILT_ECR_CREATE_REPOSITORY`; default true. */
  createRepository?: boolean;
  /** A created repository has immutable tags. Env `METAFLOW_PREBUILT_ECR_TAG_IMMUTABILITY`; default true. */
  tagImmutability?: boolean;
  /** A created repository scans images on push. Env `METAFLOW_PREBUILT_ECR_SCAN_ON_PUSH`; default false. */
  scanOnPush?: boolean;
  /** ECR API endpoint (VPC endpoint, or a local fake). Env `METAFLOW_PREBUILT_ECR_ENDPOINT`. */
  endpoint?: string;
  /** Registry host instead of `<account>.dkr.ecr.<region>.amazonaws.com`. Env `METAFLOW_PREBUILT_ECR_REGISTRY_HOST`. */
  registryHost?: string;
  /** Kubernetes pull secret to name in the pull config (outside EKS). Env `METAFLOW_PREBUILT_PULL_SECRET`. */
  pullSecret?: string;
  /** AWS credentials or a credential provider, instead of the SDK's default chain. */
  credentials?: ECRClientConfig['credentials'];
  /** AWS profile to use instead of AWS_PROFILE / default. */
  profile?: string;
  /** Refresh the cached push token this long before it expires. Default 15 minutes. */
  tokenRefreshMarginMs?: number;
}

/** The settings read without AWS calls. */
export interface EcrSettings {
  repository: string;
  createRepository: boolean;
  tagImmutability: boolean;
  scanOnPush: boolean;
  endpoint: string | undefined;
  registryHost: string | undefined;
  pullConfig: PullConfig;
}

type Env = Record<string, string | undefined>;

export const ACCOUNT = /^\d{12}$/;
export const REGION = /^[a-z]{2}(?:-[a-z]+)+-\d{1,2}$/;

export function ecrSetting(value: string | undefined, envVar: string, option: string, env: Env): string | undefined {
  return loadOptionalSetting({ value, envVar, option, description: option, env });
}

/** Reads and checks every setting that needs no AWS call. */
export function ecrSettings(options: EcrRegistryOptions, env: Env): EcrSettings {
  const flag = (value: boolean | undefined, envVar: string, option: string, fallback: boolean) => loadBooleanSetting({ value, envVar, option, default: fallback, env });
  const repository = checkRepository(ecrSetting(options.repository, ECR_ENV.repository, 'repository', env) ?? DEFAULT_REPOSITORY, ECR_ENV.repository, 'repository');
  const createRepository = flag(options.createRepository, ECR_ENV.createRepository, 'createRepository', true);
  const tagImmutability = flag(options.tagImmutability, ECR_ENV.tagImmutability, 'tagImmutability', true);
  const scanOnPush = flag(options.scanOnPush, ECR_ENV.scanOnPush, 'scanOnPush', false);
  const endpoint = ecrSetting(options.endpoint, ECR_ENV.endpoint, 'endpoint', env);
  if (endpoint !== undefined && !/^https?:\/\/[^/\s]+/i.test(endpoint)) {
    throw new ConfigError(`${ECR_ENV.endpoint}='${endpoint}' is not an http(s) URL.`, { setting: ECR_ENV.endpoint, hint: 'Give the full URL, e.g. https://api.ecr.us-east-1.amazonaws.com.' });
  }
  const hostSetting = ecrSetting(options.registryHost, ECR_ENV.registryHost, 'registryHost', env);
  const registryHost = hostSetting === undefined ? undefined : normalizeDockerConfigKey(parseHost(hostSetting, ECR_ENV.registryHost, 'registryHost'));
  if (env[PULL_ENV.batchRepositoryCredentials]) {
    throw new ConfigError(`${PULL_ENV.batchRepositoryCredentials} is set, but the ecr registry needs no Batch repositoryCredentials: Batch pulls ECR images with the job's execution role.`, {
      setting: PULL_ENV.batchRepositoryCredentials,
      hint: `Unset ${PULL_ENV.batchRepositoryCredentials} (it is for private registries outside ECR), and give the execution role ecr:BatchGetImage and ecr:GetDownloadUrlForLayer.`,
    });
  }
  const pullConfig = pullConfigFromSettings({ ...(options.pullSecret ? { pullSecret: options.pullSecret } : {}) }, { [PULL_ENV.pullSecret]: env[PULL_ENV.pullSecret] });
  return { repository, createRepository, tagImmutability, scanOnPush, endpoint, registryHost, pullConfig };
}

/** The ECR registry host of an account and region (`.amazonaws.com.cn` in China). */
export function ecrHost(account: string | undefined, region: string): string {
  return `${account}.dkr.ecr.${region}.amazonaws.com${region.startsWith('cn-') ? '.cn' : ''}`;
}
