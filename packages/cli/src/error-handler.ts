import { CommanderError } from 'commander';
import { CancelledError, ExitCode, PrebuiltError, errorMessage, type PrebuiltErrorOptions } from '@prebuilt/core';
import type { CliContext } from './cli-context.js';
import { errorLines, errorText, interruptedJson, quotedText, terminalText, writeJson, writeJsonResult } from './output.js';

const REUSED = 'Run it again: the images already pushed and the packages already downloaded are reused.';

/**
 * What an interrupt left, per command, and how to go on; true of what the command writes: the
 * lock file, the image map and prebuilt's other state files are replaced whole (a temporary file
 * renamed over) or not at all, a package enters the cache only once complete, a tag only once its
 * image is pushed.
 */
const INTERRUPTED: Record<string, string> = {
  build: `Nothing was left half-written (the lock file and the image map are replaced whole or not at all). ${REUSED}`,
  run: `Nothing was left half-written (the lock file and the image map are replaced whole or not at all). ${REUSED} A flow run Metaflow had started continues with Metaflow's resume: prebuilt run <flow> resume.`,
  lock: 'The lock file was not touched: it is replaced whole, once the resolution is done. Run it again.',
  gc: 'Only the images it had already deleted (--yes) are gone; every other image is intact (an SBOM or index goes before the images it points at). Run it again: it plans afresh from what is left.',
};

/**
 * The one line an interrupt prints, and the --json error's message and hint: what stopped, what it
 * left, how to go on. `completed`: the command had finished its work when the interrupt was seen
 * (it ended without an error): what it printed stands, and nothing needs running again.
 */
export function interruptedReport(signal: 'SIGINT' | 'SIGTERM', command: string | undefined, completed = false): { line: string; message: string; hint: string } {
  const what = command === undefined ? 'prebuilt' : `prebuilt ${command}`;
  const by = signal === 'SIGINT' ? 'SIGINT, Ctrl-C' : 'SIGTERM';
  if (completed) {
    const hint = 'Its result stands (nothing needs running again); the exit code says that an interrupt came.';
    return { line: `interrupted (${signal}): ${what} had finished its work when the interrupt came. ${hint}\n`, message: `${what} was interrupted (${by}) after it had finished its work.`, hint };
  }
  const hint = (command !== undefined ? INTERRUPTED[command] : undefined) ?? 'Run it again.';
  return { line: `interrupted (${signal}): ${what} stopped. ${hint}\n`, message: `${what} was interrupted (${by}).`, hint };
}

export interface ReportOptions {
  /** Show stack traces (`--verbose` or DEBUG=prebuilt:*). */
  showStack: boolean;
  /** The signal that interrupted the run, if any. */
  interrupted?: 'SIGINT' | 'SIGTERM' | undefined;
  /** The command that ran (`build`), for what an interrupt says it stopped. */
  command?: string | undefined;
  /** The command ended without an error although interrupted: it had finished its work (see {@link interruptedReport}). */
  completed?: boolean;
  /** The command line asks for `--json` (see `asksForJson`): a usage error commander raised before any command ran still prints the JSON envelope. */
  jsonAsked?: boolean;
}

/** A command line prebuilt cannot run: an unknown command or option, a missing argument. Exit 2. */
export class UsageError extends PrebuiltError {
  constructor(message: string, options: PrebuiltErrorOptions = {}) {
    super('usage', message, ExitCode.usage, options);
    this.name = 'UsageError';
  }
}

/** Whether `argv` has prebuilt's `--json` (not after `--`, where arguments are no longer options). */
export function asksForJson(argv: readonly string[]): boolean {
  const end = argv.indexOf('--');
  return (end === -1 ? argv : argv.slice(0, end)).includes('--json');
}

/** The stack and cause chain (`--verbose`): each stack's first line is its message, hostile text as much as the message is, so {@link terminalText}. */
function stackOf(error: unknown): string {
  const lines: string[] = [];
  let current: unknown = error;
  for (let depth = 0; current !== undefined && current !== null && depth < 5; depth++) {
    const text = current instanceof Error ? (current.stack ?? `${current.name}: ${current.message}`) : String(current);
    lines.push(depth === 0 ? text : `caused by: ${text}`);
    current = current instanceof Error ? current.cause : undefined;
  }
  return `${terminalText(errorText(lines.join('\n')))}\n`;
}

/**
 * The one place an error becomes an exit code and a message: 0 ok, 1 a build/push (or remote
 * service) failed or an unexpected error, 2 bad input or configuration (commander usage errors
 * included), 130/143 interrupted by SIGINT/SIGTERM. Stack traces only when `showStack`.
 */
export function reportError(error: unknown, context: CliContext, options: ReportOptions): number {
  if (error instanceof CommanderError) {
    // commander has already printed its message (or the help / version) on stderr.
    if (error.exitCode === 0) return ExitCode.ok;
    if (options.jsonAsked && !context.json.written) {
      const message = error.message.replace(/^error: /, '');
      writeJsonResult(context, {}, new UsageError(message, { hint: 'Run the command with --help for its usage.' }));
    }
    return ExitCode.usage;
  }
  // After SIGINT/SIGTERM, whatever failed (a request wrapped as a resolution or registry error,
  // say) failed because of the interruption: the user asked to stop, the exit code says so.
  // The rule, for every command: interrupted ⇒ exit 130/143 and, with --json, the interrupted
  // envelope (output.ts interruptedJson) carrying what the command did, never `ok: true`.
  if (options.interrupted) {
    const completed = options.completed === true;
    const report = interruptedReport(options.interrupted, options.command, completed);
    const held = context.json.held;
    if (context.json.requested && (!context.json.written || held?.value !== undefined)) {
      const interrupt = new CancelledError(report.message, { signal: options.interrupted, hint: report.hint });
      writeJson(context, interruptedJson(held?.value, interrupt, completed));
    }
    context.stderr.write(report.line);
    return options.interrupted === 'SIGTERM' ? ExitCode.terminated : ExitCode.interrupted;
  }
  const known = PrebuiltError.isInstance(error);
  const exitCode = known ? error.exitCode : ExitCode.failure;
  if (context.json.requested && !context.json.written) {
    writeJsonResult(context, {}, error);
  }
  if (known) {
    context.stderr.write(errorLines(error));
  } else {
    context.stderr.write(
      `error: ${quotedText(errorText(errorMessage(error)))}\n` +
        (options.showStack ? '' : 'hint: this is unexpected; run again with --verbose for the stack trace and report it.\n'),
    );
  }
  if (options.showStack) context.stderr.write(stackOf(error));
  return exitCode;
}
