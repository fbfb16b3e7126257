/** A build: deploy the flow's images, then write the image map when every image is there. */
import { BuildFailedError, checkLockFlags, type ImageSbomRef } from '@prebuilt/core';
import type { AppScope } from './app-scope.js';
import { imagesWithSboms, pushBuildSboms, sbomsEnabled } from './build-sboms.js';
import { deployFlow, type DeployFlowOptions, type DeployFlowResult } from './deploy-flow.js';
import { checkStateDirectory, checkStateFileSetting, stateFilePath, writeImageMap } from './state-file.js';

export type BuildFlowOptions = Omit<DeployFlowOptions, 'plan'>;

export interface BuildFlowResult {
  result: DeployFlowResult;
  /** Where the image map was written; null when an image failed (the map is then not written) or it could not be written. */
  stateFile: string | null;
  /**
   * Why the image map could not be written when every image is there (an unwritable directory, a
   * full disk, a link where its directory goes): the images are in the registry all the same, and
   * the caller still reports them (`build --json` names them beside the error).
   */
  stateFileError?: unknown;
  /** envId → the SBOM pushed (or found) for that image; empty when METAFLOW_PREBUILT_SBOM=0 or an image failed. */
  sboms: Map<string, ImageSbomRef>;
}

/**
 * Builds what is missing; when no image failed (see `buildFailure`), pushes each image's SBOM
 * (after deploy() returns, beside it) and writes the state file, each image with its SBOM. A
 * state file that cannot be written then is returned as `stateFileError`, not thrown.
 */
export async function buildFlow(file: string, scope: AppScope, options: BuildFlowOptions = {}): Promise<BuildFlowResult> {
  checkLockFlags(options);
  // Read before anything is locked or built: a bad METAFLOW_PREBUILT_SBOM stops the build at once (exit 2).
  sbomsEnabled(scope.env);
  await checkStateFileSetting(scope.env, scope.cwd);
  // `.prebuilt` beside the flow, a symbolic link in a cloned repository, stops the build now; its
  // `<Flow>` directory once the flow is read and locked (before any image is built); and both again
  // just before the image map is written.
  await checkStateDirectory(file, undefined, scope.env, scope.cwd);
  const result = await deployFlow(file, scope, {
    ...options,
    beforeDeploy: async (lock) => {
      await options.beforeDeploy?.(lock);
      await checkStateDirectory(file, lock.envs.flow, scope.env, scope.cwd);
    },
  });
  if (result.failures.length > 0) return { result, stateFile: null, sboms: new Map() };
  const sboms = await pushBuildSboms(result, scope);
  const stateFile = stateFilePath(file, result.imageMap.flow, scope.env, scope.cwd);
  try {
    await checkStateDirectory(file, result.imageMap.flow, scope.env, scope.cwd);
    await writeImageMap(stateFile, { ...result.imageMap, images: imagesWithSboms(result, sboms) });
  } catch (error) {
    return { result, stateFile: null, sboms, stateFileError: error };
  }
  return { result, stateFile, sboms };
}

/** The error (exit 1) of a build in which an image failed; undefined when every image is there. */
export function buildFailure(result: DeployFlowResult): BuildFailedError | undefined {
  if (result.failures.length === 0) return undefined;
  return new BuildFailedError(
    `${result.failures.length} of ${result.images.length} image${result.images.length === 1 ? '' : 's'} failed to build; the image map was not written.`,
    result.failures.map((image) => ({ imageTag: image.tag, reason: image.reason ?? 'failed', logTail: image.logTail ?? [] })),
    { hint: 'Read each failed image\'s reason and build log (printed above; `failures` with --json), fix what they name, and run prebuilt build again: the images that were built are reused.' },
  );
}
