import { defineImageRegistry } from '@prebuilt/core/backend';
import { createGcrRegistry, type GcrRegistryOptions } from './gcr-registry.js';

export { createGcrRegistry, isGoogleRegistryHost, GCR_ENV, DEFAULT_GCR_HOST, OAUTH_USER, type GcrRegistryOptions } from './gcr-registry.js';

/** The `gcr` image registry: `gcr.io/<project>/…` or `<region>-docker.pkg.dev/<project>/<repository>/…`. */
const gcr = defineImageRegistry({
  name: 'gcr',
  description: 'Google Container Registry / Artifact Registry (METAFLOW_PREBUILT_GCR_HOST, METAFLOW_PREBUILT_GCR_PROJECT), tokens from application default credentials.',
  create(options, context) {
    return createGcrRegistry({ env: context.env, ...(options as GcrRegistryOptions) });
  },
});

export default gcr;
