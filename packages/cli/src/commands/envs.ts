import type { Command } from 'commander';
import { flowEnvs, flowEnvsJson, type FlowEnvs, type StepEnvWithRequest } from '@prebuilt/metaflow';
import type { CliContext } from '../cli-context.js';
import { unknownSettingsNotes } from '../app/ignored-settings-note.js';
import { noteLine, renderTable, writeJsonResult } from '../output.js';

interface EnvsOptions {
  json?: boolean;
}

const ENVS_HELP = `
Reads the flow file statically (host python3, no Metaflow needed) and merges each step's
@conda/@pypi with @conda_base/@pypi_base exactly as Metaflow does. No network. Metaflow's own
pins (requests, the datastore's client) are added at resolution and not shown here.
SPEC is the start of the env request's specHash (--json has it whole); the lock file keys its
envs otherwise (LOCK KEY), and images are named by their envId (ENV in plan and build).

Environment:
  METAFLOW_PREBUILT_DEFAULT_PYTHON   python for steps that name none (default: the host python3's version)
  METAFLOW_PREBUILT_PYTHON           the interpreter that reads the flow (default: python3 on PATH)
  METAFLOW_PREBUILT_CONDA_CHANNELS   conda channel URLs or names, comma-separated (default conda-forge)
  METAFLOW_PREBUILT_PYPI_INDEX_URL   PyPI simple index (else PIP_INDEX_URL)
  METAFLOW_PREBUILT_PLATFORM         linux-64 (default), linux-aarch64, or both comma-separated
                                     (the specHash shown is the first platform's)

Examples:
  $ prebuilt envs flow.py
  $ prebuilt envs flow.py --json`;

/** `prebuilt envs <flow.py> [--json]`: each step's merged env request. Reads and merges only; no network. */
export function registerEnvsCommand(program: Command, context: CliContext): void {
  program
    .command('envs')
    .description("show each step's merged environment (python, conda and PyPI packages, remote, specHash); no network")
    .argument('<flow>', 'the flow file, e.g. flow.py')
    .option('--json', 'print one JSON object for machines')
    .addHelpText('after', ENVS_HELP)
    .action(async (file: string, options: EnvsOptions) => {
      context.json.requested = options.json === true;
      // A misspelt setting (DEFAULT_PYTHON without its H) otherwise does nothing, and the envs shown take the default: said as lock says it.
      for (const note of unknownSettingsNotes({ env: context.env, cwd: context.cwd, cliDir: context.cliDir })) context.stderr.write(noteLine(note));
      const envs = await flowEnvs(file, { env: context.env, cwd: context.cwd, signal: context.signal });
      if (options.json) writeJsonResult(context, { ...flowEnvsJson(envs) });
      else context.stdout.write(renderEnvs(envs));
    });
}

function packagesText(step: StepEnvWithRequest): string {
  const list = (kind: string, packages: Record<string, string>): string | undefined => {
    const names = Object.entries(packages)
      .sort(([a], [b]) => a.toLowerCase().localeCompare(b.toLowerCase(), 'en'))
      .map(([name, spec]) => (spec ? `${name} ${spec}` : name));
    return names.length > 0 ? `${kind}: ${names.join(', ')}` : undefined;
  };
  const parts = [list('conda', step.conda), list('pypi', step.pypi)].filter((p): p is string => p !== undefined);
  return parts.length > 0 ? parts.join('; ') : '-';
}

function remoteText(step: StepEnvWithRequest): string {
  if (step.remote === null) return 'local';
  return step.gpu ? `${step.remote} (gpu)` : step.remote;
}

interface Row {
  env: string;
  python: string;
  packages: string;
  step: string;
  remote: string;
}

/**
 * A plain table: steps grouped by env (first-seen order); the env's columns are printed on the
 * first step of each group only.
 */
function renderEnvs(envs: FlowEnvs): string {
  const groups = new Map<string, StepEnvWithRequest[]>();
  for (const step of envs.steps) {
    const key = step.specHash ?? 'disabled';
    groups.set(key, [...(groups.get(key) ?? []), step]);
  }
  const rows: Row[] = [];
  for (const steps of groups.values()) {
    steps.forEach((step, i) => {
      const env =
        i > 0
          ? { env: '', python: '', packages: '' }
          : step.disabled
            ? { env: '-', python: '-', packages: 'disabled: runs with the image python' }
            : { env: step.specHash?.slice(0, 12) ?? '-', python: step.python ?? '-', packages: packagesText(step) };
      rows.push({ ...env, step: step.step, remote: remoteText(step) });
    });
  }
  const table = renderTable(rows, [
    { header: 'SPEC', value: (r) => r.env },
    { header: 'PYTHON', value: (r) => r.python },
    { header: 'PACKAGES', value: (r) => r.packages },
    { header: 'STEP', value: (r) => r.step },
    { header: 'REMOTE', value: (r) => r.remote },
  ]);
  const distinct = [...groups.keys()].filter((key) => key !== 'disabled').length;
  const stepCount = envs.steps.length;
  return (
    `${envs.flow} (${envs.file}): ${stepCount} step${stepCount === 1 ? '' : 's'}, ` +
    `${distinct} distinct env${distinct === 1 ? '' : 's'}\n\n${table}`
  );
}
