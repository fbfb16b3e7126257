import { defineBuildService } from '@prebuilt/core/backend';
import { createBuildxBuildService, type BuildxBuildServiceOptions } from './buildx-build-service.js';

export { createBuildxBuildService, BUILDX_ENV, type BuildxBuildServiceOptions } from './buildx-build-service.js';

/** The `buildx` build service: `docker buildx build --push` with the user's buildx builder. */
const buildx = defineBuildService({
  name: 'buildx',
  description: 'Builds and pushes images with `docker buildx build --push` (METAFLOW_PREBUILT_BUILDX_BUILDER).',
  create(options, context) {
    return createBuildxBuildService({ env: context.env, ...(options as BuildxBuildServiceOptions) });
  },
});

export default buildx;
