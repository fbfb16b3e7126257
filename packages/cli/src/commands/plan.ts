import type { Command } from 'commander';
import { checkLockFlags, type DeployImage } from '@prebuilt/core';
import { deployFlow, fileArgument, type DeployFlowResult } from '../app/index.js';
import type { DeploySettings } from '../app/deploy-settings.js';
import { countImages, imageTable } from '../build-report.js';
import type { CliContext } from '../cli-context.js';
import { noteLine, oneLineText, terminalText, waitLine, writeJsonResult } from '../output.js';
import { BACKEND_SETTINGS_HELP, DEPLOY_SETTINGS_HELP } from '../deploy-settings-help.js';

interface PlanOptions {
  json?: boolean;
  frozen?: boolean;
  update?: boolean;
  prune?: string;
}

const PLAN_HELP = `
Shows what a build would do, without building: each distinct env (one per platform, plus an image
index over them when METAFLOW_PREBUILT_PLATFORM names two), its envId and image tag, the
steps that use it, and whether the registry already has the image (one manifest request each).
An image the registry has but laid out otherwise than the build would lay it out (another
prefetch order, EROFS layers where the build makes tar layers, …) shows \`will rebuild\`, with
the reason below the table (--json: status missing and its reason).
The selected build service is found, as a build finds it (a name that is none is exit 2), but not
created: its settings and its daemon are not needed.
Resolves and writes the lock file like \`prebuilt lock\` (unless --frozen), and names as it
does each wheel pip took at a direct URL (a note; directUrls in --json). Meanwhile stderr
says that it locks the envs (not with --json) and, after a few seconds without a byte, what a
network read (channel, index, registry) waits on.
${DEPLOY_SETTINGS_HELP}
${BACKEND_SETTINGS_HELP}

Exit codes: 0 shown (whether or not images are missing), 1 the registry failed or refused the
credentials, 2 bad input or configuration (the registry not reachable included), 130/143
interrupted; \`prebuilt --help\` has the table.

Examples:
  $ prebuilt plan flow.py
  $ prebuilt plan flow.py --json | jq '.images[] | select(.status == "missing")'`;

type PlannedStep = { envId: string | null; image: string; python: string };

/** Each step's image: a multi-platform step pulls its image index, any other its one image; a disabled env the base image. */
function plannedSteps(result: DeployFlowResult): Record<string, PlannedStep> {
  const steps: Record<string, PlannedStep> = {};
  for (const step of result.lock.envs.steps) {
    const image =
      result.images.find((candidate) => candidate.platforms && candidate.steps.includes(step.step)) ??
      result.images.find((candidate) => !candidate.platforms && candidate.steps.includes(step.step));
    steps[step.step] = image
      ? { envId: image.envId, image: image.pullTag, python: image.python }
      : { envId: null, image: step.gpu ? result.settings.gpuBaseImage : result.settings.baseImage, python: 'python' };
  }
  return steps;
}

function planImageJson(image: DeployImage): Record<string, unknown> {
  return {
    image: image.pullTag,
    status: image.status,
    ...(image.digest ? { digest: image.digest } : {}),
    python: image.python,
    platform: image.platform,
    // The image map's shape: platform → that platform's image.
    ...(image.platforms
      ? { platforms: Object.fromEntries(image.platforms.map((m) => [m.platform, { envId: m.envId, image: m.image, ...(m.digest ? { digest: m.digest } : {}) }])) }
      : {}),
    ...(image.memberOf ? { memberOf: image.memberOf } : {}),
    ...(image.status === 'missing' && image.reason ? { reason: image.reason } : {}),
    ...(image.layout ? { layout: image.layout } : {}),
    base: { ref: image.base.ref, digest: image.base.digest },
    packages: image.packages,
    steps: image.steps,
  };
}

function statusText(image: DeployImage): string {
  if (image.status === 'missing') return image.reason ? 'will rebuild' : 'will build';
  return image.status === 'unchecked' ? 'will build (cache off)' : image.status;
}

/**
 * Why the images the registry has would be rebuilt, below the table: one line per reason, naming
 * its images (`will rebuild: built with EROFS layers; the docker build service makes tar layers
 * (env a, b)`). In the STATUS column such a reason widened every row past the terminal. A reason
 * quotes what the registry recorded: {@link oneLineText} (a line break in it shown as its escape).
 */
export function rebuildReasons(images: readonly DeployImage[]): string {
  const envIds = new Map<string, string[]>();
  for (const image of images) {
    if (image.status === 'missing' && image.reason) envIds.set(image.reason, [...(envIds.get(image.reason) ?? []), image.envId]);
  }
  return [...envIds].map(([reason, ids]) => `will rebuild: ${oneLineText(reason)} (env ${ids.join(', ')})\n`).join('');
}

