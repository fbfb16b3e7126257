import { NetworkError, createLogger, errorMessage, sleep, type BuildResult } from '@prebuilt/core/backend';
import { daemonMessage, imagePath, isConnectionError, requestProblem } from './docker-daemon.js';
import type { StreamRequest } from './engine-client.js';
import type { DockerBuild } from './docker-build.js';
import { ProgressTracker, readEvents } from './progress.js';
import { authConfig } from './registry-auth.js';

const debug = createLogger('docker');

/** Push failures worth another attempt: server errors, rate limits, dropped or timed-out connections. */
const TRANSIENT = /\b(5\d\d|429)\b|too many requests|service unavailable|internal server error|bad gateway|gateway time-?out|connection reset|broken pipe|\bEOF\b|i\/o timeout|timeout exceeded|connection refused/i;
const DENIED = /denied|unauthori[sz]ed|authentication required|no basic auth credentials|forbidden|\b401\b|\b403\b/i;

/** One push attempt: its progress (error, digest) and the request's error, if the request failed. */
interface PushAttempt {
  tracker: ProgressTracker;
  apiError: unknown;
}

/**
 * Pushes the built image with the push credentials. The daemon retries a failed layer upload
 * itself, not a failed manifest PUT or a dropped connection: a push whose failure looks transient
 * (5xx, 429, reset, timeout) is run again, a bounded number of times; layers already in the
 * registry are skipped by the daemon. The local image is removed afterwards unless kept.
 */
export async function pushImage(build: DockerBuild): Promise<BuildResult> {
  const { request, settings } = build;
  request.onPhase?.('pushing');
  debug('pushing %s (credentials: %s)', request.imageTag, request.pushCredentials?.source ?? 'none');
  const auth = authConfig(request.pushCredentials);
  const push: StreamRequest = {
    method: 'POST',
    path: `/images/${imagePath(build.target.repository)}/push`,
    query: { tag: build.target.tag },
    // Always sent: a daemon reads a push without it as the old form, its credentials in the body.
    registryAuth: auth ?? {},
    signal: request.signal,
    // Push progress: a silence of minutes is a hung daemon or registry connection (engine-clock.ts).
    silence: 'progress',
  };
  if (auth) build.daemon.sendsCredentials(request.note);
  for (let attempt = 1; ; attempt++) {
    const pushed = await pushOnce(build, push);
    if (request.signal?.aborted) return build.cancel();
    const problem = pushed.apiError === undefined ? pushed.tracker.error : requestProblem(pushed.apiError);
    if (problem !== undefined && attempt < settings.pushAttempts && TRANSIENT.test(problem) && !DENIED.test(problem)) {
      const delayMs = 1000 * 2 ** (attempt - 1);
      const note = `push of ${request.imageTag} failed (${problem}); retrying in ${delayMs / 1000}s (attempt ${attempt + 1} of ${settings.pushAttempts})`;
      debug('%s', build.scrub(note));
      request.log?.(build.scrub(note));
      try {
        await sleep(delayMs, request.signal);
      } catch {
        return build.cancel();
      }
      continue;
    }
    return pushResult(build, pushed);
  }
}

async function pushOnce(build: DockerBuild, push: StreamRequest): Promise<PushAttempt> {
  const { request, settings, tracker } = build;
  // Push lines go to the request's log and into the build's tail.
  const pushTracker = new ProgressTracker((line) => {
    tracker.tail.push(line);
    if (tracker.tail.length > settings.logTailLines) tracker.tail.shift();
    request.log?.(build.scrub(line));
  }, settings.logTailLines);
  try {
    const pushStream = await build.daemon.client.stream(push);
    await readEvents(pushStream, (event) => pushTracker.handle(event));
    return { tracker: pushTracker, apiError: undefined };
  } catch (error) {
    return { tracker: pushTracker, apiError: error };
  }
}

/** The result of the last push attempt: the digest, or why the push failed. */
async function pushResult(build: DockerBuild, { tracker, apiError }: PushAttempt): Promise<BuildResult> {
  const { request, settings, target } = build;
  const credentialsText = request.pushCredentials ? `the credentials from ${request.pushCredentials.source}` : 'no credentials';
  if (apiError !== undefined) {
    if (NetworkError.isInstance(apiError)) throw apiError; // the daemon stalled: nothing more to ask it
    if (!settings.keepImages) await build.daemon.removeImage(request.imageTag, 'failed push');
    if (isConnectionError(apiError)) {
      tracker.fail(errorMessage(apiError));
      return build.failure(`The connection to the Docker daemon broke while pushing ${request.imageTag}: ${errorMessage(apiError)}`);
    }
    tracker.fail(daemonMessage(apiError));
    return build.failure(`The push of ${request.imageTag} to ${target.registry} was rejected: ${daemonMessage(apiError)} (pushed with ${credentialsText})`);
  }
  if (!settings.keepImages) await build.daemon.removeImage(request.imageTag, 'pushed');
  if (tracker.error !== undefined) {
    if (DENIED.test(tracker.error)) {
      return build.failure(
        `The registry ${target.registry} denied the push of ${request.imageTag} with ${credentialsText}: ${tracker.error}. ` +
          (request.pushCredentials
            ? `Check those credentials and that they may push to this repository.`
            : `Log in to it (\`docker login ${target.registry}\`) or configure the registry backend's credentials.`),
      );
    }
    return build.failure(`The push of ${request.imageTag} to ${target.registry} failed: ${tracker.error} (pushed with ${credentialsText})`);
  }
  if (tracker.digest === undefined) {
    return build.failure(`The push of ${request.imageTag} to ${target.registry} finished without reporting a digest.`);
  }
  debug('pushed %s@%s', request.imageTag, tracker.digest);
  return { ok: true, digest: tracker.digest };
}
