// The project's proof that tasks run: a flow start → foreach (3) → join → end, every step
// @kubernetes with its own env (@conda and @pypi), built by `prebuilt run … argo-workflows create
// --only-json` with the `docker` and the `oci` build services, then EXECUTED: the FAKE Argo
// controller (test/support/fake-argo-controller.ts) runs the compiled WorkflowTemplate with one
// `docker run --network host` per task, against the S3 fake (s3rver) as Metaflow's datastore. Real
// Metaflow (the vendored source), real boto3 in the images (Debian's, repackaged by the fixtures).
// The same flow (without @kubernetes) through `step-functions create --only-json`, run by the FAKE
// Step Functions / Batch executor (test/support/fake-step-functions.ts), the foreach's state in the
// FAKE DynamoDB (test/support/fake-dynamodb.ts); it reuses the images the docker case built.
// The docker case runs again on Docker with the containerd image store (Docker Engine 29's default):
// the docker service builds and pushes there, and the tasks pull and run there.
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startFakeS3, type FakeS3 } from '../../packages/fixtures/dist/index.js';
import { describeOrFailInCi, getServices, missingFor } from '../services.js';
import { runArgoWorkflow, type ArgoRunResult, type TaskRecord, type WorkflowTemplate } from '../support/fake-argo-controller.js';
import { SITECUSTOMIZE, startAwsFake, startRefusingProxy, type AwsFake } from '../support/fake-aws-deploy.js';
import { startFakeDynamoDb, type FakeDynamoDb } from '../support/fake-dynamodb.js';
import { runStateMachine, type StateMachine } from '../support/fake-step-functions.js';
import { dockerTaskRunner, type TaskRunner } from '../support/task-containers.js';
import { cliEnv, metaflowSource, run, runCli, specJson, startFixtures, stopFixtures, uniqueNamespace, writeFlow, type Fixtures } from './harness.js';

const { source, missing: metaflowMissing } = metaflowSource();
const services = getServices();
const DIST_PACKAGES = '/usr/lib/python3/dist-packages';
const BUCKET = 'prebuilt-tasks';

// Each step reports what it sees as one line; the test parses the lines from the containers' output.
const FLOW = `import importlib.util
import json
import os
import shutil
import sys

from metaflow import FlowSpec, Parameter, conda, kubernetes, pypi, step

PROBED = ["tinynum", "tinyframe", "tinyurl", "tinyhttp", "boto3", "requests", "pip"]


def report(name, **extra):
    import boto3
    import requests

    line = {
        "step": name,
        "executable": sys.executable,
        "seen": sorted(m for m in PROBED if importlib.util.find_spec(m) is not None),
        "boto3": [boto3.__version__, boto3.__file__],
        "requests": requests.__version__,
        "micromamba": shutil.which("micromamba"),
        "skip_install": os.environ.get("METAFLOW_SKIP_INSTALL_DEPENDENCIES"),
    }
    line.update(extra)
    print("PREBUILT-TASK " + json.dumps(line), flush=True)


class TasksFlow(FlowSpec):
    fail_at = Parameter("fail_at", default=-1, type=int)

    @kubernetes
    @conda(packages={"tinynum": "1.4.0"})
    @step
    def start(self):
        import tinynum

        self.items = [1, 2, 3]
        report("start", sum=tinynum.add(1, 2))
        self.next(self.body, foreach="items")

    @kubernetes
    @pypi(packages={"tinyurl": "1.1.0"})
    @step
    def body(self):
        import tinyurl

        if self.input == self.fail_at:
            report("body", failing=self.input)
            os._exit(17)
        self.square = self.input * self.input
        self.url = tinyurl.join("item", str(self.input))
        report("body", square=self.square)
        self.next(self.join)

    @kubernetes
    @conda(packages={"tinyframe": "0.9.1"})
    @step
    def join(self, inputs):
        import tinyframe

        self.squares = sorted(i.square for i in inputs)
        self.urls = sorted(i.url for i in inputs)
        self.mean = tinyframe.Frame(self.squares).mean()
        report("join", squares=self.squares)
        self.next(self.end)

    @kubernetes
    @pypi(packages={"tinyhttp": "0.3.0"})
    @step
    def end(self):
        import tinyhttp

        report("end", mean=self.mean, tinyhttp=tinyhttp.__version__)


if __name__ == "__main__":
    TasksFlow()
`;

