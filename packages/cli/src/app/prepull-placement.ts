/**
 * Where each step's pods run, as Metaflow's @kubernetes places them: its `node_selector` (a dict or
 * `"k=v,k2=v2"`) and `compute_pool`, its `tolerations`, else Metaflow's defaults
 * METAFLOW_KUBERNETES_NODE_SELECTOR / METAFLOW_KUBERNETES_TOLERATIONS (environment, else Metaflow's
 * configuration file), and whether it asks for GPUs and whose (`gpu_vendor`). A step without its
 * own @kubernetes gets the one the deploy's command line attaches (`--with kubernetes:…`, then
 * METAFLOW_DEFAULT_DECOSPECS). A step on AWS Batch (its own @batch, or one the command line
 * attaches) does not run on the cluster: it has no placement. `prebuilt prepull` warms each
 * placement's nodes with its steps' images only.
 */
import type { V1Toleration } from '@kubernetes/client-node';
import { canonicalJson, InputError, ConfigError, errorMessage } from '@prebuilt/core';
import { attachedDecospecs, firstDecospecs, metaflowSetting, stepGpus, stepRemote, type FlowFile, type FlowStep, type PlacementArg, type SourcedDecospec } from '@prebuilt/metaflow';
import { isLabelKey, isLabelValue } from './kubernetes-names.js';

export interface StepPlacement {
  /** The steps placed alike, in flow order. */
  steps: string[];
  /** The steps' node selector (without the command's --node-selector). */
  nodeSelector: Record<string, string>;
  tolerations: V1Toleration[];
  /** The steps ask for GPUs (Metaflow sets a limit of the GPU vendor's resource on their pods). */
  gpu: boolean;
  /** Whose GPUs (the resource `<vendor>.com/gpu`): the steps' `gpu_vendor`, else METAFLOW_KUBERNETES_GPU_VENDOR, else nvidia. Only with `gpu`. */
  gpuVendor?: GpuVendor;
  /** Stable identity of the placement (canonical JSON of selector, tolerations, gpu and a vendor other than nvidia). */
  key: string;
}

/** The GPU vendors Metaflow 2.19's @kubernetes accepts (`step_init`: "GPU vendor … is not currently supported"). */
export type GpuVendor = 'nvidia' | 'amd';

/** The node label Metaflow 2.19 gives a step's pods for `@kubernetes(compute_pool=…)` (kubernetes_decorator.py, `init`). */
export const COMPUTE_POOL_LABEL = 'outerbounds.co/compute-pool';

/**
 * The decorators the deploy's command line attaches to every step without one of that name: the
 * first spec of each name (`kubernetes`, `batch`, `resources`, …), with where it came from
 * (`--with kubernetes:…`, `METAFLOW_DEFAULT_DECOSPECS (kubernetes:…)`).
 */
export type AttachedDecorators = ReadonlyMap<string, SourcedDecospec>;

/** A step that runs on AWS Batch, not on the cluster, and what sent it there (`@batch`, `--with batch`, `METAFLOW_DEFAULT_DECOSPECS (batch)`). */
export interface BatchStep {
  step: string;
  source: string;
}

/** Metaflow's V1Toleration arguments (Python names) → the API's. */
const TOLERATION_FIELDS: Record<string, keyof V1Toleration> = { key: 'key', operator: 'operator', value: 'value', effect: 'effect', toleration_seconds: 'tolerationSeconds' };

/** Where a value was written: the step's own decorator (file, line), or `source` — a setting or the command line's `--with`. */
type Where = { file: string; step: string; line: number; source?: string };

const WITH_HINT =
  'Write it as Metaflow reads --with: --with \'kubernetes:node_selector={"pool": "gpu"},tolerations=[{"key": "gpu", "operator": "Exists"}],compute_pool=gpu,gpu=1,gpu_vendor=amd\' (JSON for a dict or a list; a "k=v" node selector with a plain key such as pool=gpu must be JSON, as Metaflow splits the spec at ",name=").';

function invalid(where: Where, what: string): Error {
  if (where.source) {
    const fromWith = where.source.startsWith('--with') || where.source.startsWith('METAFLOW_DEFAULT_DECOSPECS');
    return new ConfigError(`${where.source} is not valid for Metaflow: ${what}.`, {
      setting: where.source.startsWith('METAFLOW_') ? where.source.split(' ')[0] : undefined,
      hint: fromWith
        ? WITH_HINT
        : 'Metaflow reads METAFLOW_KUBERNETES_NODE_SELECTOR as "key=value,key2=value2", METAFLOW_KUBERNETES_TOLERATIONS as a JSON list of tolerations and METAFLOW_KUBERNETES_GPU_VENDOR as nvidia or amd.',
    });
  }
  return new InputError(`${where.file}:${where.line}: step '${where.step}': ${what}.`, {
    file: where.file,
    line: where.line,
    hint: 'Write node_selector={"label": "value"} (or "label=value,label2=value2") and tolerations=[{"key": …, "operator": "Equal"|"Exists", "value": …, "effect": …}], as Metaflow expects.',
  });
}

