import { Option, type Command } from 'commander';
import type { CoreV1Api, KubeConfig, V1Secret } from '@kubernetes/client-node';
import {
  CancelledError,
  ConfigError,
  DOCKER_HUB,
  DOCKER_HUB_CONFIG_KEY,
  PrebuiltError,
  errorMessage,
  normalizeDockerConfigKey,
  sleep,
  type RegistryCredentials,
} from '@prebuilt/core';
import { checkNamespace, createOrReplace, createSelectedBackend, isObjectName, loadKubeConfig, loadKubernetesClient, type K8s } from '../app/index.js';
import type { CliContext } from '../cli-context.js';
import { parseDuration } from '../duration.js';
import { writeJsonResult } from '../output.js';


export const PULL_SECRET_TYPE = 'kubernetes.io/dockerconfigjson';
/** Default --interval of --watch: shorter than the refresh margins of ECR (15 min) and Google (5 min) tokens. */
export const DEFAULT_WATCH_INTERVAL_MS = 4 * 60_000;

/** The `.dockerconfigjson` of a pull secret: one `auths` entry for the registry. Holds the secret: never log it. */
export function dockerConfigJson(credentials: RegistryCredentials): string {
  if (credentials.password === undefined) {
    throw new ConfigError(`The credentials for ${credentials.registry} (${credentials.source}) have no password, so they cannot go into a pull secret.`, {
      hint: 'Kubernetes needs a user name and password (or token) for the registry; log in with a password or access token instead of an identity token.',
    });
  }
  const username = credentials.username ?? '';
  const password = credentials.password.reveal();
  const key = normalizeDockerConfigKey(credentials.registry) === DOCKER_HUB ? DOCKER_HUB_CONFIG_KEY : credentials.registry;
  return JSON.stringify({ auths: { [key]: { username, password, auth: Buffer.from(`${username}:${password}`).toString('base64') } } });
}

export interface ApplyPullSecretOptions {
  kubeConfig: KubeConfig;
  namespace: string;
  name: string;
  credentials: RegistryCredentials;
  /** The loaded @kubernetes/client-node module (default: imported on demand). */
  k8s?: K8s;
}

export interface AppliedPullSecret {
  namespace: string;
  name: string;
  /** `unchanged` when the secret already held these credentials. */
  action: 'created' | 'updated' | 'unchanged';
  registry: string;
  /** Where the credentials came from (never the secret). */
  source: string;
}


function secretsPermission(namespace: string): string {
  return `The Kubernetes user needs get, create and update on secrets in the namespace ${namespace} (kubectl auth can-i update secrets -n ${namespace}).`;
}

/** A namespace and secret name Kubernetes accepts; else a ConfigError (exit 2) saying what to pass. */
function checkSecretTarget(namespace: string, name: string): void {
  checkNamespace(namespace);
  if (!isObjectName(name)) throw new ConfigError(`'${name}' is not a Kubernetes secret name.`, { hint: 'Pass --name with lowercase letters, digits, - and ., e.g. prebuilt-pull.' });
}

/** Creates the `kubernetes.io/dockerconfigjson` secret, or updates it when it exists and holds other credentials. */
export async function applyPullSecret(options: ApplyPullSecretOptions): Promise<AppliedPullSecret> {
  const { namespace, name, credentials } = options;
  checkSecretTarget(namespace, name);
  const k8s = options.k8s ?? (await loadKubernetesClient('pull-secret'));
  const api: CoreV1Api = options.kubeConfig.makeApiClient(k8s.CoreV1Api);
  const server = options.kubeConfig.getCurrentCluster()?.server ?? '(no server)';
  const data = { '.dockerconfigjson': Buffer.from(dockerConfigJson(credentials)).toString('base64') };
  const body = (resourceVersion?: string): V1Secret => ({
    apiVersion: 'v1',
    kind: 'Secret',
    type: PULL_SECRET_TYPE,
    metadata: {
      name,
      namespace,
      ...(resourceVersion ? { resourceVersion } : {}),
      labels: { 'app.kubernetes.io/managed-by': 'prebuilt' },
      annotations: { 'prebuilt.dev/registry': credentials.registry, 'prebuilt.dev/credentials-source': credentials.source },
    },
    data,
  });

  const action = await createOrReplace<V1Secret>({
    what: `the secret ${namespace}/${name}`,
    namespace,
    server,
    permissionHint: secretsPermission(namespace),
    read: () => api.readNamespacedSecret({ name, namespace }),
    create: () => api.createNamespacedSecret({ namespace, body: body() }),
    replace: (resourceVersion) => api.replaceNamespacedSecret({ name, namespace, body: body(resourceVersion) }),
    compare: (existing) => {
      if (existing.type !== PULL_SECRET_TYPE) {
        throw new ConfigError(`The secret ${namespace}/${name} exists with type ${existing.type ?? '(none)'}, not ${PULL_SECRET_TYPE}; prebuilt will not overwrite it.`, {
          hint: 'Choose another --name, or delete that secret first.',
        });
      }
      const same = existing.data?.['.dockerconfigjson'] === data['.dockerconfigjson'] && existing.metadata?.annotations?.['prebuilt.dev/credentials-source'] === credentials.source;
      return same ? 'unchanged' : 'replace';
    },
  });
  return { namespace, name, action, registry: credentials.registry, source: credentials.source };
}

