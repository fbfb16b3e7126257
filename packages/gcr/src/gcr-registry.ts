import type { GoogleAuthOptions } from 'google-auth-library';
import {
  COMPONENT,
  ConfigError,
  DEFAULT_REPOSITORY,
  PULL_ENV,
  RegistryClient,
  Secret,
  checkRepository,
  checkSignal,
  createLogger,
  dockerConfigCredentials,
  envTag,
  loadOptionalSetting,
  normalizeDockerConfigKey,
  parseHost,
  pullConfigFromSettings,
  resolveBaseImage,
  type ImageExistence,
  type ImageRegistry,
  type PullConfig,
  type PullSettings,
  type RegistryClientOptions,
  type RegistryCredentials,
} from '@prebuilt/core/backend';
import { googleTokenSource, type GoogleTokenSource } from './google-token.js';

const debug = createLogger('gcr');

export const GCR_ENV = {
  host: 'METAFLOW_PREBUILT_GCR_HOST',
  project: 'METAFLOW_PREBUILT_GCR_PROJECT',
  repository: 'METAFLOW_PREBUILT_GCR_REPOSITORY',
  image: 'METAFLOW_PREBUILT_IMAGE_NAMESPACE',
  keyFile: 'GOOGLE_APPLICATION_CREDENTIALS',
  ...PULL_ENV,
} as const;

export const DEFAULT_GCR_HOST = 'gcr.io';
/** The user name Google registries take with an OAuth access token as the password. */
export const OAUTH_USER = 'oauth2accesstoken';

export interface GcrRegistryOptions extends PullSettings {
  /** `gcr.io`, `us.gcr.io`, … or `<region>-docker.pkg.dev` (Artifact Registry). Env `METAFLOW_PREBUILT_GCR_HOST`; default `gcr.io`. */
  host?: string;
  /** Google Cloud project. Env `METAFLOW_PREBUILT_GCR_PROJECT`, then GOOGLE_CLOUD_PROJECT / GCLOUD_PROJECT; required. */
  project?: string;
  /** Artifact Registry repository (required on `*-docker.pkg.dev`). Env `METAFLOW_PREBUILT_GCR_REPOSITORY`. */
  repository?: string;
  /** Image name of the env images. Env `METAFLOW_PREBUILT_IMAGE_NAMESPACE`; default `metaflow-prebuilt`. */
  image?: string;
  /** A credentials JSON file (service account key, authorized_user, external account). Env `GOOGLE_APPLICATION_CREDENTIALS`; default: ADC. */
  keyFile?: string;
  /** Extra options for google-auth-library's GoogleAuth (e.g. `authClient`, or `clientOptions` in tests). */
  googleAuth?: GoogleAuthOptions;
  /** Retries and timeouts of registry requests (tests shorten them). */
  client?: Pick<RegistryClientOptions, 'retry' | 'timeoutMs'>;
  /** Environment to read settings from. Default `process.env`. */
  env?: Record<string, string | undefined>;
}

/** Hosts a Google access token is good for: Container Registry and Artifact Registry. */
export function isGoogleRegistryHost(host: string): boolean {
  const name = hostWithoutPort(host).toLowerCase();
  return name === 'gcr.io' || name.endsWith('.gcr.io') || name.endsWith('-docker.pkg.dev') || name === 'docker.pkg.dev';
}

/** The host part of `host[:port]`. */
function hostWithoutPort(registry: string): string {
  const colon = registry.lastIndexOf(':');
  return colon === -1 || registry.endsWith(']') ? registry : registry.slice(0, colon);
}

const PROJECT = /^(?:[a-z][a-z0-9.-]*[a-z0-9]:)?[a-z][a-z0-9-]{4,28}[a-z0-9]$/;

/**
 * The `gcr` image registry: Google Container Registry (`gcr.io/<project>/<image>`) and Artifact
 * Registry (`<region>-docker.pkg.dev/<project>/<repository>/<image>`), tagged `env-<envId>-<arch>`.
 * Credentials are an OAuth access token from google-auth-library's application default
 * credentials, as user `oauth2accesstoken`; the pull config is empty (workload identity / node
 * service accounts pull) unless a pull secret or Batch credentials are configured.
 */
