import type { Command } from 'commander';
import { relative } from 'node:path';
import { BuildFailedError, type DeployImage, type ImageSbomRef } from '@prebuilt/core';
import type { CliContext } from '../cli-context.js';
import { deployFlow, stateFilePath, writeImageMap, type DeployFlowResult } from '../deploy-flow.js';
import { createDeployView, formatSeconds } from '../deploy-view.js';
import { pushBuildSboms, sbomJson } from '../lifecycle/build-sboms.js';
import { renderTable, writeJson } from '../output.js';

export interface BuildCommandOptions {
  json?: boolean;
  force?: boolean;
  frozen?: boolean;
  update?: boolean;
  workers?: string;
  /** Only these steps' images (`prebuilt run`, the Metaflow extension); default every step. */
  steps?: readonly string[];
}

const BUILD_HELP = `
Builds one image per distinct step environment and pushes it, skipping every image the registry
already has (tags are content-addressed). Then writes the image map (step → image, interpreter,
pull config) to the state file.

Environment:
  METAFLOW_PREBUILT_BUILD_SERVICE     build service (default docker)
  METAFLOW_PREBUILT_IMAGE_REGISTRY    image registry (default dockerhub)
  METAFLOW_PREBUILT_BASE_IMAGE        base image (default python:3.11-slim-bookworm)
  METAFLOW_PREBUILT_GPU_BASE_IMAGE    base image of steps whose remote decorator asks for a GPU
  METAFLOW_PREBUILT_REGISTRY_CACHE    0: build even when the registry has the image (default 1)
  METAFLOW_PREBUILT_PLATFORM         linux-64 (default), linux-aarch64, or linux-64,linux-aarch64:
                                     one image per platform and a multi-platform image index
  METAFLOW_PREBUILT_BUILD_WORKERS     images built at once (default min(images, 8))
  METAFLOW_PREBUILT_RECIPE            materialized (default) or micromamba
  METAFLOW_PREBUILT_STATE_FILE        image map path (default .prebuilt/<Flow>/images.json beside the flow)
  METAFLOW_PREBUILT_SBOM              0: push no SBOM (default 1: an SPDX SBOM refers to every image;
                                     --json names it as "sbom" of each image)

Exit codes: 0 every image is present or built, 1 a build or push failed (the others are still
built), 2 bad input or configuration, 130/143 interrupted.

Examples:
  $ prebuilt build flow.py
  $ prebuilt build flow.py --json > images.json
  $ prebuilt build flow.py --frozen     # CI: use the committed lock file as it is`;

/** The image map's images, each with its SBOM (and each platform's of an index) when one was pushed or found. */
export function imagesWithSboms(result: DeployFlowResult, sboms: ReadonlyMap<string, ImageSbomRef>): DeployFlowResult['imageMap']['images'] {
  if (sboms.size === 0) return result.imageMap.images;
  const images: DeployFlowResult['imageMap']['images'] = {};
  for (const [key, image] of Object.entries(result.imageMap.images)) {
    const sbom = sboms.get(key);
    const platforms = image.platforms
      ? Object.fromEntries(Object.entries(image.platforms).map(([platform, member]) => [platform, { ...member, ...(sboms.has(member.envId) ? { sbom: sbomJson(sboms.get(member.envId)!) } : {}) }]))
      : undefined;
    images[key] = { ...image, ...(platforms ? { platforms } : {}), ...(sbom ? { sbom: sbomJson(sbom) } : {}) };
  }
  return images;
}

/** What `build --json` prints: the image map (each image with its SBOM), plus where it was written and what failed. */
export function buildJson(result: DeployFlowResult, stateFile: string | null, sboms: ReadonlyMap<string, ImageSbomRef> = new Map()): Record<string, unknown> {
  return {
    ...result.imageMap,
    images: imagesWithSboms(result, sboms),
    stateFile,
    ...(result.failures.length > 0
      ? {
          failures: result.failures.map((image) => ({
            envId: image.envId,
            image: image.pullTag,
            steps: image.steps,
            reason: image.reason,
            ...(image.hint ? { hint: image.hint } : {}),
            logTail: image.logTail ?? [],
          })),
        }
      : {}),
  };
}

export function summaryTable(images: readonly DeployImage[]): string {
  return renderTable(images, [
    { header: 'ENV', value: (image) => image.envId },
    ...(images.some((image) => image.platform !== 'linux-64')
      ? [{ header: 'PLATFORM', value: (image: DeployImage) => (image.platforms ? image.platforms.map((m) => m.platform).join('+') : image.platform) }]
      : []),
    { header: 'STATUS', value: (image) => image.status },
    { header: 'TIME', value: (image) => formatSeconds(image.elapsedMs) },
    { header: 'DIGEST', value: (image) => (image.digest ? image.digest.slice(0, 19) : '-') },
    { header: 'IMAGE', value: (image) => image.pullTag },
    { header: 'STEPS', value: (image) => image.steps.join(', ') },
  ]);
}

