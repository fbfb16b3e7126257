import type { Readable } from 'node:stream';
import {
  EnvironmentError,
  NetworkError,
  cancelledError,
  checkPushCredentials,
  createLogger,
  errorMessage,
  fromImageNamed,
  scrubber,
  type BuildRequest,
  type BuildResult,
} from '@prebuilt/core/backend';
import { createBuildContext, type BuildContext } from './build-context.js';
import { pullThroughDaemon } from './daemon-pull.js';
import { daemonMessage, isConnectionError, type DockerDaemon } from './docker-daemon.js';
import { CANCEL_CLEANUP_MS } from './engine-clock.js';
import { shownDockerHost } from './docker-host.js';
import type { StreamRequest } from './engine-client.js';
import type { DockerSettings } from './docker-settings.js';
import { pushImage } from './docker-push.js';
import { baseImageReferences, failedBaseImage, parseTaggedReference, pullParts, registryHost, type TaggedReference } from './image-reference.js';
import { ProgressTracker, readEvents } from './progress.js';
import { authConfig } from './registry-auth.js';

const debug = createLogger('docker');

/** One build and push on the daemon: what its steps share (the target, the log, the failure result). */
export class DockerBuild {
  readonly target: TaggedReference;
  /** Removes the push credentials' secrets from a text. */
  readonly scrub: (text: string) => string;
  /** The build's log: its tail goes into a failed result. */
  readonly tracker: ProgressTracker;

  constructor(
    readonly daemon: DockerDaemon,
    readonly settings: DockerSettings,
    readonly request: BuildRequest,
  ) {
    if (request.signal?.aborted) throw cancelledError(request.signal, 'The Docker build');
    this.target = parseTaggedReference(request.imageTag);
    checkPushCredentials(request, this.target.registry);
    const scrub = scrubber(request.pushCredentials);
    this.scrub = scrub;
    this.tracker = new ProgressTracker(request.log ? (line) => request.log!(scrub(line)) : undefined, settings.logTailLines, { dockerfile: request.dockerfile });
  }

  /** Builds (pre-pulling private base images for BuildKit), then pushes; a failure is a result. */
  async run(): Promise<BuildResult> {
    const { request } = this;
    await this.daemon.check(request.signal, this.settings.builder);
    const context = await createBuildContext(request.contextDir, request.dockerfile);
    if (request.signal?.aborted) throw cancelledError(request.signal, 'The Docker build');
    request.onPhase?.('building');
    debug('building %s (%d bytes of context)', request.imageTag, context.tar.length);
    const buildRequest = this.#buildRequest(context);
    if (authConfig(request.pushCredentials) && this.settings.builder === 'buildkit') {
      // BuildKit asks for registry credentials through a client session (gRPC over a hijacked
      // connection) that prebuilt does not serve; it prefers local images, so base images in the push registry are
      // pulled first, with the push credentials, through the Engine API.
      const pulled = await this.#prePullBaseImages();
      if (pulled !== undefined) return this.failure(pulled);
    }
    const failed = await this.#build(buildRequest);
    return failed ?? pushImage(this);
  }

  failure(reason: string): BuildResult {
    this.tracker.flush();
    return { ok: false, reason: this.scrub(reason), logTail: this.tracker.tail.map(this.scrub) };
  }

  /** The aborted request makes the daemon stop the build; a tag that made it anyway is removed. */
  async cancel(): Promise<never> {
    await this.daemon.removeImage(this.request.imageTag, 'cancelled', AbortSignal.timeout(CANCEL_CLEANUP_MS));
    throw cancelledError(this.request.signal!, 'The Docker build');
  }

