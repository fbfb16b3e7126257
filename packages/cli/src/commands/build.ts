import type { Command } from 'commander';
import { reportBuild, type BuildReportOptions } from '../build-report.js';
import { checkLockFlags } from '@prebuilt/core';
import type { CliContext } from '../cli-context.js';
import { BACKEND_SETTINGS_HELP, DEPLOY_SETTINGS_HELP } from '../deploy-settings-help.js';

const BUILD_HELP = `
Builds one image per distinct step environment and pushes it, skipping every image the registry
already has (tags are content-addressed). Then writes the image map (step → image, interpreter,
pull config) to the state file. Locks the flow first as \`prebuilt lock\` does (unless --frozen),
and names as it does each wheel pip took at a direct URL (a note; directUrls in --json).
${DEPLOY_SETTINGS_HELP}
  METAFLOW_PREBUILT_BUILD_WORKERS         images built at once (default min(images, 8))
  METAFLOW_PREBUILT_STATE_FILE            image map (default .prebuilt/<Flow>/images.json beside the flow)
  METAFLOW_PREBUILT_SBOM                  0: push no SBOM (default 1: an SPDX SBOM refers to every image;
                                          --json names it as "sbom" of each image)
  METAFLOW_PREBUILT_PULL_SECRET           Kubernetes pull secret the image map's pull config names
  METAFLOW_PREBUILT_BATCH_REPOSITORY_CREDENTIALS
                                          AWS Batch, registry outside ECR: Secrets Manager ARN for
                                          the image map's repositoryCredentials
  METAFLOW_PREBUILT_OCI_PREFETCH          oci service, eStargz / zstd:chunked layers: static, off or a
                                          profile file (default: <flow>.prebuilt.prefetch beside the flow,
                                          which prebuilt profile writes, else static); an image laid out
                                          with another profile is rebuilt, only that one
${BACKEND_SETTINGS_HELP}

Exit codes: 0 every image is present or built, 1 a build or push failed (the others are still
built) or the Docker daemon stopped answering, 2 bad input or configuration (the Docker daemon or the registry not reachable included),
130/143 interrupted; \`prebuilt --help\` has the table.

Examples:
  $ prebuilt build flow.py
  $ prebuilt build flow.py --json > images.json
  $ prebuilt build flow.py --frozen     # CI: use the committed lock file as it is`;

/** `prebuilt build <flow.py> [--json] [--force] [--frozen] [--update] [--workers N] [--prune PRESETS]`. */
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
    .option('--prune <presets>', 'leave out of the images, comma-separated: tests, static-libs, headers (default: METAFLOW_PREBUILT_PRUNE, else nothing)')
    .addHelpText('after', BUILD_HELP)
    .action(async (file: string, options: BuildReportOptions) => {
      context.json.requested = options.json === true;
      checkLockFlags(options);
      const { failure } = await reportBuild(file, context, options);
      if (failure) throw failure;
    });
}
