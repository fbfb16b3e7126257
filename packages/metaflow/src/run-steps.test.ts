import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FlowEnvs, StepEnvWithRequest } from './flow-envs.js';
import { InputError } from '@prebuilt/core';
import { checkRemoteFlowFileName, commandLineDecospecs, commandLineGpuSteps, givenDatastore, givenEnvironment, metaflowArgs, metaflowCommand, remoteSteps, startsRemoteSteps } from './run-steps.js';

// Metaflow's configuration file ($METAFLOW_HOME/config.json): empty unless a test writes it.
let home: string;
beforeAll(async () => {
  home = await mkdtemp(join(tmpdir(), 'prebuilt-run-steps-'));
});
afterAll(async () => {
  await rm(home, { recursive: true, force: true });
});
const none = (more: Record<string, string> = {}): Record<string, string> => ({ METAFLOW_HOME: home, ...more });
async function withConfig<T>(config: Record<string, string>, fn: () => T): Promise<T> {
  await writeFile(join(home, 'config.json'), JSON.stringify(config));
  try {
    return fn();
  } finally {
    await rm(join(home, 'config.json'));
  }
}

function step(name: string, remote: 'kubernetes' | 'batch' | null, disabled = false): StepEnvWithRequest {
  return {
    step: name,
    python: disabled ? null : '3.11',
    conda: {},
    pypi: {},
    disabled,
    usesPypi: false,
    remote,
    gpu: false,
    request: disabled ? null : { python: '3.11', conda: {}, pypi: {}, channels: [], platform: 'linux-64' } as never,
    specHash: disabled ? null : `hash-${name}`,
  };
}

/** A flow of these steps: its envs and the flow file as read (each remote decorator on the line after the step's). */
function flowOf(steps: StepEnvWithRequest[]): FlowEnvs {
  const source = {
    file: 'flow.py',
    steps: steps.map((s, i) => ({ name: s.step, line: 10 * i + 1, imports: [], ...(s.remote ? { remote: { name: s.remote, line: 10 * i + 2, gpu: null, image: { kind: 'absent' } } } : {}) })),
  };
  return { flow: 'HelloFlow', file: 'flow.py', steps, source } as unknown as FlowEnvs;
}

const envs = flowOf([step('start', null), step('train', 'kubernetes'), step('skip', 'kubernetes', true), step('end', null, true)]);
const batchEnvs = flowOf([step('start', null), step('train', 'batch'), step('end', null, true)]);

