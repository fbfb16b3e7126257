import { defineBuildService } from '@prebuilt/core/backend';
import { createCodeBuildBuildService } from './codebuild-build-service.js';
import type { CodeBuildBuildServiceOptions } from './codebuild-settings.js';

export { createCodeBuildBuildService } from './codebuild-build-service.js';
export { CODEBUILD_ENV, type CodeBuildBuildServiceOptions } from './codebuild-settings.js';
export { buildspec, DIGEST_VARIABLE, type RegistryLogin } from './buildspec.js';

/** The `codebuild` build service: AWS CodeBuild builds and pushes, the context goes through S3. */
const codebuild = defineBuildService({
  name: 'codebuild',
  description: 'Builds and pushes images on AWS CodeBuild (METAFLOW_PREBUILT_CODEBUILD_PROJECT, context zip on S3).',
  create(options, context) {
    return createCodeBuildBuildService({ env: context.env, ...(options as CodeBuildBuildServiceOptions) });
  },
});

export default codebuild;
