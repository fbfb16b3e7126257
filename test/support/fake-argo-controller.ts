// A FAKE of the Argo Workflows controller, for tests: runs the WorkflowTemplate that
// `argo-workflows create --only-json` prints, one container per task (see task-containers.ts).
//
// What it does as the controller would: orders a DAG by `depends` (`&&`, `||`, `!`, parentheses,
// `.Succeeded`/`.Failed`/`.Errored`/`.Skipped`/`.Omitted`/`.AnySucceeded`/`.AllFailed`) or
// `dependencies`; evaluates `when`; fans out `withParam` / `withItems` with `{{item}}` (a fanned-out
// task's output parameters become JSON lists); runs nested DAG templates with their own inputs and
// `{{tasks.*}}` scope; substitutes `{{workflow.name|namespace|uid|creationTimestamp|status|failures}}`,
// `{{workflow.parameters.*}}`, `{{inputs.parameters.*}}`, `{{tasks.X.outputs.parameters.Y}}`,
// `{{item}}`, `{{retries}}`; reads output parameters back from files under the pod's emptyDir
// volumes (host folders, one trailing newline trimmed); fills the pod fields a fieldRef asks for
// with fixed local values; runs `onExit` after the DAG with `workflow.status` set. Anything it does
// not know (a placeholder, an expression, a secret reference, a template kind) throws.
import { randomUUID } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { TaskContainer, TaskResult, TaskRunner } from './task-containers.js';

export class FakeControllerError extends Error {}

type Json = Record<string, unknown>;

interface Parameter {
  name: string;
  value?: string | null;
  default?: string | null;
  valueFrom?: { path?: string; parameter?: string; fieldRef?: unknown } | null;
}

interface DagTask {
  name: string;
  template: string;
  depends?: string;
  dependencies?: string[];
  when?: string;
  withParam?: string;
  withItems?: unknown[];
  arguments?: { parameters?: Parameter[] };
}

interface EnvVar {
  name: string;
  value?: string | null;
  valueFrom?: { fieldRef?: { fieldPath: string } | null; secretKeyRef?: unknown; configMapKeyRef?: unknown; resourceFieldRef?: unknown } | null;
}

interface Template {
  name: string;
  inputs?: { parameters?: Parameter[] };
  outputs?: { parameters?: Parameter[] };
  container?: { image: string; command?: string[] | null; args?: string[] | null; env?: EnvVar[] | null; envFrom?: unknown[] | null; volumeMounts?: Array<{ name: string; mountPath: string }> | null };
  volumes?: Array<{ name: string; emptyDir?: unknown }> | null;
  dag?: { tasks: DagTask[]; failFast?: boolean };
  steps?: DagTask[][];
}

export interface WorkflowTemplate {
  metadata?: { name?: string };
  spec: { entrypoint: string; onExit?: string; templates: Template[]; arguments?: { parameters?: Parameter[] } };
}

export type Phase = 'Succeeded' | 'Failed' | 'Skipped' | 'Omitted';

/** One container the fake ran. */
export interface TaskRecord extends TaskResult, TaskContainer {
  /** The node's display name: `start`, `body(0:1)`, `capture-error-hook-fn-preflight`. */
  name: string;
  template: string;
  phase: Phase;
  outputs: Record<string, string>;
  /** The pod name the task saw. */
  podName: string;
}

export interface ArgoRunOptions {
  runner: TaskRunner;
  /** Host folder for the pods' emptyDir volumes. */
  workDir: string;
  /** `{{workflow.name}}`; default `<template name>-<5 random chars>` as Argo's generateName. */
  name?: string;
  namespace?: string;
  /** Default: now. Rendered as Argo does (RFC 3339, seconds, `Z`). */
  creationTimestamp?: Date;
  /** `{{workflow.parameters.*}}` beside the template's defaults. */
  parameters?: Record<string, string>;
  /**
   * Environment every pod gets from the cluster rather than from the template (what IRSA or a
   * mutating webhook would inject: cloud credentials); the template's own env wins.
   */
  podEnv?: Readonly<Record<string, string>>;
}

