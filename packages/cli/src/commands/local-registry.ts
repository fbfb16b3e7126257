import type { Command } from 'commander';
import { ConfigError } from '@prebuilt/core';
import type { DockerLoginOf, DockerLoginState, LocalRegistryServerStatus } from '@prebuilt/local';
import type { CliContext } from '../cli-context.js';
import { noteLine, writeJsonResult } from '../output.js';

/**
 * @prebuilt/local is a backend package: imported when an action runs, never by `prebuilt --help`.
 * Its setting and default port are written out here for the help text (a test keeps them equal).
 */
const localPackage = () => import('@prebuilt/local');
export const LOCAL_REGISTRY_ENV = 'METAFLOW_PREBUILT_LOCAL_REGISTRY';
export const DEFAULT_LOCAL_REGISTRY_PORT = 5000;

const HELP = `
A registry on 127.0.0.1 for development and the demo: Debian's /usr/bin/docker-registry when
installed (apt-get install docker-registry), else a registry:2 container with --network=host.
Config, data, pid file and log live in $XDG_STATE_HOME/prebuilt/local-registry
(default ~/.local/state/prebuilt/local-registry). start and stop are idempotent.

It wants a login: each start makes a random credential (credentials.json and its bcrypt hash in
htpasswd, 0600, in that directory, 0700), so other users of the machine can neither push nor pull.
prebuilt uses it by itself for 127.0.0.1:<port> (its registry client, and every build service as
the push credentials). For your own docker pull or docker run of an image there, run
\`prebuilt local-registry login\`: it runs docker login 127.0.0.1:<port> --username prebuilt
--password-stdin, the password on its standard input (never in arguments, never printed), into
the Docker config DOCKER_CONFIG names (else ~/.docker). A new start makes a new credential: log
in again after it (status says whether Docker's login matches). A registry started without one by
an older prebuilt is restarted with one by start (images kept).

The port is --port, else the port of METAFLOW_PREBUILT_LOCAL_REGISTRY when it names 127.0.0.1
or localhost, else ${DEFAULT_LOCAL_REGISTRY_PORT}. One development registry runs at a time: status, login and
stop take --port too, and exit 2 when the running one listens on another port (stop then stops
nothing). login without --port follows METAFLOW_PREBUILT_LOCAL_REGISTRY's port the same way when
it names one; status without --port reports whichever runs, with a note when the setting names
another port; stop without --port stops whichever runs.

Examples:
  $ prebuilt local-registry start
  $ prebuilt local-registry start --port 5001 --json
  $ prebuilt local-registry login
  $ prebuilt local-registry status
  $ prebuilt local-registry stop --port 5001`;

function parsePort(value: string): number {
  const port = Number(value);
  if (!/^\d+$/.test(value) || port < 1 || port > 65535) {
    throw new ConfigError(`--port ${value} is not a TCP port.`, { hint: 'Pass a number from 1 to 65535, e.g. --port 5000.' });
  }
  return port;
}

/** The port METAFLOW_PREBUILT_LOCAL_REGISTRY names, when it points at this machine. */
function portFromEnv(env: Record<string, string | undefined>): number | undefined {
  const match = /^(?:127\.0\.0\.1|localhost):(\d{1,5})(?:\/.*)?$/.exec(env[LOCAL_REGISTRY_ENV] ?? '');
  return match ? Number(match[1]) : undefined;
}

function describe(status: LocalRegistryServerStatus): string {
  if (!status.running) return 'not running';
  const how = status.mode === 'binary' ? `docker-registry, pid ${status.pid}` : `container ${status.container}`;
  return `running at ${status.address} (${how}), ${status.healthy ? 'healthy' : 'NOT answering'}`;
}

/** What the `docker:` line says of Docker's login to the registry (`prebuilt local-registry login` when it lacks one). */
const DOCKER_LOGIN_LINES: Record<DockerLoginState, (config: string) => string> = {
  matching: (config) => `  docker: logged in with this start's credential (${config}): docker pull and run of its images work`,
  stale: (config) => `  docker: logged in with an earlier start's credential (${config}): run \`prebuilt local-registry login\` for docker pull or run of its images`,
  none: (config) => `  docker: not logged in (${config}): run \`prebuilt local-registry login\` for docker pull or run of its images`,
  unreadable: (config) => `  docker: its login could not be read (${config}, or its credential helper): run with --verbose to see why`,
};

