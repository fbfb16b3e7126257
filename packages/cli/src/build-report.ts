/**
 * A build as people and machines see it: the live view while it runs, then the summary table, the
 * failures with their log tails, or the one JSON object. Used by `build`, `run` and `metaflow build`
 * (commands never import each other; they share this and the application layer).
 */
import type { DeployImage, ImageSbomRef } from '@prebuilt/core';
import type { PruneSummary } from '@prebuilt/conda';
// The modules themselves, not the app barrel: a build loads none of run, gc or prepull (Kubernetes).
import { buildFailure, buildFlow, type BuildFlowResult } from './app/build-flow.js';
import { imagesWithSboms } from './app/build-sboms.js';
import type { DeployFlowResult } from './app/deploy-flow.js';
import { shownPath } from './app/shown-path.js';
import type { CliContext } from './cli-context.js';
import { createDeployView, formatSeconds, redrawsOn } from './deploy-view.js';
import { errorText, noteLine, oneLineText, quotedText, renderTable, writeJsonResult } from './output.js';

export interface BuildReportOptions {
  json?: boolean;
  force?: boolean;
  frozen?: boolean;
  update?: boolean;
  workers?: string;
  /** Prune presets (`--prune`); default METAFLOW_PREBUILT_PRUNE. */
  prune?: string;
  /** Only these steps' images (`prebuilt run`, the Metaflow extension); default every step. */
  steps?: readonly string[];
  /** Steps that ask for a GPU beyond what the flow file says (`prebuilt run … --with kubernetes:gpu=1`). */
  gpuSteps?: readonly string[];
  /** The datastore Metaflow runs the flow with (`prebuilt run flow.py --datastore s3 …`, the extension's): its packages are pinned. */
  datastore?: string;
}

/** What `build --json` prints (inside the envelope): the image map (each image with its SBOM), where it was written and what failed. */
export function buildJson(
  result: DeployFlowResult,
  stateFile: string | null,
  sboms: ReadonlyMap<string, ImageSbomRef> = new Map(),
  pruned: ReadonlyMap<string, PruneSummary> = new Map(),
): Record<string, unknown> {
  const failures = result.failures.map((image) => ({
    envId: image.envId,
    image: image.pullTag,
    steps: image.steps,
    // Shown as an error of the command is (errorText): a URL's credentials hidden.
    ...(image.reason === undefined ? {} : { reason: errorText(image.reason) }),
    ...(image.hint ? { hint: errorText(image.hint) } : {}),
    logTail: (image.logTail ?? []).map(errorText),
  }));
  const prefetch = prefetchJson(result);
  const prune = pruneJson(result, pruned);
  return {
    ...result.imageMap,
    images: imagesWithSboms(result, sboms),
    stateFile,
    ...(prefetch ? { prefetch } : {}),
    ...(prune ? { prune } : {}),
    ...(result.directUrls.length > 0 ? { directUrls: result.directUrls } : {}),
    ...(failures.length > 0 ? { failures } : {}),
  };
}

/** `prune` of `build --json`, when presets are set: them, and what each image built now left out (envId → files, bytes). */
function pruneJson(result: DeployFlowResult, pruned: ReadonlyMap<string, PruneSummary>): Record<string, unknown> | undefined {
  if (result.settings.prune.length === 0) return undefined;
  return { presets: result.settings.prune, images: Object.fromEntries([...pruned].map(([envId, summary]) => [envId, { files: summary.files, bytes: summary.bytes }])) };
}

/** `pruned (tests):` and `  env 0123…: 4130 files, 71.9 MiB left out` per image built now; none when no presets are set. */
export function pruneSummaryLines(presets: readonly string[], pruned: ReadonlyMap<string, PruneSummary>): string[] {
  if (presets.length === 0) return [];
  const lines = [...pruned].map(([envId, summary]) => `  env ${envId}: ${summary.files} files, ${(summary.bytes / 2 ** 20).toFixed(1)} MiB left out`);
  return [`pruned (${presets.join(', ')})${lines.length === 0 ? ': no image built now' : ':'}`, ...lines];
}

/** The images laid out in a prefetch order (eStargz, zstd:chunked): envId → its layout record (`static`, `off`, `profile sha256:…`). */
function layouts(result: DeployFlowResult): Record<string, string> {
  return Object.fromEntries(result.images.filter((image) => image.layout).map((image) => [image.envId, image.layout!]));
}

/** `prefetch` of `build --json`, when an image is laid out in a prefetch order: the profile used (null for none) and each image's layout. */
function prefetchJson(result: DeployFlowResult): Record<string, unknown> | undefined {
  const images = layouts(result);
  if (Object.keys(images).length === 0) return undefined;
  return { profile: result.prefetchProfile, images };
}

/** `prefetch profile: flow.prebuilt.prefetch (beside the flow) — 2 images`, or the order without one; undefined when no image has a prefetch order. */
function prefetchSummary(result: DeployFlowResult, cwd: string): string | undefined {
  const images = Object.values(layouts(result));
  if (images.length === 0) return undefined;
  const profile = result.prefetchProfile;
  const withProfile = images.filter((layout) => layout.startsWith('profile ')).length;
  if (!profile) return `prefetch order: ${[...new Set(images)].join(', ')} (no recorded profile: run prebuilt profile to record one)`;
  const where = profile.from === 'flow' ? 'beside the flow' : 'METAFLOW_PREBUILT_OCI_PREFETCH';
  const rest = images.length - withProfile;
  return `prefetch profile: ${shownPath(cwd, profile.file)} (${where}), ${withProfile} of ${images.length} image${images.length === 1 ? '' : 's'} laid out with it${rest > 0 ? ` (the others have no recorded paths: static order)` : ''}`;
}

