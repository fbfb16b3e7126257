import { defineBuildService } from '@prebuilt/core/backend';
import { createBuildxBuildService } from './buildx-build-service.js';
import type { BuildxBuildServiceOptions } from './buildx-settings.js';

export { createBuildxBuildService } from './buildx-build-service.js';
export { BUILDX_ENV, type BuildxBuildServiceOptions } from './buildx-settings.js';

/** The `buildx` build service: `docker buildx build --push` with the user's buildx builder. */
const buildx = defineBuildService({
  name: 'buildx',
  description: 'Builds and pushes images with `docker buildx build --push` (METAFLOW_PREBUILT_BUILDX_BUILDER).',
  create(options, context) {
    return createBuildxBuildService({ env: context.env, ...(options as BuildxBuildServiceOptions) });
  },
});

export default buildx;
