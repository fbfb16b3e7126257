// End to end with real Metaflow: `prebuilt run` and the installed extension against a Metaflow
// source checkout (PREBUILT_TEST_METAFLOW_SOURCE), the example channel, the test Docker daemon and
// plain registry, an S3 fake (s3rver) as Metaflow's datastore, and a fake of the two AWS APIs
// `step-functions create` calls (Step Functions ListStateMachines; Batch job queues, compute
// environments, job definitions). All on 127.0.0.1.
//
// Stock Metaflow's local conda steps need micromamba, which cannot be fetched here, so the local
// run uses a flow whose steps need no environment (@conda_base(disabled=True)).
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeOrFailInCi, getServices, missingFor } from '../services.js';
import { SITECUSTOMIZE, startAwsFake, type AwsFake } from '../support/fake-aws-deploy.js';
import {
  ROOT,
  aarch64PythonStandIn,
  cliEnv,
  parseJson,
  pushMultiPlatformBase,
  run,
  runCli,
  startFixtures,
  stopFixtures,
  uniqueNamespace,
  writeFlow,
  metaflowSource,
  specJson,
  type Fixtures,
} from './harness.js';

const { source, missing: metaflowMissing } = metaflowSource();
const services = getServices();
const servicesMissing = missingFor(['docker', 'registries', 'baseImage'], services);
const deployMissing = metaflowMissing ?? servicesMissing;
// Debian's boto3, requests and kubernetes (python3-boto3 …) for an interpreter that lacks them.
const DIST_PACKAGES = '/usr/lib/python3/dist-packages';

const LOCAL_FLOW = `from metaflow import FlowSpec, conda_base, step


@conda_base(disabled=True)
class LocalFlow(FlowSpec):
    @step
    def start(self):
        print("local-start-ran")
        self.x = 41
        self.next(self.end)

    @step
    def end(self):
        print("local-end-ran", self.x + 1)
        if self.x != 41:
            raise ValueError("bad artifact")


if __name__ == "__main__":
    LocalFlow()
`;

// Stock CondaEnvironment asks micromamba for the platform even when no step has an env; this
// stand-in answers that one question (and refuses anything else), for the stock and prebuilt runs alike.
const MICROMAMBA_STUB = `#!/bin/sh
if [ "$1 $2 $3" = "config list -a" ]; then echo '{"platform": "linux-64"}'; exit 0; fi
echo "micromamba stub: $* is not available offline" >&2
exit 1
`;

const FAILING_FLOW = LOCAL_FLOW.replace('class LocalFlow', 'class FailingFlow').replace('LocalFlow()', 'FailingFlow()').replace('self.x = 41', 'self.x = 40');

// No static remote decorator: Argo Workflows / Step Functions make every step remote.
const DEPLOY_FLOW = `from metaflow import FlowSpec, conda, conda_base, step


@conda_base(python="3.11", packages={"tinynum": "1.4.0"})
class DeployFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.train)

    @conda(packages={"tinyframe": ""})
    @step
    def train(self):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    DeployFlow()
`;

function metaflowEnv(extra: Record<string, string | undefined> = {}): Record<string, string | undefined> {
  return {
    PYTHONPATH: [source!, DIST_PACKAGES].join(delimiter),
    USERNAME: 'prebuilt-test',
    METAFLOW_DEFAULT_METADATA: 'local',
    PYTHONDONTWRITEBYTECODE: '1',
    ...extra,
  };
}

