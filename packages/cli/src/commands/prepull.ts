import { Option, type Command } from 'commander';
import { PrebuiltError } from '@prebuilt/core';
import { readFlow } from '@prebuilt/metaflow';
import type { CliContext } from '../cli-context.js';
import {
  DEFAULT_PAUSE_IMAGE,
  PAUSE_IMAGE_SETTING,
  labelSelector,
  parseNodeSelector,
  parseToleration,
  pauseImage,
  planPrepull,
  POD_MESSAGE_MAX,
  prepullFlow,
  removePrepull,
  type PlannedDaemonSet,
  type PrepullDaemonSet,
  type PrepullPlan,
  type PrepullProgress,
  type PrepullResult,
} from '../app/index.js';
import { parseDuration } from '../duration.js';
import { collect, loadFlowImageMap } from '../lifecycle/flow-image-map.js';
import { oneLineText, writeJsonResult } from '../output.js';

interface PrepullOptions {
  namespace: string;
  nodeSelector?: string[];
  toleration?: string[];
  with?: string[];
  pullSecret?: string[];
  pauseImage?: string;
  timeout: number;
  wait: boolean;
  remove?: boolean;
  dryRun?: boolean;
  json?: boolean;
}

const DEFAULT_TIMEOUT_MS = 10 * 60_000;

const PREPULL_HELP = `
Warms the nodes for a flow: creates or updates a DaemonSet (prebuilt-prepull-<flow>-<hash>) per
placement of the flow's steps — as Metaflow's @kubernetes places them: node_selector and
compute_pool (the label outerbounds.co/compute-pool), tolerations (else
METAFLOW_KUBERNETES_NODE_SELECTOR / METAFLOW_KUBERNETES_TOLERATIONS), GPUs and their gpu_vendor —
whose pods pull those steps' images on each matching node (Linux nodes with the steps' labels and
the --node-selector labels, tolerating the steps' and the --toleration taints) — one init
container per distinct image, each running the step's interpreter with nothing to do — then hold
the node with a pause container. The pods ask for no GPU (a pull needs none) but tolerate the
GPU nodes' taint (<vendor>.com/gpu:NoSchedule, which Kubernetes gives the GPU steps' pods); a GPU
step with no node_selector is warmed on every node, with a note on how to narrow it.

Give --with the decorator specs you deploy with (python flow.py --with kubernetes:… argo-workflows
create): as Metaflow does, a step without its own @kubernetes gets the first --with kubernetes:…
(then METAFLOW_DEFAULT_DECOSPECS', from the environment, else Metaflow's configuration files:
the project's .metaflow/config.json, then $METAFLOW_HOME/config.json), a step's own @kubernetes wins whole (nothing is merged), and
--with resources:gpu=N gives GPUs to the steps without their own @resources. A step on AWS Batch
(its own @batch, or --with batch / METAFLOW_DEFAULT_DECOSPECS' batch when it has no @kubernetes)
does not run on the cluster: it is not warmed, and the output (--json: batchSteps) names it and
what sent it there; a step that would get both @batch and @kubernetes is refused, as Metaflow
refuses it. Other decorators are read and do not change where pods run.
It waits until every matching node has pulled the current images, printing progress on stderr;
running it again with the same images changes nothing, changed images roll out to all nodes at
once, and a DaemonSet of a placement no step has any more is deleted. --remove deletes every
DaemonSet of the flow (the pulled images stay in the nodes' caches until the kubelet's image
garbage collection removes them). --dry-run prints the DaemonSets it would apply (--json: each
with its manifest, as sent to the cluster) and contacts no cluster: no kubeconfig or Kubernetes
client needed.

The images are the ones the last prebuilt build wrote to the image map (nothing is built), pinned
by digest; the pods use the image map's pull secrets (METAFLOW_PREBUILT_PULL_SECRET at build time,
the secret prebuilt pull-secret keeps) and --pull-secret. The cluster comes from KUBECONFIG, else
the in-cluster service account, else ~/.kube/config; the Kubernetes user needs get, list, create,
update and delete on daemonsets (apps) and list on pods in the namespace; with get on secrets, a
pull secret the namespace lacks gets a warning (the nodes would pull without it).

Exit codes: 0 ready (or removed), 1 not ready within --timeout (the pods' problems are named:
failed pulls, images that do not start) or the Kubernetes API failed or refused, 2 no image map
(run prebuilt build first), a flow changed since its build, a node_selector, tolerations,
compute_pool or gpu_vendor computed at run time or one Metaflow would refuse, a step on both @batch
and @kubernetes, bad options or --with specs, 130/143 interrupted (the DaemonSet stays).

Environment:
  ${PAUSE_IMAGE_SETTING}     the pods' main container (default ${DEFAULT_PAUSE_IMAGE})
  METAFLOW_PREBUILT_STATE_FILE      image map path (default .prebuilt/<Flow>/images.json beside the flow)
  METAFLOW_KUBERNETES_NODE_SELECTOR Metaflow's node selector of steps that name none ("k=v,k2=v2")
  METAFLOW_KUBERNETES_TOLERATIONS   Metaflow's tolerations of steps that name none (a JSON list)
  METAFLOW_KUBERNETES_GPU_VENDOR    Metaflow's GPU vendor of steps that name none (nvidia, amd)
  METAFLOW_DEFAULT_DECOSPECS        Metaflow's --with specs after the command line's (space-separated;
                                    unset: the key in Metaflow's configuration file; set empty: none)
  KUBECONFIG                        the cluster

Examples:
  $ prebuilt prepull flow.py --namespace metaflow
  $ prebuilt prepull flow.py -n metaflow --node-selector node.kubernetes.io/instance-type=g5.xlarge --toleration nvidia.com/gpu:NoSchedule
  $ prebuilt prepull flow.py -n metaflow --with 'kubernetes:compute_pool=gpu-a100,gpu=1,gpu_vendor=nvidia'
  $ prebuilt prepull flow.py -n metaflow --with 'kubernetes:node_selector={"pool": "gpu"},tolerations=[{"key": "gpu", "operator": "Exists"}]'
  $ prebuilt prepull flow.py -n metaflow --timeout 30m --json
  $ prebuilt prepull flow.py -n metaflow --dry-run         # what it would apply; no cluster needed
  $ prebuilt prepull flow.py -n metaflow --remove`;

