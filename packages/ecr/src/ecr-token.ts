import type { ECRClient } from '@aws-sdk/client-ecr';
import { RegistryError, Secret, checkSignal, createLogger, type RegistryCredentials, type RegistryTokenSource } from '@prebuilt/core/backend';
import { awsError, type EcrSdk } from './aws.js';

const debug = createLogger('ecr');

/** Refresh the ECR token this long before it expires (tokens live 12 hours). */
export const DEFAULT_TOKEN_REFRESH_MARGIN_MS = 15 * 60_000;

/**
 * Push credentials from ECR GetAuthorizationToken, cached until `marginMs` before they expire;
 * concurrent callers share one request.
 */
export function ecrTokenSource(input: { ecr: ECRClient; sdk: EcrSdk; host: string; credentialSource: string; marginMs: number }): RegistryTokenSource {
  const { ecr, sdk, host, credentialSource, marginMs } = input;
  let token: { credentials: RegistryCredentials; refreshAt: number } | undefined;
  let pending: Promise<RegistryCredentials> | undefined;

  const fetchToken = async (signal: AbortSignal | undefined): Promise<RegistryCredentials> => {
    let answer;
    try {
      answer = await ecr.send(new sdk.GetAuthorizationTokenCommand({}), signal ? { abortSignal: signal } : {});
    } catch (error) {
      checkSignal(signal);
      throw awsError(error, `Getting a push token for ${host} (ECR GetAuthorizationToken)`, { registry: host, credentialSource, permission: 'ecr:GetAuthorizationToken' });
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
    token = { credentials, refreshAt: Math.max(Date.now(), expiresAt - marginMs) };
    debug('push token for %s until %s', host, new Date(expiresAt).toISOString());
    return credentials;
  };

  return {
    async token(signal) {
      checkSignal(signal);
      if (token && Date.now() < token.refreshAt) return token.credentials;
      pending ??= fetchToken(signal).finally(() => (pending = undefined));
      return pending;
    },
  };
}