/** `node_selector` as Metaflow reads it: a dict, or a string split at `,` then at the first `=`. */
export function parseStepNodeSelector(value: unknown, where: Where): Record<string, string> {
  if (value === null || value === undefined || value === '') return {};
  let pairs: [string, unknown][];
  if (typeof value === 'string') {
    pairs = [];
    for (const item of value.split(',')) {
      const eq = item.indexOf('=');
      if (eq < 0) throw invalid(where, `node_selector '${value}' has '${item}', which is not key=value`);
      if (pairs.some(([key]) => key === item.slice(0, eq))) throw invalid(where, `node_selector '${value}' names ${item.slice(0, eq)} twice`);
      pairs.push([item.slice(0, eq), item.slice(eq + 1)]);
    }
  } else if (typeof value === 'object' && !Array.isArray(value)) {
    pairs = Object.entries(value as Record<string, unknown>);
  } else {
    throw invalid(where, `node_selector must be a dict of node labels or "key=value,…", not ${JSON.stringify(value)}`);
  }
  const selector: Record<string, string> = {};
  for (const [key, label] of pairs) {
    if (!isLabelKey(key) || typeof label !== 'string' || !isLabelValue(label)) throw invalid(where, `node_selector has ${JSON.stringify(key)}: ${JSON.stringify(label)}, which is not a node label`);
    selector[key] = label;
  }
  return selector;
}

/** `tolerations` as Metaflow passes them to V1Toleration: a list of dicts of its argument names. */
export function parseStepTolerations(value: unknown, where: Where): V1Toleration[] {
  if (value === null || value === undefined) return [];
  if (!Array.isArray(value)) throw invalid(where, `tolerations must be a list of dicts, not ${JSON.stringify(value)}`);
  return value.map((item: unknown) => {
    if (typeof item !== 'object' || item === null || Array.isArray(item)) throw invalid(where, `the toleration ${JSON.stringify(item)} is not a dict`);
    const toleration: Record<string, unknown> = {};
    for (const [name, field] of Object.entries(item)) {
      const target = TOLERATION_FIELDS[name];
      if (!target) throw invalid(where, `the toleration ${JSON.stringify(item)} has the key '${name}' (Metaflow accepts ${Object.keys(TOLERATION_FIELDS).join(', ')})`);
      if (target === 'tolerationSeconds' ? !Number.isInteger(field) : typeof field !== 'string') throw invalid(where, `the toleration ${JSON.stringify(item)} has ${name}=${JSON.stringify(field)}`);
      toleration[target] = field;
    }
    return toleration as V1Toleration;
  });
}

/** Metaflow's defaults for a @kubernetes that names no selector / tolerations / GPU vendor (the settings' raw text). */
export interface PlacementDefaults {
  nodeSelector?: { value: string; source: string };
  tolerations?: { value: string; source: string };
  gpuVendor?: { value: string; source: string };
}

/** The placement settings, read as Metaflow reads them ({@link metaflowSetting}) where the command runs (`cwd`). */
export function placementDefaults(env: Record<string, string | undefined>, cwd: string = process.cwd()): PlacementDefaults {
  const nodeSelector = metaflowSetting('METAFLOW_KUBERNETES_NODE_SELECTOR', env, cwd);
  const tolerations = metaflowSetting('METAFLOW_KUBERNETES_TOLERATIONS', env, cwd);
  const gpuVendor = metaflowSetting('METAFLOW_KUBERNETES_GPU_VENDOR', env, cwd);
  return { ...(nodeSelector ? { nodeSelector } : {}), ...(tolerations ? { tolerations } : {}), ...(gpuVendor ? { gpuVendor } : {}) };
}

/**
 * The decorators the deploy's command line attaches, as Metaflow 2.19 attaches them
 * (`@prebuilt/metaflow`'s `attachedDecospecs`: the `--with` specs in order, then
 * METAFLOW_DEFAULT_DECOSPECS from the environment, else Metaflow's configuration file): for each
 * name the first spec, and a step's own decorator wins over it (nothing is merged). Every spec is
 * parsed (and a @kubernetes / @resources attribute Metaflow does not know refused), even one that attaches nothing.
 */
export function attachedDecorators(withSpecs: readonly string[], env: Record<string, string | undefined>, cwd: string = process.cwd()): AttachedDecorators {
  return firstDecospecs(attachedDecospecs(withSpecs, env, [], cwd));
}

