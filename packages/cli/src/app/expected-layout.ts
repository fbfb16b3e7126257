import { buildServiceLayout, tarLayersLayout, type BuildService, type ImageLayout } from '@prebuilt/core';

/** The build service whose layout a plan asks it for: the only one here that records one (prefetch order, EROFS media type). */
const LAYOUT_RECORDING_SERVICE = 'oci';

/**
 * The layout a deploy expects of each image the registry has (`DeployOptions.imageLayout`): one
 * laid out otherwise is rebuilt, and a plan shows it `missing` with the reason. It is the build
 * service's own (`imageLayout`), else tar layers (core's `buildServiceLayout`): a service that makes
 * tar layers rebuilds an image the oci service built with EROFS layers, which its runners could not
 * mount. A build has created `service` already. A plan creates only the oci service (unchecked), to
 * ask it; any other is taken to make tar layers without being created, so that plans keep working
 * where its settings (a kaniko bucket, …) are not set — a third-party service recording a layout
 * of its own is asked in its builds only.
 */
export function expectedImageLayout(input: {
  /** The selected build service (METAFLOW_PREBUILT_BUILD_SERVICE). */
  serviceName: string;
  plan: boolean;
  service: () => Promise<BuildService>;
}): (envId: string) => Promise<ImageLayout | undefined> {
  if (input.plan && input.serviceName !== LAYOUT_RECORDING_SERVICE) {
    const layout = tarLayersLayout(`the ${input.serviceName} build service`);
    return async () => layout;
  }
  return async (envId) => buildServiceLayout(await input.service(), envId);
}
