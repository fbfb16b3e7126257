import { Command } from 'commander';
import { EXIT_CODE_MEANINGS, ExitCode } from '@prebuilt/core';
import { readFileSync } from 'node:fs';
import { createCliContext, type CliContext } from './cli-context.js';
import { asksForJson, reportError } from './error-handler.js';
import { releaseJson } from './output.js';
import { watchInterrupts } from './signals.js';
import { debugEnabled, enableVerbose } from './verbose.js';
import { COMMANDS, commandsFor } from './command-table.js';

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };

const PROGRAM_HELP = `
Environment:
  METAFLOW_PREBUILT_BUILD_SERVICE   build service to use (default: docker)
  METAFLOW_PREBUILT_IMAGE_REGISTRY  image registry to use (default: dockerhub)
  DEBUG=prebuilt:*                  debug logs and stack traces (same as --verbose)

Exit codes:
${Object.entries(EXIT_CODE_MEANINGS).map(([code, meaning]) => `  ${code.padEnd(4)}${meaning}`).join('\n')}

Run \`prebuilt <command> --help\` for a command's options.`;

/**
 * The command tree for `argv` (default: every command). Each command lives in
 * commands/<name>.ts, exports `register<Name>Command(program, context)` and is named in
 * command-table.ts; only the commands `argv` needs are imported (see `commandsFor`).
 */
export async function createProgram(context: CliContext = createCliContext(new AbortController().signal), argv?: readonly string[]): Promise<Command> {
  const program = new Command('prebuilt')
    .description('Bake the conda and PyPI environments of Metaflow steps into container images at deploy time.')
    .version(pkg.version, '-V, --version', 'print the version')
    .option('--verbose', 'show debug logs (prebuilt:*) and stack traces')
    .helpOption('-h, --help', 'show help')
    .addHelpText('after', PROGRAM_HELP)
    .configureOutput({
      writeOut: (text) => context.stdout.write(text),
      writeErr: (text) => context.stderr.write(text),
    })
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  program.hook('preAction', async (_program, action) => {
    if (program.opts<{ verbose?: boolean }>().verbose) enableVerbose(context.env);
    await checkFlowArgument(action, context);
  });
  const names = argv === undefined ? Object.keys(COMMANDS) : commandsFor(argv);
  const registers = await Promise.all(names.map((name) => COMMANDS[name]!()));
  for (const register of registers) register(program, context);
  return program;
}

/**
 * A command whose first argument is the flow checks that file before its action reads any setting:
 * a misspelt `prebuilt build flw.py` is told about the path, not about an unset registry namespace.
 * The metaflow package's readFlow stats it again (one stat, some 50 µs, beside the reader's python
 * process): kept, so that readFlow checks its own input for every caller without a flag from here.
 */
async function checkFlowArgument(action: Command, context: CliContext): Promise<void> {
  const file = action.processedArgs[0] as unknown;
  if (action.registeredArguments[0]?.name() !== 'flow' || typeof file !== 'string' || file.startsWith('-')) return;
  // The action has not run yet to say so: an error here still prints the --json envelope.
  if (action.opts<{ json?: boolean }>().json === true) context.json.requested = true;
  await (await import('@prebuilt/metaflow')).checkFlowFile(file, context.cwd);
}

/**
 * `prebuilt help <name>` (or `prebuilt metaflow help <name>`) where no such command exists:
 * commander would print the whole help and exit 2 without saying why. Without the `help` word the
 * line is `prebuilt <name>`, which commander answers with "unknown command '<name>'" and the
 * nearest name. Every other command line is returned as it is.
 */
function withoutHelpOfUnknown(program: Command, argv: readonly string[]): string[] {
  const names = (command: Command): string[] => [command.name(), ...command.aliases()];
  let command = program;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg.startsWith('-')) continue;
    const topic = argv[i + 1];
    if (arg === 'help' && command.commands.length > 0 && topic !== undefined && !topic.startsWith('-')) {
      const known = command.commands.some((sub) => names(sub).includes(topic));
      return known ? [...argv] : [...argv.slice(0, i), ...argv.slice(i + 1)];
    }
    const sub = command.commands.find((candidate) => names(candidate).includes(arg));
    if (sub === undefined) break;
    command = sub;
  }
  return [...argv];
}

/**
 * `prebuilt registry start`: a word of a command's name (`local-registry`, `pull-secret`) given as
 * the command, which commander's spelling suggestion does not reach (too far from the whole name).
 * Said as commander says an unknown command, with that command as the suggestion (exit 2).
 */
export function checkPartialCommand(program: Command, argv: readonly string[]): void {
  const word = argv.find((arg) => !arg.startsWith('-'));
  if (word === undefined || program.commands.some((command) => command.name() === word || command.aliases().includes(word))) return;
  const matches = program.commands.filter((command) => command.name().split('-').includes(word));
  if (matches.length !== 1) return;
  program.error(`error: unknown command '${word}'\n(Did you mean ${matches[0]!.name()}?)`, { code: 'commander.unknownCommand' });
}

/** The command `argv` runs (its first word that is not an option, when it names one), else undefined. */
function commandOf(program: Command | undefined, argv: readonly string[]): string | undefined {
  const word = argv.find((arg) => !arg.startsWith('-'));
  return program?.commands.find((command) => command.name() === word || command.aliases().includes(word ?? ''))?.name();
}

/** Runs the CLI and returns the exit code. The one place errors become exit codes (error-handler.ts). */
export async function main(argv: string[], overrides: Parameters<typeof createCliContext>[1] = {}): Promise<number> {
  // A closed pipe (`prebuilt backends | head`) ends the output, not the process with a stack trace.
  // The listener stays: the pipe error arrives asynchronously, possibly after main() returned.
  const onPipeError = (error: NodeJS.ErrnoException): void => {
    if (error.code === 'EPIPE') process.exit(process.exitCode ?? ExitCode.ok);
  };
  if (overrides.stdout === undefined) process.stdout.on('error', onPipeError);
  const interrupts = watchInterrupts();
  const context = createCliContext(interrupts.signal, overrides);
  // The --json object is printed once the exit code is decided (releaseJson, below).
  context.json.held = { value: undefined };
  let program: Command | undefined;
  try {
    program = await createProgram(context, argv);
    checkPartialCommand(program, argv);
    await program.parseAsync(withoutHelpOfUnknown(program, argv), { from: 'user' });
    if (interrupts.received && context.stopsOnInterrupt !== true) {
      return reportError(interrupts.signal.reason, context, { showStack: false, interrupted: interrupts.received, command: commandOf(program, argv), completed: true });
    }
    return ExitCode.ok;
  } catch (error) {
    const showStack = program?.opts<{ verbose?: boolean }>().verbose === true || argv.includes('--verbose') || debugEnabled();
    return reportError(error, context, { showStack, interrupted: interrupts.received, jsonAsked: asksForJson(argv), command: commandOf(program, argv) });
  } finally {
    // Synchronously after the outcome was decided: no interrupt can come between the two.
    releaseJson(context);
    interrupts.dispose();
  }
}
