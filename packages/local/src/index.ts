import { defineImageRegistry } from '@prebuilt/core/backend';
import { createLocalRegistry, type LocalRegistryOptions } from './local-registry.js';

export { createLocalRegistry, LOCAL_ENV, DEFAULT_NAMESPACE, type LocalRegistryOptions } from './local-registry.js';

/** The `local` image registry: a registry on this machine (push host and pull host may differ). */
const local = defineImageRegistry({
  name: 'local',
  description: 'A registry on this machine or network (METAFLOW_PREBUILT_LOCAL_REGISTRY, e.g. 127.0.0.1:5000).',
  create(options, context) {
    return createLocalRegistry({ env: context.env, ...(options as LocalRegistryOptions) });
  },
});

export default local;
export {
  startLocalRegistryServer,
  stopLocalRegistryServer,
  localRegistryServerStatus,
  localRegistryServerCredentials,
  defaultStateDir,
  DEV_REGISTRY_USERNAME,
  DEFAULT_REGISTRY_PORT,
  DEFAULT_REGISTRY_BINARY,
  DEFAULT_REGISTRY_IMAGE,
  type LocalRegistryServerOptions,
  type LocalRegistryServerStatus,
  type LocalRegistryServerMode,
} from './dev-server.js';
export { dockerLoginFor, dockerLoginLocalRegistryServer, dockerLoginState, type DockerLoginOf, type DockerLoginResult, type DockerLoginState } from './docker-login.js';
