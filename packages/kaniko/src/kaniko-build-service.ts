import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import type { KubeConfig } from '@kubernetes/client-node';
import {
  BuildLog,
  ConfigError,
  EnvironmentError,
  InputError,
  cancelledError,
  checkPushCredentials,
  createContextArchive,
  createLogger,
  errorMessage,
  loadOptionalSetting,
  loadSetting,
  pushTarget,
  DOCKER_PLATFORM,
  scrubber,
  withPushPhase,
  type BuildRequest,
  type BuildResult,
  type BuildService,
  secondsSetting,
} from '@prebuilt/core/backend';
import { createContextStore, parseBucketLocation, type ContextStore } from './context-store.js';
import { BUILD_LABEL, CONTAINER_NAME, dockerConfigSecret, kanikoJob } from './kaniko-manifests.js';

const debug = createLogger('kaniko');

/**
 * The default executor image. Upstream kaniko (gcr.io/kaniko-project/executor) was archived in
 * June 2025; this is a release of a maintained community fork (github.com/osscontainertools/kaniko,
 * published as martizih/kaniko). Set METAFLOW_PREBUILT_KANIKO_IMAGE to use another build.
 */
export const DEFAULT_KANIKO_IMAGE = 'martizih/kaniko:v1.27.2';

export interface KanikoBuildServiceOptions {
  /** Where build contexts go: `gs://bucket[/prefix]` or `s3://bucket[/prefix]`. Env `METAFLOW_PREBUILT_KANIKO_CONTEXT_BUCKET`; required. */
  contextBucket?: string;
  /** Namespace of the Jobs. Env `METAFLOW_PREBUILT_KANIKO_NAMESPACE`; default: the kubeconfig context's, else `default`. */
  namespace?: string;
  /** Service account of the executor pod (for bucket and registry access through workload identity / IRSA). Env `METAFLOW_PREBUILT_KANIKO_SERVICE_ACCOUNT`. */
  serviceAccount?: string;
  /** The executor image. Env `METAFLOW_PREBUILT_KANIKO_IMAGE`; default {@link DEFAULT_KANIKO_IMAGE}. */
  image?: string;
  /** CPU request and limit of the executor, e.g. `2`. Env `METAFLOW_PREBUILT_KANIKO_CPU`. */
  cpu?: string;
  /** Memory request and limit of the executor, e.g. `4Gi`. Env `METAFLOW_PREBUILT_KANIKO_MEMORY`. */
  memory?: string;
  /** Seconds a build may take. Env `METAFLOW_PREBUILT_KANIKO_TIMEOUT`; default 3600. */
  timeoutSeconds?: number;
  /** More executor arguments, e.g. `['--cache=true']`. Env `METAFLOW_PREBUILT_KANIKO_EXTRA_ARGS` (space-separated). */
  extraArgs?: string[];
  /** Environment variables of the executor container (e.g. `AWS_REGION`, `S3_ENDPOINT`). */
  executorEnv?: Record<string, string>;
  /** The cluster to use. Default: loaded the usual way (KUBECONFIG, ~/.kube/config, in-cluster). */
  kubeConfig?: KubeConfig;
  /** Options for the S3 client (`new S3Client(s3)`), e.g. `{ region }`. */
  s3?: Record<string, unknown>;
  /** Options for the GCS client (`new Storage(gcs)`), e.g. `{ projectId }`. */
  gcs?: Record<string, unknown>;
  /** How many log lines a failed result carries. Default 30. */
  logTailLines?: number;
  /** Environment to read settings from. Default `process.env`. */
  env?: Record<string, string | undefined>;
}

export const KANIKO_ENV = {
  contextBucket: 'METAFLOW_PREBUILT_KANIKO_CONTEXT_BUCKET',
  namespace: 'METAFLOW_PREBUILT_KANIKO_NAMESPACE',
  serviceAccount: 'METAFLOW_PREBUILT_KANIKO_SERVICE_ACCOUNT',
  image: 'METAFLOW_PREBUILT_KANIKO_IMAGE',
  cpu: 'METAFLOW_PREBUILT_KANIKO_CPU',
  memory: 'METAFLOW_PREBUILT_KANIKO_MEMORY',
  timeout: 'METAFLOW_PREBUILT_KANIKO_TIMEOUT',
  extraArgs: 'METAFLOW_PREBUILT_KANIKO_EXTRA_ARGS',
} as const;

