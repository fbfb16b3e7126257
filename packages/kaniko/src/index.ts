import { defineBuildService } from '@prebuilt/core/backend';
import { createKanikoBuildService } from './kaniko-build-service.js';
import type { KanikoBuildServiceOptions } from './kaniko-settings.js';

export { createKanikoBuildService } from './kaniko-build-service.js';
export { DEFAULT_KANIKO_IMAGE, KANIKO_ENV, type KanikoBuildServiceOptions } from './kaniko-settings.js';

/** The `kaniko` build service: the kaniko executor as a Kubernetes Job, build context on GCS or S3. */
const kaniko = defineBuildService({
  name: 'kaniko',
  description: 'Builds and pushes images with the kaniko executor in a Kubernetes Job (context on gs:// or s3://).',
  create(options, context) {
    return createKanikoBuildService({ env: context.env, ...(options as KanikoBuildServiceOptions) });
  },
});

export default kaniko;
