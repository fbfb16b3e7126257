import { Option, type Command } from 'commander';
import { PrebuiltError } from '@prebuilt/core';
import { readFlow } from '@prebuilt/metaflow';
import type { CliContext } from '../cli-context.js';
import {
  DEFAULT_PAUSE_IMAGE,
  PAUSE_IMAGE_SETTING,
  parseNodeSelector,
  parseToleration,
  pauseImage,
  prepullFlow,
  removePrepull,
  type PrepullProgress,
  type PrepullResult,
} from '../app/index.js';
import { parseDuration } from '../duration.js';
import { collect, loadFlowImageMap } from '../lifecycle/flow-image-map.js';
import { terminalText, writeJsonResult } from '../output.js';

interface PrepullOptions {
  namespace: string;
  nodeSelector?: string[];
  toleration?: string[];
  pullSecret?: string[];
  pauseImage?: string;
  timeout: number;
  wait: boolean;
  remove?: boolean;
  json?: boolean;
}

const DEFAULT_TIMEOUT_MS = 10 * 60_000;

const PREPULL_HELP = `
Warms the nodes for a flow: creates or updates a DaemonSet (prebuilt-prepull-<flow>-<hash>) whose
pods pull every step's image on each matching node (Linux nodes with the --node-selector labels)
— one init container per distinct image, each running the step's interpreter with nothing to do —
then hold the node with a pause container.
It waits until every matching node has pulled the current images, printing progress on stderr;
running it again with the same images changes nothing, changed images roll out to all nodes at
once. --remove deletes the DaemonSet (the pulled images stay in the nodes' caches until the
kubelet's image garbage collection removes them).

The images are the ones the last prebuilt build wrote to the image map (nothing is built), pinned
by digest; the pods use the image map's pull secrets (METAFLOW_PREBUILT_PULL_SECRET at build time,
the secret prebuilt pull-secret keeps) and --pull-secret. The cluster comes from KUBECONFIG, else
the in-cluster service account, else ~/.kube/config; the Kubernetes user needs get, create,
update and delete on daemonsets (apps) and list on pods in the namespace; with get on secrets, a
pull secret the namespace lacks gets a warning (the nodes would pull without it).

Exit codes: 0 ready (or removed), 1 not ready within --timeout (the pods' problems are named:
failed pulls, images that do not start) or the Kubernetes API failed or refused, 2 no image map
(run prebuilt build first), a flow changed since its build, bad options, 130/143 interrupted (the
DaemonSet stays).

Environment:
  ${PAUSE_IMAGE_SETTING}     the pods' main container (default ${DEFAULT_PAUSE_IMAGE})
  METAFLOW_PREBUILT_STATE_FILE      image map path (default .prebuilt/<Flow>/images.json beside the flow)
  KUBECONFIG                        the cluster

Examples:
  $ prebuilt prepull flow.py --namespace metaflow
  $ prebuilt prepull flow.py -n metaflow --node-selector node.kubernetes.io/instance-type=g5.xlarge --toleration nvidia.com/gpu:NoSchedule
  $ prebuilt prepull flow.py -n metaflow --timeout 30m --json
  $ prebuilt prepull flow.py -n metaflow --remove`;

/**
 * A progress line on stderr. A pod's problem is the cluster's words, and a failed pull's message
 * quotes the registry's answer (`rpc error: … desc = <its error body>`): {@link terminalText}.
 */
export function progressLine(event: PrepullProgress): string {
  if (event.type === 'applied') {
    const what = event.action === 'unchanged' ? 'is up to date' : `${event.action}: pulling ${event.images} image${event.images === 1 ? '' : 's'} on every matching node`;
    return `DaemonSet ${event.namespace}/${event.name} ${what}\n`;
  }
  if (event.type === 'missing-secret') {
    return `warning: the pull secret ${event.secret} does not exist in the namespace ${event.namespace}: the nodes pull without it (create it: prebuilt pull-secret --namespace ${event.namespace} --name ${event.secret})\n`;
  }
  if (event.type === 'nodes') return `ready ${event.nodes.ready}/${event.nodes.desired} nodes (${event.nodes.updated} updated)\n`;
  const p = event.problem;
  return `warning: ${terminalText(`${p.node}: ${p.image ? `${p.image}: ` : ''}${p.reason}${p.message ? ` (${p.message})` : ''}`)}\n`;
}

