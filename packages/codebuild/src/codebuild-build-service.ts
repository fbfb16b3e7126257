import { checkBuildRequest, createLogger, type BuildRequest, type BuildResult, type BuildService } from '@prebuilt/core/backend';
import { runCodeBuild } from './codebuild-build.js';
import { createClients, type CodeBuildClients } from './codebuild-clients.js';
import { resolveCodeBuildSettings, type CodeBuildBuildServiceOptions } from './codebuild-settings.js';
import { registryLogin } from './registry-login.js';

const debug = createLogger('codebuild');

/**
 * The CodeBuild build service: the context goes to S3 as a zip, `StartBuild` runs a buildspec that
 * builds and pushes with docker, the CloudWatch log streams to `request.log`, and the digest comes
 * back as an exported variable (or its log line). The uploaded context is removed afterwards;
 * a cancelled or timed-out build is stopped.
 */
export function createCodeBuildBuildService(options: CodeBuildBuildServiceOptions = {}): BuildService {
  const env = options.env ?? process.env;
  const settings = resolveCodeBuildSettings(options, env);
  let clients: CodeBuildClients | undefined;
  const created: { destroy(): void }[] = [];
  debug('codebuild build service: project %s, contexts in s3://%s/%s', settings.project, settings.bucket, settings.prefix);

  async function buildAndPush(request: BuildRequest): Promise<BuildResult> {
    const what = `The CodeBuild build of ${request.imageTag}`;
    const { target } = checkBuildRequest(request, {
      what,
      example: '123456789012.dkr.ecr.us-east-1.amazonaws.com/metaflow-prebuilt:env-…',
      platforms: { one: 'CodeBuild' },
    });
    // Before the SDK loads: a registry secret with nowhere safe to go is a ConfigError at once.
    const login = registryLogin(request, target.registry, settings);
    clients ??= await createClients(options, settings.region, created);
    return runCodeBuild(clients, settings, request, target, login, what);
  }

  return {
    name: 'codebuild',
    buildAndPush,
    async close() {
      for (const client of created) client.destroy();
    },
  };
}