describe('remoteSteps', () => {
  it('takes the static @kubernetes/@batch steps for a plain run, never disabled ones', () => {
    expect(remoteSteps(envs, ['run'], none())).toEqual({ steps: ['train'], reason: 'static', decorator: null });
    expect(remoteSteps(envs, [], none())).toEqual({ steps: ['train'], reason: 'static', decorator: null });
  });

  it('takes every enabled step with --with kubernetes|batch, in either spelling and position', () => {
    for (const args of [
      ['run', '--with', 'kubernetes'],
      ['run', '--with=kubernetes:cpu=2'],
      ['--with', 'batch:queue=q', 'run'],
      ['run', '--with', 'retry', '--with', 'kubernetes:image=x'],
    ]) {
      // A step's own @kubernetes with --with batch is refused (below): batch goes with a @batch flow.
      const selection = remoteSteps(args.some((arg) => arg.startsWith('batch')) ? batchEnvs : envs, args, none());
      expect(selection.steps, args.join(' ')).toEqual(['start', 'train']);
      expect(selection.reason).toBe('with');
    }
    expect(remoteSteps(envs, ['run', '--with', 'retry'], none()).reason).toBe('static');
  });

  it('takes every enabled step when METAFLOW_DEFAULT_DECOSPECS names a remote decorator', () => {
    expect(remoteSteps(envs, ['run'], none({ METAFLOW_DEFAULT_DECOSPECS: 'retry kubernetes:cpu=1' }))).toEqual({
      steps: ['start', 'train'],
      reason: 'default-decospecs',
      decorator: 'kubernetes',
    });
    expect(remoteSteps(envs, ['run'], none({ METAFLOW_DEFAULT_DECOSPECS: 'retry' })).reason).toBe('static');
  });

  it("reads METAFLOW_DEFAULT_DECOSPECS as Metaflow's from_conf does: the environment, else Metaflow's configuration file; set empty, none", async () => {
    await withConfig({ METAFLOW_DEFAULT_DECOSPECS: 'retry kubernetes:cpu=1' }, () => {
      expect(remoteSteps(envs, ['run'], none())).toEqual({ steps: ['start', 'train'], reason: 'default-decospecs', decorator: 'kubernetes' });
      // The environment wins over the file, even empty (Metaflow: os.environ.get(name, <file's>)).
      expect(remoteSteps(envs, ['run'], none({ METAFLOW_DEFAULT_DECOSPECS: '' })).reason).toBe('static');
      expect(remoteSteps(envs, ['run'], none({ METAFLOW_DEFAULT_DECOSPECS: 'retry' })).reason).toBe('static');
    });
    await withConfig({ METAFLOW_DEFAULT_DECOSPECS: 'batch' }, () => {
      expect(remoteSteps(batchEnvs, ['run'], none())).toEqual({ steps: ['start', 'train'], reason: 'default-decospecs', decorator: 'batch' });
    });
  });

  it("finds the project's .metaflow/config.json from the directory the command runs in (cwd), not this process's", async () => {
    const project = join(home, 'project');
    const below = join(project, 'flows');
    await mkdir(join(project, '.metaflow'), { recursive: true });
    await mkdir(below, { recursive: true });
    await writeFile(join(project, '.metaflow', 'config.json'), JSON.stringify({ METAFLOW_DEFAULT_DECOSPECS: 'kubernetes:gpu=1' }));
    try {
      expect(remoteSteps(envs, ['run'], none(), below)).toEqual({ steps: ['start', 'train'], reason: 'default-decospecs', decorator: 'kubernetes' });
      // train's own @kubernetes wins over the spec's, so only start gets its GPU.
      expect(commandLineGpuSteps(envs, remoteSteps(envs, ['run'], none(), below), ['run'], none(), below)).toEqual(['start']);
      expect(commandLineGpuSteps(envs, remoteSteps(envs, ['run'], none(), home), ['run'], none(), home)).toEqual([]);
      expect(commandLineDecospecs(['run'], none(), below)).toEqual([expect.objectContaining({ name: 'kubernetes', source: `METAFLOW_DEFAULT_DECOSPECS in ${join(project, '.metaflow', 'config.json')} (kubernetes:gpu=1)` })]);
      // From another directory (here, the test's own), the project's file is not seen.
      expect(remoteSteps(envs, ['run'], none(), home).reason).toBe('static');
      expect(process.cwd()).not.toContain(project);
      expect(remoteSteps(envs, ['run'], none()).reason).toBe('static');
    } finally {
      await rm(project, { recursive: true, force: true });
    }
  });

  it('refuses a step that would get both @kubernetes and @batch, as Metaflow refuses it, naming where each came from', async () => {
    const refusal = (flow: FlowEnvs, args: string[], env: Record<string, string>): InputError => {
      try {
        remoteSteps(flow, args, env);
      } catch (error) {
        return error as InputError;
      }
      throw new Error(`not refused: ${args.join(' ')}`);
    };
    const own = refusal(envs, ['run', '--with', 'batch'], none());
    expect(own).toBeInstanceOf(InputError);
    expect(own.message).toBe("flow.py:12: step 'train' has @kubernetes, and --with batch gives it @batch too, which Metaflow refuses (\"Step *train* is marked for execution both on AWS Batch and Kubernetes\").");
    expect(own.hint).toBe('Run each step on one of them: remove @kubernetes from the step, or leave out --with batch.');
    const file = join(home, 'config.json');
    const both = await withConfig({ METAFLOW_DEFAULT_DECOSPECS: 'kubernetes' }, () => refusal(flowOf([step('start', null)]), ['run', '--with', 'batch'], none()));
    expect(both.message).toBe(`flow.py:1: step 'start' gets @batch from --with batch, and METAFLOW_DEFAULT_DECOSPECS in ${file} (kubernetes) gives it @kubernetes too, which Metaflow refuses ("Step *start* is marked for execution both on AWS Batch and Kubernetes").`);
    expect(both.hint).toBe(`Run each step on one of them: leave out METAFLOW_DEFAULT_DECOSPECS in ${file} (kubernetes) or --with batch.`);
    // Metaflow prints a --help without initialising the decorators.
    expect(remoteSteps(envs, ['run', '--with', 'batch', '--help'], none()).decorator).toBe('batch');
  });

  it('takes every enabled step for the schedulers that make every step remote', () => {
    expect(remoteSteps(envs, ['argo-workflows', 'create', '--only-json'], none())).toEqual({ steps: ['start', 'train'], reason: 'scheduler', decorator: 'kubernetes' });
    expect(remoteSteps(envs, ['--no-pylint', '--datastore', 's3', 'step-functions', 'create'], none()).decorator).toBe('batch');
    expect(remoteSteps(envs, ['airflow', 'create', 'out.py'], none()).steps).toEqual(['start', 'train']);
  });
});

