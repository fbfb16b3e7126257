import { defineBuildService } from '@prebuilt/core/backend';
import { createDockerBuildService } from './docker-build-service.js';
import type { DockerBuildServiceOptions } from './docker-settings.js';

export { createDockerBuildService } from './docker-build-service.js';
export { runIsolatedContainer, isolatedContainerSpec, DockerRunError, type IsolatedRunOptions, type IsolatedRunResult } from './isolated-container.js';
export { DOCKER_ENV, type DockerBuildServiceOptions, type DockerBuilder } from './docker-settings.js';

/** The `docker` build service: builds and pushes through the Docker Engine API. */
const docker = defineBuildService({
  name: 'docker',
  description: 'Builds and pushes images with the local Docker daemon (DOCKER_HOST).',
  create(options, context) {
    return createDockerBuildService({ env: context.env, ...(options as DockerBuildServiceOptions) });
  },
});

export default docker;
