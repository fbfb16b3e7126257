import { describe, expect, it } from 'vitest';
import { AuthError, EnvironmentError } from '@prebuilt/core/backend';
import { googleTokenSource, importGoogleAuth } from './google-token.js';

describe('google-auth-library loading and token errors', () => {
  it('a missing google-auth-library is an EnvironmentError with the npm i line', async () => {
    const error = await importGoogleAuth(() => import('google-auth-library-prebuilt-test-absent' as string)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(EnvironmentError);
    expect((error as EnvironmentError).hint).toContain('npm i google-auth-library@^10');
  });

  it('an injected auth client is used as is, and its failure names it as the source', async () => {
    const working = googleTokenSource({
      keyFile: undefined,
      keyFileFrom: '',
      registry: 'gcr.io',
      googleAuth: { authClient: { getAccessToken: async () => ({ token: 'ya29.injected' }), credentials: {} } as never },
    });
    expect(working.source).toContain("option 'googleAuth'");
    expect((await working.accessToken()).token).toBe('ya29.injected');

    const failing = googleTokenSource({
      keyFile: undefined,
      keyFileFrom: '',
      registry: 'gcr.io',
      googleAuth: { authClient: { getAccessToken: async () => ({ token: null }), credentials: {} } as never },
    });
    const error = await failing.accessToken().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AuthError);
    expect((error as AuthError).source).toContain("option 'googleAuth'");
  });
});
