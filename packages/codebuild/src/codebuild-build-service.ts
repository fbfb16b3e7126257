import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import type { CodeBuildClient } from '@aws-sdk/client-codebuild';
import type { CloudWatchLogsClient } from '@aws-sdk/client-cloudwatch-logs';
import type { S3Client } from '@aws-sdk/client-s3';
import {
  BuildLog,
  ConfigError,
  EnvironmentError,
  InputError,
  cancelledError,
  checkPushCredentials,
  createLogger,
  errorMessage,
  loadOptionalSetting,
  loadSetting,
  pushTarget,
  DOCKER_PLATFORM,
  scrubber,
  withPushPhase,
  type BuildRequest,
  type BuildResult,
  type BuildService,
  type RegistryCredentials,
  secondsSetting,
} from '@prebuilt/core/backend';
import { DIGEST_LINE, DIGEST_VARIABLE, buildspec, ecrRegion, type RegistryLogin } from './buildspec.js';
import { createContextZip } from './context-zip.js';

const debug = createLogger('codebuild');

export interface CodeBuildBuildServiceOptions {
  /** The CodeBuild project (it must allow privileged mode, for docker). Env `METAFLOW_PREBUILT_CODEBUILD_PROJECT`; required. */
  project?: string;
  /** Where build contexts go: `s3://bucket[/prefix]` (or `bucket[/prefix]`). Env `METAFLOW_PREBUILT_CODEBUILD_BUCKET`; required. */
  bucket?: string;
  /** AWS region of the project and bucket. Env `METAFLOW_PREBUILT_CODEBUILD_REGION`; default: the SDK's (AWS_REGION, profile). */
  region?: string;
  /** Seconds a build may take. Env `METAFLOW_PREBUILT_CODEBUILD_TIMEOUT`; default 3600. */
  timeoutSeconds?: number;
  /** A Parameter Store parameter holding the registry password (non-ECR registries). Env `METAFLOW_PREBUILT_CODEBUILD_REGISTRY_PARAMETER`. */
  registryPasswordParameter?: string;
  /** A Secrets Manager reference (`secret-id[:json-key]`) to the registry password. Env `METAFLOW_PREBUILT_CODEBUILD_REGISTRY_SECRET`. */
  registryPasswordSecret?: string;
  /** The registry user for a stored password. Env `METAFLOW_PREBUILT_CODEBUILD_REGISTRY_USERNAME`; default: the push credentials' user. */
  registryUsername?: string;
  /** First and longest wait between BatchGetBuilds polls, ms. Default 2000 and 15000. */
  pollInitialMs?: number;
  pollMaxMs?: number;
  /** Ready-made clients (tests, custom endpoints). Default: new clients with `clientConfig` and the region. */
  clients?: { codebuild?: CodeBuildClient; logs?: CloudWatchLogsClient; s3?: S3Client };
  /** Options for every client this service creates. */
  clientConfig?: Record<string, unknown>;
  /** How many log lines a failed result carries. Default 30. */
  logTailLines?: number;
  /** Environment to read settings from. Default `process.env`. */
  env?: Record<string, string | undefined>;
}

export const CODEBUILD_ENV = {
  project: 'METAFLOW_PREBUILT_CODEBUILD_PROJECT',
  bucket: 'METAFLOW_PREBUILT_CODEBUILD_BUCKET',
  region: 'METAFLOW_PREBUILT_CODEBUILD_REGION',
  timeout: 'METAFLOW_PREBUILT_CODEBUILD_TIMEOUT',
  registryParameter: 'METAFLOW_PREBUILT_CODEBUILD_REGISTRY_PARAMETER',
  registrySecret: 'METAFLOW_PREBUILT_CODEBUILD_REGISTRY_SECRET',
  registryUsername: 'METAFLOW_PREBUILT_CODEBUILD_REGISTRY_USERNAME',
} as const;

const DIGEST = /^sha256:[a-f0-9]{64}$/;
/** BatchGetBuilds failures in a row after which the build is given up. */
const MAX_POLL_ERRORS = 5;
const FINAL = new Set(['SUCCEEDED', 'FAILED', 'FAULT', 'STOPPED', 'TIMED_OUT']);

interface Settings {
  project: string;
  bucket: string;
  prefix: string;
  region: string | undefined;
  timeoutSeconds: number;
  passwordRef: { type: 'PARAMETER_STORE' | 'SECRETS_MANAGER'; value: string; setting: string } | undefined;
  registryUsername: string | undefined;
  pollInitialMs: number;
  pollMaxMs: number;
  logTailLines: number;
}

