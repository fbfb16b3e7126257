import { Option, type Command } from 'commander';
import { CancelledError, ConfigError, PrebuiltError, errorMessage, sleep } from '@prebuilt/core';
import { applyPullSecret, checkSecretTarget, createSelectedBackend, loadKubeConfig, loadKubernetesClient, podPullHost, PULL_SECRET_TYPE, type AppliedPullSecret } from '../app/index.js';
import type { CliContext } from '../cli-context.js';
import { parseDuration } from '../duration.js';
import { jsonText, terminalText, writeJsonResult } from '../output.js';


/** Default --interval of --watch: shorter than the refresh margins of ECR (15 min) and Google (5 min) tokens. */
export const DEFAULT_WATCH_INTERVAL_MS = 4 * 60_000;

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
or keep it running with --watch, which refreshes the secret every --interval until it is stopped
(Ctrl-C, or SIGTERM as Kubernetes stops a pod): it says so in one line and exits 0, as a stop is
how a watch ends (a stop during the first update, before watching starts, is an interrupt: 130/143).
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
    .option('--watch', 'keep running and refresh the secret every --interval (Ctrl-C stops it: exit 0)')
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
  const k8s = await loadKubernetesClient('pull-secret', context.cwd);
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
    // A watch runs until it is stopped: Ctrl-C (or SIGTERM, a pod's stop) ends it normally, exit 0 with a note.
    context.stopsOnInterrupt = true;
    let refreshed = new Date();
    // Until the run's signal aborts (core's sleep rejects then).
    while (await sleep(options.interval, context.signal).then(() => true, () => false)) {
      try {
        report(await once());
        refreshed = new Date();
      } catch (error) {
        if (context.signal.aborted) break;
        // Keep watching: a refresh may fail while the network or the cluster is briefly away.
        // The registry's or the cluster's words (a token service's error body): escaped, as the top-level handler does.
        const message = terminalText(PrebuiltError.isInstance(error) ? error.message : errorMessage(error));
        context.stderr.write(`error: refreshing ${options.namespace}/${options.name} failed: ${message}; retrying in ${Math.round(options.interval / 1000)}s\n`);
      }
    }
    context.stderr.write(`watch stopped; secret ${options.namespace}/${options.name} stays as last refreshed (${refreshed.toISOString()})\n`);
  } finally {
    await registry.close?.();
  }
}