/** The status with Docker's login to it (`dockerLogin`, null when there is no login to have, and `dockerConfig`: @prebuilt/local's dockerLoginFor). */
async function withDockerLogin<T extends LocalRegistryServerStatus>(status: T, env: Record<string, string | undefined>): Promise<T & DockerLoginOf> {
  return { ...status, ...(await (await localPackage()).dockerLoginFor(status, { env })) };
}

function details(status: LocalRegistryServerStatus & DockerLoginOf): string {
  const lines = [
    status.authenticated
      ? `  auth: login required (htpasswd); prebuilt uses the credential in ${status.credentialsFile}`
      : '  auth: NONE — any user of this machine can push to it (started by an older prebuilt); `prebuilt local-registry start` restarts it with a login',
    ...(status.dockerLogin === null ? [] : [DOCKER_LOGIN_LINES[status.dockerLogin](status.dockerConfig)]),
    `  data: ${status.dataDir}`,
  ];
  if (status.logFile) lines.push(`  log:  ${status.logFile}`);
  return `${lines.join('\n')}\n`;
}

/** `prebuilt local-registry start|stop|status|login [--port N] [--json]`. */
export function registerLocalRegistryCommand(program: Command, context: CliContext): void {
  const command = program
    .command('local-registry')
    .description('start, stop or show a registry on 127.0.0.1 for development (the `local` image registry), or log Docker in to it')
    .addHelpText('after', HELP);
  registerStart(command, context);
  registerStatus(command, context);
  registerLogin(command, context);
  registerStop(command, context);
}

/** `prebuilt local-registry start`. */
function registerStart(command: Command, context: CliContext): void {
  command
    .command('start')
    .description('start the development registry (or report the running one)')
    .option('--port <port>', `port on 127.0.0.1 (default: from ${LOCAL_REGISTRY_ENV}, else ${DEFAULT_LOCAL_REGISTRY_PORT})`, parsePort)
    .option('--json', 'print one JSON object for machines')
    .action(async (options: { port?: number; json?: boolean }) => {
      context.json.requested = options.json === true;
      const port = options.port ?? portFromEnv(context.env);
      const status = await withDockerLogin(await (await localPackage()).startLocalRegistryServer({ env: context.env, port, signal: context.signal }), context.env);
      for (const note of status.notes ?? []) context.stderr.write(noteLine(note));
      if (options.json) {
        writeJsonResult(context, { ...status });
        return;
      }
      context.stdout.write(
        `local registry ${status.alreadyRunning ? 'already ' : ''}${describe(status)}\n${details(status)}` +
          `use it with:\n  export METAFLOW_PREBUILT_IMAGE_REGISTRY=local ${LOCAL_REGISTRY_ENV}=${status.address}\n`,
      );
    });
}

/** `prebuilt local-registry status`. */
function registerStatus(command: Command, context: CliContext): void {
  command
    .command('status')
    .description('show whether the development registry runs, its address, pid and health')
    .option('--port <port>', 'the port it was started on: exit 2 when the running one listens on another', parsePort)
    .option('--json', 'print one JSON object for machines')
    .action(async (options: { port?: number; json?: boolean }) => {
      context.json.requested = options.json === true;
      const found = await withDockerLogin(await (await localPackage()).localRegistryServerStatus({ env: context.env, port: options.port }), context.env);
      // Without --port it reports whichever runs: one the setting does not name is said, as prebuilt would not use it.
      const settingPort = options.port === undefined ? portFromEnv(context.env) : undefined;
      const elsewhere =
        settingPort !== undefined && found.running && found.port !== settingPort
          ? [`${LOCAL_REGISTRY_ENV} names ${context.env[LOCAL_REGISTRY_ENV]}, not this registry: prebuilt uses the address the setting names (export ${LOCAL_REGISTRY_ENV}=${found.address} to use this one).`]
          : [];
      const notes = [...(found.notes ?? []), ...elsewhere];
      const status = { ...found, ...(notes.length > 0 ? { notes } : {}) };
      for (const note of notes) context.stderr.write(noteLine(note));
      if (options.json) {
        writeJsonResult(context, { ...status });
        return;
      }
      context.stdout.write(`local registry ${describe(status)}\n${status.running ? details(status) : notRunningLines(context.env)}`);
    });
}

