import { defineImageRegistry } from '@prebuilt/core/backend';
import { createEcrRegistry, type EcrRegistryOptions } from './ecr-registry.js';

export { createEcrRegistry, ECR_ENV, DEFAULT_TOKEN_REFRESH_MARGIN_MS, type EcrRegistryOptions } from './ecr-registry.js';

/** The `ecr` image registry: `<account>.dkr.ecr.<region>.amazonaws.com/<repository>:env-<envId>-<arch>`. */
const ecr = defineImageRegistry({
  name: 'ecr',
  description: 'Amazon ECR: <account>.dkr.ecr.<region>.amazonaws.com/metaflow-prebuilt, repository created when missing, tokens from GetAuthorizationToken.',
  create(options, context) {
    return createEcrRegistry({ env: context.env, ...(options as EcrRegistryOptions) });
  },
});

export default ecr;
