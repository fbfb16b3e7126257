import { checkBuildRequest, createLogger, type BuildRequest, type BuildResult, type BuildService } from '@prebuilt/core/backend';
import { createContextStore, type ContextStore } from './context-store.js';
import { runKanikoBuild } from './kaniko-build.js';
import { executorEnvironment, resolveKanikoSettings, type KanikoBuildServiceOptions } from './kaniko-settings.js';
import { connectCluster, type KubeCluster } from './kubernetes-api.js';

const debug = createLogger('kaniko');

/**
 * The kaniko build service: the context goes to GCS or S3 as a tar.gz, a Kubernetes Job runs the
 * kaniko executor on it, the pod's log streams to `request.log`, and the digest comes back in the
 * container's termination message. The Job, its pod, the registry Secret and the context object
 * are removed after every build, whatever its end.
 */
export function createKanikoBuildService(options: KanikoBuildServiceOptions = {}): BuildService {
  const env = options.env ?? process.env;
  const settings = resolveKanikoSettings(options, env);
  let store: ContextStore | undefined;
  let cluster: KubeCluster | undefined;
  debug('kaniko build service: image %s, contexts in %s://%s/%s', settings.image, settings.bucket.scheme, settings.bucket.bucket, settings.bucket.prefix);

  /** The cluster and the context store, loaded once. */
  async function connect(): Promise<{ cluster: KubeCluster; store: ContextStore }> {
    cluster ??= await connectCluster(options.kubeConfig, settings.namespace);
    store ??= await createContextStore(settings.bucket, { ...(options.s3 ? { s3: options.s3 } : {}), ...(options.gcs ? { gcs: options.gcs } : {}) });
    return { cluster, store };
  }

  async function buildAndPush(request: BuildRequest): Promise<BuildResult> {
    const what = `The kaniko build of ${request.imageTag}`;
    checkBuildRequest(request, { what, example: 'registry.example.com/metaflow-prebuilt:env-…', platforms: { one: 'kaniko' } });
    const connected = await connect();
    return runKanikoBuild({ settings, ...connected, executorEnv: executorEnvironment(settings, options.s3, env) }, request, what);
  }

  return {
    name: 'kaniko',
    buildAndPush,
    /** Before any work: the Kubernetes client and cluster configuration, and the context bucket's storage SDK, load. */
    async check() {
      await connect();
    },
    async close() {
      store?.close();
      store = undefined;
    },
  };
}
