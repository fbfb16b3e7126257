// The FAKE Argo controller's own logic (placeholders, DAG order, fan-out, outputs, exit handler) on
// small hand-written WorkflowTemplates, with a recording runner in place of Docker; and one task
// through the real Docker runner.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { describeOrFailInCi, getServices, missingFor } from '../services.js';
import {
  FakeControllerError,
  argoTimestamp,
  evaluateDepends,
  parseDepends,
  runArgoWorkflow,
  type WorkflowTemplate,
} from './fake-argo-controller.js';
import { dockerTaskRunner, type TaskContainer, type TaskRunner } from './task-containers.js';

const dirs: string[] = [];
afterAll(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});
async function workDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'prebuilt-fake-argo-'));
  dirs.push(dir);
  return dir;
}

/** A runner that records each task and plays a small script: `out:<file>=<value>` args write outputs, `exit:<n>` exits. */
function scriptedRunner(seen: TaskContainer[]): TaskRunner {
  return async (task) => {
    seen.push(task);
    let exitCode = 0;
    for (const arg of task.args ?? []) {
      const out = /^out:([^=]+)=(.*)$/s.exec(arg);
      if (out) await writeFile(join(task.mounts!.find((m) => m.container === '/mnt/out')!.host, out[1]!), `${out[2]}\n`);
      const exit = /^exit:(\d+)$/.exec(arg);
      if (exit) exitCode = Number(exit[1]);
    }
    return { exitCode, stdout: '', stderr: '', repoDigests: [] };
  };
}

const OUT = { volumes: [{ name: 'out', emptyDir: {} }] };
const MOUNT = [{ name: 'out', mountPath: '/mnt/out' }];

