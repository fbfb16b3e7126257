import type { Command } from 'commander';
import {
  installCommand,
  kindLabel,
  listBackends,
  selectedBackendNames,
  type BackendKind,
  type BackendListing,
  type BackendSelection,
} from '@prebuilt/core';
import { checkSelectedBackends } from '../app/index.js';
import type { CliContext } from '../cli-context.js';
import { errorLines, noteLine, renderTable, writeJsonResult } from '../output.js';

interface BackendsOptions {
  json?: boolean;
  check?: boolean;
}

const SELECTION_HELP = `
Selection:
  METAFLOW_PREBUILT_BUILD_SERVICE   build service name (default: docker)
  METAFLOW_PREBUILT_IMAGE_REGISTRY  image registry name (default: dockerhub)

  A name is looked up as: a built-in name (@prebuilt/<name>); a third-party name
  (acme → prebuilt-backend-acme, @acme/foo → @acme/prebuilt-backend-foo); a full
  package name; or a file path (./my-backend.js). Packages are resolved from the
  project directory first, then from where prebuilt is installed.

--check contacts the build service (the Docker daemon of docker, for one) but not the
registry: a login the registry needs and lacks, or a registry that is down, shows first in
\`prebuilt plan <flow>\`, which looks up the flow's images there.

Examples:
  $ prebuilt backends
  $ prebuilt backends --json
  $ METAFLOW_PREBUILT_IMAGE_REGISTRY=local prebuilt backends --check`;

/** `prebuilt backends [--json] [--check]`: what is available, and whether the selected two load. */
export function registerBackendsCommand(program: Command, context: CliContext): void {
  program
    .command('backends')
    .description('list the build services and image registries prebuilt can use, and which are selected')
    .option('--json', 'print one JSON object for machines')
    .option('--check', 'load, create and check the selected build service and image registry as a build would; exit 2 when one is missing or misconfigured')
    .addHelpText('after', SELECTION_HELP)
    .action(async (options: BackendsOptions) => {
      context.json.requested = options.json === true;
      if (options.check) await check(context, options.json === true);
      else list(context, options.json === true);
    });
}

type Selected = { buildService: BackendSelection; imageRegistry: BackendSelection };

function isSelected(listing: BackendListing, selected: Selected): boolean {
  const selection = listing.kind === 'build-service' ? selected.buildService : selected.imageRegistry;
  return selection.name === listing.name || (listing.packageName !== null && selection.name === listing.packageName);
}

function selectionText(kind: BackendKind, selection: BackendSelection): string {
  return `${kindLabel(kind)} ${selection.name} (${selection.from === 'env' ? `from ${selection.envVar}` : `default; set ${selection.envVar} to change`})`;
}

function list(context: CliContext, json: boolean): void {
  const selected = selectedBackendNames(context.env);
  const backends = listBackends({ cwd: context.cwd, cliDir: context.cliDir });
  if (json) {
    writeJsonResult(context, {
      selected,
      backends: backends.map((b) => ({ ...b, selected: isSelected(b, selected) })),
    });
    return;
  }
  const table = renderTable(backends, [
    { header: ' ', value: (b) => (isSelected(b, selected) ? '*' : ' ') },
    { header: 'NAME', value: (b) => b.name },
    { header: 'KIND', value: (b) => kindLabel(b.kind) },
    { header: 'PACKAGE', value: (b) => b.packageName ?? '(registered in code)' },
    { header: 'VERSION', value: (b) => b.version ?? '-' },
    { header: 'INSTALLED', value: (b) => (b.installed ? 'yes' : 'no') },
  ]);
  const notes = [
    `* selected: ${selectionText('build-service', selected.buildService)}, ${selectionText('image-registry', selected.imageRegistry)}`,
  ];
  for (const [kind, selection] of [
    ['build-service', selected.buildService],
    ['image-registry', selected.imageRegistry],
  ] as const) {
    if (!backends.some((b) => b.kind === kind && isSelected(b, selected))) {
      notes.push(`  the selected ${kindLabel(kind)} '${selection.name}' is not listed; \`prebuilt backends --check\` resolves it`);
    }
  }
  const missing = backends.filter((b) => isSelected(b, selected) && !b.installed);
  for (const b of missing) notes.push(`  the selected ${kindLabel(b.kind)} '${b.name}' is not installed: ${installCommand(b.packageName ?? b.name, context.cliDir, context.cwd)}`);
  context.stdout.write(`${table}\n${notes.join('\n')}\n`);
}

async function check(context: CliContext, json: boolean): Promise<void> {
  const { entries, failures } = await checkSelectedBackends(context, { onNote: (note) => context.stderr.write(noteLine(note)) });
  if (json) {
    writeJsonResult(context, { ...entries }, failures.at(-1));
  } else {
    const rows = (['buildService', 'imageRegistry'] as const).map((key) => ({ kind: key === 'buildService' ? 'build-service' : 'image-registry', entry: entries[key] }) as const);
    context.stdout.write(
      renderTable(rows, [
        { header: 'KIND', value: (r) => kindLabel(r.kind) },
        { header: 'NAME', value: (r) => r.entry.name },
        { header: 'STATUS', value: (r) => (r.entry.ok ? 'ok' : 'FAILED') },
        {
          header: 'FROM',
          value: (r) =>
            r.entry.ok
              ? `${r.entry.packageName ?? r.entry.path ?? '(registered in code)'}${r.entry.version ? ` ${r.entry.version}` : ''}${r.entry.resolvedFrom && r.entry.packageName ? ` (resolved from ${r.entry.resolvedFrom})` : ''}`
              : String(r.entry.error?.code ?? ''),
        },
      ]),
    );
  }
  // When both fail, the first is printed here and the last goes to the top-level handler.
  for (const failure of failures.slice(0, -1)) context.stderr.write(`${errorLines(failure)}\n`);
  const last = failures.at(-1);
  if (last !== undefined) throw last;
}