/** What each step's env has (its packages and their dependencies), besides boto3 and requests. */
const OWN_PACKAGES: Record<string, string[]> = {
  start: ['tinynum'],
  body: ['tinyurl'],
  join: ['tinyframe', 'tinynum'],
  end: ['tinyhttp', 'tinyurl'],
};

// Reads the run back with Metaflow's client: the tasks ran with --metadata=local, so (as Metaflow's
// own CLI does after a remote task) their metadata is synced from the S3 datastore first.
const READ_RUN = `
import json, os, sys
import boto3
from metaflow import Run, namespace
from metaflow.datastore import FlowDataStore
from metaflow.metadata_provider.util import sync_local_metadata_from_datastore
from metaflow.plugins.datastores.s3_storage import S3Storage
from metaflow.metaflow_config import DATASTORE_LOCAL_DIR

flow, run_id, bucket = sys.argv[1], sys.argv[2], sys.argv[3]
s3 = boto3.client("s3", endpoint_url=os.environ["METAFLOW_S3_ENDPOINT_URL"])
prefix = "metaflow/%s/%s/" % (flow, run_id)
tasks = set()
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
    for item in page.get("Contents", []):
        parts = item["Key"][len(prefix):].split("/")
        if len(parts) >= 3 and not parts[0].startswith("_"):
            tasks.add((parts[0], parts[1]))
store = FlowDataStore(flow, None, storage_impl=S3Storage, ds_root="s3://%s/metaflow" % bucket)
for step_name, task_id in sorted(tasks):
    sync_local_metadata_from_datastore(DATASTORE_LOCAL_DIR, store.get_task_datastore(run_id, step_name, task_id))
namespace(None)
run = Run("%s/%s" % (flow, run_id))
out = {
    "successful": run.successful,
    "steps": sorted(s.id for s in run),
    "body_tasks": len(list(run["body"])),
    "squares": run["join"].task.data.squares,
    "urls": run["join"].task.data.urls,
    "mean": run["end"].task.data.mean,
    "items": run["start"].task.data.items,
}
print(json.dumps(out))
`;

/** The run as Metaflow's client reads it back. */
const EXPECTED_RUN = {
  successful: true,
  steps: ['body', 'end', 'join', 'start'],
  body_tasks: 3,
  squares: [1, 4, 9],
  urls: ['item/1', 'item/2', 'item/3'],
  mean: 14 / 3,
  items: [1, 2, 3],
};

// Shapes users write beside the main flow's: a flow in a subfolder importing a module of its own
// (its code package carries it), @pypi_base with a step overriding it and steps taking it as it is
// (one image for four steps), branch → join, and @catch / @retry / @timeout beside the envs, the
// caught step raising. No @kubernetes: Argo Workflows makes every step remote.
const SHAPES_HELPERS = `import importlib.util
import json
import sys


def report(name, **extra):
    import boto3

    line = {
        "step": name,
        "executable": sys.executable,
        "seen": sorted(m for m in ["tinyurl", "tinyhttp"] if importlib.util.find_spec(m) is not None),
        "boto3": boto3.__file__,
    }
    line.update(extra)
    print("PREBUILT-TASK " + json.dumps(line), flush=True)
`;

const SHAPES_FLOW = `from metaflow import FlowSpec, catch, pypi, pypi_base, retry, step, timeout

import helpers


@pypi_base(packages={"tinyurl": ">=1.0,!=1.0.5"})
class ShapesFlow(FlowSpec):
    @retry(times=0)
    @timeout(seconds=300)
    @step
    def start(self):
        import tinyurl

        helpers.report("start", url=tinyurl.join("a", "b"))
        self.next(self.left, self.right)

    @catch(var="failure")
    @step
    def left(self):
        helpers.report("left")
        raise ValueError("left fails on purpose")
        self.next(self.join)

    @pypi(packages={"tinyhttp": "~=0.3.0"})
    @step
    def right(self):
        import tinyhttp

        helpers.report("right", tinyhttp=tinyhttp.__version__)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.caught = str(inputs.left.failure)
        helpers.report("join", caught=self.caught)
        self.next(self.end)

    @step
    def end(self):
        helpers.report("end")


if __name__ == "__main__":
    ShapesFlow()
`;