/**
 * The steps of `only` (in flow order) that run on AWS Batch: their own @batch, or the command
 * line's when they have no @kubernetes of their own. A step that gets both is refused, as Metaflow
 * refuses it (`stepRemote`).
 */
export function batchSteps(flow: Pick<FlowFile, 'steps'>, only: readonly string[], flowFile: string, attached: AttachedDecorators): BatchStep[] {
  const onBatch: BatchStep[] = [];
  for (const step of flow.steps) {
    if (!only.includes(step.name)) continue;
    const remote = stepRemote(step, flowFile, attached);
    if (remote?.name === 'batch') onBatch.push({ step: step.name, source: remote.source });
  }
  return onBatch;
}

function staticValue(arg: PlacementArg | undefined, name: string, flowFile: string, step: string): unknown {
  if (arg?.kind !== 'dynamic') return arg?.value;
  throw new InputError(`${flowFile}:${arg.line}: step '${step}': the '${name}' argument of @kubernetes cannot be read without running the flow: ${arg.why}`, {
    file: flowFile,
    line: arg.line,
    hint: `Write ${name} as a literal or a module-level constant of the flow file, so prebuilt prepull knows which nodes the step runs on.`,
  });
}

/** METAFLOW_KUBERNETES_TOLERATIONS as a step without its own takes it: none when unset or set empty (`init`: `and KUBERNETES_TOLERATIONS`). */
function defaultTolerations(defaults: PlacementDefaults, where: Where): V1Toleration[] {
  if (!defaults.tolerations?.value) return [];
  let parsed: unknown;
  try {
    parsed = JSON.parse(defaults.tolerations.value);
  } catch (error) {
    throw invalid({ ...where, source: defaults.tolerations.source }, `not JSON (${errorMessage(error)})`);
  }
  return parseStepTolerations(parsed, { ...where, source: defaults.tolerations.source });
}

/** Python's falsy values (Metaflow: `if not self.attributes[...]` takes the default). */
function pythonFalsy(value: unknown): boolean {
  if (value === null || value === undefined || value === '' || value === 0 || value === false) return true;
  return typeof value === 'object' && Object.keys(value).length === 0;
}

type PlacementName = 'node_selector' | 'tolerations' | 'compute_pool' | 'gpu_vendor' | 'gpu';
const ARG_KEYS = { node_selector: 'nodeSelector', tolerations: 'tolerations', compute_pool: 'computePool', gpu_vendor: 'gpuVendor' } as const;

/** A step's @kubernetes as Metaflow runs it: its own, else the one the command line attaches; each argument's value and where it was written. */
interface StepKubernetes {
  value(name: PlacementName): unknown;
  where(name: PlacementName | undefined): Where;
  /** The @kubernetes is the command line's (the step has none of its own). */
  attached: boolean;
}

function stepKubernetes(step: FlowStep, file: string, attached: AttachedDecorators): StepKubernetes | undefined {
  const own = step.remote?.name === 'kubernetes' ? step.remote : undefined;
  if (own) {
    return {
      value: (name) => (name === 'gpu' ? own.gpu : staticValue(own[ARG_KEYS[name]], name, file, step.name)),
      where: (name) => ({ file, step: step.name, line: (name && name !== 'gpu' ? own[ARG_KEYS[name]]?.line : undefined) ?? own.line }),
      attached: false,
    };
  }
  const spec = attached.get('kubernetes');
  if (!spec) return undefined;
  return { value: (name) => spec.attributes[name], where: () => ({ file, step: step.name, line: step.line, source: spec.source }), attached: true };
}

/** A GPU count as Metaflow 2.19's @kubernetes `step_init` takes it: an int or a string of a whole number; null when not given. */
function gpuCount(value: unknown, where: Where): number | null {
  if (value === null || value === undefined) return null;
  const count = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
  if (typeof count !== 'number' || !Number.isInteger(count)) throw invalid(where, `gpu=${JSON.stringify(value)} is not a whole number of GPUs`);
  return count;
}

/** `gpu_vendor`, else METAFLOW_KUBERNETES_GPU_VENDOR (set empty too), else nvidia (`init`); nvidia or amd, case aside (`step_init`), or refused as Metaflow refuses it (an empty one too). */
function gpuVendorOf(kubernetes: StepKubernetes | undefined, defaults: PlacementDefaults, where: Where): GpuVendor {
  const own = kubernetes?.value('gpu_vendor');
  const [vendor, at] = !pythonFalsy(own) ? [own, kubernetes!.where('gpu_vendor')] : defaults.gpuVendor ? [defaults.gpuVendor.value, { ...where, source: defaults.gpuVendor.source }] : ['nvidia', where];
  const lower = typeof vendor === 'string' ? vendor.toLowerCase() : undefined;
  if (lower === 'nvidia' || lower === 'amd') return lower;
  throw invalid(at, `the GPU vendor ${JSON.stringify(vendor)} is not one Metaflow supports (nvidia or amd)`);
}