describeOrFailInCi('prebuilt run, a flow whose steps all run locally (real Metaflow)', metaflowMissing, () => {
  let dir: string;
  beforeAll(async () => {
    dir = join(tmpdir(), `prebuilt-mf-local-${process.pid}-${Date.now()}`);
    await writeFlow(dir, 'local_flow.py', LOCAL_FLOW);
    await writeFlow(dir, 'failing_flow.py', FAILING_FLOW);
    await writeFile(join(dir, 'micromamba'), MICROMAMBA_STUB, { mode: 0o755 });
  });
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  // Neither the registry nor the build service is touched: nothing runs remotely.
  const env = (): NodeJS.ProcessEnv => {
    const base: NodeJS.ProcessEnv = {
      ...process.env,
      ...metaflowEnv({ METAFLOW_DATASTORE_SYSROOT_LOCAL: join(dir, '.metaflow'), METAFLOW_PATH_TO_MICROMAMBA: join(dir, 'micromamba') }),
    };
    for (const key of Object.keys(base)) if (/^METAFLOW_PREBUILT_/.test(key) || key === 'DEBUG') delete base[key];
    base.METAFLOW_PREBUILT_IMAGE_REGISTRY = 'no-such-registry-backend';
    return base;
  };

  it('behaves as stock Metaflow: same steps, same artifacts, exit 0; nothing is built', async () => {
    const stock = await run('python3', [join(dir, 'local_flow.py'), '--no-pylint', '--environment=conda', 'run'], env());
    expect(stock.code, stock.stderr).toBe(0);
    const prebuilt = await runCli(['run', 'local_flow.py', '--no-pylint', 'run'], { env: { ...env(), DEBUG: 'prebuilt:metaflow' }, cwd: dir, timeoutMs: 300_000 });
    expect(prebuilt.code, prebuilt.stderr).toBe(0);
    for (const result of [stock, prebuilt]) {
      const output = result.stdout + result.stderr;
      expect(output).toContain('local-start-ran');
      expect(output).toContain('local-end-ran 42');
      expect(output).toContain('Done!');
    }
    expect(prebuilt.stderr).toContain('LocalFlow: no step runs remotely; nothing to build.');
    // It ran as --environment=prebuilt, with the extension first on PYTHONPATH (the CLI's debug log).
    expect(prebuilt.stderr).toMatch(/running python3 \[ 'local_flow\.py', '--environment=prebuilt', '--no-pylint', 'run' \] \(PYTHONPATH=\S+packages\/metaflow\/python:/);
  }, 600_000);

  it("passes Metaflow's exit code back when a step fails", async () => {
    const stock = await run('python3', [join(dir, 'failing_flow.py'), '--no-pylint', '--environment=conda', 'run'], env());
    const prebuilt = await runCli(['run', 'failing_flow.py', '--no-pylint', 'run'], { env: env(), cwd: dir, timeoutMs: 300_000 });
    expect(stock.code).not.toBe(0);
    expect(stock.stdout + stock.stderr).toContain('bad artifact');
    expect(prebuilt.code).toBe(stock.code);
    expect(prebuilt.stdout + prebuilt.stderr).toContain('bad artifact');
    expect(prebuilt.stderr).toContain(`exited with code ${stock.code}`);
  }, 600_000);
  it('with the extension also installed in that Python (prebuilt metaflow install): runs with the installed copy; refuses another version with the fix; names the interpreter on exit', async () => {
    const venv = join(dir, 'venv');
    const made = await run('python3', ['-m', 'venv', '--without-pip', venv]);
    expect(made.code, made.stderr).toBe(0);
    const python = join(venv, 'bin', 'python');
    const runEnv = { ...env(), METAFLOW_PREBUILT_PYTHON: python };
    const installed = await runCli(['metaflow', 'install', '--python', python, '--json'], { env: runEnv, cwd: dir });
    expect(installed.code, installed.stderr).toBe(0);
    const target = parseJson<{ target: string }>(installed).target;
    try {
      // Before the fix Metaflow stopped here: "Conflicts in 'metaflow_extensions' files".
      const ok = await runCli(['run', 'local_flow.py', '--no-pylint', 'run'], { env: { ...runEnv, DEBUG: 'prebuilt:metaflow' }, cwd: dir, timeoutMs: 300_000 });
      expect(ok.code, ok.stderr).toBe(0);
      expect(ok.stdout + ok.stderr).toContain('local-end-ran 42');
      expect(ok.stderr).not.toContain('Conflicts in');
      expect(ok.stderr).toContain(`extension installed in ${target}`);
      const failing = await runCli(['run', 'failing_flow.py', '--no-pylint', 'run'], { env: runEnv, cwd: dir, timeoutMs: 300_000 });
      expect(failing.code).not.toBe(0);
      // The interpreter that really ran (the venv's, as sys.executable says), not "python3".
      expect(failing.stderr).toContain(`${python} failing_flow.py --environment=prebuilt … exited with code ${failing.code}.`);
      expect(failing.stderr).not.toContain('python3 failing_flow.py');
      // An installed copy from another prebuilt: refused, with the fix.
      await writeFile(join(target, 'plugins', 'prebuilt_environment.py'), '# an older prebuilt\n', { flag: 'a' });
      const refused = await runCli(['run', 'local_flow.py', '--no-pylint', 'run'], { env: runEnv, cwd: dir, timeoutMs: 300_000 });
      expect(refused.code).toBe(2);
      expect(refused.stderr).toContain('has another version of the prebuilt Metaflow extension installed');
      expect(refused.stderr).toContain(`prebuilt metaflow install --python ${python}`);
      expect(refused.stderr).not.toMatch(/\n\s+at /); // no stack trace
    } finally {
      const removed = await runCli(['metaflow', 'uninstall', '--python', python], { env: runEnv, cwd: dir });
      expect(removed.code, removed.stderr).toBe(0);
    }
  }, 600_000);
});

/** s3rver with one bucket, on a free port of 127.0.0.1. */
async function startS3(dir: string, bucket: string): Promise<{ endpoint: string; close(): Promise<void> }> {
  const require = createRequire(join(ROOT, 'packages', 'metaflow', 'package.json'));
  const S3rver = require('s3rver') as new (options: Record<string, unknown>) => { run(): Promise<{ port: number }>; close(): Promise<void> };
  const server = new S3rver({ address: '127.0.0.1', port: 0, directory: dir, silent: true, configureBuckets: [{ name: bucket }] });
  const { port } = await server.run();
  return { endpoint: `http://127.0.0.1:${port}`, close: () => server.close() };
}

async function findFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await findFiles(path)));
    else if (entry.name.endsWith('._S3rver_object')) out.push(path);
  }
  return out;
}