const DIGEST = /^sha256:[a-f0-9]{64}$/;
/** Waiting reasons that will not fix themselves: the build fails instead of waiting for the timeout. */
const STUCK = new Set(['ImagePullBackOff', 'ErrImageNeverPull', 'InvalidImageName', 'CreateContainerConfigError', 'CreateContainerError']);
/** How often a log follow that ends early is opened again. */
const MAX_LOG_REOPENS = 100;
/** How long to wait for the rest of the log once the container has terminated, ms. */
const LOG_DRAIN_MS = 5000;

interface Settings {
  bucket: ReturnType<typeof parseBucketLocation>;
  namespace: string | undefined;
  serviceAccount: string | undefined;
  image: string;
  cpu: string | undefined;
  memory: string | undefined;
  timeoutSeconds: number;
  extraArgs: string[];
  executorEnv: Record<string, string>;
  logTailLines: number;
}

function resolveSettings(options: KanikoBuildServiceOptions, env: Record<string, string | undefined>): Settings {
  const optional = (value: string | undefined, envVar: string, option: string, description: string) =>
    loadOptionalSetting({ value, envVar, option, description, env });
  const bucketText = loadSetting({
    value: options.contextBucket,
    envVar: KANIKO_ENV.contextBucket,
    option: 'contextBucket',
    description: 'The bucket for kaniko build contexts (gs://… or s3://…)',
    env,
  });
  const extraText = optional(undefined, KANIKO_ENV.extraArgs, 'extraArgs', 'kaniko extra arguments');
  return {
    bucket: parseBucketLocation(bucketText, KANIKO_ENV.contextBucket),
    namespace: optional(options.namespace, KANIKO_ENV.namespace, 'namespace', 'Kubernetes namespace'),
    serviceAccount: optional(options.serviceAccount, KANIKO_ENV.serviceAccount, 'serviceAccount', 'service account'),
    image: optional(options.image, KANIKO_ENV.image, 'image', 'kaniko executor image') ?? DEFAULT_KANIKO_IMAGE,
    cpu: optional(options.cpu, KANIKO_ENV.cpu, 'cpu', 'executor CPU'),
    memory: optional(options.memory, KANIKO_ENV.memory, 'memory', 'executor memory'),
    timeoutSeconds: secondsSetting({ value: options.timeoutSeconds, envVar: KANIKO_ENV.timeout, option: 'timeoutSeconds', fallback: 3600, env }),
    extraArgs: options.extraArgs ?? (extraText ? extraText.split(/\s+/).filter(Boolean) : []),
    executorEnv: { ...options.executorEnv },
    logTailLines: options.logTailLines ?? 30,
  };
}

type K8s = typeof import('@kubernetes/client-node');

async function loadKubernetes(): Promise<K8s> {
  try {
    return await import('@kubernetes/client-node');
  } catch (error) {
    throw new EnvironmentError(`The kaniko build service cannot load @kubernetes/client-node: ${errorMessage(error)}.`, {
      cause: error,
      hint: 'Reinstall it beside prebuilt: npm i @prebuilt/kaniko @kubernetes/client-node@~1.4.0',
    });
  }
}

/** The HTTP status of a Kubernetes client error, if it has one. */
function statusOf(error: unknown): number | undefined {
  const code = (error as { code?: unknown; statusCode?: unknown }).code ?? (error as { statusCode?: unknown }).statusCode;
  return typeof code === 'number' ? code : undefined;
}

/** The API server's own message of a failed request. */
function apiMessage(error: unknown): string {
  const body = (error as { body?: unknown }).body;
  if (typeof body === 'string') {
    try {
      const parsed = JSON.parse(body) as { message?: unknown };
      if (typeof parsed.message === 'string') return parsed.message;
    } catch {
      if (body.trim() !== '') return body.trim().slice(0, 300);
    }
  }
  if (typeof body === 'object' && body !== null && typeof (body as { message?: unknown }).message === 'string') return (body as { message: string }).message;
  return errorMessage(error);
}

/** An RFC 3339 timestamp as [whole seconds, nanoseconds], comparable whatever its fraction's length. */
type StampKey = [number, number];

function stampKey(text: string): StampKey {
  const m = /^(.{19})(?:\.(\d+))?Z$/.exec(text);
  const seconds = Math.floor(Date.parse(`${m?.[1] ?? text}Z`) / 1000);
  return [seconds, Number((m?.[2] ?? '').padEnd(9, '0').slice(0, 9))];
}

