import {
  Secret,
  checkSignal,
  createLogger,
  createOciRegistry,
  pullConfigFromSettings,
  registryAccess,
  type ImageRegistry,
  type RegistryCredentials,
  type RegistryTokenSource,
} from '@prebuilt/core/backend';
import { deleteGcrImage, listGcrImages } from './gcr-images.js';
import { GCR_ENV, gcrLocation, isGoogleRegistryHost, type GcrRegistryOptions } from './gcr-settings.js';
import { googleTokenSource, type GoogleTokenSource } from './google-token.js';

export { GCR_ENV, DEFAULT_GCR_HOST, isGoogleRegistryHost, type GcrRegistryOptions } from './gcr-settings.js';

const debug = createLogger('gcr');

/** The user name Google registries take with an OAuth access token as the password. */
export const OAUTH_USER = 'oauth2accesstoken';

/** Registry credentials from Google access tokens: a new credentials object only when the token changed. */
function oauthCredentials(tokens: GoogleTokenSource, host: string): RegistryTokenSource {
  let current: { token: string; credentials: RegistryCredentials } | undefined;
  return {
    serves: isGoogleRegistryHost,
    async token(signal) {
      checkSignal(signal);
      const { token, expiresAt } = await tokens.accessToken();
      checkSignal(signal);
      if (current?.token !== token) {
        const source = `${tokens.source}${expiresAt ? `; token expires ${new Date(expiresAt).toISOString()}` : ''}`;
        current = { token, credentials: { registry: host, username: OAUTH_USER, password: new Secret(token), source } };
      }
      return current.credentials;
    },
  };
}

/**
 * The `gcr` image registry: Google Container Registry (`gcr.io/<project>/<image>`) and Artifact
 * Registry (`<region>-docker.pkg.dev/<project>/<repository>/<image>`), tagged `env-<envId>-<arch>`.
 * Credentials are an OAuth access token from google-auth-library's application default
 * credentials, as user `oauth2accesstoken`; the pull config is empty (workload identity / node
 * service accounts pull) unless a pull secret or Batch credentials are configured. For
 * `prebuilt gc`, images are listed from Google's tags/list extension and deleted tag by tag, then
 * by digest, through the registry API (the tags gc listed, each checked before its DELETE: no
 * listing per image).
 */
export async function createGcrRegistry(options: GcrRegistryOptions = {}): Promise<ImageRegistry> {
  const env = options.env ?? process.env;
  const { host, repository } = gcrLocation(options, env);
  const pullConfig = pullConfigFromSettings(options, env);
  const keyFileOption = options.keyFile !== undefined && options.keyFile !== '';
  const tokens = googleTokenSource({
    keyFile: keyFileOption ? options.keyFile : env[GCR_ENV.keyFile] || undefined,
    keyFileFrom: keyFileOption ? "option 'keyFile'" : GCR_ENV.keyFile,
    googleAuth: options.googleAuth,
    registry: host,
  });
  debug('gcr registry: %s/%s, credentials: %s', host, repository, tokens.source);
  const credentials = oauthCredentials(tokens, host);
  const client = options.client ? { client: options.client } : {};
  const images = { host, repository, access: registryAccess({ host, credentials, env, dockerConfig: true, insecure: false, client: options.client }) };
  return createOciRegistry({
    name: 'gcr',
    host,
    repository,
    credentials,
    env,
    ...client,
    pullConfig,
    listImages: (listOptions = {}) => listGcrImages(images, listOptions.signal),
    deleteImage: (digest, deleteOptions = {}) => deleteGcrImage(images, digest, deleteOptions.signal, deleteOptions.tags),
  });
}
