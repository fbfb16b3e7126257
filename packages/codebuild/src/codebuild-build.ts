import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import {
  BuildLog,
  ConfigError,
  EnvironmentError,
  cancelledError,
  createLogger,
  errorMessage,
  type BuildRequest,
  type BuildResult,
  type ImageRef,
} from '@prebuilt/core/backend';
import { followBuild, type FollowOutcome } from './build-follow.js';
import { buildspec } from './buildspec.js';
import type { CodeBuildClients } from './codebuild-clients.js';
import { CODEBUILD_ENV, type CodeBuildSettings } from './codebuild-settings.js';
import { createContextZip } from './context-zip.js';
import type { RegistryLoginPlan } from './registry-login.js';

const debug = createLogger('codebuild');

/**
 * One CodeBuild build: context zip up to S3, StartBuild with the buildspec, the build followed to
 * its end (stopped when cancelled, timed out or unreachable); the context object is removed after.
 */
export async function runCodeBuild(
  clients: CodeBuildClients,
  settings: CodeBuildSettings,
  request: BuildRequest,
  target: ImageRef,
  login: RegistryLoginPlan,
  what: string,
): Promise<BuildResult> {
  const build = new CodeBuildRun(clients, settings, request, target, login, what);
  try {
    return await build.run();
  } finally {
    await build.cleanUp();
  }
}

class CodeBuildRun {
  readonly #key: string;
  readonly #log: BuildLog;
  readonly #deadline: number;
  #uploaded = false;

  constructor(
    private readonly clients: CodeBuildClients,
    private readonly settings: CodeBuildSettings,
    private readonly request: BuildRequest,
    private readonly target: ImageRef,
    private readonly login: RegistryLoginPlan,
    private readonly what: string,
  ) {
    this.#key = `${settings.prefix ? `${settings.prefix}/` : ''}prebuilt-codebuild-${randomBytes(5).toString('hex')}.zip`;
    this.#log = BuildLog.forRequest(request, /^\[Container\] .*Running command .*docker push /, settings.logTailLines);
    this.#deadline = Date.now() + settings.timeoutSeconds * 1000;
  }