/** `SBOMs: 2 pushed, 1 already in the registry`. */
export function sbomSummary(sboms: ReadonlyMap<string, ImageSbomRef>): string {
  const kept = [...sboms.values()].filter((ref) => ref.via === 'present').length;
  const pushed = sboms.size - kept;
  return `SBOMs (SPDX, referring to each image): ${[pushed > 0 ? `${pushed} pushed` : '', kept > 0 ? `${kept} already in the registry` : ''].filter(Boolean).join(', ')}`;
}

/** `3 images`, or `4 images and 2 image indexes` for a multi-platform deploy. */
export function countImages(images: readonly DeployImage[]): string {
  const indexes = images.filter((image) => image.platforms).length;
  const single = images.length - indexes;
  return `${single} image${single === 1 ? '' : 's'}${indexes > 0 ? ` and ${indexes} image index${indexes === 1 ? '' : 'es'}` : ''}`;
}

/** Builds what is missing and writes the state file; throws BuildFailedError (exit 1) when an image failed. */
export async function runBuild(file: string, context: CliContext, options: BuildCommandOptions): Promise<{ result: DeployFlowResult; stateFile: string | null }> {
  const view = options.json ? undefined : createDeployView(context.stderr);
  const warnings: string[] = [];
  let result: DeployFlowResult;
  try {
    result = await deployFlow(file, context, {
      ...(options.force ? { force: true } : {}),
      ...(options.frozen ? { frozen: true } : {}),
      ...(options.update ? { update: true } : {}),
      ...(options.workers !== undefined ? { workers: options.workers } : {}),
      ...(options.steps ? { steps: options.steps } : {}),
      // With --json (stdout is for machines) notes still reach the people reading stderr.
      onEvent: (event) => {
        if (view) view.onEvent(event);
        else if (event.type === 'note') context.stderr.write(`note: ${event.message}\n`);
      },
      onMaterialized: (envId, materialized) => {
        for (const warning of materialized.warnings) warnings.push(`env ${envId}: ${warning}`);
      },
    });
  } finally {
    view?.stop();
  }
  let stateFile: string | null = null;
  let sboms = new Map<string, ImageSbomRef>();
  if (result.failures.length === 0) {
    // After deploy() returns: the SBOM of every image (pushed, or kept when the registry has it).
    sboms = await pushBuildSboms(result, context);
    stateFile = stateFilePath(file, result.imageMap.flow, context.env, context.cwd);
    await writeImageMap(stateFile, { ...result.imageMap, images: imagesWithSboms(result, sboms) });
  }
  if (options.json) {
    writeJson(context, buildJson(result, stateFile, sboms));
  } else {
    const out = context.stdout;
    out.write(`\n${result.imageMap.flow}: ${countImages(result.images)} (build service ${result.buildService}, registry ${result.registry})\n\n`);
    if (result.images.length > 0) out.write(summaryTable(result.images));
    if (sboms.size > 0) out.write(`\n${sbomSummary(sboms)}\n`);
    for (const warning of warnings) context.stderr.write(`warning: ${warning}\n`);
    for (const failure of result.failures) {
      context.stderr.write(`\nenv ${failure.envId} failed (steps ${failure.steps.join(', ')}): ${failure.reason}\n`);
      if (failure.hint) context.stderr.write(`hint: ${failure.hint}\n`);
      if (failure.logTail && failure.logTail.length > 0) {
        context.stderr.write(`last lines of its build log:\n${failure.logTail.map((line) => `  | ${line}`).join('\n')}\n`);
      }
    }
    if (stateFile) out.write(`\nimage map written to ${relative(context.cwd, stateFile) || stateFile}\n`);
  }
  if (result.failures.length > 0) {
    throw new BuildFailedError(
      `${result.failures.length} of ${result.images.length} image${result.images.length === 1 ? '' : 's'} failed to build; the image map was not written.`,
      result.failures.map((image) => ({ imageTag: image.tag, reason: image.reason ?? 'failed', logTail: image.logTail ?? [] })),
      { hint: 'Read the reasons above (and the build log), fix what they name, and run prebuilt build again: the images that were built are reused.' },
    );
  }
  return { result, stateFile };
}

/** `prebuilt build <flow.py> [--json] [--force] [--frozen] [--update] [--workers N]`. */
export function registerBuildCommand(program: Command, context: CliContext): void {
  program
    .command('build')
    .description("build and push the images of a flow's step environments that the registry does not have yet")
    .argument('<flow>', 'the flow file, e.g. flow.py')
    .option('--json', 'print one JSON object (the image map) for machines')
    .option('--force', 'rebuild every image, even those the registry has')
    .option('--frozen', 'use the lock file as it is: exit 2 when a step is not locked')
    .option('--update', 're-resolve every env instead of reusing the lock file')
    .option('--workers <n>', 'images to build at once (default: METAFLOW_PREBUILT_BUILD_WORKERS, else min(images, 8))')
    .addHelpText('after', BUILD_HELP)
    .action(async (file: string, options: BuildCommandOptions) => {
      context.json.requested = options.json === true;
      await runBuild(file, context, options);
    });
}