interface ImageMapJson {
  flow: string;
  images: Record<string, { digest: string }>;
  steps: Record<string, { envId: string | null; image: string; pinnedImage?: string; python: string; packages?: { conda: Record<string, string>; pypi: Record<string, string> } }>;
}


const NO_BOOTSTRAP = /metaflow\.plugins\.pypi\.bootstrap|micromamba|MF_ARCH/;

describeOrFailInCi('prebuilt run / --environment=prebuilt compile remote specs with the prebuilt images (real Metaflow, S3 fake)', deployMissing, () => {
  let fixtures: Fixtures;
  let flowDir: string;
  let s3: Awaited<ReturnType<typeof startS3>>;
  let aws: AwsFake;
  let env: NodeJS.ProcessEnv;
  let map: ImageMapJson | undefined;
  const stateFile = (): string => join(flowDir, '.prebuilt', 'DeployFlow', 'images.json');

  beforeAll(async () => {
    // With a linux-aarch64 python (a stand-in) so the flow can also be deployed for both platforms.
    fixtures = await startFixtures((version) => [aarch64PythonStandIn(version)]);
    flowDir = join(fixtures.dir, 'flow');
    await writeFlow(flowDir, 'deploy_flow.py', DEPLOY_FLOW);
    await mkdir(join(fixtures.dir, 's3'));
    s3 = await startS3(join(fixtures.dir, 's3'), 'prebuilt-test');
    aws = await startAwsFake();
    const site = join(fixtures.dir, 'site');
    await mkdir(site);
    await writeFile(join(site, 'sitecustomize.py'), SITECUSTOMIZE);
    env = cliEnv(fixtures, services, uniqueNamespace('metaflow'), {
      ...metaflowEnv({ PYTHONPATH: [site, source!, DIST_PACKAGES].join(delimiter) }),
      METAFLOW_DEFAULT_DATASTORE: 's3',
      METAFLOW_DATASTORE_SYSROOT_S3: 's3://prebuilt-test/metaflow',
      METAFLOW_S3_ENDPOINT_URL: s3.endpoint,
      AWS_ACCESS_KEY_ID: 'S3RVER',
      AWS_SECRET_ACCESS_KEY: 'S3RVER',
      AWS_DEFAULT_REGION: 'us-east-1',
      METAFLOW_KUBERNETES_NAMESPACE: 'default',
      METAFLOW_SFN_IAM_ROLE: 'arn:aws:iam::123456789012:role/sfn',
      METAFLOW_ECS_S3_ACCESS_IAM_ROLE: 'arn:aws:iam::123456789012:role/ecs',
      METAFLOW_BATCH_JOB_QUEUE: 'q',
      PREBUILT_TEST_AWS_ENDPOINT: aws.endpoint,
    });
    for (const key of ['METAFLOW_PREBUILT_IMAGE_MAP', 'PREBUILT_CLI', 'METAFLOW_DEFAULT_DECOSPECS']) delete env[key];
  }, 600_000);
  afterAll(async () => {
    await s3?.close();
    await aws?.close();
    await stopFixtures(fixtures);
  });

  /** The image map the last build wrote. */
  async function imageMap(): Promise<ImageMapJson> {
    return JSON.parse(await readFile(stateFile(), 'utf8')) as ImageMapJson;
  }

  function checkArgo(workflow: { spec: { templates: Array<{ name: string; container?: { image: string; command?: string[]; args?: string[] } }> } }, images: ImageMapJson): void {
    for (const [step, entry] of Object.entries(images.steps)) {
      expect(entry.envId, step).not.toBeNull();
      const template = workflow.spec.templates.find((t) => t.name === step);
      expect(template?.container, `template of step ${step}`).toBeDefined();
      // Pinned by digest: the tag for people, the digest for the runtime.
      expect(entry.pinnedImage).toBe(`${entry.image}@${images.images[entry.envId!]!.digest}`);
      expect(template!.container!.image).toBe(entry.pinnedImage);
      const command = [...(template!.container!.command ?? []), ...(template!.container!.args ?? [])].join(' ');
      expect(command).toContain(`${entry.python} deploy_flow.py`);
      expect(command).toContain('--environment=prebuilt');
      expect(command).toContain('export METAFLOW_SKIP_INSTALL_DEPENDENCIES=1');
      expect(command).not.toMatch(NO_BOOTSTRAP);
    }
  }

  it('prebuilt run … argo-workflows create --only-json: each step on its image, started with its env python, no bootstrap', async () => {
    const result = await runCli(['run', 'deploy_flow.py', '--no-pylint', 'argo-workflows', 'create', '--only-json'], { env, cwd: flowDir, timeoutMs: 900_000 });
    expect(result.code, result.stderr).toBe(0);
    map = await imageMap();
    expect(Object.keys(map.steps).sort()).toEqual(['end', 'start', 'train']);
    expect(new Set(Object.values(map.steps).map((s) => s.image)).size).toBe(2); // start/end share one env
    checkArgo(specJson(result.stdout), map);
    // The tasks load --environment=prebuilt from the code package Metaflow uploaded to the S3 fake.
    const packages = await findFiles(join(fixtures.dir, 's3', 'prebuilt-test', 'metaflow', 'DeployFlow', 'data'));
    const listings = await Promise.all(packages.map((file) => run('tar', ['-tzf', file]).then((r) => r.stdout)));
    expect(listings.some((listing) => listing.includes('.mf_code/metaflow_extensions/prebuilt/plugins/prebuilt_environment.py'))).toBe(true);
  }, 900_000);

  it('prebuilt run … step-functions create --only-json: the Batch job definitions use the images, the commands the env pythons', async () => {
    const result = await runCli(['run', 'deploy_flow.py', '--no-pylint', 'step-functions', 'create', '--only-json'], { env, cwd: flowDir, timeoutMs: 900_000 });
    expect(result.code, result.stderr).toBe(0);
    const images = await imageMap();
    const machine = specJson<{ States: Record<string, { Parameters?: { JobDefinition?: string; ContainerOverrides?: { Command?: string[] } } }> }>(result.stdout);
    for (const [step, entry] of Object.entries(images.steps)) {
      const state = machine.States[step];
      expect(state?.Parameters, `state of step ${step}`).toBeDefined();
      const arn = state!.Parameters!.JobDefinition!;
      const definition = aws.jobDefinitions.find((d, i) => arn.endsWith(`/${d.jobDefinitionName}:${i + 1}`));
      expect(definition, `job definition ${arn}`).toBeDefined();
      expect(definition!.containerProperties.image).toBe(entry.pinnedImage);
      expect(entry.pinnedImage).toMatch(/@sha256:[0-9a-f]{64}$/);
      const command = (state!.Parameters!.ContainerOverrides?.Command ?? []).join(' ');
      expect(command).toContain(`${entry.python} deploy_flow.py`);
      expect(command).toContain('export METAFLOW_SKIP_INSTALL_DEPENDENCIES=1');
      expect(command).not.toMatch(NO_BOOTSTRAP);
    }
  }, 900_000);

  it("a step whose image was built for other packages than Metaflow asks for is refused before it is deployed: the map's packages against Metaflow's get_environment", async () => {
    const built = await imageMap();
    // What the build recorded for train: its own tinyframe and the base's tinynum over Metaflow's pins for s3.
    expect(built.steps.train!.packages).toEqual({ conda: { requests: '>=2.21.0', boto3: '>=1.14.0', tinynum: '1.4.0', tinyframe: '' }, pypi: {} });
    // The same map as if built from a flow file without train's tinyframe.
    const { tinyframe: _dropped, ...conda } = built.steps.train!.packages!.conda;
    const tampered = join(fixtures.dir, 'tampered-images.json');
    await writeFile(tampered, JSON.stringify({ ...built, steps: { ...built.steps, train: { ...built.steps.train, packages: { conda, pypi: {} } } } }));
    const pythonPath = [join(ROOT, 'packages', 'metaflow', 'python'), env.PYTHONPATH].join(delimiter);
    const deployed = await run('python3', [join(flowDir, 'deploy_flow.py'), '--no-pylint', '--environment=prebuilt', 'argo-workflows', 'create', '--only-json'], { ...env, PYTHONPATH: pythonPath, METAFLOW_PREBUILT_IMAGE_MAP: tampered }, flowDir);
    expect(deployed.code, deployed.stderr).not.toBe(0);
    expect(deployed.stderr).toContain("Step 'train' would run on an image built for other packages than Metaflow asks for:");
    expect(deployed.stderr).toContain('conda tinyframe: Metaflow asks for any version, the image has none');
    expect(deployed.stdout).not.toContain('"kind": "WorkflowTemplate"');
    // The map as built deploys (the check passes on what the build recorded).
    const ok = await run('python3', [join(flowDir, 'deploy_flow.py'), '--no-pylint', '--environment=prebuilt', 'argo-workflows', 'create', '--only-json'], { ...env, PYTHONPATH: pythonPath, METAFLOW_PREBUILT_IMAGE_MAP: stateFile() }, flowDir);
    expect(ok.code, ok.stderr).toBe(0);
    checkArgo(specJson(ok.stdout), built);
  }, 300_000);

  it('for linux-64 and linux-aarch64 (oci): argo-workflows create --only-json puts each step on its multi-platform image index', async () => {
    const base = await pushMultiPlatformBase(services.baseImage!.ref);
    // Its own copy of the flow: the lock it writes (for two platforms, which later runs without the
    // setting would keep) must not be the one the other tests share.
    const multiDir = join(fixtures.dir, 'flow-multi');
    await writeFlow(multiDir, 'deploy_flow.py', DEPLOY_FLOW);
    const multiEnv = {
      ...env,
      METAFLOW_PREBUILT_PLATFORM: 'linux-64,linux-aarch64',
      METAFLOW_PREBUILT_BUILD_SERVICE: 'oci',
      METAFLOW_PREBUILT_BASE_IMAGE: base,
      METAFLOW_PREBUILT_STATE_FILE: join(fixtures.dir, 'multi-platform-images.json'),
    };
    const result = await runCli(['run', 'deploy_flow.py', '--no-pylint', 'argo-workflows', 'create', '--only-json'], { env: multiEnv, cwd: multiDir, timeoutMs: 900_000 });
    expect(result.code, result.stderr).toBe(0);
    const images = JSON.parse(await readFile(join(fixtures.dir, 'multi-platform-images.json'), 'utf8')) as ImageMapJson & {
      images: Record<string, { digest: string; platforms?: Record<string, { image: string }> }>;
    };
    for (const [step, entry] of Object.entries(images.steps)) {
      expect(entry.image, step).toMatch(/:env-[0-9a-f]{16}$/); // the index, not one platform's image
      expect(Object.keys(images.images[entry.envId!]!.platforms!), step).toEqual(['linux-64', 'linux-aarch64']);
    }
    checkArgo(specJson(result.stdout), images);
  }, 900_000);

  it('python flow.py --environment=prebuilt argo-workflows create --only-json after prebuilt metaflow install (the extension calls the CLI)', async () => {
    const venv = join(fixtures.dir, 'venv');
    const made = await run('python3', ['-m', 'venv', '--without-pip', venv]);
    expect(made.code, made.stderr).toBe(0);
    const python = join(venv, 'bin', 'python');
    const installed = await runCli(['metaflow', 'install', '--python', python, '--json'], { env, cwd: flowDir });
    expect(installed.code, installed.stderr).toBe(0);
    try {
      const status = await runCli(['metaflow', 'status', '--python', python, '--json'], { env, cwd: flowDir });
      expect(parseJson<{ environmentLoaded: boolean }>(status).environmentLoaded).toBe(true);
      await rm(stateFile(), { force: true });
      // No prebuilt on PYTHONPATH, no image map, no PREBUILT_CLI: the install is all it has.
      const deployed = await run(python, [join(flowDir, 'deploy_flow.py'), '--no-pylint', '--environment=prebuilt', 'argo-workflows', 'create', '--only-json'], { ...env, PWD: flowDir }, flowDir);
      expect(deployed.code, deployed.stderr).toBe(0);
      expect(deployed.stderr).toMatch(/Building the prebuilt images of steps (?=[^\n]*start)(?=[^\n]*train)(?=[^\n]*end)[^\n]*\(prebuilt metaflow install \(\S+site-packages\/metaflow_extensions\/prebuilt\/plugins\/prebuilt_install\.json\)\)/);
      expect(deployed.stderr).toMatch(/present .*\(start, end\)/); // the images prebuilt run built are reused
      const images = await imageMap();
      if (map) expect(images.steps).toEqual(map.steps); // the same images prebuilt run used
      checkArgo(specJson(deployed.stdout), images);
    } finally {
      const removed = await runCli(['metaflow', 'uninstall', '--python', python], { env, cwd: flowDir });
      expect(removed.code, removed.stderr).toBe(0);
    }
  }, 900_000);
});