/** `node_selector` (else Metaflow's default, none when unset or set empty), then `compute_pool` as the label {@link COMPUTE_POOL_LABEL} over it (`init`). */
function nodeSelectorOf(kubernetes: StepKubernetes | undefined, defaults: PlacementDefaults, where: Where): Record<string, string> {
  const arg = kubernetes?.value('node_selector');
  const selector = !pythonFalsy(arg)
    ? parseStepNodeSelector(arg, kubernetes!.where('node_selector'))
    : defaults.nodeSelector?.value
      ? parseStepNodeSelector(defaults.nodeSelector.value, { ...where, source: defaults.nodeSelector.source })
      : {};
  const pool = kubernetes?.value('compute_pool');
  if (pythonFalsy(pool)) return selector;
  if (typeof pool !== 'string' || !isLabelValue(pool)) throw invalid(kubernetes!.where('compute_pool'), `compute_pool ${JSON.stringify(pool)} is not a node label value (Metaflow puts it in the label ${COMPUTE_POOL_LABEL})`);
  return { ...selector, [COMPUTE_POOL_LABEL]: pool };
}

/** One step's placement (Metaflow's @kubernetes `init`: an empty or absent argument takes the default). */
function placementOf(step: FlowStep, flowFile: string, defaults: PlacementDefaults, attached: AttachedDecorators): Omit<StepPlacement, 'steps' | 'key'> {
  // An inherited step's decorators are in its base flow's module, and so are their lines.
  const file = step.file ?? flowFile;
  const kubernetes = stepKubernetes(step, file, attached);
  const where: Where = { file, step: step.name, line: step.remote?.line ?? step.line };
  const nodeSelector = nodeSelectorOf(kubernetes, defaults, where);
  const tolerationsArg = kubernetes?.value('tolerations');
  const tolerations = !pythonFalsy(tolerationsArg) ? parseStepTolerations(tolerationsArg, kubernetes!.where('tolerations')) : defaultTolerations(defaults, where);
  // @resources (the step's own, else the command line's) gives its gpu to @kubernetes (`step_init`).
  const remote = kubernetes?.attached ? { name: 'kubernetes' as const, line: step.line, gpu: gpuCount(kubernetes.value('gpu'), kubernetes.where('gpu')), image: { kind: 'absent' as const } } : step.remote;
  const resourcesSpec = attached.get('resources');
  const resources = step.resources ?? (resourcesSpec ? { line: step.line, gpu: gpuCount(resourcesSpec.attributes['gpu'], { ...where, source: resourcesSpec.source }) } : undefined);
  const gpu = stepGpus({ ...(remote ? { remote } : {}), ...(resources ? { resources } : {}) }) > 0;
  // Metaflow checks the vendor of every @kubernetes step, with GPUs or not.
  const gpuVendor = gpuVendorOf(kubernetes, defaults, where);
  return { nodeSelector, tolerations, gpu, ...(gpu ? { gpuVendor } : {}) };
}

/**
 * The flow's steps on the cluster (those of `only`, in flow order, without the {@link batchSteps})
 * grouped by placement, in the order of their first step. A computed node_selector, tolerations, compute_pool or gpu_vendor is an InputError
 * (exit 2) naming file, line and step; one Metaflow would refuse, too (naming the setting or the
 * `--with` it came from).
 */
export function stepPlacements(flow: Pick<FlowFile, 'steps'>, only: readonly string[], flowFile: string, defaults: PlacementDefaults, attached: AttachedDecorators = new Map()): StepPlacement[] {
  const groups = new Map<string, StepPlacement>();
  for (const step of flow.steps) {
    if (!only.includes(step.name) || stepRemote(step, flowFile, attached)?.name === 'batch') continue;
    const placement = placementOf(step, flowFile, defaults, attached);
    // NVIDIA's placements keep the key (and so the DaemonSet name) they had before the vendor was part of it.
    const { gpuVendor, ...rest } = placement;
    const key = canonicalJson(JSON.parse(JSON.stringify(gpuVendor === 'nvidia' ? rest : placement)));
    const group = groups.get(key);
    if (group) group.steps.push(step.name);
    else groups.set(key, { ...placement, steps: [step.name], key });
  }
  return [...groups.values()];
}

/** The placement of a step Metaflow puts anywhere: no selector, no tolerations, no GPU. */
export function isDefaultPlacement(placement: Pick<StepPlacement, 'nodeSelector' | 'tolerations' | 'gpu'>): boolean {
  return Object.keys(placement.nodeSelector).length === 0 && placement.tolerations.length === 0 && !placement.gpu;
}