  async run(): Promise<BuildResult> {
    const { login, variables } = this.login;
    this.request.onPhase?.('building');
    const dockerfileName = await this.#uploadContext();
    this.#checkCancelled();
    const buildId = await this.#startBuild(buildspec(login), [
      { name: 'PREBUILT_IMAGE_TAG', value: this.request.imageTag, type: 'PLAINTEXT' },
      { name: 'PREBUILT_PLATFORM', value: this.request.platform, type: 'PLAINTEXT' },
      { name: 'PREBUILT_DOCKERFILE', value: dockerfileName, type: 'PLAINTEXT' },
      { name: 'PREBUILT_REGISTRY', value: this.target.registry, type: 'PLAINTEXT' },
      ...variables,
    ]);
    this.#log.line(`prebuilt: CodeBuild build ${buildId} started`);
    debug('build %s started for %s', buildId, this.request.imageTag);
    const outcome = await followBuild({ clients: this.clients, settings: this.settings, buildId, log: this.#log, signal: this.request.signal, deadline: this.#deadline });
    return this.#result(outcome, buildId);
  }

  async cleanUp(): Promise<void> {
    if (!this.#uploaded) return;
    const { bucket } = this.settings;
    try {
      await this.clients.s3.send(new this.clients.sdk.s3.DeleteObjectCommand({ Bucket: bucket, Key: this.#key }));
      debug('removed s3://%s/%s', bucket, this.#key);
    } catch (error) {
      debug('could not remove s3://%s/%s: %s', bucket, this.#key, errorMessage(error));
    }
  }

  #checkCancelled(): void {
    if (this.request.signal?.aborted) throw cancelledError(this.request.signal, this.what);
  }

  /** The context zip in the bucket; the Dockerfile's name in it. */
  async #uploadContext(): Promise<string> {
    const { sdk, s3 } = this.clients;
    const { bucket } = this.settings;
    const { signal } = this.request;
    const zip = await createContextZip(this.request.contextDir, this.request.dockerfile);
    try {
      this.#checkCancelled();
      this.#uploaded = true;
      await s3.send(
        new sdk.s3.PutObjectCommand({ Bucket: bucket, Key: this.#key, Body: createReadStream(zip.file), ContentLength: zip.size, ContentType: 'application/zip' }),
        signal ? { abortSignal: signal } : {},
      );
    } catch (error) {
      this.#checkCancelled();
      throw new EnvironmentError(`Uploading the build context to s3://${bucket}/${this.#key} failed: ${errorMessage(error)}.`, {
        cause: error,
        hint: `Check that the bucket in ${CODEBUILD_ENV.bucket} exists and that your AWS credentials may write to it.`,
      });
    } finally {
      await zip.remove();
    }
    this.#log.line(`prebuilt: build context uploaded to s3://${bucket}/${this.#key}`);
    return zip.dockerfileName;
  }

  /** StartBuild with the source, buildspec and variables; the build's id. A refusal is a ConfigError. */
  async #startBuild(spec: string, variables: { name: string; value: string; type: string }[]): Promise<string> {
    const { sdk, codebuild } = this.clients;
    const { project, bucket, timeoutSeconds } = this.settings;
    try {
      const started = await codebuild.send(
        new sdk.codebuild.StartBuildCommand({
          projectName: project,
          sourceTypeOverride: 'S3',
          sourceLocationOverride: `${bucket}/${this.#key}`,
          buildspecOverride: spec,
          privilegedModeOverride: true,
          timeoutInMinutesOverride: Math.min(2160, Math.max(5, Math.ceil(timeoutSeconds / 60) + 1)),
          environmentVariablesOverride: variables.map((v) => ({ ...v, type: v.type as 'PLAINTEXT' })),
        }),
      );
      if (!started.build?.id) throw new Error('StartBuild returned no build id');
      return started.build.id;
    } catch (error) {
      const name = (error as { name?: string }).name;
      if (name === 'ResourceNotFoundException' || name === 'InvalidInputException' || name === 'AccessDeniedException') {
        throw new ConfigError(`CodeBuild refused to start a build of project ${project}: ${errorMessage(error)}`, {
          cause: error,
          setting: CODEBUILD_ENV.project,
          hint: `Check ${CODEBUILD_ENV.project}, the region, and that your AWS credentials may call codebuild:StartBuild on it.`,
        });
      }
      throw new EnvironmentError(`Starting a CodeBuild build of project ${project} failed: ${errorMessage(error)}`, {
        cause: error,
        hint: 'Check your AWS credentials and network, and retry.',
      });
    }
  }

  async #result(outcome: FollowOutcome, buildId: string): Promise<BuildResult> {
    if (outcome.kind === 'cancelled' || outcome.kind === 'timeout' || outcome.kind === 'unreachable') {
      try {
        await this.clients.codebuild.send(new this.clients.sdk.codebuild.StopBuildCommand({ id: buildId }));
        debug('stopped build %s (%s)', buildId, outcome.kind);
      } catch (error) {
        debug('could not stop build %s: %s', buildId, errorMessage(error));
      }
      if (outcome.kind === 'cancelled') throw cancelledError(this.request.signal!, this.what);
      if (outcome.kind === 'unreachable') return this.#log.failure(`${this.what} was given up (build ${buildId}, stopped if it could be): ${outcome.reason}`);
      return this.#log.failure(`${this.what} was stopped after the timeout of ${this.settings.timeoutSeconds} s (${CODEBUILD_ENV.timeout}); build ${buildId}.`);
    }
    if (outcome.kind === 'failed') return this.#log.failure(`${this.what} failed (build ${buildId}): ${outcome.reason}`);
    debug('pushed %s@%s', this.request.imageTag, outcome.digest);
    return { ok: true, digest: outcome.digest };
  }
}
