import { Option, type Command } from 'commander';
import { formatBytes, InputError, shortDigest, type GcItem } from '@prebuilt/core';
import { garbageCollect, parseMinAge, type GcProgress, type GcResult } from '../app/index.js';
import type { CliContext } from '../cli-context.js';
import { BACKEND_SETTINGS_HELP, DEPLOY_SETTINGS_HELP } from '../deploy-settings-help.js';
import { oneLineText, renderTable, writeJsonResult } from '../output.js';

interface GcCommandOptions {
  keepMap?: string[];
  keepDays?: string;
  minAge?: string;
  kubeNamespace?: string;
  yes?: boolean;
  dryRun?: boolean;
  json?: boolean;
}

const GC_HELP = `
Removes the images of the selected registry's env repository (the one prebuilt pushes to) that
nothing needs. Kept are:
  - the images of each FLOW given: what 'prebuilt plan' computes from its lock file (never
    resolved or built here: the lock must exist) and what its image map (state file) names;
  - every image an image map given with --keep-map names (a state file, or build --json output);
  - with --keep-days N, images pushed within N days; a registry that does not record push times
    (a plain distribution registry such as the local one) keeps every image under this rule;
  - with --kube-namespace NS, every image a live Argo WorkflowTemplate, CronWorkflow or Workflow in
    NS references (read with your kubeconfig; needs list on those resources);
  - the base images (METAFLOW_PREBUILT_BASE_IMAGE, _GPU_BASE_IMAGE), always;
  - images younger than the minimum age (--min-age, METAFLOW_PREBUILT_GC_MIN_AGE, default 1h):
    pushed within it (where the registry records push times), or checked, reused or pushed within
    it by a build sharing this cache directory — a build running now may be about to name the
    image in its image map. Each image is looked up again just before it is deleted. A build on
    another machine that reuses an old image is not seen: do not run gc --yes while builds of
    flows outside the keep set run elsewhere (or keep those flows).
A kept image index keeps all its platform images; a kept image keeps its SBOM artifact and its
sha256-<digest> referrers tag. An index that goes takes its platform images unless something keeps
them. With no keep source at all gc refuses to run (it would delete everything), and with a
keep source that names no image of the env repository (an image map whose steps are empty or of
another repository, a flow whose every step's env is disabled).

Dry run by default (--dry-run says so explicitly): a table of what would go, why, and the bytes
reclaimed. --yes deletes, SBOMs and indexes before the images they point at, so a failure midway
leaves nothing pointing at nothing.
The registry frees the blobs on its own garbage collection (distribution: 'registry
garbage-collect'); blobs other repositories share stay.

Supported registries: local, dockerhub, ecr, gcr (and any registry backend that implements
listImages and deleteImage). A distribution registry must have deletes enabled
(storage.delete.enabled: true).
${DEPLOY_SETTINGS_HELP}
  METAFLOW_PREBUILT_STATE_FILE            a flow's image map (default .prebuilt/<Flow>/images.json beside it)
  METAFLOW_PREBUILT_GC_MIN_AGE            the minimum age when --min-age is not given (default 1h; 0: none)
  KUBECONFIG                              the cluster of --kube-namespace (else in-cluster, else ~/.kube/config)
${BACKEND_SETTINGS_HELP}

Exit codes: 0 done (or dry run), 1 the registry or the Kubernetes API failed or refused the
credentials, 2 no keep source, a bad map, a map or flow naming no image of the repository, a
registry without gc support or with deletes disabled, 130/143 interrupted.

Examples:
  $ prebuilt gc flow.py other_flow.py --dry-run
  $ prebuilt gc --keep-map prod/images.json --keep-days 30
  $ prebuilt gc flow.py --kube-namespace metaflow --yes
  $ prebuilt gc --kube-namespace metaflow --json | jq '.deleted[].digest'`;

function sizeText(item: GcItem): string {
  return item.size === undefined ? '?' : formatBytes(item.size);
}

function tagsText(item: GcItem): string {
  return item.tags.length === 0 ? '(untagged)' : item.tags.join(', ');
}

/** The text form: the deletions, then the totals and what was kept. */
export function renderGc(result: GcResult): string {
  const { plan } = result;
  const lines: string[] = [`registry ${result.registry}: ${result.repository} holds ${plan.items.length} image${plan.items.length === 1 ? '' : 's'}`, ''];
  if (plan.deletions.length > 0) {
    lines.push(
      renderTable(plan.deletions, [
        { header: 'TAGS', value: tagsText },
        { header: 'DIGEST', value: (item) => shortDigest(item.digest) },
        { header: 'KIND', value: (item) => item.kind },
        { header: 'SIZE', value: sizeText },
        { header: 'WHY IT GOES', value: (item) => item.reason },
      ]).trimEnd(),
      '',
    );
  }
  const reclaimed = `${plan.reclaimedPartial ? 'at least ' : ''}${formatBytes(plan.reclaimedBytes)}`;
  lines.push(`${result.deleted ? 'deleted' : 'would delete'} ${plan.deletions.length}, keep ${plan.kept.length}; ${reclaimed} reclaimed (once the registry collects garbage)`);
  // A note may quote a registry's answer (a base image it could not read) or a directory's name (a
  // cloned repository's .prebuilt/<flow>): its escapes are shown, not sent, and a newline in it starts no line.
  for (const note of result.notes) lines.push(`note: ${oneLineText(note)}`);
  if (!result.deleted) lines.push('dry run: nothing deleted; pass --yes to delete');
  return `${lines.join('\n')}\n`;
}