// A base flow kept in a package of the flow's directory (shared @pypi_base, start and end; the
// shapes flow's helpers beside it, imported relatively), the flow adding one step: Metaflow's code package carries teamlib/ to the tasks, which import it from
// their working directory, not from the image. The envs are the shapes flow's (its namespace: no build).
const TEAM_BASE = `from metaflow import FlowSpec, pypi_base, step

from .helpers import report


@pypi_base(packages={"tinyurl": ">=1.0,!=1.0.5"})
class TeamFlow(FlowSpec):
    @step
    def start(self):
        import tinyurl

        report("start", url=tinyurl.join("team", "start"), module=__file__)
        self.next(self.middle)

    @step
    def end(self):
        report("end", tinyhttp=self.http_version, module=__file__)
`;

const TEAM_FLOW = `from metaflow import pypi, step

from teamlib.base import TeamFlow
from teamlib.helpers import report


class TeamTrainFlow(TeamFlow):
    @pypi(packages={"tinyhttp": "~=0.3.0"})
    @step
    def middle(self):
        import tinyhttp

        self.http_version = tinyhttp.__version__
        report("middle", tinyhttp=self.http_version)
        self.next(self.end)


if __name__ == "__main__":
    TeamTrainFlow()
`;

interface StepReport {
  step: string;
  executable: string;
  seen: string[];
  boto3: [string, string];
  requests: string;
  micromamba: string | null;
  skip_install: string | null;
  [key: string]: unknown;
}

interface ImageMapJson {
  flow: string;
  images: Record<string, { image: string; digest: string; pinnedImage: string; python: string }>;
  steps: Record<string, { envId: string | null; image: string; pinnedImage?: string; python: string }>;
}

function reports(task: Pick<TaskRecord, 'stdout' | 'stderr'>): StepReport[] {
  return (task.stdout + task.stderr)
    .split('\n')
    .filter((line) => line.includes('PREBUILT-TASK '))
    .map((line) => JSON.parse(line.slice(line.indexOf('PREBUILT-TASK ') + 'PREBUILT-TASK '.length)) as StepReport);
}


/**
 * The run succeeded, and every task of a step in `map` ran in the step's image (pinned) with its
 * env's interpreter and boto3, printed one report and installed nothing at start; the reports by step.
 */