export async function createGcrRegistry(options: GcrRegistryOptions = {}): Promise<ImageRegistry> {
  const env = options.env ?? process.env;
  const setting = (value: string | undefined, envVar: string, option: string): string | undefined =>
    loadOptionalSetting({ value, envVar, option, description: option, env });

  const hostSetting = setting(options.host, GCR_ENV.host, 'host');
  const host = hostSetting === undefined ? DEFAULT_GCR_HOST : normalizeDockerConfigKey(parseHost(hostSetting, GCR_ENV.host, 'host'));
  const project = setting(options.project, GCR_ENV.project, 'project') ?? (env['GOOGLE_CLOUD_PROJECT'] || env['GCLOUD_PROJECT'] || undefined);
  if (project === undefined) {
    throw new ConfigError(`The Google Cloud project is not set: neither the option 'project' nor ${GCR_ENV.project} (nor GOOGLE_CLOUD_PROJECT) is set.`, {
      setting: GCR_ENV.project,
      hint: `Set ${GCR_ENV.project} to the project the registry belongs to (or pass the option 'project'), e.g. my-project.`,
    });
  }
  if (!PROJECT.test(project)) {
    throw new ConfigError(`'${project}' is not a Google Cloud project id.`, {
      setting: GCR_ENV.project,
      hint: `Set ${GCR_ENV.project} (or the option 'project') to the project id (not its name or number), e.g. my-project or example.com:my-project.`,
    });
  }
  const artifactRegistry = hostWithoutPort(host).endsWith('-docker.pkg.dev');
  const repository = setting(options.repository, GCR_ENV.repository, 'repository');
  if (artifactRegistry && repository === undefined) {
    throw new ConfigError(`${host} is an Artifact Registry host, and the repository is not set (option 'repository' or ${GCR_ENV.repository}).`, {
      setting: GCR_ENV.repository,
      hint: `Set ${GCR_ENV.repository} to the Docker repository you created in ${project} (gcloud artifacts repositories create NAME --repository-format=docker --location=${hostWithoutPort(host).replace(/-docker\.pkg\.dev$/, '')}).`,
    });
  }
  if (repository !== undefined && !COMPONENT.test(repository)) checkRepository(repository, GCR_ENV.repository, 'repository', 1);
  const image = checkRepository(setting(options.image, GCR_ENV.image, 'image') ?? DEFAULT_REPOSITORY, GCR_ENV.image, 'image');
  // Domain-scoped projects (example.com:proj) are written example.com/proj in image paths.
  const base = [host, project.replace(':', '/'), repository, image].filter(Boolean).join('/');
  const pullConfig: PullConfig = pullConfigFromSettings(options, env);

  const keyFileOption = options.keyFile !== undefined && options.keyFile !== '';
  const keyFile = keyFileOption ? options.keyFile : env[GCR_ENV.keyFile] || undefined;
  const tokens: GoogleTokenSource = googleTokenSource({
    keyFile,
    keyFileFrom: keyFileOption ? "option 'keyFile'" : GCR_ENV.keyFile,
    googleAuth: options.googleAuth,
    registry: host,
  });
  debug('gcr registry: %s, credentials: %s', base, tokens.source);

  // One token serves every Google registry host; the client is renewed when the token changes
  // (core's client keeps credentials for its lifetime).
  let current: { token: string; credentials: RegistryCredentials; client: RegistryClient } | undefined;
  const googleCredentials = async (signal: AbortSignal | undefined): Promise<{ credentials: RegistryCredentials; client: RegistryClient }> => {
    checkSignal(signal);
    const { token, expiresAt } = await tokens.accessToken();
    checkSignal(signal);
    if (current?.token !== token) {
      const credentials: RegistryCredentials = {
        registry: host,
        username: OAUTH_USER,
        password: new Secret(token),
        source: `${tokens.source}${expiresAt ? `; token expires ${new Date(expiresAt).toISOString()}` : ''}`,
      };
      const client = new RegistryClient({
        credentials: (other, { signal: s }) =>
          normalizeDockerConfigKey(other) === host || isGoogleRegistryHost(other)
            ? Promise.resolve({ ...credentials, registry: other })
            : dockerConfigCredentials(other, { env, ...(s ? { signal: s } : {}) }),
        dockerConfig: false,
        ...options.client,
      });
      current = { token, credentials, client };
    }
    return current;
  };
  let otherClient: RegistryClient | undefined;
  const clientForRef = async (ref: string, signal: AbortSignal | undefined): Promise<RegistryClient> => {
    const refHost = ref.includes('/') ? normalizeDockerConfigKey(ref.slice(0, ref.indexOf('/'))) : '';
    if (refHost === host || isGoogleRegistryHost(refHost)) return (await googleCredentials(signal)).client;
    return (otherClient ??= new RegistryClient({ dockerConfig: { env }, ...options.client }));
  };

  return {
    name: 'gcr',

    imageTag(input) {
      return envTag(base, input);
    },

    async pushCredentials(requestOptions = {}) {
      return (await googleCredentials(requestOptions.signal)).credentials;
    },

    async pullConfig() {
      return structuredClone(pullConfig);
    },

    async imageExists(pushTag, requestOptions = {}): Promise<ImageExistence> {
      const signal = requestOptions.signal;
      const client = (await googleCredentials(signal)).client;
      const head = await client.headManifest(pushTag, signal ? { signal } : {});
      return head.exists ? { exists: true, digest: head.digest } : { exists: false };
    },

    async baseImageIdentity(ref, platform, requestOptions = {}) {
      const signal = requestOptions.signal;
      checkSignal(signal);
      return resolveBaseImage(await clientForRef(ref, signal), ref, platform, signal);
    },
  };
}