function platformColumn(images: readonly DeployImage[]): { header: string; value: (image: DeployImage) => string }[] {
  if (!images.some((image) => image.platform !== 'linux-64')) return [];
  return [{ header: 'PLATFORM', value: (image) => (image.platforms ? image.platforms.map((m) => m.platform).join('+') : image.platform) }];
}

/** The images of a deploy as a table; `status` says how each image's state reads (build and plan differ). */
export function imageTable(images: readonly DeployImage[], columns: { header: string; value: (image: DeployImage) => string }[]): string {
  return renderTable(images, [{ header: 'ENV', value: (image) => image.envId }, ...platformColumn(images), ...columns]);
}

export function summaryTable(images: readonly DeployImage[]): string {
  return imageTable(images, [
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

function renderBuild(context: CliContext, { result, stateFile, sboms, stateFileError }: BuildFlowResult, warnings: readonly string[], pruned: ReadonlyMap<string, PruneSummary>): void {
  const out = context.stdout;
  out.write(`\n${result.imageMap.flow}: ${countImages(result.images)} (build service ${result.buildService}, registry ${result.registry})\n\n`);
  if (result.images.length > 0) out.write(summaryTable(result.images));
  if (sboms.size > 0) out.write(`\n${sbomSummary(sboms)}\n`);
  const prefetch = prefetchSummary(result, context.cwd);
  if (prefetch) out.write(`${sboms.size > 0 ? '' : '\n'}${prefetch}\n`);
  for (const line of pruneSummaryLines(result.settings.prune, pruned)) out.write(`${line}\n`);
  for (const warning of warnings) context.stderr.write(warningLine(warning));
  for (const failure of result.failures) context.stderr.write(failureText(failure));
  if (stateFile) out.write(`\nimage map written to ${shownPath(context.cwd, stateFile)}\n`);
  else if (stateFileError !== undefined) context.stderr.write(`\nevery image is in the registry (above), but the image map could not be written:\n`);
}

/**
 * A warning of an env's materialization, its lines after the first indented ({@link quotedText}): it
 * quotes a package's file paths (`<pkg> replaced '<path>'`), and a path holding a line break (a
 * hostile package's tar member) printed a line that looked like prebuilt's own.
 */
export function warningLine(warning: string): string {
  return `warning: ${quotedText(warning)}\n`;
}

/** What a failure quotes of one line of a build log at most. */
const LOG_LINE_MAX = 2000;

/**
 * A failed image for people: why, the hint, the last lines of its build log (text from the daemon
 * or the build: {@link quotedText}, {@link oneLineText}; a URL's credentials hidden, {@link errorText}).
 */
export function failureText(failure: Pick<DeployImage, 'envId' | 'steps' | 'reason' | 'hint' | 'logTail'>): string {
  const lines = [`\nenv ${failure.envId} failed (steps ${failure.steps.join(', ')}): ${quotedText(errorText(failure.reason ?? 'failed'))}`];
  if (failure.hint) lines.push(`hint: ${quotedText(errorText(failure.hint))}`);
  // Each log line on its own line and cut (oneLineText): a line of a remote build's log holding a line break printed a line of its own (a fake hint:).
  if (failure.logTail && failure.logTail.length > 0) lines.push('last lines of its build log:', ...failure.logTail.map((line) => `  | ${oneLineText(errorText(line), LOG_LINE_MAX)}`));
  return `${lines.join('\n')}\n`;
}

export interface BuildReport extends BuildFlowResult {
  /**
   * The error to exit with, which the caller throws: BuildFailedError (exit 1) when an image failed,
   * else the image map's write error (`stateFileError`) when it could not be written.
   */
  failure: unknown;
}

/**
 * Builds what is missing (buildFlow) with the live view on stderr, then renders the result (with
 * --json the one JSON object, also when an image failed: `ok: false`, `error` and `failures`).
 */
export async function reportBuild(file: string, context: CliContext, options: BuildReportOptions): Promise<BuildReport> {
  const view = options.json ? undefined : createDeployView(context.stderr, { tty: redrawsOn(context.stderr, context.env) });
  const warnings: string[] = [];
  const pruned = new Map<string, PruneSummary>();
  let built: BuildFlowResult;
  try {
    built = await buildFlow(file, context, {
      ...(options.force ? { force: true } : {}),
      ...(options.frozen ? { frozen: true } : {}),
      ...(options.update ? { update: true } : {}),
      ...(options.workers !== undefined ? { workers: options.workers } : {}),
      ...(options.prune !== undefined ? { prune: options.prune } : {}),
      ...(options.steps ? { steps: options.steps } : {}),
      ...(options.gpuSteps ? { gpuSteps: options.gpuSteps } : {}),
      ...(options.datastore !== undefined ? { datastore: options.datastore } : {}),
      // With --json (stdout is for machines) notes still reach the people reading stderr.
      onEvent: (event) => {
        if (view) view.onEvent(event);
        else if (event.type === 'note') context.stderr.write(noteLine(event.message));
      },
      onMaterialized: (envId, materialized) => {
        for (const warning of materialized.warnings) warnings.push(`env ${envId}: ${warning}`);
        if (materialized.pruned.presets.length > 0) pruned.set(envId, materialized.pruned);
      },
    });
  } finally {
    view?.stop();
  }
  const failure: unknown = buildFailure(built.result) ?? built.stateFileError;
  if (options.json) writeJsonResult(context, buildJson(built.result, built.stateFile, built.sboms, pruned), failure);
  else renderBuild(context, built, warnings, pruned);
  return { ...built, failure };
}