describe('startsRemoteSteps', () => {
  it('run, resume and the schedulers\' create start (or compile) remote steps, after any top-level option', () => {
    for (const args of [['run'], ['--with', 'kubernetes', 'run', '--max-workers', '2'], ['resume', 'train'], ['argo-workflows', 'create', '--only-json'], ['argo-workflows', '--name', 'x', 'create'], ['step-functions', 'create'], ['airflow', 'create', 'out.py'], ['--datastore=s3', 'package', 'list']]) {
      expect({ args, starts: startsRemoteSteps(args) }).toEqual({ args, starts: true });
    }
  });

  it('Metaflow 2.19 commands that start no task do not: check (also no command), show, help, dump, version, output-raw/-dot, spin, card, tag, logs, and the schedulers\' other subcommands; --help anywhere', () => {
    for (const args of [[], ['--quiet'], ['check'], ['show'], ['help'], ['--metadata', 'local', 'dump', 'HelloFlow/1'], ['version'], ['output-raw'], ['output-dot'], ['spin', 'train'], ['card', 'view', 'start'], ['tag', 'list'], ['logs', '1/start'], ['spot-metadata', 'x'], ['argo-workflows', 'trigger'], ['argo-workflows', '--name', 'x', 'delete'], ['step-functions', 'list-runs'], ['airflow', '--help'], ['run', '--help'], ['--help']]) {
      expect({ args, starts: startsRemoteSteps(args) }).toEqual({ args, starts: false });
    }
  });

  it('a command it does not know (another extension\'s) is taken to start remote steps, and so is one after --', () => {
    expect(startsRemoteSteps(['my-scheduler', 'create'])).toBe(true);
    expect(startsRemoteSteps(['run', '--', '--help'])).toBe(true);
  });
});