function compareStamps(a: StampKey, b: StampKey): number {
  return a[0] - b[0] || a[1] - b[1];
}

type Outcome =
  | { kind: 'succeeded'; digest: string }
  | { kind: 'failed'; reason: string }
  | { kind: 'timeout' }
  | { kind: 'cancelled' };

interface JobObject {
  status?: { conditions?: { type?: string; status?: string; reason?: string; message?: string }[] };
}

interface PodObject {
  metadata?: { name?: string };
  status?: {
    phase?: string;
    reason?: string;
    message?: string;
    conditions?: { type?: string; status?: string; reason?: string; message?: string }[];
    containerStatuses?: {
      name?: string;
      state?: {
        waiting?: { reason?: string; message?: string };
        running?: unknown;
        terminated?: { exitCode?: number; reason?: string; message?: string };
      };
    }[];
  };
}

/**
 * The kaniko build service: the context goes to GCS or S3 as a tar.gz, a Kubernetes Job runs the
 * kaniko executor on it, the pod's log streams to `request.log`, and the digest comes back in the
 * container's termination message. The Job, its pod, the registry Secret and the context object
 * are removed after every build, whatever its end.
 */
export function createKanikoBuildService(options: KanikoBuildServiceOptions = {}): BuildService {
  const env = options.env ?? process.env;
  const settings = resolveSettings(options, env);
  let store: ContextStore | undefined;
  let kube: { k8s: K8s; kc: KubeConfig; namespace: string } | undefined;
  debug('kaniko build service: image %s, contexts in %s://%s/%s', settings.image, settings.bucket.scheme, settings.bucket.bucket, settings.bucket.prefix);

  /** The executor's env: kaniko needs AWS_REGION to read an s3:// context; it is passed on when known. */
  function executorEnvironment(): Record<string, string> {
    const executorEnv = { ...settings.executorEnv };
    if (settings.bucket.scheme === 's3' && executorEnv['AWS_REGION'] === undefined) {
      const region = (options.s3?.['region'] as string | undefined) ?? env['AWS_REGION'] ?? env['AWS_DEFAULT_REGION'];
      if (typeof region === 'string' && region !== '') executorEnv['AWS_REGION'] = region;
    }
    return executorEnv;
  }

  async function cluster(): Promise<{ k8s: K8s; kc: KubeConfig; namespace: string }> {
    if (kube) return kube;
    const k8s = await loadKubernetes();
    let kc = options.kubeConfig;
    if (!kc) {
      kc = new k8s.KubeConfig();
      try {
        kc.loadFromDefault();
      } catch (error) {
        throw new EnvironmentError(`No Kubernetes cluster is configured for kaniko builds: ${errorMessage(error)}.`, {
          cause: error,
          hint: 'Point KUBECONFIG at a kubeconfig (or run inside the cluster), and check it with `kubectl get jobs`.',
        });
      }
    }
    if (!kc.getCurrentCluster()) {
      throw new EnvironmentError('No Kubernetes cluster is configured for kaniko builds: the kubeconfig has no current cluster.', {
        hint: 'Point KUBECONFIG at a kubeconfig with a current context (`kubectl config use-context …`), or run inside the cluster.',
      });
    }
    const contextNamespace = kc.getContextObject(kc.getCurrentContext())?.namespace;
    kube = { k8s, kc, namespace: settings.namespace ?? contextNamespace ?? 'default' };
    return kube;
  }

  async function buildAndPush(request: BuildRequest): Promise<BuildResult> {
    const { signal } = request;
    const what = `The kaniko build of ${request.imageTag}`;
    if (signal?.aborted) throw cancelledError(signal, what);
    const target = pushTarget(request, 'registry.example.com/metaflow-prebuilt:env-…');
    if (!DOCKER_PLATFORM.test(request.platform)) {
      throw new InputError(`kaniko builds one platform per image; '${request.platform}' is not a single Docker platform such as linux/amd64.`, {
        hint: 'prebuilt builds one image per platform (METAFLOW_PREBUILT_PLATFORM=linux-64,linux-aarch64) and publishes an image index over them.',
      });
    }
    checkPushCredentials(request, target.registry);
    const { k8s, kc, namespace } = await cluster();
    store ??= await createContextStore(settings.bucket, { ...(options.s3 ? { s3: options.s3 } : {}), ...(options.gcs ? { gcs: options.gcs } : {}) });
    const contextStore = store;
    const batch = kc.makeApiClient(k8s.BatchV1Api);
    const core = kc.makeApiClient(k8s.CoreV1Api);

    const buildId = randomBytes(5).toString('hex');
    const jobName = `prebuilt-kaniko-${buildId}`;
    const secretName = request.pushCredentials ? `${jobName}-docker-config` : undefined;
    const key = `${settings.bucket.prefix ? `${settings.bucket.prefix}/` : ''}prebuilt-kaniko-${buildId}.tar.gz`;
    const log = new BuildLog(withPushPhase(request, /Pushing image to /), scrubber(request.pushCredentials), settings.logTailLines);
    const failure = (reason: string): BuildResult => {
      log.flush();
      return { ok: false, reason: log.scrub(reason), logTail: log.tail };
    };
    const cleanups: { what: string; run: () => Promise<unknown> }[] = [];
    const started = Date.now();
    const deadline = started + settings.timeoutSeconds * 1000;

    try {
      request.onPhase?.('building');
      const archive = await createContextArchive(request.contextDir, request.dockerfile, { tempPrefix: 'prebuilt-kaniko-context-' });
      try {
        if (signal?.aborted) throw cancelledError(signal, what);
        cleanups.push({ what: `context ${contextStore.url(key)}`, run: () => contextStore.remove(key) });
        try {
          await contextStore.upload(archive.file, archive.size, key, signal);
        } catch (error) {
          if (signal?.aborted) throw cancelledError(signal, what);
          throw new EnvironmentError(`Uploading the build context to ${contextStore.url(key)} failed: ${errorMessage(error)}.`, {
            cause: error,
            hint: `Check that the bucket in ${KANIKO_ENV.contextBucket} exists and that your credentials may write to it.`,
          });
        }
      } finally {
        await archive.remove();
      }
      log.line(`prebuilt: build context uploaded to ${contextStore.url(key)}`);
      if (signal?.aborted) throw cancelledError(signal, what);

      if (secretName && request.pushCredentials) {
        cleanups.push({ what: `secret ${namespace}/${secretName}`, run: () => core.deleteNamespacedSecret({ name: secretName, namespace }) });
        await kubernetesCall(`creating the registry secret ${namespace}/${secretName}`, () =>
          core.createNamespacedSecret({ namespace, body: dockerConfigSecret(secretName, namespace, buildId, request.pushCredentials!) as never }),
        );
      }
      if (signal?.aborted) throw cancelledError(signal, what);
      cleanups.push({
        what: `job ${namespace}/${jobName}`,
        run: () => batch.deleteNamespacedJob({ name: jobName, namespace, propagationPolicy: 'Background' }),
      });
      const job = kanikoJob({
        jobName,
        secretName,
        buildId,
        namespace,
        image: settings.image,
        contextUrl: contextStore.url(key),
        dockerfileName: archive.dockerfileName,
        destination: request.imageTag,
        platform: request.platform,
        serviceAccount: settings.serviceAccount,
        resources: { cpu: settings.cpu, memory: settings.memory },
        activeDeadlineSeconds: settings.timeoutSeconds + 60,
        extraArgs: settings.extraArgs,
        executorEnv: executorEnvironment(),
      });
      await kubernetesCall(`creating the kaniko job ${namespace}/${jobName}`, () => batch.createNamespacedJob({ namespace, body: job as never }));
      log.line(`prebuilt: kaniko job ${namespace}/${jobName} created (image ${settings.image})`);
      debug('job %s/%s created for %s', namespace, jobName, request.imageTag);

      const outcome = await waitForJob({ k8s, kc, namespace, jobName, buildId, log, signal, deadline });
      log.flush();
      switch (outcome.kind) {
        case 'cancelled':
          throw cancelledError(signal!, what);
        case 'timeout':
          return failure(`${what} was stopped after the timeout of ${settings.timeoutSeconds} s (${KANIKO_ENV.timeout}).`);
        case 'failed':
          return failure(`${what} failed: ${outcome.reason}`);
        default:
          debug('pushed %s@%s', request.imageTag, outcome.digest);
          return { ok: true, digest: outcome.digest };
      }
    } finally {
      for (const cleanup of cleanups.reverse()) {
        try {
          await cleanup.run();
          debug('removed %s', cleanup.what);
        } catch (error) {
          if (statusOf(error) !== 404) debug('could not remove %s: %s', cleanup.what, errorMessage(error));
        }
      }
    }
  }

  return {
    name: 'kaniko',
    buildAndPush,
    /** Before any work: the Kubernetes client and cluster configuration, and the context bucket's storage SDK, load. */
    async check() {
      await cluster();
      store ??= await createContextStore(settings.bucket, { ...(options.s3 ? { s3: options.s3 } : {}), ...(options.gcs ? { gcs: options.gcs } : {}) });
    },
    async close() {
      store?.close();
      store = undefined;
    },
  };
}

