import { spawn, type ChildProcess } from 'node:child_process';
import { readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import {
  createRunTempDir,
  BuildLog,
  ConfigError,
  EnvironmentError,
  InputError,
  cancelledError,
  checkPushCredentials,
  createLogger,
  errorMessage,
  loadOptionalSetting,
  pushTarget,
  DOCKER_PLATFORM,
  scrubber,
  withPushPhase,
  type BuildRequest,
  type BuildResult,
  type BuildService,
  secondsSetting,
} from '@prebuilt/core/backend';
import { createTemporaryDockerConfig, type TemporaryDockerConfig } from './docker-config-dir.js';

const debug = createLogger('buildx');

export interface BuildxBuildServiceOptions {
  /** The docker command (a name on PATH or a path). Env `METAFLOW_PREBUILT_BUILDX_DOCKER`; default `docker`. */
  docker?: string;
  /** The buildx builder instance (`--builder`). Env `METAFLOW_PREBUILT_BUILDX_BUILDER`; default: the current builder. */
  builder?: string;
  /**
   * Network mode of RUN instructions (`--network`). Env `METAFLOW_PREBUILT_BUILDX_NETWORK`; default `host`.
   * `default` leaves the flag out (a remote builder may not grant the `network.host` entitlement).
   */
  network?: string;
  /** Seconds a build may take before it is stopped. Env `METAFLOW_PREBUILT_BUILDX_TIMEOUT`; default 3600. */
  timeoutSeconds?: number;
  /** Extra arguments for `docker buildx build`, e.g. `['--cache-to', 'type=registry,ref=…']`. */
  extraArgs?: string[];
  /** Seconds between SIGINT and SIGKILL when a build is stopped. Default 10. */
  killGraceSeconds?: number;
  /** How many log lines a failed result carries. Default 30. */
  logTailLines?: number;
  /** Environment to read settings from and to run docker with. Default `process.env`. */
  env?: Record<string, string | undefined>;
}

export const BUILDX_ENV = {
  docker: 'METAFLOW_PREBUILT_BUILDX_DOCKER',
  builder: 'METAFLOW_PREBUILT_BUILDX_BUILDER',
  network: 'METAFLOW_PREBUILT_BUILDX_NETWORK',
  timeout: 'METAFLOW_PREBUILT_BUILDX_TIMEOUT',
} as const;

const DIGEST = /^sha256:[a-f0-9]{64}$/;

interface Settings {
  docker: string;
  builder: string | undefined;
  network: string;
  timeoutSeconds: number;
  extraArgs: string[];
  killGraceMs: number;
  logTailLines: number;
}

function resolveSettings(options: BuildxBuildServiceOptions, env: Record<string, string | undefined>): Settings {
  const setting = (value: string | undefined, envVar: string, option: string, description: string) =>
    loadOptionalSetting({ value, envVar, option, description, env });
  return {
    docker: setting(options.docker, BUILDX_ENV.docker, 'docker', 'docker command') ?? 'docker',
    builder: setting(options.builder, BUILDX_ENV.builder, 'builder', 'buildx builder'),
    network: setting(options.network, BUILDX_ENV.network, 'network', 'buildx network') ?? 'host',
    timeoutSeconds: secondsSetting({ value: options.timeoutSeconds, envVar: BUILDX_ENV.timeout, option: 'timeoutSeconds', fallback: 3600, env }),
    extraArgs: [...(options.extraArgs ?? [])],
    killGraceMs: (options.killGraceSeconds ?? 10) * 1000,
    logTailLines: options.logTailLines ?? 30,
  };
}

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/**
 * A build service on `docker buildx build --push`: the Dockerfile goes in on stdin, the push
 * credentials through a private DOCKER_CONFIG, and the digest comes from the metadata file.
 */
export function createBuildxBuildService(options: BuildxBuildServiceOptions = {}): BuildService {
  const env = options.env ?? process.env;
  const settings = resolveSettings(options, env);
  let buildxChecked = false;
  debug('buildx build service: docker %s, builder %s, network %s', settings.docker, settings.builder ?? '(current)', settings.network);

  /** `docker buildx version`: a clear EnvironmentError when docker or the plugin is missing. */
  async function checkBuildx(signal: AbortSignal | undefined): Promise<void> {
    if (buildxChecked) return;
    let output = '';
    const exit = await new Promise<Exit>((resolve, reject) => {
      const child = spawn(settings.docker, ['buildx', 'version'], { env, stdio: ['ignore', 'pipe', 'pipe'], signal });
      child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
      child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
      child.on('error', reject);
      child.on('close', (code, sig) => resolve({ code, signal: sig }));
    }).catch((error: unknown) => {
      if (signal?.aborted) throw cancelledError(signal, 'The buildx build');
      const code = (error as NodeJS.ErrnoException).code;
      throw new EnvironmentError(
        code === 'ENOENT'
          ? `The docker command '${settings.docker}' was not found${settings.docker.includes('/') ? '' : ' on PATH'}.`
          : `The docker command '${settings.docker}' cannot be run: ${errorMessage(error)}.`,
        {
          cause: error,
          hint:
            `Install the Docker CLI with the buildx plugin (e.g. \`apt-get install docker.io docker-buildx\`), ` +
            `or point ${BUILDX_ENV.docker} (option 'docker') at it, or pick another build service with METAFLOW_PREBUILT_BUILD_SERVICE.`,
        },
      );
    });
    if (exit.code !== 0) {
      const first = output.trim().split('\n')[0] ?? '';
      throw new EnvironmentError(`docker buildx is not available: '${settings.docker} buildx version' failed${first ? `: ${first}` : ` (exit code ${exit.code})`}.`, {
        hint:
          'Install the buildx plugin (Debian: `apt-get install docker-buildx`; Docker CE: `docker-buildx-plugin`; ' +
          'or put the buildx binary at ~/.docker/cli-plugins/docker-buildx), or pick another build service with METAFLOW_PREBUILT_BUILD_SERVICE.',
      });
    }
    debug('buildx: %s', output.trim());
    buildxChecked = true;
  }

  async function buildAndPush(request: BuildRequest): Promise<BuildResult> {
    const { signal } = request;
    if (signal?.aborted) throw cancelledError(signal, 'The buildx build');
    const target = pushTarget(request, '127.0.0.1:5000/metaflow-prebuilt:env-…');
    const platforms = request.platform.split(',').map((p) => p.trim());
    for (const platform of platforms) {
      if (!DOCKER_PLATFORM.test(platform)) {
        throw new InputError(`The platform '${platform}' is not a Docker platform such as linux/amd64.`, {
          hint: 'Give one platform (linux/amd64) or several separated by commas (linux/amd64,linux/arm64).',
        });
      }
    }
    checkPushCredentials(request, target.registry);
    const contextStat = await stat(request.contextDir).catch(() => undefined);
    if (!contextStat?.isDirectory()) {
      throw new InputError(`The build context ${request.contextDir} is not a readable directory.`, {
        hint: "Pass an existing directory as the build request's contextDir.",
      });
    }

    await checkBuildx(signal);
    if (signal?.aborted) throw cancelledError(signal, 'The buildx build');

    const log = new BuildLog(withPushPhase(request, /^#\d+ pushing (?:layers|manifest)\b/), scrubber(request.pushCredentials), settings.logTailLines);
    const work = await createRunTempDir('prebuilt-buildx-');
    let dockerConfig: TemporaryDockerConfig | undefined;
    try {
      if (request.pushCredentials) dockerConfig = await createTemporaryDockerConfig(request.pushCredentials, env);
      const metadataFile = join(work, 'metadata.json');
      const args = [
        'buildx',
        'build',
        '--push',
        '--tag',
        request.imageTag,
        '--platform',
        platforms.join(','),
        // No attestation manifests: with them buildx pushes an index even for one platform, which an
        // image index over the platforms (METAFLOW_PREBUILT_PLATFORM with two) cannot name.
        '--provenance=false',
        ...(settings.builder ? ['--builder', settings.builder] : []),
        '--metadata-file',
        metadataFile,
        ...(settings.network === 'default' ? [] : ['--network', settings.network]),
        '--progress',
        'plain',
        ...settings.extraArgs,
        '-f',
        '-',
        request.contextDir,
      ];
      debug('running %s %s (credentials: %s)', settings.docker, args.join(' '), request.pushCredentials?.source ?? 'the user\'s docker config');
      request.onPhase?.('building');
      const childEnv = { ...env, ...(dockerConfig ? { DOCKER_CONFIG: dockerConfig.dir } : {}) };
      const outcome = await runBuild(args, childEnv, request.dockerfile, log, signal);
      log.flush();
      if (outcome.kind === 'cancelled') throw cancelledError(signal!, `The buildx build of ${request.imageTag}`);
      const failure = (reason: string): BuildResult => ({ ok: false, reason: log.scrub(reason), logTail: log.tail });
      if (outcome.kind === 'timeout') {
        return failure(`The buildx build of ${request.imageTag} was stopped after the timeout of ${settings.timeoutSeconds} s (${BUILDX_ENV.timeout}).`);
      }
      if (outcome.kind === 'spawn-error') {
        return failure(`docker buildx build could not be run: ${errorMessage(outcome.error)}`);
      }
      if (outcome.exit.code !== 0) {
        const error = lastErrorLine(log.tail);
        const how = outcome.exit.signal ? `was killed by ${outcome.exit.signal}` : `exited with code ${outcome.exit.code}`;
        return failure(`The buildx build of ${request.imageTag} failed${error ? `: ${error}` : ` (docker buildx build ${how})`}`);
      }
      const digest = await readDigest(metadataFile);
      if (digest === undefined) {
        return failure(`docker buildx build finished but its metadata file has no containerimage.digest for ${request.imageTag}.`);
      }
      debug('pushed %s@%s', request.imageTag, digest);
      return { ok: true, digest };
    } finally {
      await dockerConfig?.remove();
      await rm(work, { recursive: true, force: true });
    }
  }

  type Outcome =
    | { kind: 'exit'; exit: Exit }
    | { kind: 'timeout' }
    | { kind: 'cancelled' }
    | { kind: 'spawn-error'; error: unknown };

  function runBuild(args: string[], childEnv: NodeJS.ProcessEnv, dockerfile: string, log: BuildLog, signal: AbortSignal | undefined): Promise<Outcome> {
    return new Promise<Outcome>((resolve) => {
      // Its own process group, so stopping the build stops the buildx plugin under docker too.
      const child: ChildProcess = spawn(settings.docker, args, { env: childEnv, stdio: ['pipe', 'pipe', 'pipe'], detached: true });
      let stopped: 'timeout' | 'cancelled' | undefined;
      let killTimer: NodeJS.Timeout | undefined;
      const stop = (why: 'timeout' | 'cancelled') => {
        if (stopped || child.exitCode !== null || child.signalCode !== null) return;
        stopped = why;
        debug('stopping docker buildx build (%s)', why);
        signalGroup(child, 'SIGINT');
        killTimer = setTimeout(() => signalGroup(child, 'SIGKILL'), settings.killGraceMs);
      };
      const onAbort = () => stop('cancelled');
      signal?.addEventListener('abort', onAbort, { once: true });
      const timeout = setTimeout(() => stop('timeout'), settings.timeoutSeconds * 1000);
      child.stdout!.setEncoding('utf8').on('data', (chunk: string) => log.write(chunk));
      child.stderr!.setEncoding('utf8').on('data', (chunk: string) => log.write(chunk));
      child.stdin!.on('error', (error) => debug('stdin of docker buildx build: %s', errorMessage(error)));
      child.stdin!.end(dockerfile);
      let settled = false;
      const finish = (outcome: Outcome) => {
        if (settled) return;
        settled = true;
        clearTimeout(timeout);
        if (killTimer) clearTimeout(killTimer);
        signal?.removeEventListener('abort', onAbort);
        resolve(outcome);
      };
      child.on('error', (error) => finish({ kind: 'spawn-error', error }));
      child.on('close', (code, sig) => {
        // Anything left in the group (a plugin that ignored SIGINT) goes too.
        if (stopped) signalGroup(child, 'SIGKILL');
        finish(stopped ? { kind: stopped } : { kind: 'exit', exit: { code, signal: sig } });
      });
      if (signal?.aborted) stop('cancelled');
    });
  }

  return { name: 'buildx', buildAndPush };
}

function signalGroup(child: ChildProcess, sig: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, sig);
  } catch {
    // The group is gone already.
  }
}

/** The last line that states an error, as buildx prints it (`ERROR: …`, `error: …`). */
function lastErrorLine(lines: string[]): string | undefined {
  for (let i = lines.length - 1; i >= 0; i--) {
    const line = lines[i]!;
    const match = /^(?:#\d+\s+)?(?:ERROR|error)(?:\s*\[[^\]]*\])?:\s*(.+)$/.exec(line);
    if (match) return match[1]!.trim();
  }
  return undefined;
}

async function readDigest(metadataFile: string): Promise<string | undefined> {
  try {
    const metadata: unknown = JSON.parse(await readFile(metadataFile, 'utf8'));
    const digest = (metadata as Record<string, unknown>)['containerimage.digest'];
    return typeof digest === 'string' && DIGEST.test(digest) ? digest : undefined;
  } catch (error) {
    debug('metadata file %s: %s', metadataFile, errorMessage(error));
    return undefined;
  }
}