describe('command line helpers', () => {
  it('finds the Metaflow command after top-level options and their values', () => {
    expect(metaflowCommand(['--no-pylint', '--with', 'kubernetes', '--datastore=s3', '--metadata', 'local', 'run', '--max-workers', '2'])).toBe('run');
    expect(metaflowCommand(['--config', 'cfg', 'cfg.json', 'argo-workflows', 'create'])).toBe('argo-workflows');
    expect(metaflowCommand(['--quiet'])).toBeUndefined();
  });

  it("collects the decospecs in Metaflow's order: run/resume's own --with, METAFLOW_DEFAULT_DECOSPECS, the top-level --with; else the top-level first", () => {
    const env = none({ METAFLOW_DEFAULT_DECOSPECS: 'retry  kubernetes:cpu=3' });
    const sources = (args: string[]) => commandLineDecospecs(args, env).map((spec) => spec.source);
    expect(sources(['--with', 'a', 'run', '--with=b:x=1', '--', '--with', 'c'])).toEqual([
      '--with b:x=1', 'METAFLOW_DEFAULT_DECOSPECS (retry)', 'METAFLOW_DEFAULT_DECOSPECS (kubernetes:cpu=3)', '--with a',
    ]);
    expect(sources(['--with', 'a', 'resume', '--with', 'b'])).toEqual(['--with b', 'METAFLOW_DEFAULT_DECOSPECS (retry)', 'METAFLOW_DEFAULT_DECOSPECS (kubernetes:cpu=3)', '--with a']);
    expect(sources(['--with', 'a', '--datastore', 's3', 'argo-workflows', 'create'])).toEqual(['--with a', 'METAFLOW_DEFAULT_DECOSPECS (retry)', 'METAFLOW_DEFAULT_DECOSPECS (kubernetes:cpu=3)']);
    expect(commandLineDecospecs(['run', '--with', 'kubernetes:cpu=2'], env).map((spec) => [spec.name, spec.attributes, spec.from])).toEqual([
      ['kubernetes', { cpu: 2 }, 'with'], ['retry', {}, 'default'], ['kubernetes', { cpu: 3 }, 'default'],
    ]);
  });

  it('refuses a @kubernetes attribute Metaflow does not know before anything is built, naming where the spec came from', () => {
    expect(() => commandLineDecospecs(['run'], none({ METAFLOW_DEFAULT_DECOSPECS: 'kubernetes:zone=a' }))).toThrow("METAFLOW_DEFAULT_DECOSPECS (kubernetes:zone=a): Metaflow's @kubernetes does not support the attribute 'zone'.");
  });

  it('adds --environment=prebuilt in front unless the user chose an environment', () => {
    expect(metaflowArgs(['run', '--with', 'kubernetes'])).toEqual(['--environment=prebuilt', 'run', '--with', 'kubernetes']);
    expect(metaflowArgs(['--environment', 'conda', 'run'])).toEqual(['--environment', 'conda', 'run']);
    expect(metaflowArgs(['--environment=prebuilt', 'run'])).toEqual(['--environment=prebuilt', 'run']);
    expect(givenEnvironment(['--environment', 'pypi', 'run'])).toBe('pypi');
    expect(givenEnvironment(['run'])).toBeUndefined();
  });

  it("finds the top-level --datastore in either spelling, the last one as click takes it, never the command's own words or after --", () => {
    expect(givenDatastore(['--datastore', 's3', 'run', '--with', 'kubernetes'])).toBe('s3');
    expect(givenDatastore(['--metadata', 'local', '--datastore=gs', 'argo-workflows', 'create'])).toBe('gs');
    expect(givenDatastore(['--datastore', 's3', '--datastore=azure', 'run'])).toBe('azure');
    expect(givenDatastore(['--datastore=', 'run'])).toBe('');
    expect(givenDatastore(['run', '--datastore', 's3'])).toBeUndefined();
    expect(givenDatastore(['--with', '--datastore', 'run'])).toBeUndefined();
    expect(givenDatastore(['--metadata', '--datastore=gs', '--datastore', 'azure', 'run'])).toBe('azure');
    expect(givenDatastore(['--config', 'a', '--datastore=gs', 'run'])).toBeUndefined();
    expect(givenDatastore(['run'])).toBeUndefined();
  });
});

