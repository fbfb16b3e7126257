import { createOciRegistry, explicitCredentials, loadBooleanSetting, pullConfigFromSettings, type ImageRegistry } from '@prebuilt/core/backend';
import { devRegistryStartHint, localRegistryServerCredentials } from './dev-server.js';
import { LOCAL_ENV, localAddresses, pullTagOf, type LocalRegistryOptions } from './local-settings.js';

export { LOCAL_ENV, DEFAULT_NAMESPACE, type LocalRegistryOptions } from './local-settings.js';

/**
 * The `local` image registry: a registry on this machine or network, e.g. `127.0.0.1:5000`.
 * Images are tagged `<host>/<namespace>:env-<envId>-<arch>`; the runner may pull them under a
 * different host (`pullHost`), e.g. the name a cluster knows the registry by.
 */
export function createLocalRegistry(options: LocalRegistryOptions = {}): ImageRegistry {
  const env = options.env ?? process.env;
  const { push, pull, repository } = localAddresses(options, env);
  // Explicit credentials win; else, for the development registry `prebuilt local-registry start`
  // runs (127.0.0.1:<its port>), the credential it made; else the Docker config.
  const credentials =
    explicitCredentials({
      registry: push.host,
      label: 'local registry',
      username: options.username,
      password: options.password,
      envVars: { username: LOCAL_ENV.username, password: LOCAL_ENV.password },
      env,
    }) ?? localRegistryServerCredentials(push.host, { env });
  return createOciRegistry({
    name: 'local',
    host: push.host,
    repository,
    credentials,
    env,
    dockerConfig: options.dockerConfig !== false,
    insecure: loadBooleanSetting({ value: options.insecure, envVar: LOCAL_ENV.insecure, option: 'insecure', default: false, env }),
    ...(options.client ? { client: options.client } : {}),
    pullTag: (pushTag) => pullTagOf(push, pull, pushTag),
    // Empty unless set: a registry the runner pulls from without a login needs nothing.
    pullConfig: pullConfigFromSettings(options, env),
    missingBaseHint: 'Push the base image there, or set the base image to one that exists.',
    credentialsHint: `set ${LOCAL_ENV.username} and ${LOCAL_ENV.password}`,
    // A loopback address with nothing listening: most often the development registry, not started (or stopped by a reboot).
    unreachableHint: devRegistryStartHint(push.host, LOCAL_ENV.registry),
  });
}
