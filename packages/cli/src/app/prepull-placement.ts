/**
 * Where each step's pods run, as Metaflow's @kubernetes places them: its `node_selector` (a dict or
 * `"k=v,k2=v2"`), its `tolerations`, else Metaflow's defaults METAFLOW_KUBERNETES_NODE_SELECTOR /
 * METAFLOW_KUBERNETES_TOLERATIONS (environment, else Metaflow's configuration file), and whether it
 * asks for GPUs. `prebuilt prepull` warms each placement's nodes with its steps' images only.
 */
import type { V1Toleration } from '@kubernetes/client-node';
import { canonicalJson, InputError, ConfigError, errorMessage } from '@prebuilt/core';
import { metaflowSetting, stepGpus, type FlowFile, type FlowStep, type PlacementArg } from '@prebuilt/metaflow';
import { isLabelKey, isLabelValue } from './kubernetes-names.js';

export interface StepPlacement {
  /** The steps placed alike, in flow order. */
  steps: string[];
  /** The steps' node selector (without the command's --node-selector). */
  nodeSelector: Record<string, string>;
  tolerations: V1Toleration[];
  /** The steps ask for GPUs (Metaflow sets a limit of the GPU vendor's resource on their pods). */
  gpu: boolean;
  /** Stable identity of the placement (canonical JSON of selector, tolerations and gpu). */
  key: string;
}

/** Metaflow's V1Toleration arguments (Python names) → the API's. */
const TOLERATION_FIELDS: Record<string, keyof V1Toleration> = { key: 'key', operator: 'operator', value: 'value', effect: 'effect', toleration_seconds: 'tolerationSeconds' };

type Where = { file: string; step: string; line: number; source?: string };

function invalid(where: Where, what: string): Error {
  if (where.source) {
    return new ConfigError(`${where.source} is not valid for Metaflow: ${what}.`, {
      setting: where.source.startsWith('METAFLOW_') ? where.source : undefined,
      hint: 'Metaflow reads METAFLOW_KUBERNETES_NODE_SELECTOR as "key=value,key2=value2" and METAFLOW_KUBERNETES_TOLERATIONS as a JSON list of tolerations.',
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

/** Metaflow's defaults for a @kubernetes that names no selector / tolerations (the settings' raw text). */
export interface PlacementDefaults {
  nodeSelector?: { value: string; source: string };
  tolerations?: { value: string; source: string };
}

export function placementDefaults(env: Record<string, string | undefined>): PlacementDefaults {
  const nodeSelector = metaflowSetting('METAFLOW_KUBERNETES_NODE_SELECTOR', env);
  const tolerations = metaflowSetting('METAFLOW_KUBERNETES_TOLERATIONS', env);
  return { ...(nodeSelector ? { nodeSelector } : {}), ...(tolerations ? { tolerations } : {}) };
}

function staticValue(arg: PlacementArg | undefined, name: string, flowFile: string, step: string): unknown {
  if (arg?.kind !== 'dynamic') return arg?.value;
  throw new InputError(`${flowFile}:${arg.line}: step '${step}': the '${name}' argument of @kubernetes cannot be read without running the flow: ${arg.why}`, {
    file: flowFile,
    line: arg.line,
    hint: `Write ${name} as a literal or a module-level constant of the flow file, so prebuilt prepull knows which nodes the step runs on.`,
  });
}

function defaultTolerations(defaults: PlacementDefaults, where: Where): V1Toleration[] {
  if (!defaults.tolerations) return [];
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

/** One step's placement (Metaflow's @kubernetes `init`: an empty or absent argument takes the default). */
function placementOf(step: FlowStep, flowFile: string, defaults: PlacementDefaults): Omit<StepPlacement, 'steps' | 'key'> {
  const kubernetes = step.remote?.name === 'batch' ? undefined : step.remote;
  const selectorArg = staticValue(kubernetes?.nodeSelector, 'node_selector', flowFile, step.name);
  const tolerationsArg = staticValue(kubernetes?.tolerations, 'tolerations', flowFile, step.name);
  const where = (arg: PlacementArg | undefined): Where => ({ file: flowFile, step: step.name, line: arg?.line ?? step.remote?.line ?? step.line });
  const nodeSelector = !pythonFalsy(selectorArg)
    ? parseStepNodeSelector(selectorArg, where(kubernetes?.nodeSelector))
    : defaults.nodeSelector
      ? parseStepNodeSelector(defaults.nodeSelector.value, { ...where(undefined), source: defaults.nodeSelector.source })
      : {};
  const tolerations = !pythonFalsy(tolerationsArg) ? parseStepTolerations(tolerationsArg, where(kubernetes?.tolerations)) : defaultTolerations(defaults, where(undefined));
  return { nodeSelector, tolerations, gpu: stepGpus(step) > 0 };
}

/**
 * The flow's steps (those of `only`, in flow order) grouped by placement, in the order of their
 * first step. A computed node_selector or tolerations is an InputError (exit 2) naming file, line
 * and step; one Metaflow would refuse, too.
 */
export function stepPlacements(flow: Pick<FlowFile, 'steps'>, only: readonly string[], flowFile: string, defaults: PlacementDefaults): StepPlacement[] {
  const groups = new Map<string, StepPlacement>();
  for (const step of flow.steps) {
    if (!only.includes(step.name)) continue;
    const placement = placementOf(step, flowFile, defaults);
    const key = canonicalJson(JSON.parse(JSON.stringify(placement)));
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
