import { describe, expect, it } from 'vitest';
import { EnvironmentError } from '@prebuilt/core/backend';
import { awsError, describeAwsCredentialSource, importAwsSdk } from './aws.js';

describe('AWS SDK loading and errors', () => {
  it('a missing SDK package is an EnvironmentError with the npm i line', async () => {
    const name = '@aws-sdk/client-prebuilt-test-absent';
    const error = await importAwsSdk(name, () => import(name)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(EnvironmentError);
    expect((error as EnvironmentError).message).toContain(`needs ${name}, which is not installed`);
    expect((error as EnvironmentError).hint).toContain(`npm i ${name}@^3`);
    expect((error as EnvironmentError).exitCode).toBe(2);
  });

  it('names the credential source from the environment, never a secret', () => {
    expect(describeAwsCredentialSource({ AWS_ACCESS_KEY_ID: 'AKIA', AWS_SECRET_ACCESS_KEY: 'shh' }, false)).toBe('env AWS_ACCESS_KEY_ID (without AWS_SESSION_TOKEN)');
    expect(describeAwsCredentialSource({ AWS_PROFILE: 'prod' }, false)).toBe("AWS profile 'prod' (AWS_PROFILE)");
    expect(describeAwsCredentialSource({}, true)).toBe("the option 'credentials'");
    expect(describeAwsCredentialSource({}, false)).toContain('default credential chain');
  });

  it('maps SDK failures: unknown ones to a RegistryError with the AWS error name', () => {
    const error = awsError(Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' }), 'Checking the repository', {
      registry: 'r',
      credentialSource: 's',
      permission: 'ecr:DescribeRepositories',
    });
    expect(error.code).toBe('registry');
    expect(error.message).toBe('Checking the repository failed: ThrottlingException: Rate exceeded');
  });
});
