import { rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import {
  BuildLog,
  InputError,
  cancelledError,
  checkBuildRequest,
  createLogger,
  createRunTempDir,
  type BuildRequest,
  type BuildResult,
  type BuildService,
} from '@prebuilt/core/backend';
import { buildxArgs, buildxResult } from './buildx-build.js';
import { checkBuildx } from './buildx-cli.js';
import { runBuildx } from './buildx-process.js';
import { resolveBuildxSettings, type BuildxBuildServiceOptions } from './buildx-settings.js';
import { prepareDaemonTagCleanup } from './daemon-image.js';
import { createTemporaryDockerConfig, type TemporaryDockerConfig } from './docker-config-dir.js';

const debug = createLogger('buildx');

/**
 * A build service on `docker buildx build --push`: the Dockerfile goes in on stdin, the push
 * credentials through a private DOCKER_CONFIG, and the digest comes from the metadata file.
 */
export function createBuildxBuildService(options: BuildxBuildServiceOptions = {}): BuildService {
  const env = options.env ?? process.env;
  const settings = resolveBuildxSettings(options, env);
  let buildxChecked = false;
  debug('buildx build service: docker %s, builder %s, network %s', settings.docker, settings.builder ?? '(current)', settings.network);

  async function buildAndPush(request: BuildRequest): Promise<BuildResult> {
    const { signal } = request;
    const { platforms } = checkBuildRequest(request, { what: 'The buildx build', example: '127.0.0.1:5000/metaflow-prebuilt:env-…', platforms: 'several' });
    const contextStat = await stat(request.contextDir).catch(() => undefined);
    if (!contextStat?.isDirectory()) {
      throw new InputError(`The build context ${request.contextDir} is not a readable directory.`, {
        hint: "Pass an existing directory as the build request's contextDir.",
      });
    }
    if (!buildxChecked) {
      debug('buildx: %s', await checkBuildx(settings.docker, env, signal));
      buildxChecked = true;
    }
    if (signal?.aborted) throw cancelledError(signal, 'The buildx build');

    const log = BuildLog.forRequest(request, /^#\d+ pushing (?:layers|manifest)\b/, settings.logTailLines);
    const work = await createRunTempDir('prebuilt-buildx-');
    let dockerConfig: TemporaryDockerConfig | undefined;
    try {
      if (request.pushCredentials) dockerConfig = await createTemporaryDockerConfig(request.pushCredentials, env);
      const metadataFile = join(work, 'metadata.json');
      const args = buildxArgs(request, platforms, settings, metadataFile);
      debug('running %s %s (credentials: %s)', settings.docker, args.join(' '), request.pushCredentials?.source ?? "the user's docker config");
      const childEnv = { ...env, ...(dockerConfig ? { DOCKER_CONFIG: dockerConfig.dir } : {}) };
      const daemonTag = settings.keepImages
        ? undefined
        : await prepareDaemonTagCleanup({ docker: settings.docker, builder: settings.builder, tag: request.imageTag, env: childEnv }, signal);
      if (signal?.aborted) throw cancelledError(signal, 'The buildx build');
      /** The tag the docker driver left in the daemon, removed (and the user's image tagged again after a failed build); a note when that fails. */
      const cleanUp = async (pushed: boolean): Promise<void> => {
        const note = await daemonTag?.afterBuild(pushed);
        if (note !== undefined) request.note?.(note);
      };
      request.onPhase?.('building');
      let result: BuildResult;
      try {
        const outcome = await runBuildx({
          docker: settings.docker,
          args,
          env: childEnv,
          dockerfile: request.dockerfile,
          log,
          signal,
          timeoutMs: settings.timeoutSeconds * 1000,
          killGraceMs: settings.killGraceMs,
        });
        result = await buildxResult(outcome, request, log, settings, metadataFile);
      } catch (error) {
        // Cancelled (or stopped) mid-build: with the docker driver the image may already be in the daemon, its push cut short.
        await cleanUp(false);
        throw error;
      }
      await cleanUp(result.ok);
      return result;
    } finally {
      await dockerConfig?.remove();
      await rm(work, { recursive: true, force: true });
    }
  }

  return { name: 'buildx', buildAndPush };
}
