import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** Where a command writes. Commands never touch process.stdout/stderr directly. */
export interface Writer {
  write(text: string): void;
}

/**
 * What every command gets: where it runs, what it reads, where it writes, and the signal that
 * aborts on Ctrl-C / SIGTERM. Created once per run by main().
 */
export interface CliContext {
  /** The user's project directory (backends are resolved from here first). */
  cwd: string;
  /** The CLI package's install directory (backends are resolved from here second). */
  cliDir: string;
  env: Record<string, string | undefined>;
  stdout: Writer & { isTTY?: boolean };
  stderr: Writer & { isTTY?: boolean };
  /** Aborted when the user interrupts (SIGINT) or the process is terminated (SIGTERM). */
  signal: AbortSignal;
  /**
   * Set by a command that was asked for `--json`: the top-level handler then keeps stdout to one
   * JSON object. `held` (main() sets it) keeps that object until the run's outcome is known: main
   * prints it then (output.ts `releaseJson`), so an interrupt that came while or after the command
   * wrote it still turns it into the interrupted envelope instead of `ok: true` beside exit 130.
   */
  json: { requested: boolean; written: boolean; held?: { value: Record<string, unknown> | undefined } };
  /**
   * Set by a command whose normal end is an interrupt (`pull-secret --watch`, which runs until
   * stopped): when it returns after Ctrl-C or SIGTERM, the run exits 0 (the command has said it
   * stopped), not 130/143. An interrupt before it is set is one still.
   */
  stopsOnInterrupt?: boolean;
}

/** The CLI package directory (the one holding package.json), real path. */
export function cliPackageDir(): string {
  const dir = fileURLToPath(new URL('..', import.meta.url));
  try {
    return realpathSync(dir);
  } catch {
    return dir;
  }
}

export function createCliContext(signal: AbortSignal, overrides: Partial<Omit<CliContext, 'signal' | 'json'>> = {}): CliContext {
  return {
    cwd: overrides.cwd ?? process.cwd(),
    cliDir: overrides.cliDir ?? cliPackageDir(),
    env: overrides.env ?? process.env,
    stdout: overrides.stdout ?? process.stdout,
    stderr: overrides.stderr ?? process.stderr,
    signal,
    json: { requested: false, written: false },
  };
}