/**
 * What `status` adds when prebuilt's development registry does not run: how to start it, and,
 * when METAFLOW_PREBUILT_LOCAL_REGISTRY names another registry (one the user runs, on this machine
 * or not), that builds use that one all the same: `not running` is only about prebuilt's own.
 */
function notRunningLines(env: Record<string, string | undefined>): string {
  const named = env[LOCAL_REGISTRY_ENV]?.trim();
  const other = named ? `  ${LOCAL_REGISTRY_ENV} names ${named}: prebuilt pushes to whatever registry answers there; this command shows only the one \`prebuilt local-registry start\` runs\n` : '';
  return `  start it with: prebuilt local-registry start\n${other}`;
}

/** `prebuilt local-registry login`. */
function registerLogin(command: Command, context: CliContext): void {
  command
    .command('login')
    .description("log Docker in to the development registry (for your own docker pull and run of its images)")
    .option('--port <port>', 'the port it was started on: exit 2 when the running one listens on another', parsePort)
    .option('--json', 'print one JSON object for machines')
    .action(async (options: { port?: number; json?: boolean }) => {
      context.json.requested = options.json === true;
      const local = await localPackage();
      // Without --port, the port prebuilt uses (METAFLOW_PREBUILT_LOCAL_REGISTRY's): a login to another registry would not serve its images.
      const settingPort = options.port === undefined ? portFromEnv(context.env) : undefined;
      if (settingPort !== undefined) {
        const running = await local.localRegistryServerStatus({ env: context.env });
        if (running.running && running.port !== settingPort) {
          const named = context.env[LOCAL_REGISTRY_ENV]!;
          throw new ConfigError(`The development registry runs at ${running.address}, but ${LOCAL_REGISTRY_ENV} names ${named}: Docker was not logged in.`, {
            setting: LOCAL_REGISTRY_ENV,
            hint:
              `Log in to the running one with \`prebuilt local-registry login --port ${running.port}\` (and export ${LOCAL_REGISTRY_ENV}=${running.address} for prebuilt to use it), ` +
              `or start the one the setting names: \`prebuilt local-registry stop && prebuilt local-registry start\`.`,
          });
        }
      }
      const result = await local.dockerLoginLocalRegistryServer({ env: context.env, port: options.port ?? settingPort, signal: context.signal });
      for (const note of result.notes ?? []) context.stderr.write(noteLine(note));
      if (options.json) {
        writeJsonResult(context, { ...result });
        return;
      }
      context.stdout.write(
        `docker logged in to ${result.address} as ${result.username} (${result.dockerConfig})\n` +
          '  the next `prebuilt local-registry start` makes a new credential: log in again after it\n',
      );
    });
}

/** `prebuilt local-registry stop`. */
function registerStop(command: Command, context: CliContext): void {
  command
    .command('stop')
    .description('stop the development registry (its data is kept)')
    .option('--port <port>', 'the port it was started on: stops nothing, exit 2, when the running one listens on another', parsePort)
    .option('--json', 'print one JSON object for machines')
    .action(async (options: { port?: number; json?: boolean }) => {
      context.json.requested = options.json === true;
      const { stopped, status, notes } = await (await localPackage()).stopLocalRegistryServer({ env: context.env, port: options.port, signal: context.signal });
      for (const note of notes ?? []) context.stderr.write(noteLine(note));
      if (options.json) {
        writeJsonResult(context, { stopped, ...status, ...(notes ? { notes } : {}) });
        return;
      }
      context.stdout.write(stopped ? 'local registry stopped\n' : 'local registry was not running\n');
    });
}

