import { dockerConfigAuth, dockerConfigKey, type RegistryCredentials } from '@prebuilt/core/backend';

/** The executor container's name in every kaniko Job. */
export const CONTAINER_NAME = 'kaniko';
/** Label on the Job and its pod naming the build. */
export const BUILD_LABEL = 'prebuilt.dev/build';
export const MANAGED_BY = { 'app.kubernetes.io/managed-by': 'prebuilt', 'app.kubernetes.io/component': 'kaniko' } as const;

export interface JobSpecInput {
  jobName: string;
  secretName: string | undefined;
  buildId: string;
  namespace: string;
  image: string;
  contextUrl: string;
  dockerfileName: string;
  destination: string;
  platform: string;
  serviceAccount: string | undefined;
  resources: { cpu?: string | undefined; memory?: string | undefined };
  /** Seconds; the cluster stops the Job after this, should prebuilt be gone. */
  activeDeadlineSeconds: number;
  extraArgs: readonly string[];
  executorEnv: Record<string, string>;
}

/** A `kubernetes.io/dockerconfigjson` Secret holding only the push registry's credentials. */
export function dockerConfigSecret(name: string, namespace: string, buildId: string, credentials: RegistryCredentials): Record<string, unknown> {
  // Docker Hub's entry goes under its legacy key, which kaniko (like docker) looks up.
  const config = { auths: { [dockerConfigKey(credentials.registry)]: dockerConfigAuth(credentials) } };
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name, namespace, labels: { ...MANAGED_BY, [BUILD_LABEL]: buildId } },
    type: 'kubernetes.io/dockerconfigjson',
    data: { '.dockerconfigjson': Buffer.from(JSON.stringify(config)).toString('base64') },
  };
}

/**
 * The Job running the kaniko executor once (no retries). The digest goes to the termination log,
 * so it comes back in the container's terminated state; on failure Kubernetes puts the log's last
 * lines there instead (FallbackToLogsOnError).
 */
export function kanikoJob(input: JobSpecInput): Record<string, unknown> {
  const labels = { ...MANAGED_BY, [BUILD_LABEL]: input.buildId };
  const resources =
    input.resources.cpu || input.resources.memory
      ? {
          requests: { ...(input.resources.cpu ? { cpu: input.resources.cpu } : {}), ...(input.resources.memory ? { memory: input.resources.memory } : {}) },
          limits: { ...(input.resources.cpu ? { cpu: input.resources.cpu } : {}), ...(input.resources.memory ? { memory: input.resources.memory } : {}) },
        }
      : undefined;
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name: input.jobName, namespace: input.namespace, labels },
    spec: {
      backoffLimit: 0,
      activeDeadlineSeconds: Math.ceil(input.activeDeadlineSeconds),
      // A safety net for builds prebuilt could not clean up (the process was killed).
      ttlSecondsAfterFinished: 3600,
      template: {
        metadata: { labels },
        spec: {
          restartPolicy: 'Never',
          ...(input.serviceAccount ? { serviceAccountName: input.serviceAccount } : {}),
          containers: [
            {
              name: CONTAINER_NAME,
              image: input.image,
              args: [
                `--context=${input.contextUrl}`,
                `--dockerfile=${input.dockerfileName}`,
                `--destination=${input.destination}`,
                `--custom-platform=${input.platform}`,
                '--digest-file=/dev/termination-log',
                ...input.extraArgs,
              ],
              terminationMessagePath: '/dev/termination-log',
              terminationMessagePolicy: 'FallbackToLogsOnError',
              ...(Object.keys(input.executorEnv).length > 0
                ? { env: Object.entries(input.executorEnv).map(([name, value]) => ({ name, value })) }
                : {}),
              ...(resources ? { resources } : {}),
              ...(input.secretName ? { volumeMounts: [{ name: 'docker-config', mountPath: '/kaniko/.docker', readOnly: true }] } : {}),
            },
          ],
          ...(input.secretName
            ? { volumes: [{ name: 'docker-config', secret: { secretName: input.secretName, items: [{ key: '.dockerconfigjson', path: 'config.json' }] } }] }
            : {}),
        },
      },
    },
  };
}
