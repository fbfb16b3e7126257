import { createLogger, errorMessage, sleep, type BuildLog } from '@prebuilt/core/backend';
import { BUILD_LABEL } from './kaniko-manifests.js';
import type { KubeCluster } from './kubernetes-api.js';
import { followPodLog, type LogOwner } from './pod-log.js';
import { readPod, type JobOutcome, type PodObject } from './pod-state.js';

const debug = createLogger('kaniko');

/** How long to wait for the rest of the log once the container has terminated, ms. */
const LOG_DRAIN_MS = 5000;

interface JobObject {
  status?: { conditions?: { type?: string; status?: string; reason?: string; message?: string }[] };
}

export interface WaitInput {
  cluster: KubeCluster;
  jobName: string;
  buildId: string;
  log: BuildLog;
  signal: AbortSignal | undefined;
  /** When the build times out (epoch ms). */
  deadline: number;
}

/** Watches the Job and its pod until the executor has finished, streaming the pod's log meanwhile. */
export function waitForJob(input: WaitInput): Promise<JobOutcome> {
  return new Promise<JobOutcome>((resolve) => new JobWatch(input, resolve).start());
}

class JobWatch implements LogOwner {
  settled = false;
  containerTerminated = false;
  readonly #input: WaitInput;
  readonly #resolve: (outcome: JobOutcome) => void;
  readonly #controllers: AbortController[] = [];
  #terminating = false;
  #lastNote: string | undefined;
  #logEnded: Promise<void> | undefined;
  #timer: NodeJS.Timeout | undefined;
  readonly #watcher: InstanceType<KubeCluster['k8s']['Watch']>;
  readonly #core: InstanceType<KubeCluster['k8s']['CoreV1Api']>;
  readonly #batch: InstanceType<KubeCluster['k8s']['BatchV1Api']>;

  constructor(input: WaitInput, resolve: (outcome: JobOutcome) => void) {
    this.#input = input;
    this.#resolve = resolve;
    const { k8s, kc } = input.cluster;
    this.#watcher = new k8s.Watch(kc);
    this.#core = kc.makeApiClient(k8s.CoreV1Api);
    this.#batch = kc.makeApiClient(k8s.BatchV1Api);
  }

  start(): void {
    const { cluster, jobName, buildId, signal, deadline } = this.#input;
    this.#timer = setTimeout(() => this.#finish({ kind: 'timeout' }), Math.max(0, deadline - Date.now()));
    signal?.addEventListener('abort', this.#onAbort, { once: true });
    if (signal?.aborted) return this.#onAbort();
    const { namespace } = cluster;
    this.#watch(`/api/v1/namespaces/${namespace}/pods`, { labelSelector: `${BUILD_LABEL}=${buildId}` }, this.#onPod, () => this.#catchUpPods());
    this.#watch(`/apis/batch/v1/namespaces/${namespace}/jobs`, { fieldSelector: `metadata.name=${jobName}` }, this.#onJob, async () => {
      this.#onJob((await this.#batch.readNamespacedJob({ name: jobName, namespace })) as JobObject);
    });
  }

  adopt(controller: AbortController): void {
    if (this.settled) controller.abort();
    else this.#controllers.push(controller);
  }

  readonly #onAbort = (): void => this.#finish({ kind: 'cancelled' });

  #finish(outcome: JobOutcome): void {
    if (this.settled) return;
    this.settled = true;
    clearTimeout(this.#timer);
    this.#input.signal?.removeEventListener('abort', this.#onAbort);
    for (const controller of this.#controllers) controller.abort();
    this.#resolve(outcome);
  }

  /** Waits (briefly) for the rest of the log, then finishes. */
  #finishAfterLog(outcome: JobOutcome): void {
    if (this.#terminating) return;
    this.#terminating = true;
    const drained = this.#logEnded ? Promise.race([this.#logEnded, sleep(LOG_DRAIN_MS)]) : Promise.resolve();
    void drained.then(() => this.#finish(outcome));
  }

  readonly #onPod = (object: PodObject): void => {
    if (this.settled || this.#terminating) return;
    const pod = readPod(object);
    if (pod.note !== undefined && pod.note !== this.#lastNote) this.#input.log.line((this.#lastNote = pod.note));
    if (pod.terminated) this.containerTerminated = true;
    if (pod.hasLog) this.#logEnded ??= followPodLog(this.#input.cluster, pod.name, this.#input.log, this);
    if (pod.outcome) this.#finishAfterLog(pod.outcome);
  };

  async #catchUpPods(): Promise<void> {
    const { cluster, buildId } = this.#input;
    const list = await this.#core.listNamespacedPod({ namespace: cluster.namespace, labelSelector: `${BUILD_LABEL}=${buildId}` });
    for (const pod of list.items) this.#onPod(pod as PodObject);
  }

  readonly #onJob = (job: JobObject): void => {
    if (this.settled || this.#terminating) return;
    const failed = job.status?.conditions?.find((c) => c.type === 'Failed' && c.status === 'True');
    const complete = job.status?.conditions?.find((c) => c.type === 'Complete' && c.status === 'True');
    if (!failed && !complete) return;
    const { jobName } = this.#input;
    // The pod says more than the job: look at it first.
    void this.#catchUpPods()
      .catch(() => undefined)
      .then(() => {
        if (failed) this.#finishAfterLog({ kind: 'failed', reason: `the job ${jobName} failed: ${[failed.reason, failed.message].filter(Boolean).join(': ')}` });
        else this.#finishAfterLog({ kind: 'failed', reason: `the job ${jobName} completed but its pod reported no digest` });
      });
  };

  /** Watches `path` (a watch that ends is started again); events from before it began are read once by `catchUp`. */
  #watch<T>(path: string, query: Record<string, string>, handler: (object: T) => void, catchUp: () => Promise<void>): void {
    const again = () => {
      if (!this.settled) setTimeout(() => this.#watch(path, query, handler, catchUp), 1000);
    };
    this.#watcher
      .watch(
        path,
        query,
        (type, object) => {
          if (type === 'ADDED' || type === 'MODIFIED') handler(object as T);
        },
        (error: unknown) => {
          if (this.settled) return;
          if (error) debug('watch %s ended: %s; watching again', path, errorMessage(error));
          again();
        },
      )
      .then((controller) => {
        this.adopt(controller);
        return catchUp();
      })
      .catch((error: unknown) => {
        debug('watch %s: %s', path, errorMessage(error));
        again();
      });
  }
}
