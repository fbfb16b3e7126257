import type { ECRClient } from '@aws-sdk/client-ecr';
import { AuthError, RegistryError, checkSignal, createLogger } from '@prebuilt/core/backend';
import { awsError, type EcrSdk } from './aws.js';
import { ECR_ENV, type EcrSettings } from './ecr-settings.js';

const debug = createLogger('ecr');

export interface EcrRepositoryInput {
  ecr: ECRClient;
  sdk: EcrSdk;
  host: string;
  region: string;
  account: string | undefined;
  credentialSource: string;
  settings: Pick<EcrSettings, 'repository' | 'createRepository' | 'tagImmutability' | 'scanOnPush'>;
}

/** Makes sure the repository exists: DescribeRepositories, then CreateRepository when missing (and allowed). */
export async function ensureEcrRepository(input: EcrRepositoryInput, signal: AbortSignal | undefined): Promise<void> {
  const { ecr, sdk, host, region, account, credentialSource } = input;
  const { repository, createRepository, tagImmutability, scanOnPush } = input.settings;
  const registryId = account === undefined ? {} : { registryId: account };
  const failure = (error: unknown, what: string, permission: string) => awsError(error, what, { registry: host, credentialSource, permission });
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
    const imageTagMutability = tagImmutability ? 'IMMUTABLE' : 'MUTABLE';
    await ecr.send(new sdk.CreateRepositoryCommand({ ...registryId, repositoryName: repository, imageTagMutability, imageScanningConfiguration: { scanOnPush } }), send);
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
}
