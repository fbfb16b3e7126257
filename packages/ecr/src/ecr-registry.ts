import type { ECRClient, ECRClientConfig } from '@aws-sdk/client-ecr';
import {
  AuthError,
  ConfigError,
  DEFAULT_REPOSITORY,
  PULL_ENV,
  RegistryClient,
  RegistryError,
  Secret,
  checkRepository,
  checkSignal,
  createLogger,
  dockerConfigCredentials,
  envTag,
  errorMessage,
  loadOptionalSetting,
  normalizeDockerConfigKey,
  parseHost,
  parseImageRef,
  pullConfigFromSettings,
  resolveBaseImage,
  type ImageExistence,
  type ImageRegistry,
  type PullConfig,
  type RegistryClientOptions,
  type RegistryCredentials,
} from '@prebuilt/core/backend';
import { awsError, describeAwsCredentialSource, loadEcrSdk, loadStsSdk } from './aws.js';

const debug = createLogger('ecr');

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

/** Refresh the ECR token this long before it expires (tokens live 12 hours). */
export const DEFAULT_TOKEN_REFRESH_MARGIN_MS = 15 * 60_000;

export interface EcrRegistryOptions {
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
  /** Retries and timeouts of registry requests (tests shorten them). */
  client?: Pick<RegistryClientOptions, 'retry' | 'timeoutMs'>;
  /** Environment to read settings from. Default `process.env`. */
  env?: Record<string, string | undefined>;
}

function flag(value: boolean | undefined, env: Record<string, string | undefined>, envVar: string, option: string, fallback: boolean): boolean {
  if (value !== undefined) return value;
  const raw = env[envVar];
  if (raw === undefined || raw === '') return fallback;
  if (/^(1|true|yes|on)$/i.test(raw)) return true;
  if (/^(0|false|no|off)$/i.test(raw)) return false;
  throw new ConfigError(`${envVar}='${raw}' is not a yes/no value.`, { setting: envVar, hint: `Set ${envVar} to 1 or 0 (or pass the option '${option}').` });
}

const ACCOUNT = /^\d{12}$/;
const REGION = /^[a-z]{2}(?:-[a-z]+)+-\d{1,2}$/;

/**
 * The `ecr` image registry: env images go to `<account>.dkr.ecr.<region>.amazonaws.com/<repository>`,
 * tagged `env-<envId>-<arch>`. The repository is created when missing (immutable tags and
 * scan-on-push configurable); push credentials come from GetAuthorizationToken and are cached
 * until shortly before they expire; the pull config is empty (IAM roles pull from ECR).
 */