function foreachWorkflow(bodyExit = 0): WorkflowTemplate {
  return {
    metadata: { name: 'fanflow' },
    spec: {
      entrypoint: 'main',
      arguments: { parameters: [{ name: 'who', value: '{"a": 1}' }] },
      onExit: 'exit-hook',
      templates: [
        {
          name: 'main',
          dag: {
            tasks: [
              { name: 'start', template: 'start', depends: '' },
              {
                name: 'fan',
                template: 'fan',
                depends: 'start.Succeeded',
                withParam: '{{tasks.start.outputs.parameters.num-splits}}',
                arguments: { parameters: [{ name: 'input-paths', value: 'argo-{{workflow.name}}/start/{{tasks.start.outputs.parameters.task-id}}' }, { name: 'split-index', value: '{{item}}' }] },
              },
              { name: 'join', template: 'join', depends: 'fan.Succeeded', arguments: { parameters: [{ name: 'ids', value: '{{tasks.fan.outputs.parameters.task-id}}' }] } },
              { name: 'cleanup', template: 'join', depends: 'fan.Failed || !join', arguments: { parameters: [{ name: 'ids', value: 'none' }] } },
            ],
          },
        },
        {
          name: 'start',
          ...OUT,
          outputs: { parameters: [{ name: 'task-id', valueFrom: { path: '/mnt/out/task_id' } }, { name: 'num-splits', valueFrom: { path: '/mnt/out/splits' } }] },
          container: {
            image: 'img/start@sha256:aa',
            command: ['bash', '-c'],
            args: ["echo {{workflow.name}} {{workflow.creationTimestamp}} {{=toBase64(workflow.parameters['who'])}}", 'out:task_id=t-start', 'out:splits=[0, 1, 2]'],
            env: [
              { name: 'RUN', value: 'argo-{{workflow.name}}' },
              { name: 'POD', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
              { name: 'NS', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
            ],
            volumeMounts: MOUNT,
          },
        },
        {
          name: 'fan',
          inputs: { parameters: [{ name: 'input-paths' }, { name: 'split-index' }] },
          outputs: { parameters: [{ name: 'task-id', valueFrom: { parameter: '{{tasks.body.outputs.parameters.task-id}}' } }] },
          dag: {
            tasks: [
              {
                name: 'body',
                template: 'body',
                arguments: { parameters: [{ name: 'input-paths', value: '{{inputs.parameters.input-paths}}' }, { name: 'split-index', value: '{{inputs.parameters.split-index}}' }] },
              },
            ],
          },
        },
        {
          name: 'body',
          ...OUT,
          inputs: { parameters: [{ name: 'input-paths' }, { name: 'split-index' }] },
          outputs: { parameters: [{ name: 'task-id', valueFrom: { path: '/mnt/out/task_id' } }] },
          container: {
            image: 'img/body@sha256:bb',
            command: ['bash', '-c'],
            args: ['{{inputs.parameters.input-paths}} {{inputs.parameters.split-index}}', 'out:task_id=t-body-{{inputs.parameters.split-index}}', `exit:${bodyExit}`],
            volumeMounts: MOUNT,
          },
        },
        {
          name: 'join',
          ...OUT,
          inputs: { parameters: [{ name: 'ids' }] },
          container: { image: 'img/join@sha256:cc', args: ['{{inputs.parameters.ids}}'], volumeMounts: MOUNT },
        },
        { name: 'exit-hook', steps: [[{ name: 'exit-hook', template: 'capture', when: '{{workflow.status}} != Succeeded' }]] },
        {
          name: 'capture',
          container: { image: 'img/capture@sha256:dd', args: ['{{workflow.status}}'], env: [{ name: 'FAILURES', value: '{{workflow.failures}}' }] },
        },
      ],
    },
  };
}

describe('fake Argo controller: placeholders and DAG logic (recording runner)', () => {
  it('runs start → withParam fan-out (nested DAG) → join in depends order, with Argo placeholders substituted', async () => {
    const seen: TaskContainer[] = [];
    const created = new Date('2026-03-04T05:06:07.891Z');
    const result = await runArgoWorkflow(foreachWorkflow(), { runner: scriptedRunner(seen), workDir: await workDir(), name: 'fanflow-abcde', creationTimestamp: created, namespace: 'ns1' });
    expect(result.status).toBe('Succeeded');
    expect(result.tasks.map((t) => t.name).sort()).toEqual(['fan(0:0).body', 'fan(1:1).body', 'fan(2:2).body', 'join', 'start']);
    expect(result.tasks[0]!.name).toBe('start');
    expect(result.tasks.at(-1)!.name).toBe('join');
    expect(argoTimestamp(created)).toBe('2026-03-04T05:06:07Z');
    const start = seen[0]!;
    expect(start.args![0]).toBe(`echo fanflow-abcde 2026-03-04T05:06:07Z ${Buffer.from('{"a": 1}').toString('base64')}`);
    expect(start.env).toMatchObject({ RUN: 'argo-fanflow-abcde', NS: 'ns1' });
    expect(start.env['POD']).toMatch(/^fanflow-abcde-start-\d+$/);
    expect(start.image).toBe('img/start@sha256:aa');
    const bodies = seen.filter((t) => t.image === 'img/body@sha256:bb').map((t) => t.args![0]).sort();
    expect(bodies).toEqual(['argo-fanflow-abcde/start/t-start 0', 'argo-fanflow-abcde/start/t-start 1', 'argo-fanflow-abcde/start/t-start 2']);
    // The fanned-out task's output is the JSON list of its children's outputs, in item order.
    expect(seen.find((t) => t.image === 'img/join@sha256:cc')!.args).toEqual(['["t-body-0","t-body-1","t-body-2"]']);
    expect(result.tasks.find((t) => t.name === 'start')!.outputs).toEqual({ 'task-id': 't-start', 'num-splits': '[0, 1, 2]' });
    // "cleanup" depends on fan.Failed || !join: omitted; the exit handler's when skips it on success.
    expect(seen.some((t) => t.args?.[0] === 'none')).toBe(false);
    expect(result.exitHandler).toEqual([]);
  });

  it('a failing task fails the workflow, omits what depends on its success, and runs the exit handler with the failures', async () => {
    const seen: TaskContainer[] = [];
    const result = await runArgoWorkflow(foreachWorkflow(7), { runner: scriptedRunner(seen), workDir: await workDir(), name: 'fanflow-fail0' });
    expect(result.status).toBe('Failed');
    expect(result.tasks.filter((t) => t.template === 'body').map((t) => [t.phase, t.exitCode])).toEqual([
      ['Failed', 7],
      ['Failed', 7],
      ['Failed', 7],
    ]);
    expect(seen.some((t) => t.image === 'img/join@sha256:cc' && t.args?.[0] !== 'none')).toBe(false);
    expect(result.exitHandler.map((t) => [t.name, t.template, t.args])).toEqual([['exit-hook', 'capture', ['Failed']]]);
    const failures = JSON.parse(JSON.parse(result.exitHandler[0]!.env['FAILURES']!) as string) as Array<{ templateName: string; message: string; finishedAt: string }>;
    expect(failures.map((f) => f.templateName)).toEqual(['body', 'body', 'body']);
    expect(failures[0]!.message).toBe('Error (exit code 7)');
    expect(failures[0]!.finishedAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  });

  it('fails loudly on a placeholder, an env source or a template kind it does not know', async () => {
    const bad = (mutate: (w: WorkflowTemplate) => void): Promise<unknown> => {
      const workflow = foreachWorkflow();
      mutate(workflow);
      return workDir().then((dir) => runArgoWorkflow(workflow, { runner: scriptedRunner([]), workDir: dir }));
    };
    await expect(bad((w) => void (w.spec.templates[1]!.container!.args![0] = 'x {{pod.name}}'))).rejects.toThrow(/does not know the placeholder \{\{pod\.name\}\} \(in template start, args\)/);
    await expect(bad((w) => void (w.spec.templates[1]!.container!.args![0] = "{{=sprig.int('1')}}"))).rejects.toThrow(FakeControllerError);
    await expect(bad((w) => void w.spec.templates[1]!.container!.env!.push({ name: 'S', valueFrom: { secretKeyRef: { name: 's', key: 'k' } } }))).rejects.toThrow(/env S comes from .*secretKeyRef/);
    await expect(bad((w) => void (w.spec.templates[0]!.dag!.tasks[1]!.withParam = '{{tasks.start.outputs.parameters.task-id}}'))).rejects.toThrow(/withParam of task fan is not a JSON list: t-start/);
    await expect(bad((w) => void (w.spec.templates[4]!.container!.volumeMounts = [{ name: 'nope', mountPath: '/x' }]))).rejects.toThrow(/mounts nope, which is not an emptyDir/);
  });

  it('depends: bare names, results, &&, ||, ! and parentheses', () => {
    const states = new Map([
      ['a', { phase: 'Succeeded' as const, children: ['Succeeded' as const] }],
      ['b', { phase: 'Failed' as const, children: ['Succeeded' as const, 'Failed' as const] }],
      ['c', { phase: 'Skipped' as const, children: [] }],
    ]);
    const check = (expression: string): boolean => evaluateDepends(parseDepends(expression), states);
    expect(check('a')).toBe(true);
    expect(check('c')).toBe(true);
    expect(check('b')).toBe(false);
    expect(check('a && b.Failed')).toBe(true);
    expect(check('!a || (b.Succeeded && c)')).toBe(false);
    expect(check('b.AnySucceeded && !b.AllFailed')).toBe(true);
    expect(() => parseDepends('a.Whatever')).toThrow(/does not know the result \.Whatever/);
    expect(() => evaluateDepends(parseDepends('zz'), states)).toThrow(/names task zz/);
  });
});

const services = getServices();
const dockerMissing = missingFor(['docker', 'baseImage'], services);

describeOrFailInCi('fake Argo controller with the Docker runner', dockerMissing, () => {
  it('runs a task in its image with host networking, its env, and reads the output parameter from /mnt/out', async () => {
    const workflow: WorkflowTemplate = {
      spec: {
        entrypoint: 'main',
        templates: [
          { name: 'main', dag: { tasks: [{ name: 'one', template: 'one' }] } },
          {
            name: 'one',
            ...OUT,
            outputs: { parameters: [{ name: 'answer', valueFrom: { path: '/mnt/out/answer' } }] },
            container: {
              image: services.baseImage!.ref,
              command: ['bash', '-c'],
              args: ['echo "$GREETING {{workflow.name}}" > /mnt/out/answer; echo ran'],
              env: [{ name: 'GREETING', value: 'hello "quoted" $world' }],
              volumeMounts: MOUNT,
            },
          },
        ],
      },
    };
    const result = await runArgoWorkflow(workflow, { runner: dockerTaskRunner({ dockerHost: services.dockerHost! }), workDir: await workDir(), name: 'docker-wf' });
    expect(result.status).toBe('Succeeded');
    expect(result.tasks[0]!.stdout).toBe('ran\n');
    expect(result.tasks[0]!.outputs).toEqual({ answer: 'hello "quoted" $world docker-wf' });
  }, 120_000);
});
