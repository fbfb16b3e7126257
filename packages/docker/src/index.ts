import { defineBuildService } from '@prebuilt/core/backend';
import { createDockerBuildService, type DockerBuildServiceOptions } from './docker-build-service.js';

export {
  createDockerBuildService,
  DOCKER_ENV,
  type DockerBuildServiceOptions,
  type DockerBuilder,
} from './docker-build-service.js';

/** The `docker` build service: builds and pushes through the Docker Engine API. */
const docker = defineBuildService({
  name: 'docker',
  description: 'Builds and pushes images with the local Docker daemon (DOCKER_HOST).',
  create(options, context) {
    return createDockerBuildService({ env: context.env, ...(options as DockerBuildServiceOptions) });
  },
});

export default docker;