describe('checkRemoteFlowFileName', () => {
  it('takes a name Metaflow can write unquoted into a task command, in any directory', () => {
    for (const file of ['flow.py', 'sub dir/my_flow-2.py', 'flöw.v2+x@y%z,a:b=c.py', '/a b/(c)/flow.py']) expect(() => checkRemoteFlowFileName(file)).not.toThrow();
  });

  it('refuses a space, a shell character or a leading -, naming it and a name that works', () => {
    const cases: [string, RegExp, string][] = [
      ['sub dir/my flow.py', /"my flow\.py" remotely.*\(python my flow\.py … step …\), where a space breaks it/, 'my_flow.py'],
      ["it's.py", /where ''' breaks it/, 'it_s.py'],
      ['flow(1).py', /where '\(' breaks it/, 'flow_1_.py'],
      ['$HOME.py', /where '\$' breaks it/, '_HOME.py'],
      ['-x.py', /where a leading - breaks it/, 'x.py'],
      ['a\tb.py', /where '\\t' breaks it/, 'a_b.py'],
    ];
    for (const [file, message, suggestion] of cases) {
      let error: unknown;
      try {
        checkRemoteFlowFileName(file);
      } catch (caught) {
        error = caught;
      }
      expect(error, file).toBeInstanceOf(InputError);
      expect((error as InputError).message, file).toMatch(message);
      expect((error as InputError).hint, file).toContain(`for example ${suggestion}`);
    }
  });
});

describe('commandLineGpuSteps', () => {
  const source = {
    file: 'flow.py',
    steps: [
      { name: 'start', line: 1, imports: [] },
      { name: 'train', line: 2, imports: [], remote: { name: 'kubernetes', line: 2, gpu: null, image: { kind: 'absent' } } },
      { name: 'tune', line: 3, imports: [], resources: { line: 3, gpu: 1 } },
      { name: 'end', line: 4, imports: [], resources: { line: 4, gpu: 0 } },
    ],
  };
  const flow = {
    flow: 'GpuFlow',
    file: 'flow.py',
    steps: ['start', 'train', 'tune', 'end'].map((name) => step(name, name === 'train' ? 'kubernetes' : null)),
    source,
  } as unknown as FlowEnvs;
  const gpus = (args: string[], env: Record<string, string> = none(), on: FlowEnvs = flow) => commandLineGpuSteps(on, remoteSteps(on, args, env), args, env);
  // The flow without train's @kubernetes, for --with batch (Metaflow refuses a step on both).
  const noKubernetes = { ...flow, steps: flow.steps.filter((s) => s.step !== 'train'), source: { ...source, steps: source.steps.filter((s) => s.name !== 'train') } } as unknown as FlowEnvs;

  it('the steps --with kubernetes|batch:gpu=N gives GPUs: those without a static decorator of that name or a @resources gpu of their own', () => {
    expect(gpus(['--with', 'kubernetes:gpu=1,cpu=2', 'run'])).toEqual(['start']);
    // end's @resources(gpu=0) wins over @kubernetes' gpu, not over @batch's (the larger of the two).
    expect(gpus(['--with=batch:gpu=2', 'run'], none(), noKubernetes)).toEqual(['start', 'end']);
    expect(gpus(['argo-workflows', 'create'], none({ METAFLOW_DEFAULT_DECOSPECS: 'kubernetes:gpu=1' }))).toEqual(['start']);
  });

  it("the first spec of a name in Metaflow's order wins: run's own --with before the defaults before the top-level --with", async () => {
    expect(gpus(['--with', 'kubernetes:gpu=1', 'run', '--with', 'kubernetes'])).toEqual([]);
    expect(gpus(['--with', 'kubernetes', 'run', '--with', 'kubernetes:gpu=1'])).toEqual(['start']);
    expect(gpus(['--with', 'kubernetes:gpu=1', 'run'], none({ METAFLOW_DEFAULT_DECOSPECS: 'kubernetes' }))).toEqual([]);
    // The configuration file's defaults count as the environment's do.
    expect(await withConfig({ METAFLOW_DEFAULT_DECOSPECS: 'kubernetes:gpu=1' }, () => gpus(['run']))).toEqual(['start']);
  });

  it('--with resources:gpu=N: every remote step without a @resources of its own', () => {
    expect(gpus(['--with', 'resources:gpu=2', 'argo-workflows', 'create'])).toEqual(['start', 'train']);
    // A plain run: only the static @kubernetes step runs remotely.
    expect(gpus(['--with', 'resources:gpu=2', 'run'])).toEqual(['train']);
  });

  it('none without a gpu above 0 on the command line (tune asks in the file: not listed)', () => {
    expect(gpus(['argo-workflows', 'create'])).toEqual([]);
    expect(gpus(['--with', 'kubernetes:cpu=4', 'run'])).toEqual([]);
    expect(gpus(['--with', 'kubernetes:gpu=0', 'run'])).toEqual([]);
    expect(gpus(['--with', 'retry', 'run'])).toEqual([]);
  });

  it("reads the specs as Metaflow does (parseDecospec): a quoted count, a JSON value with commas; one it cannot read is exit 2 naming where it came from", () => {
    expect(gpus(['--with', 'kubernetes:tolerations=[{"key": "gpu", "operator": "Exists"}],gpu="2"', 'run'])).toEqual(['start']);
    expect(() => gpus(['argo-workflows', 'create'], none({ METAFLOW_DEFAULT_DECOSPECS: 'kubernetes:gpu' }))).toThrow("METAFLOW_DEFAULT_DECOSPECS kubernetes:gpu: 'gpu' is not an attribute=value, so Metaflow cannot read the spec.");
  });
});
