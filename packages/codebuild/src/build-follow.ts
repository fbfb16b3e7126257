import { createLogger, errorMessage, isImageDigest, sleep, type BuildLog } from '@prebuilt/core/backend';
import { DIGEST_VARIABLE } from './buildspec.js';
import { CloudWatchLog, type BuildInfo } from './cloudwatch-log.js';
import type { CodeBuildClients } from './codebuild-clients.js';
import type { CodeBuildSettings } from './codebuild-settings.js';

const debug = createLogger('codebuild');

/** BatchGetBuilds failures in a row after which the build is given up. */
const MAX_POLL_ERRORS = 5;
const FINAL = new Set(['SUCCEEDED', 'FAILED', 'FAULT', 'STOPPED', 'TIMED_OUT']);

export type FollowOutcome =
  | { kind: 'succeeded'; digest: string }
  | { kind: 'failed'; reason: string }
  | { kind: 'unreachable'; reason: string }
  | { kind: 'timeout' }
  | { kind: 'cancelled' };

export interface FollowInput {
  clients: CodeBuildClients;
  settings: Pick<CodeBuildSettings, 'pollInitialMs' | 'pollMaxMs'>;
  buildId: string;
  log: BuildLog;
  signal: AbortSignal | undefined;
  /** When the build times out (epoch ms). */
  deadline: number;
}

/** Waits `ms`, or less when the signal aborts (the caller looks at the signal afterwards). */
function pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return sleep(ms, signal).catch(() => undefined);
}

/** Polls the build with backoff, streaming its CloudWatch log, until it ends, times out or is cancelled. */
export async function followBuild(input: FollowInput): Promise<FollowOutcome> {
  const { clients, settings, buildId, signal, deadline } = input;
  const { sdk, codebuild } = clients;
  const cloudWatch = new CloudWatchLog(clients, input.log);
  let delay = settings.pollInitialMs;
  let pollErrors = 0;
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
      await cloudWatch.drain(build);
      const status = build.buildStatus ?? 'IN_PROGRESS';
      if (FINAL.has(status)) return finalOutcome(build, status, cloudWatch, input);
    }
    delay = Math.min(Math.ceil(delay * 1.5), settings.pollMaxMs);
  }
}

/** The outcome of a build that has ended, once its log's last lines are in. */
async function finalOutcome(build: BuildInfo, status: string, cloudWatch: CloudWatchLog, input: FollowInput): Promise<FollowOutcome> {
  // CloudWatch delivers the last lines a little late: read again until they are there.
  const exported = () => build.exportedEnvironmentVariables?.find((v) => v.name === DIGEST_VARIABLE)?.value;
  for (let attempt = 0; attempt < 3 && status === 'SUCCEEDED' && !isImageDigest(exported()) && !cloudWatch.digest; attempt++) {
    await pause(input.settings.pollInitialMs, input.signal);
    await cloudWatch.drain(build);
  }
  input.log.flush();
  if (status === 'SUCCEEDED') {
    const digest = isImageDigest(exported()) ? exported()! : cloudWatch.digest;
    if (digest) return { kind: 'succeeded', digest };
    return { kind: 'failed', reason: `the build succeeded but reported no digest (no ${DIGEST_VARIABLE} variable or log line)` };
  }
  return { kind: 'failed', reason: failureReason(status, build) };
}

/** What the failed phase says, e.g. `BUILD: Error while executing command: docker build …. Reason: exit status 1`. */
function failureReason(status: string, build: BuildInfo): string {
  const phase = build.phases?.find((p) => p.phaseStatus && p.phaseStatus !== 'SUCCEEDED' && p.contexts?.some((c) => c.message));
  const message = phase?.contexts?.find((c) => c.message)?.message;
  return `status ${status}${phase ? ` in phase ${phase.phaseType}` : ''}${message ? `: ${message}` : ''}`;
}
