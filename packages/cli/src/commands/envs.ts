import type { Command } from 'commander';
import { flowEnvs, flowEnvsJson, type FlowEnvs, type StepEnvWithRequest } from '@prebuilt/metaflow';

interface EnvsOptions {
  json?: boolean;
}

/** `prebuilt envs <flow.py> [--json]`: each step's merged env request. Reads and merges only; no network. */
export function registerEnvsCommand(program: Command): void {
  program
    .command('envs')
    .description("show each step's merged environment (python, conda and PyPI packages, remote, specHash); no network")
    .argument('<flow>', 'the flow file, e.g. flow.py')
    .option('--json', 'print one JSON object for machines')
    .action(async (file: string, options: EnvsOptions) => {
      const envs = await flowEnvs(file);
      process.stdout.write(options.json ? `${JSON.stringify(flowEnvsJson(envs), null, 2)}\n` : renderEnvs(envs));
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

/**
 * A plain table: steps grouped by env (first-seen order); the env's columns are printed on the
 * first step of each group only.
 */
export function renderEnvs(envs: FlowEnvs): string {
  const groups = new Map<string, StepEnvWithRequest[]>();
  for (const step of envs.steps) {
    const key = step.specHash ?? 'disabled';
    groups.set(key, [...(groups.get(key) ?? []), step]);
  }
  const header = ['ENV', 'PYTHON', 'PACKAGES', 'STEP', 'REMOTE'];
  const rows: string[][] = [];
  for (const steps of groups.values()) {
    steps.forEach((step, i) => {
      const envCells =
        i > 0
          ? ['', '', '']
          : step.disabled
            ? ['-', '-', 'disabled: runs with the image python']
            : [step.specHash?.slice(0, 12) ?? '-', step.python ?? '-', packagesText(step)];
      rows.push([...envCells, step.step, remoteText(step)]);
    });
  }
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string =>
    cells
      .map((cell, i) => cell.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd();
  const distinct = [...groups.keys()].filter((key) => key !== 'disabled').length;
  const stepCount = envs.steps.length;
  return [
    `${envs.flow} (${envs.file}): ${stepCount} step${stepCount === 1 ? '' : 's'}, ${distinct} distinct env${distinct === 1 ? '' : 's'}`,
    '',
    line(header),
    ...rows.map(line),
    '',
  ].join('\n');
}
