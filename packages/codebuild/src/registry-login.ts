import { ConfigError, type BuildRequest, type RegistryCredentials } from '@prebuilt/core/backend';
import { ecrRegion, type RegistryLogin } from './buildspec.js';
import { CODEBUILD_ENV, type CodeBuildSettings } from './codebuild-settings.js';

export interface BuildVariable {
  name: string;
  value: string;
  type: 'PLAINTEXT' | 'PARAMETER_STORE' | 'SECRETS_MANAGER';
}

/** How the build logs in, and the variables that carries. */
export interface RegistryLoginPlan {
  login: RegistryLogin;
  variables: BuildVariable[];
}

function hasSecret(credentials: RegistryCredentials | undefined): boolean {
  return Boolean(credentials?.password || credentials?.identityToken || credentials?.registryToken);
}

/**
 * How the build logs in to `registry`, and the environment variables that carries: ECR through the
 * project's role, a stored password by reference, or nothing. Push credentials with a secret and
 * nowhere to store it are a ConfigError: a registry secret never goes in as plaintext.
 */
export function registryLogin(
  request: BuildRequest,
  registry: string,
  settings: Pick<CodeBuildSettings, 'passwordRef' | 'registryUsername'>,
): RegistryLoginPlan {
  const region = ecrRegion(registry);
  if (region) return { login: { kind: 'ecr', registry, region }, variables: [] };
  if (settings.passwordRef) {
    const username = settings.registryUsername ?? request.pushCredentials?.username;
    if (!username) {
      throw new ConfigError(`The registry password for ${registry} comes from ${settings.passwordRef.setting}, but no registry user is known.`, {
        setting: CODEBUILD_ENV.registryUsername,
        hint: `Set ${CODEBUILD_ENV.registryUsername} (or the option 'registryUsername').`,
      });
    }
    return {
      login: { kind: 'stored-password', registry },
      variables: [
        { name: 'PREBUILT_REGISTRY_USERNAME', value: username, type: 'PLAINTEXT' },
        { name: 'PREBUILT_REGISTRY_PASSWORD', value: settings.passwordRef.value, type: settings.passwordRef.type },
      ],
    };
  }
  if (hasSecret(request.pushCredentials)) {
    throw new ConfigError(
      `CodeBuild would need the push credentials for ${registry} (${request.pushCredentials!.source}), and prebuilt never passes a registry secret to a build as a plaintext environment variable.`,
      {
        setting: CODEBUILD_ENV.registryParameter,
        hint:
          `Store the password in Parameter Store or Secrets Manager (readable by the project's service role) and set ` +
          `${CODEBUILD_ENV.registryParameter} or ${CODEBUILD_ENV.registrySecret}, with ${CODEBUILD_ENV.registryUsername}; ` +
          `for ECR, grant the project's role ECR push rights instead.`,
      },
    );
  }
  return { login: { kind: 'none' }, variables: [] };
}
