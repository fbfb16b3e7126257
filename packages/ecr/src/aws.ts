import {
  AuthError,
  LoginRequiredError,
  ConfigError,
  EnvironmentError,
  RegistryError,
  errorMessage,
  type PrebuiltError,
} from '@prebuilt/core/backend';

export type EcrSdk = typeof import('@aws-sdk/client-ecr');
type StsSdk = typeof import('@aws-sdk/client-sts');

function isMissingModule(error: unknown, name: string): boolean {
  const e = error as NodeJS.ErrnoException;
  return (e?.code === 'ERR_MODULE_NOT_FOUND' || e?.code === 'MODULE_NOT_FOUND') && String(e.message).includes(name);
}

/** Imports an AWS SDK package; a missing one is an EnvironmentError with the `npm i` line. */
export async function importAwsSdk<T>(name: string, importer: () => Promise<T>): Promise<T> {
  try {
    return await importer();
  } catch (error) {
    if (isMissingModule(error, name)) {
      throw new EnvironmentError(`The ecr image registry needs ${name}, which is not installed.`, {
        cause: error,
        hint: `Install it beside @prebuilt/ecr: npm i ${name}@^3`,
      });
    }
    throw new EnvironmentError(`Loading ${name} failed: ${errorMessage(error)}`, { cause: error, hint: `Reinstall it: npm i ${name}@^3` });
  }
}

/** The AWS SDK's ECR client, imported on first use (it is large). */
export function loadEcrSdk(): Promise<EcrSdk> {
  return importAwsSdk('@aws-sdk/client-ecr', () => import('@aws-sdk/client-ecr'));
}

/** The AWS SDK's STS client, imported only when the account must be looked up. */
export function loadStsSdk(): Promise<StsSdk> {
  return importAwsSdk('@aws-sdk/client-sts', () => import('@aws-sdk/client-sts'));
}

/** Where the AWS SDK takes its credentials from, in words (never a secret). */
export function describeAwsCredentialSource(env: Record<string, string | undefined>, explicit: boolean): string {
  if (explicit) return "the option 'credentials'";
  if (env['AWS_ACCESS_KEY_ID']) return `env AWS_ACCESS_KEY_ID (${env['AWS_SESSION_TOKEN'] ? 'with' : 'without'} AWS_SESSION_TOKEN)`;
  if (env['AWS_PROFILE']) return `AWS profile '${env['AWS_PROFILE']}' (AWS_PROFILE)`;
  if (env['AWS_WEB_IDENTITY_TOKEN_FILE']) return 'web identity token (AWS_WEB_IDENTITY_TOKEN_FILE)';
  if (env['AWS_CONTAINER_CREDENTIALS_RELATIVE_URI'] || env['AWS_CONTAINER_CREDENTIALS_FULL_URI']) return 'the container credentials endpoint (ECS/EKS)';
  return 'the AWS SDK default credential chain (default profile in ~/.aws, SSO, or an instance role)';
}

const REJECTED = new Set([
  'UnrecognizedClientException',
  'InvalidSignatureException',
  'SignatureDoesNotMatch',
  'InvalidClientTokenId',
  'ExpiredTokenException',
  'ExpiredToken',
  'RequestExpired',
]);

/**
 * A typed prebuilt error for an AWS SDK failure: missing or rejected credentials name their
 * source; a denied action names the IAM permission it needs.
 */
export function awsError(error: unknown, what: string, context: { registry: string; credentialSource: string; permission: string }): PrebuiltError {
  const name = (error as { name?: string })?.name ?? '';
  const message = errorMessage(error);
  if (name === 'CredentialsProviderError' || /could not load credentials/i.test(message)) {
    return new LoginRequiredError(`${what} failed: no AWS credentials were found (${context.credentialSource}).`, { registry: context.registry, source: context.credentialSource }, {
      cause: error,
      hint: 'Configure AWS credentials (aws configure, AWS_PROFILE, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY), or run where an IAM role is available.',
    });
  }
  if (REJECTED.has(name)) {
    const expired = /expired/i.test(name) || /expired/i.test(message);
    return new AuthError(`${what} failed: AWS ${expired ? 'says the credentials have expired' : 'rejected the credentials'} from ${context.credentialSource} (${name}).`, {
      registry: context.registry,
      source: context.credentialSource,
    }, { cause: error, hint: expired ? 'Refresh them (aws sso login, or new session credentials) and try again.' : 'Check the access key and secret (aws sts get-caller-identity shows whom they belong to).' });
  }
  if (name === 'AccessDeniedException' || name === 'AccessDenied' || /not authorized to perform/i.test(message)) {
    return new AuthError(`${what} was denied: the AWS identity from ${context.credentialSource} lacks the IAM permission ${context.permission}.`, {
      registry: context.registry,
      source: context.credentialSource,
    }, { cause: error, hint: `Grant ${context.permission} to that identity (or use one that has it). AWS said: ${message}` });
  }
  if (/region is missing/i.test(message)) {
    return new ConfigError(`${what} failed: no AWS region is configured.`, { cause: error, setting: 'METAFLOW_PREBUILT_ECR_REGION', hint: 'Set METAFLOW_PREBUILT_ECR_REGION or AWS_REGION.' });
  }
  return new RegistryError(`${what} failed: ${name ? `${name}: ` : ''}${message}`, { registry: context.registry }, {
    cause: error,
    hint: 'Check the AWS region and endpoint settings and your network; run with --verbose for details.',
  });
}
