import type { Command } from 'commander';
import { checkLockFlags, withNetworkWaits, type LockEntry, type LockForFlowResult } from '@prebuilt/core';
import { directUrlNotes, directUrlWheels, lockedEnvs, lockFlow, shownPath } from '../app/index.js';
import type { CliContext } from '../cli-context.js';
import { noteLine, renderTable, waitLine, writeJsonResult } from '../output.js';

interface LockOptions {
  json?: boolean;
  update?: boolean;
  frozen?: boolean;
}

const LOCK_HELP = `
The lock file <flow stem>.prebuilt.lock is written beside the flow: for each distinct env its
request, platform, python version and exact files (url, sha256, size), once per target platform.
Commit it; plan and build reuse every env whose request still matches. While it works, stderr
says that it locks (not with --json) and, after a few seconds without a byte, what a channel or
index read waits on.
The table names each env by its key in the lock file (LOCK KEY); plan and build show the
image's envId (ENV), which also hashes the base image's digest and the recipe.
A wheel pip took at a direct URL (a dependency's "Requires-Dist: bar @ https://host/bar.whl",
not a file of the index) gets a note naming it, its URL's host and the packages that require it
(directUrls in --json; directUrl in the lock file): that host is one no setting names. A
package of the lock under none of its env's channels and not at its index, which the lock does
not record so (a lock edited by hand or in a pull request), is named too: a note per host, and
in directUrls with recorded: false.

Environment:
  METAFLOW_PREBUILT_CONDA_CHANNELS   conda channel URLs or names, comma-separated (default conda-forge)
  METAFLOW_PREBUILT_PYPI_INDEX_URL   PyPI simple index (else PIP_INDEX_URL, else your pip configuration)
  METAFLOW_PREBUILT_PLATFORM         linux-64, linux-aarch64, or both comma-separated (each env is
                                     locked for every platform); default: the lock file's platforms,
                                     else linux-64
  METAFLOW_PREBUILT_GLIBC_VERSION    glibc of the target images (default 2.28)
  METAFLOW_PREBUILT_PIP_ISOLATED     1: ignore your pip configuration (pip --isolated)
  METAFLOW_PREBUILT_PIP_TIMEOUT      seconds one pip resolve may take in all (default 3600)
  METAFLOW_PREBUILT_CACHE_DIR        cache for repodata and solves (default $XDG_CACHE_HOME/prebuilt,
                                     else ~/.cache/prebuilt)
  METAFLOW_PREBUILT_DEFAULT_PYTHON   python of steps that name none (default: the host python3's)
  METAFLOW_PREBUILT_PYTHON           the interpreter that reads the flow (default python3)
  METAFLOW_PREBUILT_NETWORK_IDLE_TIMEOUT, METAFLOW_PREBUILT_NETWORK_DEADLINE
                                     seconds a read may stall (default 60), a request may take (1800)
  METAFLOW_PREBUILT_REPODATA_MAX_SIZE
                                     MiB one repodata.json may have (default 1024)

Examples:
  $ prebuilt lock flow.py
  $ prebuilt lock flow.py --update
  $ prebuilt lock flow.py --frozen      # CI: fail (exit 2) when the lock is not up to date`;

interface EnvRow {
  key: string;
  entry: LockEntry;
  steps: string[];
  status: 'resolved' | 'locked';
}

function envRows(result: LockForFlowResult): EnvRow[] {
  return lockedEnvs(result).map((env) => ({ ...env, status: result.resolved.includes(env.key) ? 'resolved' : 'locked' }));
}

/** `prebuilt lock <flow.py> [--update] [--frozen] [--json]`. */
export function registerLockCommand(program: Command, context: CliContext): void {
  program
    .command('lock')
    .description('resolve every step environment to exact files and write <flow>.prebuilt.lock beside the flow')
    .argument('<flow>', 'the flow file, e.g. flow.py')
    .option('--update', 're-resolve every env, even those the lock already has (also replaces a corrupt or newer-version lock file)')
    .option('--frozen', 'check only: exit 2 when a step is not locked or the lock is corrupt or stale')
    .option('--json', 'print one JSON object for machines')
    .addHelpText('after', LOCK_HELP)
    .action(async (file: string, options: LockOptions) => {
      context.json.requested = options.json === true;
      // Conflicting flags are said before anything is printed or read.
      checkLockFlags(options);
      // A first resolve may take a while: people see at once that it runs (as plan and build say it).
      if (!options.json) context.stderr.write('reading the flow and locking its envs…\n');
      // A stalled channel or index says so on stderr (stdout stays the answer, also with --json).
      const result = await withNetworkWaits(
        (wait) => {
          if (wait.seconds > 0) context.stderr.write(waitLine(wait));
        },
        () =>
          lockFlow(file, context, {
            settingsNotes: true,
            onNote: (message) => context.stderr.write(noteLine(message)),
            ...(options.update ? { update: true } : {}),
            ...(options.frozen ? { frozen: true } : {}),
          }),
      );
      const rows = envRows(result);
      const disabled = Object.entries(result.lock.steps).filter(([, key]) => key === null).map(([step]) => step);
      if (options.json) {
        writeJsonResult(context, {
          flow: result.envs.flow,
          file,
          lockFile: result.lockFile,
          written: result.written,
          platforms: result.platforms,
          envs: rows.map((r) => ({
            key: r.key,
            specHash: r.entry.specHash,
            status: r.status,
            steps: r.steps,
            platform: r.entry.platform,
            python: r.entry.pythonVersion,
            conda: r.entry.packages.filter((p) => p.kind === 'conda').length,
            pypi: r.entry.packages.filter((p) => p.kind === 'pypi').length,
            bytes: r.entry.packages.reduce((sum, p) => sum + p.size, 0),
            directUrls: directUrlWheels(r.entry),
          })),
          disabledSteps: disabled,
        });
        return;
      }
      const shown = shownPath(context.cwd, result.lockFile);
      const table = renderTable(rows, [
        { header: 'LOCK KEY', value: (r) => r.key },
        { header: 'PLATFORM', value: (r) => r.entry.platform },
        { header: 'PYTHON', value: (r) => r.entry.pythonVersion },
        { header: 'FILES', value: (r) => `${r.entry.packages.filter((p) => p.kind === 'conda').length} conda, ${r.entry.packages.filter((p) => p.kind === 'pypi').length} pypi` },
        { header: 'MB', value: (r) => (r.entry.packages.reduce((sum, p) => sum + p.size, 0) / 1e6).toFixed(1) },
        { header: 'STATUS', value: (r) => r.status },
        { header: 'STEPS', value: (r) => r.steps.join(', ') },
      ]);
      const summary = options.frozen
        ? `${shown} is up to date.`
        : result.written
          ? `wrote ${shown}`
          : `${shown} is up to date.`;
      context.stdout.write(
        `${result.envs.flow}: ${rows.length} env${rows.length === 1 ? '' : 's'} for ${Object.keys(result.lock.steps).length} steps` +
          `${result.platforms.length > 1 ? ` on ${result.platforms.join(' and ')}` : ''}` +
          `${disabled.length > 0 ? ` (disabled: ${disabled.join(', ')})` : ''}\n\n${rows.length > 0 ? table : ''}\n` +
          directUrlNotes(rows).map(noteLine).join('') +
          `${summary}\n`,
      );
    });
}
