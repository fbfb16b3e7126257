import type { GoogleAuthOptions } from 'google-auth-library';
import { AuthError, EnvironmentError, LoginRequiredError, errorMessage } from '@prebuilt/core/backend';

const CLOUD_PLATFORM_SCOPE = 'https://www.googleapis.com/auth/cloud-platform';

type GoogleAuthSdk = typeof import('google-auth-library');

/** google-auth-library, imported on first use (it is large). */
function loadGoogleAuth(): Promise<GoogleAuthSdk> {
  return importGoogleAuth(() => import('google-auth-library'));
}

/** Runs the import of google-auth-library; a missing library is an EnvironmentError with the `npm i` line. */
export async function importGoogleAuth<T>(importer: () => Promise<T>): Promise<T> {
  try {
    return await importer();
  } catch (error) {
    const code = (error as NodeJS.ErrnoException)?.code;
    const missing = (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') && errorMessage(error).includes('google-auth-library');
    throw new EnvironmentError(missing ? 'The gcr image registry needs google-auth-library, which is not installed.' : `Loading google-auth-library failed: ${errorMessage(error)}`, {
      cause: error,
      hint: 'Install it beside @prebuilt/gcr: npm i google-auth-library@^10',
    });
  }
}

export interface AccessToken {
  token: string;
  /** When Google says it expires (ms since the epoch), if it said. */
  expiresAt: number | undefined;
}

/** A source of OAuth access tokens: google-auth-library's application default credentials. */
export interface GoogleTokenSource {
  /** Where the credentials come from, in words (a path or a mechanism, never a secret). */
  readonly source: string;
  accessToken(): Promise<AccessToken>;
}

/** A Google token-endpoint answer (`{"error": "invalid_grant", "error_description": …}`), without anything else from the request. */
function googleReason(error: unknown): string {
  const data = (error as { response?: { data?: unknown } })?.response?.data;
  if (data && typeof data === 'object') {
    const { error: code, error_description: description } = data as { error?: unknown; error_description?: unknown };
    if (typeof code === 'string') return typeof description === 'string' && description ? `${code}: ${description}` : code;
  }
  const status = (error as { status?: unknown; response?: { status?: unknown } })?.response?.status;
  // The message of a gaxios error may quote the request; keep its first line only, trimmed.
  const first = errorMessage(error).split('\n')[0]!.slice(0, 200);
  return typeof status === 'number' ? `HTTP ${status}: ${first}` : first;
}

export function googleTokenSource(options: { keyFile: string | undefined; keyFileFrom: string; googleAuth: GoogleAuthOptions | undefined; registry: string }): GoogleTokenSource {
  const source = options.keyFile
    ? `Google credentials file ${options.keyFile} (${options.keyFileFrom})`
    : options.googleAuth?.authClient
      ? "the auth client passed in the option 'googleAuth'"
      : "Google application default credentials (gcloud's application_default_credentials.json, or the metadata server's service account)";
  let auth: InstanceType<GoogleAuthSdk['GoogleAuth']> | undefined;
  return {
    source,
    async accessToken(): Promise<AccessToken> {
      const sdk = await loadGoogleAuth();
      auth ??= new sdk.GoogleAuth({ scopes: [CLOUD_PLATFORM_SCOPE], ...(options.keyFile ? { keyFilename: options.keyFile } : {}), ...options.googleAuth });
      try {
        const client = await auth.getClient();
        const { token } = await client.getAccessToken();
        if (!token) throw new Error('no access token was returned');
        const expiry = (client as { credentials?: { expiry_date?: number | null } }).credentials?.expiry_date;
        return { token, expiresAt: typeof expiry === 'number' ? expiry : undefined };
      } catch (error) {
        auth = undefined; // look the credentials up again next time
        const reason = googleReason(error);
        const none = /could not load the default credentials|no such file|ENOENT/i.test(reason);
        // None found is a login to make (exit 2); credentials Google refused, an AuthError (exit 1).
        const Kind = none ? LoginRequiredError : AuthError;
        throw new Kind(
          none
            ? `No Google credentials for ${options.registry}: ${source} could not be loaded (${reason}).`
            : `Google did not give an access token for ${options.registry} from ${source} (${reason}).`,
          { registry: options.registry, source },
          {
            hint: none
              ? 'Run `gcloud auth application-default login`, or set GOOGLE_APPLICATION_CREDENTIALS to a service account key file.'
              : /invalid_grant|expired|revoked/i.test(reason)
                ? 'The credentials have expired or were revoked: run `gcloud auth application-default login` again, or use a fresh key file.'
                : 'Check the credentials file and that its account may use the registry (roles/artifactregistry.writer or storage admin for gcr.io).',
          },
        );
      }
    },
  };
}