export interface ArgoRunResult {
  name: string;
  status: 'Succeeded' | 'Failed';
  /** Every container run, in the order they finished (the exit handler's last). */
  tasks: TaskRecord[];
  /** The onExit template's containers (empty when its `when` skipped it or there is none). */
  exitHandler: TaskRecord[];
}

/** `{{workflow.creationTimestamp}}` as Argo renders it: `2026-01-02T03:04:05Z`. */
export function argoTimestamp(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

const PLACEHOLDER = /\{\{\s*([^{}]*?)\s*\}\}/g;

/** Replaces every `{{…}}` with its value in `scope`; an unknown one throws. */
export function substitute(text: string, scope: Readonly<Record<string, string>>, where: string): string {
  return text.replace(PLACEHOLDER, (whole, key: string) => {
    // The one expression Metaflow emits for flow parameters: {{=toBase64(workflow.parameters['x'])}}.
    const base64 = /^=\s*toBase64\(\s*([A-Za-z0-9_.-]+)(?:\[\s*'([^']+)'\s*\])?\s*\)$/.exec(key);
    const lookup = base64 ? (base64[2] !== undefined ? `${base64[1]}.${base64[2]}` : base64[1]!) : key;
    const found = scope[lookup];
    const value = base64 && found !== undefined ? Buffer.from(found, 'utf8').toString('base64') : found;
    if (value === undefined) {
      throw new FakeControllerError(`the fake Argo controller does not know the placeholder ${whole} (in ${where}); known here: ${Object.keys(scope).sort().join(', ')}`);
    }
    return value;
  });
}

type DependsNode = { kind: 'ref'; task: string; result: string } | { kind: 'not'; of: DependsNode } | { kind: 'and' | 'or'; left: DependsNode; right: DependsNode };

/** Parses an Argo `depends` expression. */
export function parseDepends(expression: string): DependsNode | undefined {
  const tokens = expression.match(/&&|\|\||!|\(|\)|[A-Za-z0-9_-]+(?:\.[A-Za-z]+)?/g) ?? [];
  const rest = expression.replace(/&&|\|\||!|\(|\)|[A-Za-z0-9_-]+(?:\.[A-Za-z]+)?|\s+/g, '');
  if (rest) throw new FakeControllerError(`the fake Argo controller cannot parse depends "${expression}" (at "${rest}")`);
  if (tokens.length === 0) return undefined;
  let i = 0;
  const or = (): DependsNode => {
    let left = and();
    while (tokens[i] === '||') {
      i++;
      left = { kind: 'or', left, right: and() };
    }
    return left;
  };
  const and = (): DependsNode => {
    let left = unary();
    while (tokens[i] === '&&') {
      i++;
      left = { kind: 'and', left, right: unary() };
    }
    return left;
  };
  const unary = (): DependsNode => {
    const token = tokens[i++];
    if (token === '!') return { kind: 'not', of: unary() };
    if (token === '(') {
      const inner = or();
      if (tokens[i++] !== ')') throw new FakeControllerError(`unbalanced parentheses in depends "${expression}"`);
      return inner;
    }
    if (token === undefined || /^(&&|\|\||\))$/.test(token)) throw new FakeControllerError(`depends "${expression}" is not an expression the fake Argo controller knows`);
    const [task, result = ''] = token.split('.');
    const known = ['', 'Succeeded', 'Failed', 'Errored', 'Skipped', 'Omitted', 'Daemoned', 'AnySucceeded', 'AllFailed'];
    if (!known.includes(result)) throw new FakeControllerError(`depends "${expression}": the fake Argo controller does not know the result .${result}`);
    return { kind: 'ref', task: task!, result };
  };
  const node = or();
  if (i !== tokens.length) throw new FakeControllerError(`depends "${expression}" has trailing tokens`);
  return node;
}

export function dependsTasks(node: DependsNode | undefined): string[] {
  if (!node) return [];
  if (node.kind === 'ref') return [node.task];
  if (node.kind === 'not') return dependsTasks(node.of);
  return [...dependsTasks(node.left), ...dependsTasks(node.right)];
}

interface NodeState {
  phase: Phase;
  /** Phases of the fanned-out children (one entry for a task without fan-out). */
  children: Phase[];
}

export function evaluateDepends(node: DependsNode | undefined, states: ReadonlyMap<string, NodeState>): boolean {
  if (!node) return true;
  switch (node.kind) {
    case 'not':
      return !evaluateDepends(node.of, states);
    case 'and':
      return evaluateDepends(node.left, states) && evaluateDepends(node.right, states);
    case 'or':
      return evaluateDepends(node.left, states) || evaluateDepends(node.right, states);
    case 'ref': {
      const state = states.get(node.task);
      if (!state) throw new FakeControllerError(`depends names task ${node.task}, which is not in the DAG`);
      switch (node.result) {
        case '':
          return state.phase === 'Succeeded' || state.phase === 'Skipped';
        case 'Errored':
          return false;
        case 'Daemoned':
          return false;
        case 'AnySucceeded':
          return state.children.some((p) => p === 'Succeeded');
        case 'AllFailed':
          return state.children.length > 0 && state.children.every((p) => p === 'Failed');
        default:
          return state.phase === node.result;
      }
    }
  }
}

/** Evaluates a substituted `when`: `a == b`, `a != b` (strings, numbers), `true`, `false`. */
export function evaluateWhen(expression: string): boolean {
  const trimmed = expression.trim();
  if (trimmed === 'true') return true;
  if (trimmed === 'false') return false;
  const match = /^(.*?)\s*(==|!=)\s*(.*)$/.exec(trimmed);
  if (!match) throw new FakeControllerError(`the fake Argo controller cannot evaluate when "${expression}"`);
  const strip = (s: string): string => s.trim().replace(/^(['"])(.*)\1$/, '$2');
  const equal = strip(match[1]!) === strip(match[3]!);
  return match[2] === '==' ? equal : !equal;
}

/** The items a `withParam` / `withItems` task fans out over, as `{{item}}` scope entries. */
export function fanOutItems(task: DagTask, scope: Readonly<Record<string, string>>): Array<Record<string, string>> | undefined {
  let items: unknown[];
  if (task.withParam !== undefined) {
    const text = substitute(task.withParam, scope, `withParam of task ${task.name}`);
    try {
      items = JSON.parse(text) as unknown[];
    } catch {
      throw new FakeControllerError(`withParam of task ${task.name} is not a JSON list: ${text}`);
    }
    if (!Array.isArray(items)) throw new FakeControllerError(`withParam of task ${task.name} is not a JSON list: ${text}`);
  } else if (task.withItems !== undefined) {
    items = task.withItems;
  } else {
    return undefined;
  }
  return items.map((item) => {
    const entry: Record<string, string> = { item: typeof item === 'string' ? item : JSON.stringify(item) };
    if (item && typeof item === 'object' && !Array.isArray(item)) {
      for (const [key, value] of Object.entries(item)) entry[`item.${key}`] = typeof value === 'string' ? value : JSON.stringify(value);
    }
    return entry;
  });
}

class Run {
  readonly records: TaskRecord[] = [];
  private readonly templates: Map<string, Template>;
  private pods = 0;
  readonly failures: Json[] = [];

  constructor(
    private readonly workflow: WorkflowTemplate,
    private readonly options: ArgoRunOptions,
    readonly global: Record<string, string>,
  ) {
    this.templates = new Map(workflow.spec.templates.map((t) => [t.name, t]));
  }

  template(name: string): Template {
    const found = this.templates.get(name);
    if (!found) throw new FakeControllerError(`the workflow has no template ${name}`);
    return found;
  }

  /** Runs a template with the given inputs; returns its phase and outputs. */
  async runTemplate(name: string, display: string, inputs: Record<string, string>): Promise<{ phase: Phase; outputs: Record<string, string> }> {
    const template = this.template(name);
    const scope: Record<string, string> = { ...this.global };
    for (const parameter of template.inputs?.parameters ?? []) {
      const value = inputs[parameter.name] ?? parameter.value ?? parameter.default ?? undefined;
      if (value === undefined || value === null) throw new FakeControllerError(`template ${name} needs the input parameter ${parameter.name}, which task ${display} does not give`);
      scope[`inputs.parameters.${parameter.name}`] = value;
    }
    if (template.container) return this.runContainer(template, display, scope);
    if (template.dag) return this.runDag(template, display, scope);
    if (template.steps) return this.runSteps(template, display, scope);
    throw new FakeControllerError(`template ${name} is neither a container, a DAG nor steps: the fake Argo controller cannot run it`);
  }

  private async runContainer(template: Template, display: string, scope: Record<string, string>): Promise<{ phase: Phase; outputs: Record<string, string> }> {
    const container = template.container!;
    const where = `template ${template.name}`;
    if (container.envFrom?.length) throw new FakeControllerError(`${where} uses envFrom, which the fake Argo controller does not fill`);
    const podName = `${this.global['workflow.name']}-${template.name}-${++this.pods}`;
    const fields: Record<string, string> = {
      'metadata.namespace': this.global['workflow.namespace']!,
      'metadata.name': podName,
      'metadata.uid': randomUUID(),
      'spec.serviceAccountName': 'default',
      'status.hostIP': '127.0.0.1',
      'status.podIP': '127.0.0.1',
    };
    const env: Record<string, string> = { ...this.options.podEnv };
    for (const variable of container.env ?? []) {
      const from = variable.valueFrom;
      if (from) {
        const path = from.fieldRef?.fieldPath;
        if (!path || from.secretKeyRef || from.configMapKeyRef || from.resourceFieldRef || fields[path] === undefined) {
          throw new FakeControllerError(`${where}: env ${variable.name} comes from ${JSON.stringify(from)}, which the fake Argo controller does not fill`);
        }
        env[variable.name] = fields[path]!;
      } else {
        env[variable.name] = substitute(variable.value ?? '', scope, `${where}, env ${variable.name}`);
      }
    }
    const volumes = new Map((template.volumes ?? []).map((v) => [v.name, v]));
    const mounts: Array<{ host: string; container: string }> = [];
    for (const mount of container.volumeMounts ?? []) {
      const volume = volumes.get(mount.name);
      if (!volume || !('emptyDir' in volume)) throw new FakeControllerError(`${where} mounts ${mount.name}, which is not an emptyDir volume the fake can provide`);
      const host = join(this.options.workDir, podName, mount.name);
      await mkdir(host, { recursive: true, mode: 0o777 });
      mounts.push({ host, container: mount.mountPath });
    }
    const task: TaskContainer = {
      name: display,
      image: substitute(container.image, scope, `${where}, image`),
      ...(container.command ? { command: container.command.map((c) => substitute(c, scope, `${where}, command`)) } : {}),
      ...(container.args ? { args: container.args.map((a) => substitute(a, scope, `${where}, args`)) } : {}),
      env,
      mounts,
    };
    const result = await this.options.runner(task);
    const phase: Phase = result.exitCode === 0 ? 'Succeeded' : 'Failed';
    const outputs: Record<string, string> = {};
    if (phase === 'Succeeded') {
      for (const parameter of template.outputs?.parameters ?? []) {
        const path = parameter.valueFrom?.path;
        if (!path) throw new FakeControllerError(`${where}: output ${parameter.name} is not read from a file`);
        const mount = mounts.find((m) => path.startsWith(`${m.container}/`));
        if (!mount) throw new FakeControllerError(`${where}: output ${parameter.name} (${path}) is not on a mounted volume`);
        const text = await readFile(join(mount.host, path.slice(mount.container.length + 1)), 'utf8').catch(() => undefined);
        if (text === undefined) {
          if (parameter.default === undefined || parameter.default === null) throw new FakeControllerError(`task ${display} wrote no ${path} for output ${parameter.name}`);
          outputs[parameter.name] = parameter.default;
        } else {
          outputs[parameter.name] = text.replace(/\n$/, '');
        }
      }
    } else {
      this.failures.push({
        displayName: display,
        message: `Error (exit code ${result.exitCode})`,
        templateName: template.name,
        phase: 'Failed',
        podName,
        finishedAt: argoTimestamp(new Date()),
      });
    }
    this.records.push({ ...task, ...result, template: template.name, phase, outputs, podName });
    return { phase, outputs };
  }

  /** Runs one DAG/steps task (fanned out when it says so) and returns its node state and outputs. */
  private async runTask(task: DagTask, scope: Record<string, string>, display: string): Promise<{ state: NodeState; outputs: Record<string, string> }> {
    const argumentsOf = (itemScope: Record<string, string>): Record<string, string> =>
      Object.fromEntries((task.arguments?.parameters ?? []).map((p) => [p.name, substitute(p.value ?? '', { ...scope, ...itemScope }, `arguments of task ${task.name}`)]));
    const items = fanOutItems(task, scope);
    if (!items) {
      const done = await this.runTemplate(task.template, display, argumentsOf({}));
      return { state: { phase: done.phase, children: [done.phase] }, outputs: done.outputs };
    }
    const children = await Promise.all(items.map((itemScope, i) => this.runTemplate(task.template, `${display}(${i}:${itemScope['item']})`, argumentsOf(itemScope))));
    const phases = children.map((c) => c.phase);
    const outputNames = new Set(children.flatMap((c) => Object.keys(c.outputs)));
    const outputs = Object.fromEntries([...outputNames].map((n) => [n, JSON.stringify(children.map((c) => c.outputs[n]))]));
    const phase: Phase = phases.every((p) => p === 'Succeeded' || p === 'Skipped') ? 'Succeeded' : 'Failed';
    return { state: { phase, children: phases }, outputs };
  }

  private async runDag(template: Template, display: string, scope: Record<string, string>): Promise<{ phase: Phase; outputs: Record<string, string> }> {
    const tasks = template.dag!.tasks;
    const failFast = template.dag!.failFast !== false;
    const parsed = new Map(tasks.map((t) => [t.name, t.depends !== undefined ? parseDepends(t.depends) : undefined]));
    const deps = new Map(tasks.map((t) => [t.name, t.depends !== undefined ? dependsTasks(parsed.get(t.name)) : (t.dependencies ?? [])]));
    const states = new Map<string, NodeState>();
    const dagScope: Record<string, string> = { ...scope };
    let failed = false;
    while (states.size < tasks.length) {
      const ready = tasks.filter((t) => !states.has(t.name) && deps.get(t.name)!.every((d) => states.has(d)));
      if (ready.length === 0) throw new FakeControllerError(`the DAG of template ${template.name} has a cycle or names an unknown task: ${tasks.filter((t) => !states.has(t.name)).map((t) => t.name).join(', ')}`);
      await Promise.all(
        ready.map(async (task) => {
          const go = task.depends !== undefined ? evaluateDepends(parsed.get(task.name), states) : deps.get(task.name)!.every((d) => states.get(d)!.phase === 'Succeeded');
          if (!go || (failed && failFast)) return void states.set(task.name, { phase: 'Omitted', children: [] });
          if (task.when !== undefined && !evaluateWhen(substitute(task.when, dagScope, `when of task ${task.name}`))) {
            return void states.set(task.name, { phase: 'Skipped', children: [] });
          }
          // A nested DAG's tasks are named after the node that ran it: `fan(1:1).body`.
          const done = await this.runTask(task, dagScope, display === this.workflow.spec.entrypoint ? task.name : `${display}.${task.name}`);
          for (const [key, value] of Object.entries(done.outputs)) dagScope[`tasks.${task.name}.outputs.parameters.${key}`] = value;
          states.set(task.name, done.state);
          if (done.state.phase === 'Failed') failed = true;
        }),
      );
    }
    if (failed) return { phase: 'Failed', outputs: {} };
    const outputs: Record<string, string> = {};
    for (const parameter of template.outputs?.parameters ?? []) {
      const from = parameter.valueFrom?.parameter ?? parameter.value;
      if (from === undefined || from === null) throw new FakeControllerError(`template ${template.name}: output ${parameter.name} has no value or valueFrom.parameter`);
      outputs[parameter.name] = substitute(from, dagScope, `output ${parameter.name} of template ${template.name} (${display})`);
    }
    return { phase: 'Succeeded', outputs };
  }

  private async runSteps(template: Template, display: string, scope: Record<string, string>): Promise<{ phase: Phase; outputs: Record<string, string> }> {
    const stepScope: Record<string, string> = { ...scope };
    for (const group of template.steps!) {
      const results = await Promise.all(
        group.map(async (step) => {
          if (step.when !== undefined && !evaluateWhen(substitute(step.when, stepScope, `when of step ${step.name}`))) return 'Skipped' as Phase;
          const done = await this.runTask(step, stepScope, step.name);
          for (const [key, value] of Object.entries(done.outputs)) stepScope[`steps.${step.name}.outputs.parameters.${key}`] = value;
          return done.state.phase;
        }),
      );
      if (results.includes('Failed')) return { phase: 'Failed', outputs: {} };
    }
    return { phase: 'Succeeded', outputs: {} };
  }
}

/** Runs a WorkflowTemplate as the Argo controller would run a workflow submitted from it. */
export async function runArgoWorkflow(workflow: WorkflowTemplate, options: ArgoRunOptions): Promise<ArgoRunResult> {
  if (!workflow?.spec?.entrypoint || !Array.isArray(workflow.spec.templates)) throw new FakeControllerError('not a WorkflowTemplate: spec.entrypoint or spec.templates is missing');
  const name = options.name ?? `${workflow.metadata?.name ?? 'workflow'}-${randomUUID().slice(0, 5)}`;
  const global: Record<string, string> = {
    'workflow.name': name,
    'workflow.namespace': options.namespace ?? 'default',
    'workflow.uid': randomUUID(),
    'workflow.creationTimestamp': argoTimestamp(options.creationTimestamp ?? new Date()),
    retries: '0',
  };
  for (const parameter of workflow.spec.arguments?.parameters ?? []) {
    const value = options.parameters?.[parameter.name] ?? parameter.value ?? parameter.default;
    if (value === undefined || value === null) throw new FakeControllerError(`workflow parameter ${parameter.name} has no value`);
    global[`workflow.parameters.${parameter.name}`] = value;
  }
  const run = new Run(workflow, options, global);
  const main = await run.runTemplate(workflow.spec.entrypoint, workflow.spec.entrypoint, {});
  const status = main.phase === 'Succeeded' ? 'Succeeded' : 'Failed';
  const before = run.records.length;
  if (workflow.spec.onExit) {
    global['workflow.status'] = status;
    // Argo renders the failures as a JSON string holding the JSON list (Metaflow decodes twice).
    global['workflow.failures'] = JSON.stringify(JSON.stringify(run.failures));
    await run.runTemplate(workflow.spec.onExit, workflow.spec.onExit, {});
  }
  return { name, status, tasks: run.records, exitHandler: run.records.slice(before) };
}