function itemJson(item: GcItem): Record<string, unknown> {
  return { digest: item.digest, tags: item.tags, kind: item.kind, ...(item.size !== undefined ? { size: item.size } : {}), ...(item.pushedAt ? { pushedAt: item.pushedAt } : {}), reason: item.reason };
}

function progressLine(event: GcProgress): string {
  switch (event.type) {
    case 'keep-sources':
      return 'gc: reading the keep sources';
    case 'listing':
      return `gc: listing ${event.repository}`;
    case 'deleting':
      return `gc: deleting ${event.index + 1}/${event.total} ${event.item.kind} ${shortDigest(event.item.digest)} (${tagsText(event.item)})`;
    case 'deleted':
      return `gc: deleted ${shortDigest(event.item.digest)}`;
    case 'spared':
      return `gc: kept ${event.item.kind} ${shortDigest(event.item.digest)} (${tagsText(event.item)}): ${event.reason}`;
  }
}

function parseKeepDays(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value.trim())) throw new InputError(`--keep-days ${value} is not a whole number of days.`, { hint: 'Pass --keep-days 0 or more, e.g. --keep-days 30.' });
  return Number(value);
}

function parseMinAgeOption(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const ms = parseMinAge(value);
  if (ms === undefined) throw new InputError(`--min-age ${value} is not a duration.`, { hint: 'Pass --min-age 0, or a whole number and a unit: s, m, h or d (e.g. 30m, 2h, 1d).' });
  return ms;
}

async function runGc(flows: string[], context: CliContext, options: GcCommandOptions): Promise<void> {
  const keepDays = parseKeepDays(options.keepDays);
  const minAgeMs = parseMinAgeOption(options.minAge);
  const deleted: GcItem[] = [];
  let deleting = false;
  const result = await garbageCollect(context, {
    flows,
    keepMaps: options.keepMap ?? [],
    ...(keepDays !== undefined ? { keepDays } : {}),
    ...(minAgeMs !== undefined ? { minAgeMs } : {}),
    ...(options.kubeNamespace !== undefined ? { kubeNamespace: options.kubeNamespace } : {}),
    ...(options.yes ? { yes: true } : {}),
    onProgress: (event) => {
      if (event.type === 'deleting') deleting = true;
      if (event.type === 'deleted') deleted.push(event.item);
      // The tags come from the registry's listing: shown with their control characters escaped.
      context.stderr.write(`${oneLineText(progressLine(event))}\n`);
    },
  }).catch((error: unknown) => {
    // Stopped once deleting had begun (a DELETE refused, the marks made unreadable, Ctrl-C): what went
    // before stays deleted, and --json names it beside the error, an empty list when the first
    // DELETE failed (an interrupted run's envelope keeps it too). Stopped before: the error alone.
    if (options.json && deleting) writeJsonResult(context, { dryRun: false, deleted: deleted.map(itemJson) }, error);
    throw error;
  });
  if (!options.json) return context.stdout.write(renderGc(result));
  writeJsonResult(context, {
    registry: result.registry,
    repository: result.repository,
    dryRun: !result.deleted,
    minAgeSeconds: result.minAgeMs / 1000,
    deleted: result.plan.deletions.map(itemJson),
    kept: result.plan.kept.map(itemJson),
    reclaimedBytes: result.plan.reclaimedBytes,
    reclaimedPartial: result.plan.reclaimedPartial,
    notes: result.notes,
  });
}

/** `prebuilt gc [FLOW…] [--keep-map F…] [--keep-days N] [--kube-namespace NS] [--yes] [--json]`. */
export function registerGcCommand(program: Command, context: CliContext): void {
  program
    .command('gc')
    .description("delete the env images nothing needs: not named by the flows, image maps or live Argo workflows given (dry run unless --yes)")
    .argument('[flows...]', 'flow files whose current images stay, e.g. flow.py')
    .option('--keep-map <file...>', 'image map files (state files or build --json output) whose images stay')
    .option('--keep-days <n>', 'keep images pushed within the last N days')
    .option('--min-age <duration>', 'never delete an image pushed, or used by a build on this machine, less than this long ago (default 1h, METAFLOW_PREBUILT_GC_MIN_AGE; 0: none)')
    .option('--kube-namespace <ns>', 'keep every image the Argo WorkflowTemplates, CronWorkflows and Workflows in this namespace reference')
    .option('--yes', 'delete (default: a dry run that deletes nothing)')
    .addOption(new Option('--dry-run', 'delete nothing, only show what would go (the default, said explicitly)').conflicts('yes'))
    .option('--json', 'print one JSON object for machines')
    .addHelpText('after', GC_HELP)
    .action(async (flows: string[], options: GcCommandOptions) => {
      context.json.requested = options.json === true;
      await runGc(flows, context, options);
    });
}