function succeededReports(result: ArgoRunResult, map: ImageMapJson): Record<string, StepReport> {
  const failed = result.tasks.filter((t) => t.exitCode !== 0);
  expect(failed.map((t) => `${t.name}: exit ${t.exitCode}\n${t.stderr.slice(-3000)}`)).toEqual([]);
  expect(result.status).toBe('Succeeded');
  const seen: Record<string, StepReport> = {};
  for (const task of result.tasks.filter((t) => t.template in map.steps)) {
    const entry = map.steps[task.template]!;
    expect(task.image, task.template).toBe(entry.pinnedImage);
    const lines = reports(task);
    expect(lines, `${task.name}:\n${task.stdout}\n${task.stderr}`).toHaveLength(1);
    seen[task.template] = lines[0]!;
    expect(lines[0]!.executable, task.template).toBe(entry.python);
    expect(lines[0]!.boto3, task.template).toMatch(/^\/opt\/prebuilt\/env\/lib\/python3\.\d+\/site-packages\/boto3\//);
    const log = (task.stdout + task.stderr).split('\n').filter((line) => !line.includes('PREBUILT-TASK '));
    expect(log.filter((line) => /pip install|micromamba|Bootstrapping|Installing/i.test(line)), task.template).toEqual([]);
  }
  return seen;
}

// The system's Docker daemon (graphdriver): every case. Docker 26 with the containerd image store
// (the default of Docker Engine 29): the docker build service's case only, the one where that daemon
// both builds and runs (all four cases would double the file's time).
const daemons = [
  { name: 'Docker', host: services.dockerHost, cases: 'all', missing: missingFor(['docker', 'registries', 'baseImage'], services) },
  { name: 'Docker with the containerd image store', host: services.containerdStoreDocker?.host, cases: 'docker build service', missing: missingFor(['containerdStoreDocker', 'registries', 'baseImage'], services) },
] as const;

for (const daemon of daemons) {
  const missing = metaflowMissing ?? daemon.missing;
  describeOrFailInCi(`tasks run in their images: fake Argo controller, ${daemon.name}, S3 fake, real Metaflow`, missing, () => tasksRunSuite(daemon.host!, daemon.cases));
}

/** The suite on the daemon at `dockerHost`: the docker build service's case, then (`all`) the others. */
function tasksRunSuite(dockerHost: string, cases: 'all' | 'docker build service'): void {
  let fixtures: Fixtures;
  let s3: FakeS3;
  let flowDir: string;
  let workDir: string;
  let env: NodeJS.ProcessEnv;
  const runner: TaskRunner = dockerTaskRunner({ dockerHost });
  // What a cluster gives every pod (IRSA / a secret in real life): credentials for the S3 fake.
  const podEnv = { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_DEFAULT_REGION: 'us-east-1' };
  const compiled: Record<string, { workflow: WorkflowTemplate; map: ImageMapJson }> = {};
  let aws: AwsFake | undefined;
  let dynamo: FakeDynamoDb | undefined;
  let sfnMap: ImageMapJson | undefined;
  let proxy: Awaited<ReturnType<typeof startRefusingProxy>> | undefined;

  beforeAll(async () => {
    fixtures = await startFixtures(undefined, { realBoto3: true });
    s3 = await startFakeS3(BUCKET);
    flowDir = join(fixtures.dir, 'flow');
    workDir = await mkdtemp(join(tmpdir(), 'prebuilt-tasks-run-'));
    await writeFlow(flowDir, 'tasks_flow.py', FLOW);
    env = cliEnv(fixtures, services, uniqueNamespace('tasks'), {
      PYTHONPATH: [source!, DIST_PACKAGES].join(delimiter),
      USERNAME: 'prebuilt-test',
      PYTHONDONTWRITEBYTECODE: '1',
      METAFLOW_DEFAULT_METADATA: 'local',
      METAFLOW_DATASTORE_SYSROOT_LOCAL: join(fixtures.dir, 'local'),
      METAFLOW_DEFAULT_DATASTORE: 's3',
      METAFLOW_DATASTORE_SYSROOT_S3: `s3://${BUCKET}/metaflow`,
      METAFLOW_S3_ENDPOINT_URL: s3.endpoint,
      METAFLOW_KUBERNETES_NAMESPACE: 'default',
      DOCKER_HOST: dockerHost,
      ...podEnv,
    });
    for (const key of ['METAFLOW_PREBUILT_IMAGE_MAP', 'PREBUILT_CLI', 'METAFLOW_DEFAULT_DECOSPECS']) delete env[key];
  }, 900_000);
  afterAll(async () => {
    // The images the tasks pulled into the daemon (unique namespaces: only this file's).
    const pulled = [...Object.values(compiled).map((c) => c.map), ...(sfnMap ? [sfnMap] : [])].flatMap((images) => Object.values(images.images).map((image) => `${image.image.slice(0, image.image.lastIndexOf(':'))}@${image.digest}`));
    if (pulled.length > 0) await run('docker', ['rmi', '--force', ...new Set(pulled)], { ...process.env, DOCKER_HOST: dockerHost });
    await s3?.stop();
    await aws?.close();
    await dynamo?.stop();
    await proxy?.close();
    await stopFixtures(fixtures);
    if (workDir) await rm(workDir, { recursive: true, force: true });
  });

  /** `prebuilt run tasks_flow.py argo-workflows create --only-json` with a build service; the spec and the image map. */
  async function compile(service: 'docker' | 'oci'): Promise<{ workflow: WorkflowTemplate; map: ImageMapJson }> {
    if (compiled[service]) return compiled[service]!;
    const stateFile = join(fixtures.dir, `images-${service}.json`);
    const result = await runCli(['run', 'tasks_flow.py', '--no-pylint', 'argo-workflows', 'create', '--only-json'], {
      env: { ...env, METAFLOW_PREBUILT_BUILD_SERVICE: service, METAFLOW_PREBUILT_STATE_FILE: stateFile, METAFLOW_PREBUILT_IMAGE_NAMESPACE: `${env['METAFLOW_PREBUILT_IMAGE_NAMESPACE']}-${service}` },
      cwd: flowDir,
      timeoutMs: 900_000,
    });
    expect(result.code, result.stderr).toBe(0);
    const map = JSON.parse(await readFile(stateFile, 'utf8')) as ImageMapJson;
    compiled[service] = { workflow: specJson<WorkflowTemplate>(result.stdout), map };
    return compiled[service]!;
  }

  async function execute(workflow: WorkflowTemplate, label: string, parameters?: Record<string, string>): Promise<ArgoRunResult> {
    const dir = join(workDir, label);
    await mkdir(dir, { recursive: true });
    return runArgoWorkflow(workflow, { runner, workDir: dir, podEnv, ...(parameters ? { parameters } : {}) });
  }

  async function readRun(runId: string): Promise<Record<string, unknown>> {
    const script = join(workDir, 'read_run.py');
    await writeFile(script, READ_RUN);
    const result = await run('python3', [script, 'TasksFlow', runId, BUCKET], {
      ...env,
      METAFLOW_DATASTORE_SYSROOT_LOCAL: join(workDir, `client-${runId}`),
    });
    expect(result.code, result.stderr).toBe(0);
    return JSON.parse(result.stdout.trim().split('\n').pop()!) as Record<string, unknown>;
  }

  function checkRun(result: ArgoRunResult, map: ImageMapJson): void {
    const failed = result.tasks.filter((t) => t.exitCode !== 0);
    expect(failed.map((t) => `${t.name}: exit ${t.exitCode}\n${t.stderr.slice(-3000)}`)).toEqual([]);
    expect(result.status).toBe('Succeeded');
    checkTasks(result.tasks.map((task) => ({ ...task, step: task.template })), map);
  }

  /** Every task ran in its step's image (pinned, the pulled digest the map's), saw only its env, installed nothing. */
  function checkTasks(tasks: Array<Pick<TaskRecord, 'name' | 'image' | 'repoDigests' | 'stdout' | 'stderr'> & { step: string }>, map: ImageMapJson): void {
    const byStep = new Map<string, StepReport[]>();
    for (const task of tasks) {
      const step = task.step;
      const entry = map.steps[step]!;
      // Its own image, pinned by digest, and the digest Docker pulled is the image map's.
      expect(task.image, step).toBe(entry.pinnedImage);
      const digest = map.images[entry.envId!]!.digest;
      expect(task.repoDigests, step).toContain(`${entry.image.slice(0, entry.image.lastIndexOf(':'))}@${digest}`);
      const seen = reports(task);
      expect(seen, `${task.name} printed one report:\n${task.stdout}\n${task.stderr}`).toHaveLength(1);
      byStep.set(step, [...(byStep.get(step) ?? []), ...seen]);
      // Nothing was installed at task start: no pip, no micromamba, the bootstrap was skipped.
      const log = (task.stdout + task.stderr).split('\n').filter((line) => !line.includes('PREBUILT-TASK '));
      expect(log.filter((line) => /pip install|micromamba|Bootstrapping|Installing/i.test(line))).toEqual([]);
    }
    expect([...byStep.keys()].sort()).toEqual(['body', 'end', 'join', 'start']);
    expect(byStep.get('body')).toHaveLength(3);
    expect(new Set(Object.values(map.steps).map((s) => s.image)).size).toBe(4);
    for (const [step, list] of byStep) {
      for (const report of list) {
        expect(report.executable, step).toBe(map.steps[step]!.python);
        expect(report.seen, step).toEqual([...OWN_PACKAGES[step]!, 'boto3', 'requests'].sort());
        expect(report.boto3[1], step).toMatch(/^\/opt\/prebuilt\/env\/lib\/python3\.\d+\/site-packages\/boto3\//);
        expect(report.micromamba, step).toBeNull();
        expect(report.skip_install, step).toBe('1');
      }
    }
    expect(byStep.get('join')![0]!['squares']).toEqual([1, 4, 9]);
    expect(byStep.get('end')![0]!['mean']).toBeCloseTo(14 / 3);
  }

  it('docker build service: every task of start → foreach(3) → join → end exits 0 in its own image; artifacts read back from S3 with Metaflow’s client', async () => {
    const { workflow, map } = await compile('docker');
    const result = await execute(workflow, 'docker');
    checkRun(result, map);
    expect(result.exitHandler).toEqual([]);
    const data = await readRun(`argo-${result.name}`);
    expect(data).toEqual(EXPECTED_RUN);
  }, 900_000);

  if (cases === 'docker build service') return;

  it('oci build service: the same flow runs from the images the daemonless service built', async () => {
    const { workflow, map } = await compile('oci');
    const docker = await compile('docker');
    // The same envs, built by another service into another namespace.
    expect(Object.keys(map.images).sort()).toEqual(Object.keys(docker.map.images).sort());
    const result = await execute(workflow, 'oci');
    checkRun(result, map);
  }, 900_000);

  it('flow shapes: a flow in a subfolder importing its own module, @pypi_base overridden by one step (2 images for 5 steps), branch → join, @catch / @retry / @timeout beside the envs; every task exits 0 in its image', async () => {
    const shapesDir = join(fixtures.dir, 'flows', 'shapes');
    await writeFlow(shapesDir, 'helpers.py', SHAPES_HELPERS);
    await writeFlow(shapesDir, 'shapes_flow.py', SHAPES_FLOW);
    const stateFile = join(fixtures.dir, 'images-shapes.json');
    const compiledShapes = await runCli(['run', join('flows', 'shapes', 'shapes_flow.py'), '--no-pylint', 'argo-workflows', 'create', '--only-json'], {
      env: { ...env, METAFLOW_PREBUILT_BUILD_SERVICE: 'docker', METAFLOW_PREBUILT_STATE_FILE: stateFile, METAFLOW_PREBUILT_IMAGE_NAMESPACE: `${env['METAFLOW_PREBUILT_IMAGE_NAMESPACE']}-shapes` },
      cwd: fixtures.dir,
      timeoutMs: 900_000,
    });
    expect(compiledShapes.code, compiledShapes.stderr).toBe(0);
    const map = JSON.parse(await readFile(stateFile, 'utf8')) as ImageMapJson;
    compiled['shapes'] = { workflow: specJson<WorkflowTemplate>(compiledShapes.stdout), map };
    expect(Object.keys(map.images)).toHaveLength(2);
    const shared = map.steps['start']!.envId;
    expect(['left', 'join', 'end'].map((step) => map.steps[step]!.envId)).toEqual([shared, shared, shared]);
    expect(map.steps['right']!.envId).not.toBe(shared);
    const seen = succeededReports(await execute(compiled['shapes'].workflow, 'shapes'), map);
    expect(Object.keys(seen).sort()).toEqual(['end', 'join', 'left', 'right', 'start']);
    for (const step of ['start', 'left', 'join', 'end']) expect(seen[step]!.seen, step).toEqual(['tinyurl']);
    expect(seen['right']!.seen).toEqual(['tinyhttp', 'tinyurl']);
    expect(seen['start']!['url']).toBe('a/b');
    expect(seen['right']!['tinyhttp']).toBe('0.3.0');
    expect(seen['join']!['caught']).toContain('left fails on purpose');
  }, 900_000);

  it("a base flow in a package of the flow's directory (from teamlib.base import TeamFlow): the base's @pypi_base and steps, and the flow's own step, each run in its image, importing teamlib from the code package", async () => {
    const teamDir = join(fixtures.dir, 'flows', 'team');
    await writeFlow(join(teamDir, 'teamlib'), '__init__.py', '');
    await writeFlow(join(teamDir, 'teamlib'), 'helpers.py', SHAPES_HELPERS);
    await writeFlow(join(teamDir, 'teamlib'), 'base.py', TEAM_BASE);
    await writeFlow(teamDir, 'train_flow.py', TEAM_FLOW);
    const stateFile = join(fixtures.dir, 'images-team.json');
    const compiledTeam = await runCli(['run', join('flows', 'team', 'train_flow.py'), '--no-pylint', 'argo-workflows', 'create', '--only-json'], {
      env: { ...env, METAFLOW_PREBUILT_BUILD_SERVICE: 'docker', METAFLOW_PREBUILT_STATE_FILE: stateFile, METAFLOW_PREBUILT_IMAGE_NAMESPACE: `${env['METAFLOW_PREBUILT_IMAGE_NAMESPACE']}-shapes` },
      cwd: fixtures.dir,
      timeoutMs: 900_000,
    });
    expect(compiledTeam.code, compiledTeam.stderr).toBe(0);
    const map = JSON.parse(await readFile(stateFile, 'utf8')) as ImageMapJson;
    compiled['team'] = { workflow: specJson<WorkflowTemplate>(compiledTeam.stdout), map };
    expect(Object.keys(map.steps).sort()).toEqual(['end', 'middle', 'start']);
    expect(Object.keys(map.images)).toHaveLength(2);
    expect(map.steps['end']!.envId).toBe(map.steps['start']!.envId);
    expect(map.steps['middle']!.envId).not.toBe(map.steps['start']!.envId);
    const seen = succeededReports(await execute(compiled['team'].workflow, 'team'), map);
    expect(Object.keys(seen).sort()).toEqual(['end', 'middle', 'start']);
    expect(seen['start']!.seen).toEqual(['tinyurl']);
    expect(seen['end']!.seen).toEqual(['tinyurl']);
    expect(seen['middle']!.seen).toEqual(['tinyhttp', 'tinyurl']);
    expect(seen['start']!['url']).toBe('team/start');
    expect(seen['middle']!['tinyhttp']).toBe('0.3.0');
    expect(seen['end']!['tinyhttp']).toBe('0.3.0');
    // teamlib came with the code package, unpacked in the task's working directory: not from the image's env.
    for (const step of ['start', 'end']) {
      expect(seen[step]!['module'], step).toMatch(/\/teamlib\/base\.py$/);
      expect(seen[step]!['module'], step).not.toMatch(/^\/opt\/prebuilt\/env\//);
    }
  }, 900_000);

  it("a failing step: the workflow fails with the task's exit code and the exit handler runs", async () => {
    const { workflow } = await compile('docker');
    const result = await execute(workflow, 'failing', { fail_at: '2' });
    expect(result.status).toBe('Failed');
    const failed = result.tasks.filter((t) => t.phase === 'Failed');
    expect(failed.map((t) => [t.template, t.exitCode])).toEqual([['body', 17]]);
    expect(reports(failed[0]!)[0]!['failing']).toBe(2);
    expect(result.tasks.some((t) => t.template === 'join' || t.template === 'end')).toBe(false);
    expect(result.exitHandler.length).toBe(1);
    const hook = result.exitHandler[0]!;
    expect(hook.exitCode, hook.stderr).toBe(0);
    // Metaflow's error-capture hook found the failed task in the failures the controller passed.
    expect(hook.stdout).toContain('Error (exit code 17)');
  }, 900_000);

  it('step-functions create --only-json, run by the FAKE Step Functions / Batch executor and FAKE DynamoDB: every task of start → foreach(3) → join → end exits 0 in its own image; artifacts read back with Metaflow’s client', async () => {
    const started = Date.now();
    // @batch is what step-functions adds to every step; the flow keeps its envs (so its images).
    const sfnDir = join(fixtures.dir, 'flow-sfn');
    await writeFlow(sfnDir, 'tasks_flow.py', FLOW.replaceAll('    @kubernetes\n', ''));
    const site = join(workDir, 'site');
    await mkdir(site, { recursive: true });
    await writeFile(join(site, 'sitecustomize.py'), SITECUSTOMIZE);
    aws = await startAwsFake();
    dynamo = await startFakeDynamoDb('prebuilt-sfn-foreach');
    proxy = await startRefusingProxy();
    const stateFile = join(fixtures.dir, 'images-sfn.json');
    const compiledSfn = await runCli(['run', 'tasks_flow.py', '--no-pylint', 'step-functions', 'create', '--only-json'], {
      env: {
        ...env,
        PYTHONPATH: [site, source!, DIST_PACKAGES].join(delimiter),
        METAFLOW_PREBUILT_BUILD_SERVICE: 'docker',
        METAFLOW_PREBUILT_STATE_FILE: stateFile,
        // The docker case's namespace: the same envs, so its images (present, not rebuilt).
        METAFLOW_PREBUILT_IMAGE_NAMESPACE: `${env['METAFLOW_PREBUILT_IMAGE_NAMESPACE']}-docker`,
        PREBUILT_TEST_AWS_ENDPOINT: aws.endpoint,
        METAFLOW_SFN_IAM_ROLE: 'arn:aws:iam::123456789012:role/sfn',
        METAFLOW_ECS_S3_ACCESS_IAM_ROLE: 'arn:aws:iam::123456789012:role/ecs',
        METAFLOW_BATCH_JOB_QUEUE: 'q',
        METAFLOW_SFN_DYNAMO_DB_TABLE: dynamo.table,
      },
      cwd: sfnDir,
      timeoutMs: 900_000,
    });
    expect(compiledSfn.code, compiledSfn.stderr).toBe(0);
    sfnMap = JSON.parse(await readFile(stateFile, 'utf8')) as ImageMapJson;
    const machine = specJson<StateMachine>(compiledSfn.stdout);
    expect(Object.keys(machine.States).sort()).toEqual(['#body', '*body', 'end', 'join', 'start']);
    const compiledAt = Date.now();
    const result = await runStateMachine(machine, {
      // The site folder carries the sitecustomize that points the tasks' boto3 at the fake DynamoDB.
      runner: (task) => runner({ ...task, mounts: [{ host: site, container: '/prebuilt-test-site' }] }),
      jobDefinitions: aws.jobDefinitionsByArn,
      dynamoDb: dynamo,
      // What `step-functions trigger` passes: the flow's parameters as a JSON string.
      input: { Parameters: '{}' },
      jobEnv: {
        ...podEnv,
        PYTHONPATH: '/prebuilt-test-site',
        PREBUILT_TEST_DYNAMODB_ENDPOINT: dynamo.endpoint,
        // @batch asks the EC2 instance metadata service (best effort): kept on loopback, refused.
        HTTP_PROXY: proxy.url,
        http_proxy: proxy.url,
        NO_PROXY: '127.0.0.1,localhost',
        no_proxy: '127.0.0.1,localhost',
      },
    });
    const failed = result.jobs.filter((job) => job.exitCode !== 0);
    expect(failed.map((job) => `${job.name}: exit ${job.exitCode}\n${JSON.stringify(job.command)}\n${job.stdout.slice(-2000)}\n${job.stderr.slice(-3000)}`)).toEqual([]);
    expect(result.status, JSON.stringify(result.error)).toBe('SUCCEEDED');
    expect(result.jobs.map((job) => job.state)).toEqual(['start', 'body', 'body', 'body', 'join', 'end']);
    // The foreach's state went through the fake DynamoDB over the wire: cardinality, the three bodies, the join's read.
    expect(dynamo.calls).toEqual(['PutItem', 'UpdateItem', 'UpdateItem', 'UpdateItem', 'GetItem']);
    checkTasks(result.jobs.map((job) => ({ ...job, step: job.state })), sfnMap);
    // Nothing but the instance metadata service was asked through the proxy (the fakes are direct).
    expect(proxy.refused.filter((request) => !request.includes('169.254.169.254'))).toEqual([]);
    const data = await readRun(`sfn-${result.executionName}`);
    expect(data).toEqual(EXPECTED_RUN);
    console.log(`[tasks-run] step-functions case: compile ${((compiledAt - started) / 1000).toFixed(1)} s, execution ${((Date.now() - compiledAt) / 1000).toFixed(1)} s`);
  }, 900_000);
}