export async function createEcrRegistry(options: EcrRegistryOptions = {}): Promise<ImageRegistry> {
  const env = options.env ?? process.env;
  const setting = (value: string | undefined, envVar: string, option: string): string | undefined =>
    loadOptionalSetting({ value, envVar, option, description: option, env });
  const credentialSource = describeAwsCredentialSource(options.profile ? { AWS_PROFILE: options.profile } : env, options.credentials !== undefined);

  const repository = checkRepository(setting(options.repository, ECR_ENV.repository, 'repository') ?? DEFAULT_REPOSITORY, ECR_ENV.repository, 'repository');
  const createRepository = flag(options.createRepository, env, ECR_ENV.createRepository, 'createRepository', true);
  const tagImmutability = flag(options.tagImmutability, env, ECR_ENV.tagImmutability, 'tagImmutability', true);
  const scanOnPush = flag(options.scanOnPush, env, ECR_ENV.scanOnPush, 'scanOnPush', false);
  const endpoint = setting(options.endpoint, ECR_ENV.endpoint, 'endpoint');
  if (endpoint !== undefined && !/^https?:\/\/[^/\s]+/i.test(endpoint)) {
    throw new ConfigError(`${ECR_ENV.endpoint}='${endpoint}' is not an http(s) URL.`, { setting: ECR_ENV.endpoint, hint: 'Give the full URL, e.g. https://api.ecr.us-east-1.amazonaws.com.' });
  }
  const hostSetting = setting(options.registryHost, ECR_ENV.registryHost, 'registryHost');
  const registryHostOverride = hostSetting === undefined ? undefined : normalizeDockerConfigKey(parseHost(hostSetting, ECR_ENV.registryHost, 'registryHost'));
  const batch = env[PULL_ENV.batchRepositoryCredentials];
  if (batch) {
    throw new ConfigError(`${PULL_ENV.batchRepositoryCredentials} is set, but the ecr registry needs no Batch repositoryCredentials: Batch pulls ECR images with the job's execution role.`, {
      setting: PULL_ENV.batchRepositoryCredentials,
      hint: `Unset ${PULL_ENV.batchRepositoryCredentials} (it is for private registries outside ECR), and give the execution role ecr:BatchGetImage and ecr:GetDownloadUrlForLayer.`,
    });
  }
  const pullConfig: PullConfig = pullConfigFromSettings({ ...(options.pullSecret ? { pullSecret: options.pullSecret } : {}) }, { [PULL_ENV.pullSecret]: env[PULL_ENV.pullSecret] });

  const sdk = await loadEcrSdk();
  const clientConfig: ECRClientConfig = {
    ...(endpoint ? { endpoint } : {}),
    ...(options.credentials ? { credentials: options.credentials } : {}),
    ...(options.profile ? { profile: options.profile } : {}),
  };

  // Region: explicit → our env var → AWS_REGION / AWS_DEFAULT_REGION → the SDK's config chain (profile files).
  let region = setting(options.region, ECR_ENV.region, 'region') ?? (env['AWS_REGION'] || env['AWS_DEFAULT_REGION'] || undefined);
  if (region === undefined) {
    try {
      region = await new sdk.ECRClient(clientConfig).config.region();
    } catch (error) {
      debug('no region from the AWS SDK config chain: %s', errorMessage(error));
    }
  }
  if (!region) {
    throw new ConfigError(`The ECR region is not set: neither the option 'region' nor ${ECR_ENV.region} is set, and AWS_REGION, AWS_DEFAULT_REGION and the AWS config files name none.`, {
      setting: ECR_ENV.region,
      hint: `Set ${ECR_ENV.region} (or AWS_REGION) to the registry's region, e.g. us-east-1, or pass the option 'region'.`,
    });
  }
  if (!REGION.test(region)) {
    throw new ConfigError(`'${region}' is not an AWS region.`, { setting: ECR_ENV.region, hint: `Set ${ECR_ENV.region} (or the option 'region') to a region such as us-east-1.` });
  }
  const ecr: ECRClient = new sdk.ECRClient({ ...clientConfig, region });

  // Account: explicit → our env var → STS GetCallerIdentity (needed for the registry host).
  let account = setting(options.account, ECR_ENV.account, 'account');
  if (account === undefined && registryHostOverride === undefined) {
    const sts = await loadStsSdk();
    const stsClient = new sts.STSClient({ region, ...(options.credentials ? { credentials: options.credentials } : {}), ...(options.profile ? { profile: options.profile } : {}) });
    try {
      account = (await stsClient.send(new sts.GetCallerIdentityCommand({}))).Account;
    } catch (error) {
      const cause = awsError(error, 'Looking up the AWS account (STS GetCallerIdentity)', { registry: 'ecr', credentialSource, permission: 'sts:GetCallerIdentity' });
      throw new ConfigError(`The ECR account is not set (option 'account' or ${ECR_ENV.account}) and could not be looked up: ${cause.message}`, {
        cause,
        setting: ECR_ENV.account,
        hint: `Set ${ECR_ENV.account} to the 12-digit account id (or pass the option 'account'). ${cause.hint ?? ''}`.trim(),
      });
    } finally {
      stsClient.destroy();
    }
    if (!account) throw new ConfigError(`STS GetCallerIdentity answered without an account id.`, { setting: ECR_ENV.account, hint: `Set ${ECR_ENV.account} (or the option 'account').` });
    debug('account %s from STS GetCallerIdentity (%s)', account, credentialSource);
  }
  if (account !== undefined && !ACCOUNT.test(account)) {
    throw new ConfigError(`'${account}' is not an AWS account id (12 digits).`, { setting: ECR_ENV.account, hint: `Set ${ECR_ENV.account} (or the option 'account') to the 12-digit id.` });
  }
  const host = registryHostOverride ?? `${account}.dkr.ecr.${region}.amazonaws.com${region.startsWith('cn-') ? '.cn' : ''}`;
  const base = `${host}/${repository}`;
  const registryId = account === undefined ? {} : { registryId: account };
  const failure = (error: unknown, what: string, permission: string) => awsError(error, what, { registry: host, credentialSource, permission });
  debug('ecr registry: %s (region %s)', base, region);

  // --- push token, cached until shortly before it expires -------------------------------------
  const margin = options.tokenRefreshMarginMs ?? DEFAULT_TOKEN_REFRESH_MARGIN_MS;
  let token: { credentials: RegistryCredentials; refreshAt: number } | undefined;
  let tokenFetch: Promise<RegistryCredentials> | undefined;
  const fetchToken = async (signal: AbortSignal | undefined): Promise<RegistryCredentials> => {
    let answer;
    try {
      answer = await ecr.send(new sdk.GetAuthorizationTokenCommand({}), signal ? { abortSignal: signal } : {});
    } catch (error) {
      checkSignal(signal);
      throw failure(error, `Getting a push token for ${host} (ECR GetAuthorizationToken)`, 'ecr:GetAuthorizationToken');
    }
    const data = answer.authorizationData?.[0];
    const decoded = data?.authorizationToken ? Buffer.from(data.authorizationToken, 'base64').toString('utf8') : '';
    const colon = decoded.indexOf(':');
    if (colon <= 0) throw new RegistryError(`ECR GetAuthorizationToken answered without a usable token for ${host}.`, { registry: host }, { hint: 'Try again; if it persists, check the ECR endpoint setting.' });
    const expiresAt = data?.expiresAt instanceof Date ? data.expiresAt.getTime() : Date.now() + 12 * 3600_000;
    const credentials: RegistryCredentials = {
      registry: host,
      username: decoded.slice(0, colon),
      password: new Secret(decoded.slice(colon + 1)),
      source: `ECR GetAuthorizationToken (AWS credentials: ${credentialSource}; expires ${new Date(expiresAt).toISOString()})`,
    };
    token = { credentials, refreshAt: Math.max(Date.now(), expiresAt - margin) };
    debug('push token for %s until %s', host, new Date(expiresAt).toISOString());
    return credentials;
  };
  const pushToken = async (signal: AbortSignal | undefined): Promise<RegistryCredentials> => {
    checkSignal(signal);
    if (token && Date.now() < token.refreshAt) return token.credentials;
    tokenFetch ??= fetchToken(signal).finally(() => (tokenFetch = undefined));
    return tokenFetch;
  };

  // --- registry client, renewed with each token (core's client keeps credentials for its lifetime)
  let client: { for: RegistryCredentials; client: RegistryClient } | undefined;
  const clientFor = (credentials: RegistryCredentials): RegistryClient => {
    if (client?.for !== credentials) {
      client = {
        for: credentials,
        client: new RegistryClient({
          credentials: (other, { signal }) =>
            normalizeDockerConfigKey(other) === host ? Promise.resolve(credentials) : dockerConfigCredentials(other, { env, ...(signal ? { signal } : {}) }),
          dockerConfig: false,
          ...options.client,
        }),
      };
    }
    return client.client;
  };

  let otherClient: RegistryClient | undefined;

  // --- repository, created once when missing ---------------------------------------------------
  let repositoryReady: Promise<void> | undefined;
  const ensureRepository = async (signal: AbortSignal | undefined): Promise<void> => {
    const send = signal ? { abortSignal: signal } : {};
    try {
      await ecr.send(new sdk.DescribeRepositoriesCommand({ ...registryId, repositoryNames: [repository] }), send);
      debug('repository %s exists', repository);
      return;
    } catch (error) {
      checkSignal(signal);
      if ((error as { name?: string }).name !== 'RepositoryNotFoundException') {
        throw failure(error, `Checking the ECR repository ${repository} (DescribeRepositories)`, 'ecr:DescribeRepositories');
      }
    }
    if (!createRepository) {
      throw new RegistryError(`The ECR repository ${repository} does not exist in ${host}, and creating it is turned off (${ECR_ENV.createRepository}=0).`, { registry: host, status: 404 }, {
        hint: `Create it (aws ecr create-repository --repository-name ${repository} --region ${region}), or allow prebuilt to (${ECR_ENV.createRepository}=1 and the permission ecr:CreateRepository).`,
      });
    }
    try {
      await ecr.send(
        new sdk.CreateRepositoryCommand({
          ...registryId,
          repositoryName: repository,
          imageTagMutability: tagImmutability ? 'IMMUTABLE' : 'MUTABLE',
          imageScanningConfiguration: { scanOnPush },
        }),
        send,
      );
      debug('created repository %s (tags %s, scan on push %s)', repository, tagImmutability ? 'immutable' : 'mutable', scanOnPush);
    } catch (error) {
      checkSignal(signal);
      if ((error as { name?: string }).name === 'RepositoryAlreadyExistsException') return;
      const typed = failure(error, `Creating the missing ECR repository ${repository} in ${host}`, 'ecr:CreateRepository');
      if (typed.code === 'auth' && /lacks the IAM permission/.test(typed.message)) {
        throw new AuthError(typed.message, { registry: host, source: credentialSource }, {
          cause: error,
          hint: `Grant ecr:CreateRepository on arn:aws:ecr:${region}:${account ?? '<account>'}:repository/${repository}, or create the repository once: aws ecr create-repository --repository-name ${repository} --region ${region}.`,
        });
      }
      throw typed;
    }
  };

  return {
    name: 'ecr',

    imageTag(input) {
      return envTag(base, input);
    },

    async pushCredentials(requestOptions = {}) {
      checkSignal(requestOptions.signal);
      repositoryReady ??= ensureRepository(requestOptions.signal).catch((error: unknown) => {
        repositoryReady = undefined;
        throw error;
      });
      await repositoryReady;
      return pushToken(requestOptions.signal);
    },

    async pullConfig() {
      return structuredClone(pullConfig);
    },

    async imageExists(pushTag, requestOptions = {}): Promise<ImageExistence> {
      const signal = requestOptions.signal;
      const registryClient = clientFor(await pushToken(signal));
      const head = await registryClient.headManifest(pushTag, signal ? { signal } : {});
      return head.exists ? { exists: true, digest: head.digest } : { exists: false };
    },

    async baseImageIdentity(ref, platform, requestOptions = {}) {
      const signal = requestOptions.signal;
      // A base image in this registry needs the ECR token; one elsewhere (Docker Hub, another
      // account's ECR) uses the Docker config and its credential helpers.
      let inThisRegistry = false;
      try {
        inThisRegistry = parseImageRef(ref).registry === host;
      } catch {
        // an invalid reference: resolveBaseImage reports it
      }
      const registryClient = inThisRegistry ? clientFor(await pushToken(signal)) : (otherClient ??= new RegistryClient({ dockerConfig: { env }, ...options.client }));
      return resolveBaseImage(registryClient, ref, platform, signal);
    },

    async close() {
      ecr.destroy();
    },
  };
}
