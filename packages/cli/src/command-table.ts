import type { Command } from 'commander';
import type { CliContext } from './cli-context.js';

/** Adds one command (its options, help and action) to the program. */
export type RegisterCommand = (program: Command, context: CliContext) => void;

/**
 * Every command, in the order `--help` lists them, each imported only when it is needed: a command
 * module pulls in what its action uses (the resolver, the flow reader, the Kubernetes client…), so
 * `prebuilt --version` or `prebuilt envs` loads none of what the other commands need.
 * A new command adds one line here (its module exports `register<Name>Command`).
 */
export const COMMANDS: Readonly<Record<string, () => Promise<RegisterCommand>>> = {
  envs: async () => (await import('./commands/envs.js')).registerEnvsCommand,
  lock: async () => (await import('./commands/lock.js')).registerLockCommand,
  plan: async () => (await import('./commands/plan.js')).registerPlanCommand,
  build: async () => (await import('./commands/build.js')).registerBuildCommand,
  run: async () => (await import('./commands/run.js')).registerRunCommand,
  metaflow: async () => (await import('./commands/metaflow.js')).registerMetaflowCommand,
  backends: async () => (await import('./commands/backends.js')).registerBackendsCommand,
  'local-registry': async () => (await import('./commands/local-registry.js')).registerLocalRegistryCommand,
  'pull-secret': async () => (await import('./commands/pull-secret.js')).registerPullSecretCommand,
  sbom: async () => (await import('./commands/sbom.js')).registerSbomCommand,
  report: async () => (await import('./commands/report.js')).registerReportCommand,
  gc: async () => (await import('./commands/gc.js')).registerGcCommand,
  prepull: async () => (await import('./commands/prepull.js')).registerPrepullCommand,
  profile: async () => (await import('./commands/profile.js')).registerProfileCommand,
};

/** Options of the program itself that take no value (they may come before the command name). */
const PROGRAM_FLAGS = new Set(['--verbose']);
const VERSION_FLAGS = new Set(['-V', '--version']);

/**
 * The commands to load for `argv` (the arguments after `prebuilt`): the named command alone; none
 * for a bare `--version`; every command otherwise (no command, `help`, `--help`, an unknown name —
 * the help and commander's "did you mean" need them all).
 */
export function commandsFor(argv: readonly string[]): string[] {
  const first = argv.find((arg) => !PROGRAM_FLAGS.has(arg));
  if (first !== undefined && Object.hasOwn(COMMANDS, first)) return [first];
  if (first !== undefined && VERSION_FLAGS.has(first)) return [];
  return Object.keys(COMMANDS);
}