/**
 * A progress line on stderr. A pod's problem is the cluster's words, and a failed pull's message
 * quotes the registry's answer (`rpc error: … desc = <its error body>`): kept on its line and cut ({@link oneLineText}: escape sequences shown as their escapes too).
 */
export function progressLine(event: PrepullProgress): string {
  if (event.type === 'applied') {
    const what = event.action === 'unchanged' ? 'is up to date' : `${event.action}: pulling ${event.images} image${event.images === 1 ? '' : 's'} on every matching node`;
    return `DaemonSet ${event.namespace}/${event.name} (${event.steps.join(', ')}) ${what}\n`;
  }
  if (event.type === 'removed') return `DaemonSet ${event.namespace}/${event.name} removed: no step is placed so any more\n`;
  if (event.type === 'note') return `note: ${event.name}: ${event.text}\n`;
  if (event.type === 'missing-secret') {
    return `warning: the pull secret ${event.secret} does not exist in the namespace ${event.namespace}: the nodes pull without it (create it: prebuilt pull-secret --namespace ${event.namespace} --name ${event.secret})\n`;
  }
  if (event.type === 'nodes') return `${event.name}: ready ${event.nodes.ready}/${event.nodes.desired} nodes (${event.nodes.updated} updated)\n`;
  const p = event.problem;
  // One line: the message quotes the registry's answer, whose line breaks would print lines of its own.
  return `warning: ${event.name}: ${oneLineText(`${p.node}: ${p.image ? `${p.image}: ` : ''}${p.reason}${p.message ? ` (${oneLineText(p.message, POD_MESSAGE_MAX)})` : ''}`)}\n`;
}

/** Where a DaemonSet's pods go: `nodes <selector>[, N tolerations]`. */
function nodesText(entry: PlannedDaemonSet | PrepullDaemonSet): string {
  return `nodes ${labelSelector(entry.nodeSelector)}${entry.tolerations.length > 0 ? `, ${entry.tolerations.length} toleration${entry.tolerations.length === 1 ? '' : 's'}` : ''}`;
}

/** A DaemonSet's note and its images, one line each, below its head line. */
function entryLines(entry: PlannedDaemonSet | PrepullDaemonSet): string {
  const lines = entry.images.map((image) => `    ${image.image}  (${image.steps.join(', ')})`);
  return `${entry.note ? `    note: ${entry.note}\n` : ''}${lines.join('\n')}\n`;
}

function renderDaemonSet(result: PrepullResult, entry: PrepullDaemonSet): string {
  const count = `${entry.images.length} image${entry.images.length === 1 ? '' : 's'}`;
  const where = `DaemonSet ${result.namespace}/${entry.name}, ${entry.action}; ${nodesText(entry)}`;
  const head = entry.nodes === null
    ? `${count} to pull (${where}; not waited for)`
    : entry.nodes.desired === 0
      ? `no node matches the node selector ${labelSelector(entry.nodeSelector)}: nothing was pulled (${where})`
      : `${count} pulled on ${entry.nodes.ready}/${entry.nodes.desired} nodes (${where})`;
  return `  ${entry.steps.join(', ')}: ${head}\n${entryLines(entry)}`;
}

/** `--dry-run`: the DaemonSets prepull would apply, and that nothing was. */
function renderPlan(plan: PrepullPlan): string {
  const count = plan.daemonSets.length;
  const entries = plan.daemonSets.map((entry) => {
    const images = `${entry.images.length} image${entry.images.length === 1 ? '' : 's'}`;
    return `  ${entry.steps.join(', ')}: ${images} to pull (DaemonSet ${plan.namespace}/${entry.name}; ${nodesText(entry)})\n${entryLines(entry)}`;
  });
  return `${plan.flow}: ${count} DaemonSet${count === 1 ? '' : 's'} to apply in the namespace ${plan.namespace}\n${entries.join('')}${renderBatchSteps(plan)}` +
    'dry run: the cluster was not contacted and nothing was applied; run it without --dry-run to apply (--json has each DaemonSet\'s manifest)\n';
}