function resolveSettings(options: CodeBuildBuildServiceOptions, env: Record<string, string | undefined>): Settings {
  const optional = (value: string | undefined, envVar: string, option: string, description: string) =>
    loadOptionalSetting({ value, envVar, option, description, env });
  const project = loadSetting({ value: options.project, envVar: CODEBUILD_ENV.project, option: 'project', description: 'The CodeBuild project', env });
  const bucketText = loadSetting({
    value: options.bucket,
    envVar: CODEBUILD_ENV.bucket,
    option: 'bucket',
    description: 'The S3 bucket for CodeBuild build contexts',
    env,
  });
  const bucketMatch = /^(?:s3:\/\/)?([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(\/.*)?$/.exec(bucketText.trim());
  if (!bucketMatch) {
    throw new ConfigError(`The CodeBuild context bucket '${bucketText}' is not an S3 bucket name or s3:// location.`, {
      setting: CODEBUILD_ENV.bucket,
      hint: `Set ${CODEBUILD_ENV.bucket} (or the option 'bucket') to e.g. s3://my-bucket/prebuilt.`,
    });
  }
  const timeoutSeconds = secondsSetting({ value: options.timeoutSeconds, envVar: CODEBUILD_ENV.timeout, option: 'timeoutSeconds', fallback: 3600, env });
  const parameter = optional(options.registryPasswordParameter, CODEBUILD_ENV.registryParameter, 'registryPasswordParameter', 'registry password parameter');
  const secret = optional(options.registryPasswordSecret, CODEBUILD_ENV.registrySecret, 'registryPasswordSecret', 'registry password secret');
  if (parameter && secret) {
    throw new ConfigError(`Both ${CODEBUILD_ENV.registryParameter} and ${CODEBUILD_ENV.registrySecret} are set; the registry password can come from one place only.`, {
      setting: CODEBUILD_ENV.registrySecret,
      hint: 'Unset one of them (or of the options registryPasswordParameter / registryPasswordSecret).',
    });
  }
  return {
    project,
    bucket: bucketMatch[1]!,
    prefix: (bucketMatch[2] ?? '').replace(/^\/+|\/+$/g, ''),
    region: optional(options.region, CODEBUILD_ENV.region, 'region', 'AWS region'),
    timeoutSeconds,
    passwordRef: parameter
      ? { type: 'PARAMETER_STORE', value: parameter, setting: CODEBUILD_ENV.registryParameter }
      : secret
        ? { type: 'SECRETS_MANAGER', value: secret, setting: CODEBUILD_ENV.registrySecret }
        : undefined,
    registryUsername: optional(options.registryUsername, CODEBUILD_ENV.registryUsername, 'registryUsername', 'registry user'),
    pollInitialMs: options.pollInitialMs ?? 2000,
    pollMaxMs: options.pollMaxMs ?? 15_000,
    logTailLines: options.logTailLines ?? 30,
  };
}

type Sdk = {
  codebuild: typeof import('@aws-sdk/client-codebuild');
  logs: typeof import('@aws-sdk/client-cloudwatch-logs');
  s3: typeof import('@aws-sdk/client-s3');
};

async function loadSdk(): Promise<Sdk> {
  const load = async <T>(name: string, importer: () => Promise<T>): Promise<T> => {
    try {
      return await importer();
    } catch (error) {
      throw new EnvironmentError(`The CodeBuild build service cannot load ${name}: ${errorMessage(error)}.`, {
        cause: error,
        hint: `Install it beside prebuilt: npm i @prebuilt/codebuild ${name}`,
      });
    }
  };
  const [codebuild, logs, s3] = await Promise.all([
    load('@aws-sdk/client-codebuild', () => import('@aws-sdk/client-codebuild')),
    load('@aws-sdk/client-cloudwatch-logs', () => import('@aws-sdk/client-cloudwatch-logs')),
    load('@aws-sdk/client-s3', () => import('@aws-sdk/client-s3')),
  ]);
  return { codebuild, logs, s3 };
}

function hasSecret(credentials: RegistryCredentials | undefined): boolean {
  return Boolean(credentials?.password || credentials?.identityToken || credentials?.registryToken);
}

/** Resolves after `ms`, or earlier when the signal aborts. */
function pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, Math.max(0, ms));
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

interface BuildInfo {
  buildStatus?: string;
  logs?: { groupName?: string; streamName?: string };
  exportedEnvironmentVariables?: { name?: string; value?: string }[];
  phases?: { phaseType?: string; phaseStatus?: string; contexts?: { statusCode?: string; message?: string }[] }[];
}

/**
 * The CodeBuild build service: the context goes to S3 as a zip, `StartBuild` runs a buildspec that
 * builds and pushes with docker, the CloudWatch log streams to `request.log`, and the digest comes
 * back as an exported variable (or its log line). The uploaded context is removed afterwards;
 * a cancelled or timed-out build is stopped.
 */
export function createCodeBuildBuildService(options: CodeBuildBuildServiceOptions = {}): BuildService {
  const env = options.env ?? process.env;
  const settings = resolveSettings(options, env);
  let clients: { sdk: Sdk; codebuild: CodeBuildClient; logs: CloudWatchLogsClient; s3: S3Client } | undefined;
  const created: { destroy(): void }[] = [];
  debug('codebuild build service: project %s, contexts in s3://%s/%s', settings.project, settings.bucket, settings.prefix);

  async function getClients() {
    if (clients) return clients;
    const sdk = await loadSdk();
    const config = { ...options.clientConfig, ...(settings.region ? { region: settings.region } : {}) };
    const make = <T extends { destroy(): void }>(given: T | undefined, factory: () => T): T => {
      if (given) return given;
      const client = factory();
      created.push(client);
      return client;
    };
    clients = {
      sdk,
      codebuild: make(options.clients?.codebuild, () => new sdk.codebuild.CodeBuildClient(config)),
      logs: make(options.clients?.logs, () => new sdk.logs.CloudWatchLogsClient(config)),
      s3: make(options.clients?.s3, () => new sdk.s3.S3Client(config)),
    };
    return clients;
  }

  /** How the build logs in, and the environment variables that carries (never a plaintext secret). */
  function registryLogin(request: BuildRequest, registry: string): { login: RegistryLogin; variables: { name: string; value: string; type: string }[] } {
    const region = ecrRegion(registry);
    if (region) return { login: { kind: 'ecr', registry, region }, variables: [] };
    if (settings.passwordRef) {
      const username = settings.registryUsername ?? request.pushCredentials?.username;
      if (!username) {
        throw new ConfigError(`The registry password for ${registry} comes from ${settings.passwordRef.setting}, but no registry user is known.`, {
          setting: CODEBUILD_ENV.registryUsername,
          hint: `Set ${CODEBUILD_ENV.registryUsername} (or the option 'registryUsername').`,
        });
      }
      return {
        login: { kind: 'stored-password', registry },
        variables: [
          { name: 'PREBUILT_REGISTRY_USERNAME', value: username, type: 'PLAINTEXT' },
          { name: 'PREBUILT_REGISTRY_PASSWORD', value: settings.passwordRef.value, type: settings.passwordRef.type },
        ],
      };
    }
    if (hasSecret(request.pushCredentials)) {
      throw new ConfigError(
        `CodeBuild would need the push credentials for ${registry} (${request.pushCredentials!.source}), and prebuilt never passes a registry secret to a build as a plaintext environment variable.`,
        {
          setting: CODEBUILD_ENV.registryParameter,
          hint:
            `Store the password in Parameter Store or Secrets Manager (readable by the project's service role) and set ` +
            `${CODEBUILD_ENV.registryParameter} or ${CODEBUILD_ENV.registrySecret}, with ${CODEBUILD_ENV.registryUsername}; ` +
            `for ECR, grant the project's role ECR push rights instead.`,
        },
      );
    }
    return { login: { kind: 'none' }, variables: [] };
  }

  async function buildAndPush(request: BuildRequest): Promise<BuildResult> {
    const { signal } = request;
    const what = `The CodeBuild build of ${request.imageTag}`;
    if (signal?.aborted) throw cancelledError(signal, what);
    const target = pushTarget(request, '123456789012.dkr.ecr.us-east-1.amazonaws.com/metaflow-prebuilt:env-…');
    if (!DOCKER_PLATFORM.test(request.platform)) {
      throw new InputError(`CodeBuild builds one platform per image; '${request.platform}' is not a single Docker platform such as linux/amd64.`, {
        hint: 'prebuilt builds one image per platform (METAFLOW_PREBUILT_PLATFORM=linux-64,linux-aarch64) and publishes an image index over them.',
      });
    }
    checkPushCredentials(request, target.registry);
    const { login, variables } = registryLogin(request, target.registry);
    const { sdk, codebuild, logs, s3 } = await getClients();

    const buildKey = `${settings.prefix ? `${settings.prefix}/` : ''}prebuilt-codebuild-${randomBytes(5).toString('hex')}.zip`;
    const log = new BuildLog(withPushPhase(request, /^\[Container\] .*Running command .*docker push /), scrubber(request.pushCredentials), settings.logTailLines);
    const failure = (reason: string): BuildResult => {
      log.flush();
      return { ok: false, reason: log.scrub(reason), logTail: log.tail };
    };
    let uploaded = false;
    const deadline = Date.now() + settings.timeoutSeconds * 1000;

    try {
      request.onPhase?.('building');
      const zip = await createContextZip(request.contextDir, request.dockerfile);
      try {
        if (signal?.aborted) throw cancelledError(signal, what);
        uploaded = true;
        await s3.send(
          new sdk.s3.PutObjectCommand({ Bucket: settings.bucket, Key: buildKey, Body: createReadStream(zip.file), ContentLength: zip.size, ContentType: 'application/zip' }),
          signal ? { abortSignal: signal } : {},
        );
      } catch (error) {
        if (signal?.aborted) throw cancelledError(signal, what);
        throw new EnvironmentError(`Uploading the build context to s3://${settings.bucket}/${buildKey} failed: ${errorMessage(error)}.`, {
          cause: error,
          hint: `Check that the bucket in ${CODEBUILD_ENV.bucket} exists and that your AWS credentials may write to it.`,
        });
      } finally {
        await zip.remove();
      }
      log.line(`prebuilt: build context uploaded to s3://${settings.bucket}/${buildKey}`);
      if (signal?.aborted) throw cancelledError(signal, what);

      let buildId: string;
      try {
        const started = await codebuild.send(
          new sdk.codebuild.StartBuildCommand({
            projectName: settings.project,
            sourceTypeOverride: 'S3',
            sourceLocationOverride: `${settings.bucket}/${buildKey}`,
            buildspecOverride: buildspec(login),
            privilegedModeOverride: true,
            timeoutInMinutesOverride: Math.min(2160, Math.max(5, Math.ceil(settings.timeoutSeconds / 60) + 1)),
            environmentVariablesOverride: [
              { name: 'PREBUILT_IMAGE_TAG', value: request.imageTag, type: 'PLAINTEXT' },
              { name: 'PREBUILT_PLATFORM', value: request.platform, type: 'PLAINTEXT' },
              { name: 'PREBUILT_DOCKERFILE', value: zip.dockerfileName, type: 'PLAINTEXT' },
              { name: 'PREBUILT_REGISTRY', value: target.registry, type: 'PLAINTEXT' },
              ...variables.map((v) => ({ ...v, type: v.type as 'PLAINTEXT' })),
            ],
          }),
        );
        if (!started.build?.id) throw new Error('StartBuild returned no build id');
        buildId = started.build.id;
      } catch (error) {
        const name = (error as { name?: string }).name;
        if (name === 'ResourceNotFoundException' || name === 'InvalidInputException' || name === 'AccessDeniedException') {
          throw new ConfigError(`CodeBuild refused to start a build of project ${settings.project}: ${errorMessage(error)}`, {
            cause: error,
            setting: CODEBUILD_ENV.project,
            hint: `Check ${CODEBUILD_ENV.project}, the region, and that your AWS credentials may call codebuild:StartBuild on it.`,
          });
        }
        throw new EnvironmentError(`Starting a CodeBuild build of project ${settings.project} failed: ${errorMessage(error)}`, {
          cause: error,
          hint: 'Check your AWS credentials and network, and retry.',
        });
      }
      log.line(`prebuilt: CodeBuild build ${buildId} started`);
      debug('build %s started for %s', buildId, request.imageTag);

      const outcome = await follow(buildId, log, signal, deadline);
      if (outcome.kind === 'cancelled' || outcome.kind === 'timeout' || outcome.kind === 'unreachable') {
        try {
          await codebuild.send(new sdk.codebuild.StopBuildCommand({ id: buildId }));
          debug('stopped build %s (%s)', buildId, outcome.kind);
        } catch (error) {
          debug('could not stop build %s: %s', buildId, errorMessage(error));
        }
        if (outcome.kind === 'cancelled') throw cancelledError(signal!, what);
        if (outcome.kind === 'unreachable') return failure(`${what} was given up (build ${buildId}, stopped if it could be): ${outcome.reason}`);
        return failure(`${what} was stopped after the timeout of ${settings.timeoutSeconds} s (${CODEBUILD_ENV.timeout}); build ${buildId}.`);
      }
      if (outcome.kind === 'failed') return failure(`${what} failed (build ${buildId}): ${outcome.reason}`);
      debug('pushed %s@%s', request.imageTag, outcome.digest);
      return { ok: true, digest: outcome.digest };
    } finally {
      if (uploaded) {
        try {
          await s3.send(new sdk.s3.DeleteObjectCommand({ Bucket: settings.bucket, Key: buildKey }));
          debug('removed s3://%s/%s', settings.bucket, buildKey);
        } catch (error) {
          debug('could not remove s3://%s/%s: %s', settings.bucket, buildKey, errorMessage(error));
        }
      }
    }
  }

  type Outcome =
    | { kind: 'succeeded'; digest: string }
    | { kind: 'failed'; reason: string }
    | { kind: 'unreachable'; reason: string }
    | { kind: 'timeout' }
    | { kind: 'cancelled' };

  /** Polls the build with backoff, streaming its CloudWatch log, until it ends, times out or is cancelled. */
  async function follow(buildId: string, log: BuildLog, signal: AbortSignal | undefined, deadline: number): Promise<Outcome> {
    const { sdk, codebuild, logs } = clients!;
    let delay = settings.pollInitialMs;
    let token: string | undefined;
    let logDigest: string | undefined;
    let pollErrors = 0;

    const drainLog = async (build: BuildInfo): Promise<void> => {
      const group = build.logs?.groupName;
      const stream = build.logs?.streamName;
      if (!group || !stream) return;
      for (let page = 0; page < 50; page++) {
        let response;
        try {
          response = await logs.send(
            new sdk.logs.GetLogEventsCommand({ logGroupName: group, logStreamName: stream, startFromHead: true, ...(token ? { nextToken: token } : {}) }),
          );
        } catch (error) {
          // The stream appears a little after the build starts.
          if ((error as { name?: string }).name !== 'ResourceNotFoundException') debug('GetLogEvents: %s', errorMessage(error));
          return;
        }
        for (const event of response.events ?? []) {
          for (const line of (event.message ?? '').split(/\r?\n/)) {
            if (line.trim() === '') continue;
            log.line(line);
            const match = DIGEST_LINE.exec(line.trim());
            if (match) logDigest = match[1];
          }
        }
        const next = response.nextForwardToken;
        const same = next === undefined || next === token;
        token = next ?? token;
        if (same || (response.events ?? []).length === 0) return;
      }
    };

    for (;;) {
      await pause(Math.min(delay, deadline - Date.now()), signal);
      if (signal?.aborted) return { kind: 'cancelled' };
      if (Date.now() >= deadline) return { kind: 'timeout' };
      let build: BuildInfo | undefined;
      try {
        build = (await codebuild.send(new sdk.codebuild.BatchGetBuildsCommand({ ids: [buildId] }))).builds?.[0];
        pollErrors = 0;
      } catch (error) {
        debug('BatchGetBuilds %s: %s', buildId, errorMessage(error));
        // A hiccup is retried; a lasting error (expired credentials, revoked rights) ends the wait.
        if (++pollErrors >= MAX_POLL_ERRORS) return { kind: 'unreachable', reason: `BatchGetBuilds failed ${pollErrors} times in a row: ${errorMessage(error)}` };
      }
      if (build) {
        await drainLog(build);
        const status = build.buildStatus ?? 'IN_PROGRESS';
        if (FINAL.has(status)) {
          // CloudWatch delivers the last lines a little late: read again until they are there.
          const exported = () => build!.exportedEnvironmentVariables?.find((v) => v.name === DIGEST_VARIABLE)?.value;
          for (let attempt = 0; attempt < 3 && status === 'SUCCEEDED' && !DIGEST.test(exported() ?? '') && !logDigest; attempt++) {
            await pause(settings.pollInitialMs, signal);
            await drainLog(build);
          }
          log.flush();
          if (status === 'SUCCEEDED') {
            const digest = DIGEST.test(exported() ?? '') ? exported()! : logDigest;
            if (digest) return { kind: 'succeeded', digest };
            return { kind: 'failed', reason: `the build succeeded but reported no digest (no ${DIGEST_VARIABLE} variable or log line)` };
          }
          return { kind: 'failed', reason: failureReason(status, build) };
        }
      }
      delay = Math.min(Math.ceil(delay * 1.5), settings.pollMaxMs);
    }
  }

  return {
    name: 'codebuild',
    buildAndPush,
    async close() {
      for (const client of created) client.destroy();
    },
  };
}

/** What the failed phase says, e.g. `BUILD: Error while executing command: docker build …. Reason: exit status 1`. */
function failureReason(status: string, build: BuildInfo): string {
  const phase = build.phases?.find((p) => p.phaseStatus && p.phaseStatus !== 'SUCCEEDED' && p.contexts?.some((c) => c.message));
  const message = phase?.contexts?.find((c) => c.message)?.message;
  return `status ${status}${phase ? ` in phase ${phase.phaseType}` : ''}${message ? `: ${message}` : ''}`;
}
