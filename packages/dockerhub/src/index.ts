import { defineImageRegistry } from '@prebuilt/core/backend';
import { createDockerHubRegistry, type DockerHubRegistryOptions } from './dockerhub-registry.js';

export { createDockerHubRegistry, DEFAULT_HUB_API, DOCKERHUB_ENV, type DockerHubRegistryOptions } from './dockerhub-registry.js';
export { DEFAULT_REPOSITORY, PULL_ENV, type PullSettings } from '@prebuilt/core/backend';

/** The `dockerhub` image registry (the default): `docker.io/<namespace>/<repository>:env-<envId>-<arch>`. */
const dockerhub = defineImageRegistry({
  name: 'dockerhub',
  description: 'Docker Hub: docker.io/<METAFLOW_PREBUILT_DOCKERHUB_NAMESPACE or your user>/metaflow-prebuilt, credentials from docker login.',
  create(options, context) {
    return createDockerHubRegistry({ env: context.env, ...(options as DockerHubRegistryOptions) });
  },
});

export default dockerhub;