function renderPlan(context: CliContext, file: string, result: DeployFlowResult, steps: Record<string, PlannedStep>): void {
  const out = context.stdout;
  const prune = result.settings.prune.length > 0 ? `, prune ${result.settings.prune.join(',')}` : '';
  out.write(`${result.lock.envs.flow}: ${countImages(result.images)} for ${result.lock.envs.steps.length} steps (registry ${result.registry}, base ${result.settings.baseImage}${prune})\n\n`);
  if (result.images.length > 0) {
    out.write(
      imageTable(result.images, [
        { header: 'STATUS', value: statusText },
        { header: 'PACKAGES', value: (image) => String(image.packages) },
        { header: 'IMAGE', value: (image) => image.pullTag },
        { header: 'STEPS', value: (image) => image.steps.join(', ') },
      ]),
    );
    const reasons = rebuildReasons(result.images);
    if (reasons) out.write(`\n${reasons}`);
  }
  const disabled = Object.entries(steps).filter(([, step]) => step.envId === null).map(([name]) => name);
  if (disabled.length > 0) out.write(`\nsteps on the base image's python (env disabled): ${disabled.join(', ')}\n`);
  const toPush = result.images.filter((image) => image.status !== 'present');
  out.write(`\n${toPush.length === 0 ? 'Nothing to build.' : `${countImages(toPush)} to build: run ${terminalText(buildCommand(file, result.settings))}`}\n`);
}

/**
 * The build that makes the images the plan lists: with the plan's `--prune` when it came from the
 * command line (the presets are part of the images' tags; without it the build would follow
 * METAFLOW_PREBUILT_PRUNE and make other images).
 */
export function buildCommand(file: string, settings: Pick<DeploySettings, 'prune' | 'pruneSetting'>): string {
  if (settings.pruneSetting !== '--prune') return `prebuilt build ${fileArgument(file)}`;
  return `prebuilt build ${fileArgument(file)} --prune ${settings.prune.length > 0 ? settings.prune.join(',') : "''"}`;
}

/** `prebuilt plan <flow.py> [--json] [--frozen] [--update] [--prune PRESETS]`. */
export function registerPlanCommand(program: Command, context: CliContext): void {
  program
    .command('plan')
    .description('show the images a build would make and which the registry already has; never builds')
    .argument('<flow>', 'the flow file, e.g. flow.py')
    .option('--json', 'print one JSON object for machines')
    .option('--frozen', 'use the lock file as it is: exit 2 when a step is not locked')
    .option('--update', 're-resolve every env instead of reusing the lock file')
    .option('--prune <presets>', 'leave out of the images, comma-separated: tests, static-libs, headers (default: METAFLOW_PREBUILT_PRUNE, else nothing)')
    .addHelpText('after', PLAN_HELP)
    .action(async (file: string, options: PlanOptions) => {
      context.json.requested = options.json === true;
      checkLockFlags(options);
      let lockingShown = false;
      const result = await deployFlow(file, context, {
        plan: true,
        findBuildService: true,
        ...(options.frozen ? { frozen: true } : {}),
        ...(options.update ? { update: true } : {}),
        ...(options.prune !== undefined ? { prune: options.prune } : {}),
        // The plan is printed once it is known. Meanwhile stderr says what takes the time: that the
        // envs are being locked (a first resolve may take a while; not with --json, as build), and a
        // stalled network read (channel, index, registry; with --json too, as lock); notes (a flow
        // that asks for no package, a cached package downloaded again) go there as they come.
        onEvent: (event) => {
          if (event.type === 'note') context.stderr.write(noteLine(event.message));
          else if (event.type === 'resolving' && !options.json && !lockingShown) {
            lockingShown = true;
            context.stderr.write('reading the flow and locking its envs…\n');
          }
          else if (event.type === 'waiting' && event.seconds > 0) context.stderr.write(waitLine(event));
        },
      });
      const steps = plannedSteps(result);
      if (!options.json) return renderPlan(context, file, result, steps);
      writeJsonResult(context, {
        flow: result.lock.envs.flow,
        lockFile: result.lock.lockFile,
        images: Object.fromEntries(result.images.map((image) => [image.envId, planImageJson(image)])),
        steps,
        ...(result.settings.prune.length > 0 ? { prune: result.settings.prune } : {}),
        ...(result.directUrls.length > 0 ? { directUrls: result.directUrls } : {}),
      });
    });
}