/** `30s`, `4m`, `6h` → milliseconds (the --interval of --watch). */
export function parseInterval(value: string): number {
  return parseDuration(value, '--interval');
}

interface PullSecretOptions {
  namespace: string;
  name: string;
  watch?: boolean;
  interval: number;
  json?: boolean;
}

const HELP = `
Creates or updates a Kubernetes secret of type ${PULL_SECRET_TYPE} holding the selected image
registry's credentials (METAFLOW_PREBUILT_IMAGE_REGISTRY, default dockerhub), so pods can pull
the env images. Tokens expire (ECR after 12 hours, Google access tokens after 1 hour): re-run
the command, or keep it running with --watch, which refreshes the secret every --interval.
Name the secret in METAFLOW_PREBUILT_PULL_SECRET so the image map's pull config lists it.

The cluster comes from KUBECONFIG, else the in-cluster service account, else ~/.kube/config.
The Kubernetes user needs get, create and update on secrets in the namespace.

Examples:
  $ prebuilt pull-secret --namespace metaflow --name prebuilt-pull
  $ METAFLOW_PREBUILT_IMAGE_REGISTRY=ecr prebuilt pull-secret -n metaflow --name ecr-pull --watch
  $ prebuilt pull-secret --namespace metaflow --name prebuilt-pull --json`;

/** `prebuilt pull-secret --namespace N --name S [--watch [--interval 4m]] [--json]`. */
export function registerPullSecretCommand(program: Command, context: CliContext): void {
  program
    .command('pull-secret')
    .description('create or update a Kubernetes image pull secret from the selected registry\'s credentials')
    .requiredOption('-n, --namespace <namespace>', 'Kubernetes namespace of the secret')
    .requiredOption('--name <name>', 'name of the secret, e.g. prebuilt-pull')
    .option('--watch', 'keep running and refresh the secret every --interval (Ctrl-C stops)')
    // The default is shown as the user types a duration (4m), not as the milliseconds it parses to.
    .addOption(new Option('--interval <duration>', 'refresh period of --watch, e.g. 30s, 4m, 1h').argParser(parseInterval).default(DEFAULT_WATCH_INTERVAL_MS, '4m'))
    .option('--json', 'print one JSON object for machines (one per refresh with --watch)')
    .addHelpText('after', HELP)
    .action(async (options: PullSecretOptions) => {
      context.json.requested = options.json === true;
      await runPullSecret(context, options);
    });
}

async function runPullSecret(context: CliContext, options: PullSecretOptions): Promise<void> {
  // The command line first: a bad --namespace or --name is said before the registry or the cluster is looked at.
  checkSecretTarget(options.namespace, options.name);
  const { backend: registry } = await createSelectedBackend('image-registry', context);
  const k8s = await loadKubernetesClient('pull-secret');
  const { kubeConfig, source: kubeSource } = loadKubeConfig(k8s, context.env);
  const report = (applied: AppliedPullSecret): void => {
    if (options.json) {
      if (options.watch) context.stdout.write(`${JSON.stringify({ ok: true, ...applied, imageRegistry: registry.name, at: new Date().toISOString() })}\n`);
      else writeJsonResult(context, { ...applied, imageRegistry: registry.name, kubeconfig: kubeSource });
      context.json.written = true;
      return;
    }
    context.stdout.write(`${applied.action} secret ${applied.namespace}/${applied.name} (${PULL_SECRET_TYPE}) for ${applied.registry}; credentials: ${applied.source}\n`);
  };
  const once = async (): Promise<AppliedPullSecret> => {
    if (context.signal.aborted) throw new CancelledError('prebuilt pull-secret was interrupted.');
    const credentials = await registry.pushCredentials({ signal: context.signal });
    if (!credentials) {
      throw new ConfigError(`The image registry '${registry.name}' has no credentials to put in a pull secret (it pulls anonymously).`, {
        hint: 'Pods can pull from it without a secret; configure registry credentials (e.g. docker login) if it needs them.',
      });
    }
    return applyPullSecret({ kubeConfig, namespace: options.namespace, name: options.name, credentials, k8s });
  };
  try {
    report(await once());
    if (!options.watch) return;
    if (!options.json) context.stderr.write(`watching: refreshing every ${Math.round(options.interval / 1000)}s (Ctrl-C stops)\n`);
    // Until the run's signal aborts (core's sleep rejects then).
    while (await sleep(options.interval, context.signal).then(() => true, () => false)) {
      try {
        report(await once());
      } catch (error) {
        if (context.signal.aborted) return;
        // Keep watching: a refresh may fail while the network or the cluster is briefly away.
        const message = PrebuiltError.isInstance(error) ? error.message : errorMessage(error);
        context.stderr.write(`error: refreshing ${options.namespace}/${options.name} failed: ${message}; retrying in ${Math.round(options.interval / 1000)}s\n`);
      }
    }
  } finally {
    await registry.close?.();
  }
}