function renderResult(result: PrepullResult): string {
  const lines = result.images.map((image) => `  ${image.image}  (${image.steps.join(', ')})`);
  const where = `DaemonSet ${result.namespace}/${result.name}, ${result.action}`;
  const head = result.nodes === null
    ? `${result.flow}: ${result.images.length} image${result.images.length === 1 ? '' : 's'} to pull (${where}; not waited for)`
    : result.nodes.desired === 0
      ? `${result.flow}: no node matches the node selector ${Object.entries(result.nodeSelector).map(([k, v]) => `${k}=${v}`).join(',')}: nothing was pulled (${where})`
      : `${result.flow}: ${result.images.length} image${result.images.length === 1 ? '' : 's'} pulled on ${result.nodes.ready}/${result.nodes.desired} nodes (${where})`;
  return `${head}\n${lines.join('\n')}\n`;
}

async function runPrepull(file: string, context: CliContext, options: PrepullOptions): Promise<void> {
  if (options.remove) {
    const flow = await readFlow(file, { env: context.env, cwd: context.cwd, signal: context.signal });
    const removed = await removePrepull({ flow: flow.flow, namespace: options.namespace, env: context.env, cwd: context.cwd });
    if (options.json) writeJsonResult(context, { ...removed });
    else context.stdout.write(removed.action === 'removed' ? `removed DaemonSet ${removed.namespace}/${removed.name}\n` : `nothing to remove: no DaemonSet ${removed.namespace}/${removed.name}\n`);
    return;
  }
  const nodeSelector = parseNodeSelector(options.nodeSelector ?? []);
  const tolerations = (options.toleration ?? []).map(parseToleration);
  const pause = pauseImage(options.pauseImage, context.env);
  const { imageMap, flowSteps } = await loadFlowImageMap(file, context);
  try {
    const result = await prepullFlow({
      flowFile: file, flowSteps, imageMap, namespace: options.namespace, env: context.env, cwd: context.cwd, nodeSelector, tolerations, pauseImage: pause,
      pullSecrets: options.pullSecret ?? [], wait: options.wait, timeoutMs: options.timeout, signal: context.signal,
      onProgress: (event) => context.stderr.write(progressLine(event)),
    });
    if (options.json) writeJsonResult(context, { ...result });
    else context.stdout.write(renderResult(result));
  } catch (error) {
    // The top-level handler says only "interrupted": say what was left in the cluster.
    if (context.signal.aborted && PrebuiltError.isInstance(error) && error.code === 'cancelled') context.stderr.write(`${error.message}\n`);
    throw error;
  }
}

/** `prebuilt prepull <flow> --namespace NS [--node-selector k=v]… [--toleration T]… [--remove] [--timeout 10m] [--json]`. */
export function registerPrepullCommand(program: Command, context: CliContext): void {
  program
    .command('prepull')
    .description("warm the cluster's nodes: a DaemonSet that pulls every step's image on each matching node (--remove deletes it)")
    .argument('<flow>', 'the flow file, e.g. flow.py')
    .requiredOption('-n, --namespace <namespace>', 'Kubernetes namespace of the DaemonSet (and of the pull secrets)')
    .option('--node-selector <key=value>', 'only nodes with this label (repeatable)', collect)
    .option('--toleration <toleration>', 'tolerate a taint: key=value:Effect, key:Effect, key or * (repeatable)', collect)
    .option('--pull-secret <name>', 'also name this image pull secret (repeatable; the image map\'s are always named)', collect)
    .option('--pause-image <image>', `the pods' main container (default: ${PAUSE_IMAGE_SETTING}, else ${DEFAULT_PAUSE_IMAGE})`)
    .addOption(new Option('--timeout <duration>', 'how long to wait for every node, e.g. 90s, 10m, 1h').argParser((v) => parseDuration(v, '--timeout')).default(DEFAULT_TIMEOUT_MS, '10m'))
    .option('--no-wait', 'create or update the DaemonSet and return without waiting')
    .option('--remove', 'delete the flow\'s DaemonSet instead')
    .option('--json', 'print one JSON object for machines')
    .addHelpText('after', PREPULL_HELP)
    .action(async (file: string, options: PrepullOptions) => {
      context.json.requested = options.json === true;
      await runPrepull(file, context, options);
    });
}
