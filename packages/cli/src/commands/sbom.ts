import type { Command } from 'commander';
import { InputError, readImageSbom, type ImageMap, type ImageSbomRef } from '@prebuilt/core';
import type { CliContext } from '../cli-context.js';
import { sbomJson } from '../app/index.js';
import { collect, loadFlowImageMap, selectSteps, selectedRegistryClient } from '../lifecycle/flow-image-map.js';
import { renderTable, terminalJson, terminalText, writeJsonResult } from '../output.js';

interface SbomOptions {
  step?: string[];
  json?: boolean;
  spdx?: boolean;
}

const SBOM_HELP = `
Reads the SBOM (an SPDX 2.3 JSON document) of each step's image back from the registry: the
artifact that refers to the image, found through the registry's referrers API or, where the
registry has none (Docker's distribution 2.8), the sha256-<digest> referrers tag. prebuilt build
pushes it with every image. The image map is the one prebuilt build wrote (the state file).

Exit codes: 0 printed, 1 the registry failed, 2 no image map, an unknown step, or an image
without an SBOM (run prebuilt build again), 130/143 interrupted.

Environment:
  METAFLOW_PREBUILT_IMAGE_REGISTRY   image registry whose credentials are used (default dockerhub)
  METAFLOW_PREBUILT_STATE_FILE       image map path (default .prebuilt/<Flow>/images.json beside the flow)

Examples:
  $ prebuilt sbom flow.py
  $ prebuilt sbom flow.py --step train --spdx > train.spdx.json
  $ prebuilt sbom flow.py --json`;

interface ImageSbom {
  steps: string[];
  image: string;
  sbom: ImageSbomRef;
  document: { packages?: { name?: string; versionInfo?: string; licenseDeclared?: string; SPDXID?: string }[] } & Record<string, unknown>;
  bytes: Uint8Array;
}

/** One entry per distinct image of the selected steps, in step order. */
function imagesOf(imageMap: ImageMap, steps: readonly string[]): { image: string; steps: string[] }[] {
  const byImage = new Map<string, string[]>();
  for (const step of steps) {
    const pinned = imageMap.steps[step]!.pinnedImage!;
    byImage.set(pinned, [...(byImage.get(pinned) ?? []), step]);
  }
  return [...byImage].map(([image, names]) => ({ image, steps: names }));
}

function renderSbom(entry: ImageSbom): string {
  const packages = (entry.document.packages ?? []).filter((p) => !p.SPDXID?.startsWith('SPDXRef-Env-'));
  // The document's digest and its packages are what the registry served: the table and this line escape their control characters.
  const head = terminalText(`steps ${entry.steps.join(', ')}: ${entry.image}\nSBOM ${entry.sbom.manifest} (SPDX document ${entry.sbom.document}), ${packages.length} packages`) + '\n\n';
  return head + renderTable(packages, [
    { header: 'NAME', value: (p) => p.name ?? '' },
    { header: 'VERSION', value: (p) => p.versionInfo ?? '' },
    { header: 'LICENSE', value: (p) => p.licenseDeclared ?? '' },
  ]);
}

async function runSbom(file: string, context: CliContext, options: SbomOptions): Promise<void> {
  const { imageMap } = await loadFlowImageMap(file, context);
  const images = imagesOf(imageMap, selectSteps(imageMap, options.step));
  if (options.spdx && images.length !== 1) {
    throw new InputError(`--spdx prints one SPDX document, and the steps selected use ${images.length} images.`, { hint: 'Name one step with --step (or use --json for all of them).' });
  }
  const client = await selectedRegistryClient(context);
  const found: ImageSbom[] = [];
  for (const { image, steps } of images) {
    const read = await readImageSbom(client, image, { signal: context.signal });
    found.push({ steps, image, sbom: { manifest: read.ref.manifest, document: read.ref.document, via: read.ref.via }, document: read.document as ImageSbom['document'], bytes: read.bytes });
  }
  if (options.spdx) {
    // Byte for byte into a file or a pipe; on a terminal the registry's document could hold C1
    // controls or bidi overrides (JSON.parse took it, so no raw C0 ones): those are shown escaped.
    const text = Buffer.from(found[0]!.bytes).toString('utf8');
    context.stdout.write(context.stdout.isTTY ? terminalJson(text) : text);
  } else if (options.json) {
    writeJsonResult(context, { flow: imageMap.flow, images: found.map((f) => ({ steps: f.steps, image: f.image, sbom: sbomJson(f.sbom), spdx: f.document })) });
  } else {
    context.stdout.write(found.map(renderSbom).join('\n'));
  }
}

/** `prebuilt sbom <flow.py> [--step S]… [--json | --spdx]`. */
export function registerSbomCommand(program: Command, context: CliContext): void {
  program
    .command('sbom')
    .description("print the SBOM (SPDX 2.3) of each step's image, read back from the registry")
    .argument('<flow>', 'the flow file, e.g. flow.py')
    .option('--step <name>', 'only this step (repeatable)', collect)
    .option('--json', 'print one JSON object (each image with its SPDX document) for machines')
    .option('--spdx', 'print the SPDX JSON document of the one selected image, exactly as stored (on a terminal, its control characters as \\u escapes)')
    .addHelpText('after', SBOM_HELP)
    .action(async (file: string, options: SbomOptions) => {
      context.json.requested = options.json === true;
      await runSbom(file, context, options);
    });
}