async function kubernetesCall<T>(what: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    const status = statusOf(error);
    const detail = apiMessage(error);
    if (status === 401 || status === 403) {
      throw new ConfigError(`The Kubernetes API refused ${what} (HTTP ${status}): ${detail}`, {
        cause: error,
        hint: 'The kubeconfig user needs to create and delete Jobs and Secrets and to watch pods and read their logs in that namespace.',
      });
    }
    throw new EnvironmentError(`The Kubernetes API failed ${what}${status ? ` (HTTP ${status})` : ''}: ${detail}`, {
      cause: error,
      hint: 'Check that the cluster is reachable (`kubectl get jobs`) and the namespace exists.',
    });
  }
}

interface WaitInput {
  k8s: K8s;
  kc: KubeConfig;
  namespace: string;
  jobName: string;
  buildId: string;
  log: BuildLog;
  signal: AbortSignal | undefined;
  deadline: number;
}

/** Watches the Job and its pod until the executor has finished, streaming the pod's log meanwhile. */
function waitForJob(input: WaitInput): Promise<Outcome> {
  const { k8s, kc, namespace, jobName, buildId, log, signal } = input;
  const watch = new k8s.Watch(kc);
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const batch = kc.makeApiClient(k8s.BatchV1Api);
  const selector = `${BUILD_LABEL}=${buildId}`;
  const controllers: AbortController[] = [];
  let logStream: { pod: string; ended: Promise<void> } | undefined;
  let settled = false;
  let terminating = false;
  let lastNote: string | undefined;
  let containerTerminated = false;

  return new Promise<Outcome>((resolve) => {
    const finish = (outcome: Outcome) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      for (const controller of controllers) controller.abort();
      resolve(outcome);
    };
    const onAbort = () => finish({ kind: 'cancelled' });
    const timer = setTimeout(() => finish({ kind: 'timeout' }), Math.max(0, input.deadline - Date.now()));
    signal?.addEventListener('abort', onAbort, { once: true });
    if (signal?.aborted) return onAbort();

    /**
     * Follows the executor's log. A follow stream can end before the container does (the kubelet
     * closes it, e.g. on log rotation); it is then opened again from the last line's timestamp,
     * and lines already seen are skipped.
     */
    const startLog = (podName: string) => {
      if (logStream) return;
      let endLog: () => void = () => undefined;
      const ended = new Promise<void>((done) => (endLog = done));
      logStream = { pod: podName, ended };
      let lastStamp: StampKey | undefined;
      let lastStampText: string | undefined;
      let reopened = 0;

      const open = () => {
        let pending = '';
        let fresh = 0;
        const take = (raw: string) => {
          const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z) ?(.*)$/.exec(raw);
          if (!m) return log.line(raw);
          const key = stampKey(m[1]!);
          if (lastStamp && compareStamps(key, lastStamp) <= 0) return;
          lastStamp = key;
          lastStampText = m[1]!;
          fresh++;
          log.line(m[2]!);
        };
        const sink = new Writable({
          write(chunk: Buffer, _encoding, callback) {
            const parts = (pending + chunk.toString('utf8')).split(/\r?\n/);
            pending = parts.pop() ?? '';
            for (const part of parts) take(part);
            callback();
          },
          final(callback) {
            if (pending !== '') take(pending);
            callback();
            if (settled || containerTerminated || reopened >= MAX_LOG_REOPENS) return endLog();
            reopened++;
            debug('log of pod %s ended early; following it again', podName);
            setTimeout(open, fresh > 0 ? 0 : 1000);
          },
        });
        new k8s.Log(kc)
          .log(namespace, podName, CONTAINER_NAME, sink, {
            follow: true,
            timestamps: true,
            ...(lastStampText ? { sinceTime: `${lastStampText.slice(0, 19)}Z` } : {}),
          })
          .then((controller) => {
            if (settled) controller.abort();
            else controllers.push(controller);
          })
          .catch((error: unknown) => {
            debug('log of pod %s: %s', podName, errorMessage(error));
            endLog();
          });
      };
      open();
    };

    /** Waits (briefly) for the rest of the log, then finishes. */
    const finishAfterLog = (outcome: Outcome) => {
      if (terminating) return;
      terminating = true;
      const drained = logStream ? Promise.race([logStream.ended, new Promise((r) => setTimeout(r, LOG_DRAIN_MS))]) : Promise.resolve();
      void drained.then(() => finish(outcome));
    };

    const onPod = (pod: PodObject) => {
      if (settled || terminating) return;
      const name = pod.metadata?.name ?? '(unnamed pod)';
      const unscheduled = pod.status?.conditions?.find((c) => c.type === 'PodScheduled' && c.status === 'False');
      if (unscheduled) {
        const note = `prebuilt: pod ${name} is not scheduled yet: ${[unscheduled.reason, unscheduled.message].filter(Boolean).join(': ')}`;
        if (note !== lastNote) log.line((lastNote = note));
      }
      const container = pod.status?.containerStatuses?.find((status) => status.name === CONTAINER_NAME);
      const state = container?.state;
      if (state?.terminated) containerTerminated = true;
      if (state?.running || state?.terminated) startLog(name);
      if (state?.waiting?.reason && STUCK.has(state.waiting.reason)) {
        const message = state.waiting.message ? `: ${state.waiting.message}` : '';
        return finishAfterLog({ kind: 'failed', reason: `the executor pod ${name} cannot start (${state.waiting.reason}${message})` });
      }
      if (state?.terminated) {
        const { exitCode, reason, message } = state.terminated;
        const text = (message ?? '').trim();
        if (exitCode === 0) {
          if (DIGEST.test(text)) return finishAfterLog({ kind: 'succeeded', digest: text });
          return finishAfterLog({ kind: 'failed', reason: `the executor finished without writing a digest to its termination log (got '${text.slice(0, 100)}')` });
        }
        const lastLine = text.split('\n').filter((l) => l.trim() !== '').at(-1);
        return finishAfterLog({
          kind: 'failed',
          reason: `the executor exited with code ${exitCode}${reason ? ` (${reason})` : ''}${lastLine ? `: ${lastLine.trim()}` : ''}`,
        });
      }
      if (pod.status?.phase === 'Failed') {
        finishAfterLog({ kind: 'failed', reason: `the executor pod ${name} failed: ${pod.status.reason ?? ''} ${pod.status.message ?? ''}`.trim() });
      }
    };

    const catchUpPods = async () => {
      const list = await core.listNamespacedPod({ namespace, labelSelector: selector });
      for (const pod of list.items) onPod(pod as PodObject);
    };

    const onJob = (job: JobObject) => {
      if (settled || terminating) return;
      const failed = job.status?.conditions?.find((c) => c.type === 'Failed' && c.status === 'True');
      const complete = job.status?.conditions?.find((c) => c.type === 'Complete' && c.status === 'True');
      if (!failed && !complete) return;
      // The pod says more than the job: look at it first.
      void catchUpPods()
        .catch(() => undefined)
        .then(() => {
          if (failed) finishAfterLog({ kind: 'failed', reason: `the job ${jobName} failed: ${[failed.reason, failed.message].filter(Boolean).join(': ')}` });
          else finishAfterLog({ kind: 'failed', reason: `the job ${jobName} completed but its pod reported no digest` });
        });
    };

    const startWatch = (path: string, query: Record<string, string>, handler: (object: never) => void, catchUp: () => Promise<void>) => {
      const again = () => {
        if (!settled) setTimeout(() => startWatch(path, query, handler, catchUp), 1000);
      };
      watch
        .watch(
          path,
          query,
          (type, object) => {
            if (type === 'ADDED' || type === 'MODIFIED') handler(object as never);
          },
          (error: unknown) => {
            if (settled) return;
            if (error) debug('watch %s ended: %s; watching again', path, errorMessage(error));
            again();
          },
        )
        .then((controller) => {
          if (settled) controller.abort();
          else controllers.push(controller);
          // Events before the watch began are read once.
          return catchUp();
        })
        .catch((error: unknown) => {
          debug('watch %s: %s', path, errorMessage(error));
          again();
        });
    };

    startWatch(`/api/v1/namespaces/${namespace}/pods`, { labelSelector: selector }, onPod, catchUpPods);
    startWatch(`/apis/batch/v1/namespaces/${namespace}/jobs`, { fieldSelector: `metadata.name=${jobName}` }, onJob, async () => {
      onJob((await batch.readNamespacedJob({ name: jobName, namespace })) as JobObject);
    });
  });
}