  /** `POST /build` with the context's tar: the tag, the builder, the network, labels, and base-image credentials for the legacy builder. */
  #buildRequest(context: BuildContext): StreamRequest {
    const { request, settings } = this;
    const query: Record<string, unknown> = {
      t: request.imageTag,
      dockerfile: context.dockerfileName,
      networkmode: settings.network,
      platform: request.platform,
      rm: true,
      forcerm: true,
    };
    if (Object.keys(settings.labels).length > 0) query['labels'] = settings.labels;
    if (settings.builder === 'buildkit') query['version'] = '2';
    // The upload and the answer's headers are timed; the build's events then have no silence
    // limit: a RUN compiling prints nothing for as long as it compiles (engine-clock.ts).
    const build: StreamRequest = { method: 'POST', path: '/build', query, body: context.tar, signal: request.signal, silence: 'open' };
    const pullAuth = authConfig(request.pushCredentials);
    if (pullAuth && 'username' in pullAuth && settings.builder === 'legacy') {
      // Lets the builder pull a base image that lives in the same (private) registry; the legacy
      // builder takes credentials per registry host, so no other registry sees them.
      this.daemon.sendsCredentials(request.note);
      build.registryConfig = {
        [request.pushCredentials!.registry]: { username: pullAuth['username'], password: pullAuth['password'] },
      };
    }
    return build;
  }

  /** Runs the build; a failed result, or undefined when the image was built. */
  async #build(buildRequest: StreamRequest): Promise<BuildResult | undefined> {
    const { request, tracker, daemon } = this;
    let buildStream: Readable;
    try {
      buildStream = await daemon.client.stream(buildRequest);
    } catch (error) {
      if (request.signal?.aborted) return this.cancel();
      if (NetworkError.isInstance(error)) throw error; // the daemon stalled before the build's first event
      if (isConnectionError(error)) {
        throw new EnvironmentError(`The Docker daemon at ${shownDockerHost(this.settings.dockerHost)} dropped the build of ${request.imageTag}: ${errorMessage(error)}.`, {
          cause: error,
          hint: 'Check that the Docker daemon is running (`docker version`) and retry.',
        });
      }
      tracker.fail(daemonMessage(error));
      return this.failure(`The Docker build of ${request.imageTag} was rejected: ${daemonMessage(error)}`);
    }
    try {
      await readEvents(buildStream, (event) => tracker.handle(event));
    } catch (error) {
      if (request.signal?.aborted) return this.cancel();
      await daemon.removeImage(request.imageTag, 'broken build stream');
      tracker.fail(errorMessage(error));
      return this.failure(`The connection to the Docker daemon broke during the build of ${request.imageTag}: ${errorMessage(error)}`);
    }
    if (request.signal?.aborted) return this.cancel();
    tracker.flush();
    if (tracker.error === undefined) return undefined;
    await daemon.removeImage(request.imageTag, 'failed build');
    if (tracker.errorInFrom) {
      const image = failedBaseImage(request.dockerfile, tracker.failedFrom);
      const what = image === undefined ? "An image of the Dockerfile's FROM lines" : upperFirst(fromImageNamed(request.dockerfile, image));
      return this.failure(`${what} is missing or cannot be pulled: ${tracker.error}`);
    }
    return this.failure(`The Docker build of ${request.imageTag} failed: ${tracker.error}`);
  }

  /** Pulls the base images that live in the push registry with the push credentials. A failure reason, or undefined. */
  async #prePullBaseImages(): Promise<string | undefined> {
    const { request } = this;
    const { signal } = request;
    for (const image of baseImageReferences(request.dockerfile)) {
      if (registryHost(pullParts(image).fromImage) !== this.target.registry) continue;
      debug('pulling base image %s with %s', image, request.pushCredentials?.source);
      this.daemon.sendsCredentials(request.note);
      const tracker = new ProgressTracker((line) => this.tracker.handle({ stream: `${line}\n` }), this.settings.logTailLines);
      const failed = await pullThroughDaemon(this.daemon.client, image, {
        credentials: request.pushCredentials,
        platform: request.platform,
        ...(signal ? { signal } : {}),
        tracker,
        what: 'The Docker build',
      });
      if (failed !== undefined) {
        return `${upperFirst(fromImageNamed(request.dockerfile, image))} is missing or cannot be pulled with the credentials from ${request.pushCredentials?.source}: ${failed}`;
      }
    }
    return undefined;
  }
}

const upperFirst = (text: string): string => text.charAt(0).toUpperCase() + text.slice(1);
