import { describe, expect, it } from 'vitest';
import { ConfigError, Secret, type BuildRequest } from '@prebuilt/core/backend';
import { registryLogin } from './registry-login.js';

const request = (pushCredentials?: BuildRequest['pushCredentials']) =>
  ({ imageTag: 'registry.example.com/ns:env-1', platform: 'linux/amd64', contextDir: '/x', dockerfile: '', pushCredentials }) as BuildRequest;
const credentials = { registry: 'registry.example.com', source: 'the test', username: 'me', password: new Secret('pw-1234') };

describe('registryLogin', () => {
  it('logs in to ECR with the project role, carrying no variables', () => {
    const registry = '123456789012.dkr.ecr.eu-west-1.amazonaws.com';
    expect(registryLogin(request(), registry, { passwordRef: undefined, registryUsername: undefined })).toEqual({
      login: { kind: 'ecr', registry, region: 'eu-west-1' },
      variables: [],
    });
  });

  it('passes a stored password by reference, with the user from the setting or the credentials', () => {
    const passwordRef = { type: 'SECRETS_MANAGER' as const, value: 'registry/pw:password', setting: 'METAFLOW_PREBUILT_CODEBUILD_REGISTRY_SECRET' };
    const plan = registryLogin(request(credentials), 'registry.example.com', { passwordRef, registryUsername: undefined });
    expect(plan.login).toEqual({ kind: 'stored-password', registry: 'registry.example.com' });
    expect(plan.variables).toEqual([
      { name: 'PREBUILT_REGISTRY_USERNAME', value: 'me', type: 'PLAINTEXT' },
      { name: 'PREBUILT_REGISTRY_PASSWORD', value: 'registry/pw:password', type: 'SECRETS_MANAGER' },
    ]);
    expect(() => registryLogin(request(), 'registry.example.com', { passwordRef, registryUsername: undefined })).toThrow(/no registry user is known/);
  });

  it('refuses push credentials with a secret and nowhere to store it, and needs nothing without credentials', () => {
    expect(() => registryLogin(request(credentials), 'registry.example.com', { passwordRef: undefined, registryUsername: undefined })).toThrow(ConfigError);
    expect(registryLogin(request(), 'registry.example.com', { passwordRef: undefined, registryUsername: undefined })).toEqual({ login: { kind: 'none' }, variables: [] });
  });
});
