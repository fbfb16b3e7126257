import { createLogger, type BuildRequest, type BuildResult, type BuildService } from '@prebuilt/core/backend';
import { DockerBuild } from './docker-build.js';
import { DockerDaemon } from './docker-daemon.js';
import { resolveDockerSettings, type DockerBuildServiceOptions } from './docker-settings.js';

const debug = createLogger('docker');

/**
 * A build service on the Docker Engine API: builds with the daemon's builder (host network by
 * default), pushes with the registry's credentials, and returns the pushed digest.
 */
export function createDockerBuildService(options: DockerBuildServiceOptions = {}): BuildService {
  const env = options.env ?? process.env;
  const settings = resolveDockerSettings(options, env);
  const daemon = new DockerDaemon(settings, env);
  debug('docker build service: host %s, network %s, builder %s', settings.dockerHost, settings.network, settings.builder);

  return {
    name: 'docker',
    buildAndPush: async (request: BuildRequest): Promise<BuildResult> => new DockerBuild(daemon, settings, request).run(),
    check: (checkOptions = {}) => daemon.check(checkOptions.signal, settings.builder),
    async close() {
      daemon.close();
    },
  };
}
