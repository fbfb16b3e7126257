import { randomBytes } from 'node:crypto';
import {
  BuildLog,
  EnvironmentError,
  cancelledError,
  createContextArchive,
  createLogger,
  errorMessage,
  type BuildRequest,
  type BuildResult,
} from '@prebuilt/core/backend';
import type { ContextStore } from './context-store.js';
import { waitForJob } from './job-watch.js';
import { dockerConfigSecret, kanikoJob } from './kaniko-manifests.js';
import { KANIKO_ENV, type KanikoSettings } from './kaniko-settings.js';
import { kubernetesCall, statusOf, type KubeCluster } from './kubernetes-api.js';
import type { JobOutcome } from './pod-state.js';

const debug = createLogger('kaniko');

/** What a build runs against. */
export interface KanikoBuildTarget {
  settings: KanikoSettings;
  cluster: KubeCluster;
  store: ContextStore;
  /** The executor container's environment. */
  executorEnv: Record<string, string>;
}

/**
 * One kaniko build: context up to the bucket, the registry Secret, the Job, the wait; then the
 * Job, the Secret and the context object are removed, whatever the end.
 */
export async function runKanikoBuild(target: KanikoBuildTarget, request: BuildRequest, what: string): Promise<BuildResult> {
  const build = new KanikoBuild(target, request, what);
  try {
    return await build.run();
  } finally {
    await build.cleanUp();
  }
}

class KanikoBuild {
  readonly #buildId = randomBytes(5).toString('hex');
  readonly #jobName = `prebuilt-kaniko-${this.#buildId}`;
  readonly #cleanups: { what: string; run: () => Promise<unknown> }[] = [];
  readonly #log: BuildLog;
  readonly #key: string;
  readonly #deadline: number;

  constructor(
    private readonly target: KanikoBuildTarget,
    private readonly request: BuildRequest,
    private readonly what: string,
  ) {
    const { settings } = target;
    this.#key = `${settings.bucket.prefix ? `${settings.bucket.prefix}/` : ''}prebuilt-kaniko-${this.#buildId}.tar.gz`;
    this.#log = BuildLog.forRequest(request, /Pushing image to /, settings.logTailLines);
    this.#deadline = Date.now() + settings.timeoutSeconds * 1000;
  }

  async run(): Promise<BuildResult> {
    this.request.onPhase?.('building');
    const dockerfileName = await this.#uploadContext();
    this.#checkCancelled();
    const secretName = await this.#createSecret();
    this.#checkCancelled();
    await this.#createJob(dockerfileName, secretName);
    const { cluster } = this.target;
    const outcome = await waitForJob({ cluster, jobName: this.#jobName, buildId: this.#buildId, log: this.#log, signal: this.request.signal, deadline: this.#deadline });
    this.#log.flush();
    return this.#result(outcome);
  }

  /** Removes what the build created, newest first; what is gone already is fine. */
  async cleanUp(): Promise<void> {
    for (const cleanup of this.#cleanups.reverse()) {
      try {
        await cleanup.run();
        debug('removed %s', cleanup.what);
      } catch (error) {
        if (statusOf(error) !== 404) debug('could not remove %s: %s', cleanup.what, errorMessage(error));
      }
    }
  }

  #checkCancelled(): void {
    if (this.request.signal?.aborted) throw cancelledError(this.request.signal, this.what);
  }

  /** The context and Dockerfile as a tar.gz in the bucket; the Dockerfile's name in it. */
  async #uploadContext(): Promise<string> {
    const { store } = this.target;
    const url = store.url(this.#key);
    const archive = await createContextArchive(this.request.contextDir, this.request.dockerfile, { tempPrefix: 'prebuilt-kaniko-context-' });
    try {
      this.#checkCancelled();
      this.#cleanups.push({ what: `context ${url}`, run: () => store.remove(this.#key) });
      try {
        await store.upload(archive.file, archive.size, this.#key, this.request.signal);
      } catch (error) {
        this.#checkCancelled();
        throw new EnvironmentError(`Uploading the build context to ${url} failed: ${errorMessage(error)}.`, {
          cause: error,
          hint: `Check that the bucket in ${KANIKO_ENV.contextBucket} exists and that your credentials may write to it.`,
        });
      }
    } finally {
      await archive.remove();
    }
    this.#log.line(`prebuilt: build context uploaded to ${url}`);
    return archive.dockerfileName;
  }

  /** The `dockerconfigjson` Secret with the push credentials, if there are any; its name. */
  async #createSecret(): Promise<string | undefined> {
    const credentials = this.request.pushCredentials;
    if (!credentials) return undefined;
    const { k8s, kc, namespace } = this.target.cluster;
    const core = kc.makeApiClient(k8s.CoreV1Api);
    const secretName = `${this.#jobName}-docker-config`;
    this.#cleanups.push({ what: `secret ${namespace}/${secretName}`, run: () => core.deleteNamespacedSecret({ name: secretName, namespace }) });
    await kubernetesCall(`creating the registry secret ${namespace}/${secretName}`, () =>
      core.createNamespacedSecret({ namespace, body: dockerConfigSecret(secretName, namespace, this.#buildId, credentials) as never }),
    );
    return secretName;
  }

  async #createJob(dockerfileName: string, secretName: string | undefined): Promise<void> {
    const { settings, store, cluster, executorEnv } = this.target;
    const { k8s, kc, namespace } = cluster;
    const batch = kc.makeApiClient(k8s.BatchV1Api);
    const jobName = this.#jobName;
    this.#cleanups.push({ what: `job ${namespace}/${jobName}`, run: () => batch.deleteNamespacedJob({ name: jobName, namespace, propagationPolicy: 'Background' }) });
    const job = kanikoJob({
      jobName,
      secretName,
      buildId: this.#buildId,
      namespace,
      image: settings.image,
      contextUrl: store.url(this.#key),
      dockerfileName,
      destination: this.request.imageTag,
      platform: this.request.platform,
      serviceAccount: settings.serviceAccount,
      resources: { cpu: settings.cpu, memory: settings.memory },
      activeDeadlineSeconds: settings.timeoutSeconds + 60,
      extraArgs: settings.extraArgs,
      executorEnv,
    });
    await kubernetesCall(`creating the kaniko job ${namespace}/${jobName}`, () => batch.createNamespacedJob({ namespace, body: job as never }));
    this.#log.line(`prebuilt: kaniko job ${namespace}/${jobName} created (image ${settings.image})`);
    debug('job %s/%s created for %s', namespace, jobName, this.request.imageTag);
  }

  #result(outcome: JobOutcome): BuildResult {
    switch (outcome.kind) {
      case 'cancelled':
        throw cancelledError(this.request.signal!, this.what);
      case 'timeout':
        return this.#log.failure(`${this.what} was stopped after the timeout of ${this.target.settings.timeoutSeconds} s (${KANIKO_ENV.timeout}).`);
      case 'failed':
        return this.#log.failure(`${this.what} failed: ${outcome.reason}`);
      default:
        debug('pushed %s@%s', this.request.imageTag, outcome.digest);
        return { ok: true, digest: outcome.digest };
    }
  }
}
