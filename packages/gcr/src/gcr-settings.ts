import type { GoogleAuthOptions } from 'google-auth-library';
import {
  COMPONENT,
  ConfigError,
  DEFAULT_REPOSITORY,
  PULL_ENV,
  checkRepository,
  loadOptionalSetting,
  normalizeDockerConfigKey,
  orOption,
  parseHost,
  type PullSettings,
  type ImageRegistryOptions,
} from '@prebuilt/core/backend';

export const GCR_ENV = {
  host: 'METAFLOW_PREBUILT_GCR_HOST',
  project: 'METAFLOW_PREBUILT_GCR_PROJECT',
  repository: 'METAFLOW_PREBUILT_GCR_REPOSITORY',
  image: 'METAFLOW_PREBUILT_IMAGE_NAMESPACE',
  keyFile: 'GOOGLE_APPLICATION_CREDENTIALS',
  ...PULL_ENV,
} as const;

export const DEFAULT_GCR_HOST = 'gcr.io';

export interface GcrRegistryOptions extends PullSettings, ImageRegistryOptions {
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
}

/** The host part of `host[:port]`. */
function hostWithoutPort(registry: string): string {
  const colon = registry.lastIndexOf(':');
  return colon === -1 || registry.endsWith(']') ? registry : registry.slice(0, colon);
}

/** Hosts a Google access token is good for: Container Registry and Artifact Registry. */
export function isGoogleRegistryHost(host: string): boolean {
  const name = hostWithoutPort(host).toLowerCase();
  return name === 'gcr.io' || name.endsWith('.gcr.io') || name.endsWith('-docker.pkg.dev') || name === 'docker.pkg.dev';
}

const PROJECT = /^(?:[a-z][a-z0-9.-]*[a-z0-9]:)?[a-z][a-z0-9-]{4,28}[a-z0-9]$/;

/** The registry host and the repository path under it (`<project>[/<repository>]/<image>`). */
export function gcrLocation(options: GcrRegistryOptions, env: Record<string, string | undefined>): { host: string; repository: string } {
  const setting = (value: string | undefined, envVar: string, option: string) => loadOptionalSetting({ value, envVar, option, description: option, env });
  const hostSetting = setting(options.host, GCR_ENV.host, 'host');
  const host = hostSetting === undefined ? DEFAULT_GCR_HOST : normalizeDockerConfigKey(parseHost(hostSetting, GCR_ENV.host, 'host'));
  const project = setting(options.project, GCR_ENV.project, 'project') ?? (env['GOOGLE_CLOUD_PROJECT'] || env['GCLOUD_PROJECT'] || undefined);
  if (project === undefined) {
    throw new ConfigError(`The Google Cloud project is not set: neither ${GCR_ENV.project}${orOption('project')} nor GOOGLE_CLOUD_PROJECT is set.`, {
      setting: GCR_ENV.project,
      hint: `Set ${GCR_ENV.project}${orOption('project')} to the project the registry belongs to, e.g. my-project.`,
    });
  }
  if (!PROJECT.test(project)) {
    throw new ConfigError(`'${project}' is not a Google Cloud project id.`, {
      setting: GCR_ENV.project,
      hint: `Set ${GCR_ENV.project}${orOption('project')} to the project id (not its name or number), e.g. my-project or example.com:my-project.`,
    });
  }
  const repository = setting(options.repository, GCR_ENV.repository, 'repository');
  if (hostWithoutPort(host).endsWith('-docker.pkg.dev') && repository === undefined) {
    throw new ConfigError(`${host} is an Artifact Registry host, and its repository, ${GCR_ENV.repository}${orOption('repository')}, is not set.`, {
      setting: GCR_ENV.repository,
      hint: `Set ${GCR_ENV.repository} to the Docker repository you created in ${project} (gcloud artifacts repositories create NAME --repository-format=docker --location=${hostWithoutPort(host).replace(/-docker\.pkg\.dev$/, '')}).`,
    });
  }
  if (repository !== undefined && !COMPONENT.test(repository)) checkRepository(repository, GCR_ENV.repository, 'repository', 1);
  const image = checkRepository(setting(options.image, GCR_ENV.image, 'image') ?? DEFAULT_REPOSITORY, GCR_ENV.image, 'image');
  // Domain-scoped projects (example.com:proj) are written example.com/proj in image paths.
  return { host, repository: [project.replace(':', '/'), repository, image].filter(Boolean).join('/') };
}
