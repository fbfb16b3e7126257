import { Command, CommanderError } from 'commander';
import { PrebuiltError, ExitCode, errorMessage } from '@prebuilt/core';
import { readFileSync } from 'node:fs';
import { registerEnvsCommand } from './commands/envs.js';

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };

export function createProgram(): Command {
  const program = new Command('prebuilt')
    .description('Bake the conda and PyPI environments of Metaflow steps into container images at deploy time.')
    .version(pkg.version, '-V, --version')
    .option('--verbose', 'show debug logs and stack traces')
    .showHelpAfterError()
    .exitOverride();
  registerEnvsCommand(program);
  return program;
}

/** Runs the CLI and returns the exit code. The one place errors become exit codes. */
export async function main(argv: string[]): Promise<number> {
  const program = createProgram();
  try {
    await program.parseAsync(argv, { from: 'user' });
    return ExitCode.ok;
  } catch (error) {
    if (error instanceof CommanderError) {
      return error.exitCode === 0 ? ExitCode.ok : ExitCode.usage;
    }
    if (PrebuiltError.isInstance(error)) {
      process.stderr.write(`error: ${error.message}\n${error.hint ? `hint: ${error.hint}\n` : ''}`);
      return error.exitCode;
    }
    process.stderr.write(`error: ${errorMessage(error)}\n`);
    return ExitCode.failure;
  }
}
