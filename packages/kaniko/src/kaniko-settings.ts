import type { KubeConfig } from '@kubernetes/client-node';
import { ConfigError, DEFAULT_LOG_TAIL_LINES, settingsReader, type BuildServiceOptions } from '@prebuilt/core/backend';
import { parseBucketLocation, type BucketLocation } from './context-store.js';

/**
 * The default executor image. Upstream kaniko (gcr.io/kaniko-project/executor) was archived in
 * June 2025; this is a release of a maintained community fork (github.com/osscontainertools/kaniko,
 * published as martizih/kaniko). Set METAFLOW_PREBUILT_KANIKO_IMAGE to use another build.
 */
export const DEFAULT_KANIKO_IMAGE = 'martizih/kaniko:v1.27.2';

export interface KanikoBuildServiceOptions extends BuildServiceOptions {
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

export interface KanikoSettings {
  bucket: BucketLocation;
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

export function resolveKanikoSettings(options: KanikoBuildServiceOptions, env: Record<string, string | undefined>): KanikoSettings {
  const read = settingsReader(env);
  const bucketText = read.required(options.contextBucket, KANIKO_ENV.contextBucket, 'contextBucket', 'The bucket for kaniko build contexts (gs://… or s3://…)');
  const extraText = read.optional(undefined, KANIKO_ENV.extraArgs, 'extraArgs', 'kaniko extra arguments');
  return {
    bucket: parseBucketLocation(bucketText, KANIKO_ENV.contextBucket),
    namespace: read.optional(options.namespace, KANIKO_ENV.namespace, 'namespace', 'Kubernetes namespace'),
    serviceAccount: read.optional(options.serviceAccount, KANIKO_ENV.serviceAccount, 'serviceAccount', 'service account'),
    image: read.optional(options.image, KANIKO_ENV.image, 'image', 'kaniko executor image') ?? DEFAULT_KANIKO_IMAGE,
    cpu: quantity(read.optional(options.cpu, KANIKO_ENV.cpu, 'cpu', 'executor CPU'), options.cpu !== undefined, KANIKO_ENV.cpu, 'cpu', 'CPUs, e.g. 2, 1.5 or 500m (millicores)'),
    memory: quantity(read.optional(options.memory, KANIKO_ENV.memory, 'memory', 'executor memory'), options.memory !== undefined, KANIKO_ENV.memory, 'memory', 'bytes, e.g. 4Gi, 512Mi or 2G'),
    timeoutSeconds: read.seconds(options.timeoutSeconds, KANIKO_ENV.timeout, 'timeoutSeconds', 3600),
    extraArgs: options.extraArgs ?? (extraText ? extraText.split(/\s+/).filter(Boolean) : []),
    executorEnv: { ...options.executorEnv },
    logTailLines: options.logTailLines ?? DEFAULT_LOG_TAIL_LINES,
  };
}

/** A Kubernetes quantity: a non-negative decimal number, then a binary (Ki … Ei) or decimal (n, u, m, k, M … E) suffix or an exponent (e3). */
const QUANTITY = /^(?:\d+(?:\.\d*)?|\.\d+)(?:[KMGTPE]i|[numkMGTPE]|[eE][+-]?\d+)?$/;

/**
 * The executor's CPU or memory as given, when it is a Kubernetes quantity; else a ConfigError
 * naming the setting — the option when the value came from it, else the variable — and the form
 * (the Job would be refused by the API server after the context was uploaded).
 */
function quantity(value: string | undefined, fromOption: boolean, envVar: string, option: string, form: string): string | undefined {
  if (value === undefined || QUANTITY.test(value)) return value;
  const given = fromOption ? `The option '${option}' ('${value}')` : `${envVar}='${value}'`;
  throw new ConfigError(`${given} is not a Kubernetes quantity of ${form}.`, {
    setting: envVar,
    hint: `Set ${envVar} (or the option '${option}') to a number with an optional suffix: ${form}; or unset it for no request or limit.`,
  });
}

/** The executor's env: kaniko needs AWS_REGION to read an s3:// context; it is passed on when known. */
export function executorEnvironment(
  settings: KanikoSettings,
  s3Options: Record<string, unknown> | undefined,
  env: Record<string, string | undefined>,
): Record<string, string> {
  const executorEnv = { ...settings.executorEnv };
  if (settings.bucket.scheme === 's3' && executorEnv['AWS_REGION'] === undefined) {
    const region = (s3Options?.['region'] as string | undefined) ?? env['AWS_REGION'] ?? env['AWS_DEFAULT_REGION'];
    if (typeof region === 'string' && region !== '') executorEnv['AWS_REGION'] = region;
  }
  return executorEnv;
}
