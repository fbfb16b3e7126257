// prebuilt-backend-example: a complete third-party image registry for prebuilt, on core's OCI
// registry base. It states only what differs — its host, its repository rules, its credentials —
// and imports only from @prebuilt/core/backend. Select it with METAFLOW_PREBUILT_IMAGE_REGISTRY=example.
import {
  ConfigError,
  DEFAULT_REPOSITORY,
  checkRepository,
  createOciRegistry,
  defineImageRegistry,
  explicitCredentials,
  loadBooleanSetting,
  loadOptionalSetting,
  parseHost,
  pullConfigFromSettings,
  type ImageRegistry,
  type PullSettings,
  type Secret,
} from '@prebuilt/core/backend';

export const EXAMPLE_ENV = {
  registry: 'METAFLOW_PREBUILT_EXAMPLE_REGISTRY',
  repository: 'METAFLOW_PREBUILT_IMAGE_NAMESPACE',
  username: 'METAFLOW_PREBUILT_EXAMPLE_USERNAME',
  password: 'METAFLOW_PREBUILT_EXAMPLE_PASSWORD',
  insecure: 'METAFLOW_PREBUILT_EXAMPLE_INSECURE',
} as const;

export interface ExampleRegistryOptions extends PullSettings {
  /** Registry host, e.g. `registry.example.com:5000`. Env `METAFLOW_PREBUILT_EXAMPLE_REGISTRY`; required. */
  registry?: string;
  /** Repository of the env images. Env `METAFLOW_PREBUILT_IMAGE_NAMESPACE`; default `metaflow-prebuilt`. */
  repository?: string;
  /** User and password. Env `METAFLOW_PREBUILT_EXAMPLE_USERNAME` / `_PASSWORD`; default: the Docker config. */
  username?: string;
  password?: string | Secret;
  /** Plain HTTP to a registry off loopback. Env `METAFLOW_PREBUILT_EXAMPLE_INSECURE=1`. */
  insecure?: boolean;
  /** Environment to read settings from (the CLI passes its own). Default `process.env`. */
  env?: Record<string, string | undefined>;
}

/** The `example` image registry: `<registry>/<repository>:env-<envId>-<arch>`. */
export function createExampleRegistry(options: ExampleRegistryOptions = {}): ImageRegistry {
  const env = options.env ?? process.env;
  const setting = (value: string | undefined, envVar: string, option: string) => loadOptionalSetting({ value, envVar, option, description: option, env });
  const registry = setting(options.registry, EXAMPLE_ENV.registry, 'registry');
  if (registry === undefined) {
    throw new ConfigError(`The example registry has no host: neither the option 'registry' nor ${EXAMPLE_ENV.registry} is set.`, {
      setting: EXAMPLE_ENV.registry,
      hint: `Set ${EXAMPLE_ENV.registry} to the registry's host, e.g. registry.example.com:5000.`,
    });
  }
  const host = parseHost(registry, EXAMPLE_ENV.registry, 'registry');
  const repository = checkRepository(setting(options.repository, EXAMPLE_ENV.repository, 'repository') ?? DEFAULT_REPOSITORY, EXAMPLE_ENV.repository, 'repository');
  return createOciRegistry({
    name: 'example',
    host,
    repository,
    credentials: explicitCredentials({
      registry: host,
      label: 'example registry',
      username: options.username,
      password: options.password,
      envVars: { username: EXAMPLE_ENV.username, password: EXAMPLE_ENV.password },
      env,
    }),
    env,
    insecure: loadBooleanSetting({ value: options.insecure, envVar: EXAMPLE_ENV.insecure, option: 'insecure', description: 'plain HTTP to the registry', default: false, env }),
    pullConfig: pullConfigFromSettings(options, env),
  });
}

export default defineImageRegistry({
  name: 'example',
  description: 'An example OCI registry (METAFLOW_PREBUILT_EXAMPLE_REGISTRY), from the backend authors\' guide.',
  create: (options, context) => createExampleRegistry({ env: context.env, ...(options as ExampleRegistryOptions) }),
});