/** The steps on AWS Batch, with what sent each there: `start (@batch), end (--with batch): on AWS Batch, …`. */
function renderBatchSteps(result: Pick<PrepullResult, 'batchSteps'>): string {
  if (result.batchSteps.length === 0) return '';
  const steps = result.batchSteps.map((entry) => `${entry.step} (${entry.source})`).join(', ');
  return `  ${steps}: on AWS Batch, not on this cluster: not warmed\n`;
}

function renderResult(result: PrepullResult): string {
  const removed = result.removed.map((name) => `  removed DaemonSet ${result.namespace}/${name} (a placement no step has any more)\n`).join('');
  return `${result.flow}: ${result.daemonSets.length} DaemonSet${result.daemonSets.length === 1 ? '' : 's'}\n${result.daemonSets.map((entry) => renderDaemonSet(result, entry)).join('')}${renderBatchSteps(result)}${removed}`;
}

async function runPrepull(file: string, context: CliContext, options: PrepullOptions): Promise<void> {
  if (options.remove) {
    const flow = await readFlow(file, { env: context.env, cwd: context.cwd, signal: context.signal });
    const removed = await removePrepull({ flow: flow.flow, namespace: options.namespace, env: context.env, cwd: context.cwd });
    if (options.json) writeJsonResult(context, { ...removed });
    else if (removed.action === 'absent') context.stdout.write(`nothing to remove: ${flow.flow} has no DaemonSet in ${removed.namespace}\n`);
    else context.stdout.write(removed.removed.map((name) => `removed DaemonSet ${removed.namespace}/${name}\n`).join(''));
    return;
  }
  const nodeSelector = parseNodeSelector(options.nodeSelector ?? []);
  const tolerations = (options.toleration ?? []).map(parseToleration);
  const pauseImageRef = pauseImage(options.pauseImage, context.env);
  const { imageMap, flow } = await loadFlowImageMap(file, context);
  // What the DaemonSets are planned from: the same for a dry run and for the cluster.
  const planned = { flowFile: file, flowSteps: flow.steps, imageMap, namespace: options.namespace, env: context.env, cwd: context.cwd, nodeSelector, tolerations, decospecs: options.with ?? [], pauseImage: pauseImageRef, pullSecrets: options.pullSecret ?? [] };
  if (options.dryRun) {
    const plan = planPrepull(planned);
    if (options.json) writeJsonResult(context, { dryRun: true, ...plan });
    else context.stdout.write(renderPlan(plan));
    return;
  }
  try {
    const result = await prepullFlow({
      ...planned, wait: options.wait, timeoutMs: options.timeout, signal: context.signal,
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

/** `prebuilt prepull <flow> --namespace NS [--node-selector k=v]… [--toleration T]… [--with D]… [--remove] [--timeout 10m] [--json]`. */
export function registerPrepullCommand(program: Command, context: CliContext): void {
  program
    .command('prepull')
    .description("warm the cluster's nodes: a DaemonSet per placement of the steps that pulls their images on each matching node (--remove deletes them)")
    .argument('<flow>', 'the flow file, e.g. flow.py')
    .requiredOption('-n, --namespace <namespace>', 'Kubernetes namespace of the DaemonSet (and of the pull secrets)')
    .option('--node-selector <key=value>', 'only nodes with this label, besides the steps\' (repeatable)', collect)
    .option('--toleration <toleration>', 'tolerate a taint: key=value:Effect, key:Effect, key or * (repeatable)', collect)
    .option('--with <decospec>', "a decorator spec you deploy with, e.g. kubernetes:node_selector=…,gpu=1: applied to the steps as Metaflow applies it (repeatable)", collect)
    .option('--pull-secret <name>', 'also name this image pull secret (repeatable; the image map\'s are always named)', collect)
    .option('--pause-image <image>', `the pods' main container (default: ${PAUSE_IMAGE_SETTING}, else ${DEFAULT_PAUSE_IMAGE})`)
    .addOption(new Option('--timeout <duration>', 'how long to wait for every node, e.g. 90s, 10m, 1h').argParser((v) => parseDuration(v, '--timeout')).default(DEFAULT_TIMEOUT_MS, '10m'))
    .option('--no-wait', 'create or update the DaemonSet and return without waiting')
    .option('--remove', 'delete the flow\'s DaemonSets instead')
    .addOption(new Option('--dry-run', 'show the DaemonSets it would apply (--json: with their manifests); the cluster is not contacted').conflicts('remove'))
    .option('--json', 'print one JSON object for machines')
    .addHelpText('after', PREPULL_HELP)
    .action(async (file: string, options: PrepullOptions) => {
      context.json.requested = options.json === true;
      await runPrepull(file, context, options);
    });
}
