import type { Command } from 'commander';
import { coldStartReport, formatBytes, parseBandwidth, type ColdStartReport } from '@prebuilt/core';
import type { CliContext } from '../cli-context.js';
import { fileArgument } from '../app/index.js';
import { collect, loadFlowImageMap, selectSteps, selectedRegistryClient } from '../lifecycle/flow-image-map.js';
import { oneLineText, renderTable, writeJsonResult } from '../output.js';

interface ReportOptions {
  step?: string[];
  json?: boolean;
  bandwidth: string;
}

const DEFAULT_BANDWIDTH = '100MB/s';

const REPORT_HELP = `
What a task waits for on a fresh node: for each step's image (each platform of a multi-platform
image), its compressed size (the sum of the manifest's layer sizes: what is downloaded), its
installed size (uncompressed: an eStargz layer's annotation, a gzip layer's size trailer read by a
4-byte range request, else "unknown"), its layers and how many another image of the flow shares
(pulled once per node), the layer formats (gzip, zstd, eStargz, zstd:chunked, erofs), and the pull
time at --bandwidth (compressed bytes ÷ bandwidth; decompression and unpacking come on top). Every
figure is read from the registry's manifests; the image map is the one prebuilt build wrote. A step
of the flow the map has no image for (a map prebuilt run wrote names only the steps that run
remotely; or the flow changed since its build) is named in a note (--json: stepsWithoutImage).

Exit codes: 0 printed, 1 the registry failed, 2 no image map, an unknown step or a bad
--bandwidth, 130/143 interrupted.

Environment:
  METAFLOW_PREBUILT_IMAGE_REGISTRY   image registry whose credentials are used (default dockerhub)
  METAFLOW_PREBUILT_STATE_FILE       image map path (default .prebuilt/<Flow>/images.json beside the flow)

Examples:
  $ prebuilt report flow.py
  $ prebuilt report flow.py --bandwidth 1Gbit/s
  $ prebuilt report flow.py --step train --json`;

function pullTime(seconds: number): string {
  return seconds < 60 ? `${seconds.toFixed(1)}s` : `${Math.floor(seconds / 60)}m${Math.round(seconds % 60)}s`;
}

/** The text form: one row per step and platform. */
export function renderReport(report: ColdStartReport): string {
  const rows = report.steps.flatMap((step) => step.platforms.map((platform) => ({ step, platform })));
  const table = renderTable(rows, [
    { header: 'STEP', value: (r) => r.step.step },
    { header: 'PLATFORM', value: (r) => r.platform.platform },
    { header: 'DIGEST', value: (r) => r.platform.digest.slice(0, 19) },
    { header: 'COMPRESSED', value: (r) => formatBytes(r.platform.compressedBytes) },
    { header: 'INSTALLED', value: (r) => (r.platform.installedBytes === null ? 'unknown' : formatBytes(r.platform.installedBytes)) },
    { header: 'LAYERS', value: (r) => `${r.platform.layerCount} (${r.platform.sharedLayers} shared)` },
    { header: 'FORMAT', value: (r) => r.platform.formats.join('+') || '-' },
    { header: `PULL @${report.bandwidth.text}`, value: (r) => pullTime(r.platform.pullSeconds) },
  ]);
  // The step names are the image map's (a cloned repository's map may name any): one line of text each, as in the table.
  const images = report.steps.map((s) => `  ${oneLineText(`${s.step}: ${s.image}@${s.digest}`)}${s.index ? ' (image index)' : ''}`).join('\n');
  // Steps that share an env share its image: count each image (platform manifest) once.
  const distinct = new Set(rows.map((r) => r.platform.digest)).size;
  const steps = report.steps.length;
  return `${report.flow}: cold start of ${distinct} image${distinct === 1 ? '' : 's'} (${steps} step${steps === 1 ? '' : 's'})\n\n${table}\n${images}\n`;
}

/**
 * The note on the steps of the flow the image map has no image for: the report leaves them out.
 */
function stepsWithoutImageNote(steps: readonly string[], file: string): string {
  const one = steps.length === 1;
  return `note: the image map has no image for step${one ? '' : 's'} ${steps.join(', ')} of the flow, so the report leaves ${one ? 'it' : 'them'} out: \`prebuilt run\` wrote the map (with the images of the steps that run remotely alone), or the flow changed since its last build. \`prebuilt build ${fileArgument(file)}\` builds every step's image.\n`;
}

async function runReport(file: string, context: CliContext, options: ReportOptions): Promise<void> {
  const bandwidth = parseBandwidth(options.bandwidth);
  const { imageMap, flowSteps } = await loadFlowImageMap(file, context);
  const steps = selectSteps(imageMap, options.step);
  // With --step the report is of the steps named (selectSteps refused one the map lacks).
  const withoutImage = options.step && options.step.length > 0 ? [] : flowSteps.filter((step) => !(step in imageMap.steps));
  const client = await selectedRegistryClient(context);
  const report = await coldStartReport(imageMap, client, { bandwidth, steps, signal: context.signal });
  if (options.json) {
    writeJsonResult(context, {
      flow: report.flow,
      bandwidth: report.bandwidth,
      steps: report.steps.map((s) => ({ step: s.step, image: s.image, digest: s.digest, index: s.index, platforms: s.platforms })),
      stepsWithoutImage: withoutImage,
    });
  } else {
    context.stdout.write(renderReport(report));
    if (withoutImage.length > 0) context.stdout.write(stepsWithoutImageNote(withoutImage, file));
  }
}

/** `prebuilt report <flow.py> [--step S]… [--bandwidth 100MB/s] [--json]`. */
export function registerReportCommand(program: Command, context: CliContext): void {
  program
    .command('report')
    .description("cold-start report of each step's image: sizes, shared layers, layer formats, pull time (from the registry's manifests)")
    .argument('<flow>', 'the flow file, e.g. flow.py')
    .option('--step <name>', 'only this step (repeatable)', collect)
    .option('--bandwidth <rate>', 'node download bandwidth for the pull time, e.g. 100MB/s, 1Gbit/s', DEFAULT_BANDWIDTH)
    .option('--json', 'print one JSON object for machines')
    .addHelpText('after', REPORT_HELP)
    .action(async (file: string, options: ReportOptions) => {
      context.json.requested = options.json === true;
      await runReport(file, context, options);
    });
}
