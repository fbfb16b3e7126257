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
  parseImageRef,
  sleep,
  type ImageRegistry,
  type RegistryCredentials,
} from '@prebuilt/core';
import { checkNamespace, createOrReplace, createSelectedBackend, isObjectName, loadKubeConfig, loadKubernetesClient, type K8s } from '../app/index.js';
import type { CliContext } from '../cli-context.js';
import { parseDuration } from '../duration.js';
import { jsonText, terminalText, writeJsonResult } from '../output.js';


export const PULL_SECRET_TYPE = 'kubernetes.io/dockerconfigjson';
/** Default --interval of --watch: shorter than the refresh margins of ECR (15 min) and Google (5 min) tokens. */
export const DEFAULT_WATCH_INTERVAL_MS = 4 * 60_000;

/**
 * The `.dockerconfigjson` of a pull secret: one `auths` entry, for `host` (the host pods pull from;
 * default the credentials' own registry). Holds the secret: never log it.
 */
export function dockerConfigJson(credentials: RegistryCredentials, host: string = credentials.registry): string {
  if (credentials.password === undefined) {
    throw new ConfigError(`The credentials for ${credentials.registry} (${credentials.source}) have no password, so they cannot go into a pull secret.`, {
      hint: 'Kubernetes needs a user name and password (or token) for the registry; log in with a password or access token instead of an identity token.',
    });
  }
  const username = credentials.username ?? '';
  const password = credentials.password.reveal();
  const key = normalizeDockerConfigKey(host) === DOCKER_HUB ? DOCKER_HUB_CONFIG_KEY : host;
  return JSON.stringify({ auths: { [key]: { username, password, auth: Buffer.from(`${username}:${password}`).toString('base64') } } });
}

export interface ApplyPullSecretOptions {
  kubeConfig: KubeConfig;
  namespace: string;
  name: string;
  credentials: RegistryCredentials;
  /**
   * The host pods pull the images from, the secret's `auths` key (see `podPullHost`): the kubelet
   * offers a secret's credentials only to the host it is keyed by. Default: the credentials' registry.
   */
  pullHost?: string;
  /** The loaded @kubernetes/client-node module (default: imported on demand). */
  k8s?: K8s;
}

export interface AppliedPullSecret {
  namespace: string;
  name: string;
  /** `unchanged` when the secret already held these credentials. */
  action: 'created' | 'updated' | 'unchanged';
  /** The host the secret holds credentials for: the one pods pull from. */
  registry: string;
  /** The host the credentials were found for (the push host), when pods pull from another. */
  pushRegistry?: string;
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
  const registry = options.pullHost ?? credentials.registry;
  checkSecretTarget(namespace, name);
  const k8s = options.k8s ?? (await loadKubernetesClient('pull-secret'));
  const api: CoreV1Api = options.kubeConfig.makeApiClient(k8s.CoreV1Api);
  const server = options.kubeConfig.getCurrentCluster()?.server ?? '(no server)';
  const data = { '.dockerconfigjson': Buffer.from(dockerConfigJson(credentials, registry)).toString('base64') };
  const body = (resourceVersion?: string): V1Secret => ({
    apiVersion: 'v1',
    kind: 'Secret',
    type: PULL_SECRET_TYPE,
    metadata: {
      name,
      namespace,
      ...(resourceVersion ? { resourceVersion } : {}),
      labels: { 'app.kubernetes.io/managed-by': 'prebuilt' },
      annotations: { 'prebuilt.dev/registry': registry, 'prebuilt.dev/credentials-source': credentials.source },
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
  const pushed = registry === credentials.registry ? {} : { pushRegistry: credentials.registry };
  return { namespace, name, action, registry, ...pushed, source: credentials.source };
}

/** An env id for `podPullHost`'s probe tag: any valid one gives the registry's hosts. */
const PROBE_ENV_ID = '0000000000000000';

/**
 * The host pods pull the selected registry's images from, when it is not the one it pushes to:
 * the host of `pullTag` (e.g. the `local` registry's METAFLOW_PREBUILT_LOCAL_REGISTRY_PULL_HOST),
 * which is what the image map names. Undefined when pods pull from the push host.
 */
export function podPullHost(registry: ImageRegistry): string | undefined {
  if (!registry.pullTag) return undefined;
  const pushTag = registry.imageTag({ envId: PROBE_ENV_ID, platform: 'linux-64' });
  const pushHost = parseImageRef(pushTag).registry;
  const pullHost = parseImageRef(registry.pullTag(pushTag)).registry;
  return pullHost === pushHost ? undefined : pullHost;
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
the env images. The secret is for the host pods pull from: with the local registry's
METAFLOW_PREBUILT_LOCAL_REGISTRY_PULL_HOST, that host, not the one images are pushed to.
Tokens expire (ECR after 12 hours, Google access tokens after 1 hour): re-run the command,
or keep it running with --watch, which refreshes the secret every --interval.
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
  const pullHost = podPullHost(registry);
  const k8s = await loadKubernetesClient('pull-secret');
  const { kubeConfig, source: kubeSource } = loadKubeConfig(k8s, context.env);
  const report = (applied: AppliedPullSecret): void => {
    if (options.json) {
      if (options.watch) context.stdout.write(`${jsonText({ ok: true, ...applied, imageRegistry: registry.name, at: new Date().toISOString() })}\n`);
      else writeJsonResult(context, { ...applied, imageRegistry: registry.name, kubeconfig: kubeSource });
      context.json.written = true;
      return;
    }
    const pushed = applied.pushRegistry === undefined ? '' : ` (the pull host of ${applied.pushRegistry})`;
    context.stdout.write(`${applied.action} secret ${applied.namespace}/${applied.name} (${PULL_SECRET_TYPE}) for ${applied.registry}${pushed}; credentials: ${applied.source}\n`);
  };
  const once = async (): Promise<AppliedPullSecret> => {
    if (context.signal.aborted) throw new CancelledError('prebuilt pull-secret was interrupted.');
    const credentials = await registry.pushCredentials({ signal: context.signal });
    if (!credentials) {
      throw new ConfigError(`The image registry '${registry.name}' has no credentials to put in a pull secret (it pulls anonymously).`, {
        hint: 'Pods can pull from it without a secret; configure registry credentials (e.g. docker login) if it needs them.',
      });
    }
    return applyPullSecret({ kubeConfig, namespace: options.namespace, name: options.name, credentials, ...(pullHost === undefined ? {} : { pullHost }), k8s });
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
        // The registry's or the cluster's words (a token service's error body): escaped, as the top-level handler does.
        const message = terminalText(PrebuiltError.isInstance(error) ? error.message : errorMessage(error));
        context.stderr.write(`error: refreshing ${options.namespace}/${options.name} failed: ${message}; retrying in ${Math.round(options.interval / 1000)}s\n`);
      }
    }
  } finally {
    await registry.close?.();
  }
}
