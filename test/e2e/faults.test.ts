// End to end: bad input and faults of `prebuilt build` through the real CLI, the test Docker
// daemon and the test registries — a failing env beside a healthy one, the daemon or the registry
// unreachable, a push denied, a missing base image, Ctrl-C during a build. Every test uses its own
// image namespace; the fixture channel/index and the package cache are shared by the file.
import { mkdtemp, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, expect } from 'vitest';
import { describeWith, getServices, itWith } from '../services.js';
import {
  closedPort,
  cliEnv,
  headManifest,
  parseJson,
  pushImageWithLostLayer,
  run,
  runCli,
  startFixtures,
  stopFixtures,
  uniqueNamespace,
  writeFlow,
  ONE_ENV_FLOW,
  type BuildJson,
  type Fixtures,
} from './harness.js';

const services = getServices();
const NEEDS = ['docker', 'registries', 'baseImage'] as const;


/** start: healthy; broken: a package that cannot be relocated; train: a GPU step on a base image whose layer is lost. */
const FAILING_FLOW = `from metaflow import FlowSpec, conda, conda_base, kubernetes, step


@conda_base(python="3.11")
class FailingFlow(FlowSpec):
    @conda(packages={"tinynum": "1.4.0"})
    @step
    def start(self):
        self.next(self.broken)

    @conda(packages={"shortprefix": ""})
    @step
    def broken(self):
        self.next(self.train)

    @kubernetes(gpu=1)
    @conda(packages={"tinynum": "1.4.0"})
    @step
    def train(self):
        self.next(self.end)

    @conda(packages={"tinynum": "1.4.0"})
    @step
    def end(self):
        pass


if __name__ == "__main__":
    FailingFlow()
`;

describeWith(NEEDS, 'prebuilt build faults end to end (real CLI, Docker daemon, test registries)', () => {
  let fixtures: Fixtures;
  let oneEnvDir: string;

  beforeAll(async () => {
    fixtures = await startFixtures();
    oneEnvDir = join(fixtures.dir, 'one-env');
    await writeFlow(oneEnvDir, 'one_env_flow.py', ONE_ENV_FLOW);
    // Lock once, so the fault tests below spend no time resolving.
    const locked = await runCli(['lock', 'one_env_flow.py'], { env: cliEnv(fixtures, services, uniqueNamespace('lock')), cwd: oneEnvDir });
    if (locked.code !== 0) throw new Error(`prebuilt lock failed: ${locked.stderr}`);
  });
  afterAll(async () => {
    await stopFixtures(fixtures);
  });

  /** The tag `build` would push for the one-env flow in `namespace` (from `plan --json`, which never builds). */
  async function plannedTag(env: NodeJS.ProcessEnv): Promise<string> {
    const planned = await runCli(['plan', 'one_env_flow.py', '--json'], { env, cwd: oneEnvDir });
    expect(planned.code, planned.stderr).toBe(0);
    const images = Object.values(parseJson<{ images: Record<string, { image: string; status: string }> }>(planned).images);
    expect(images.map((image) => image.status)).toEqual(['missing']);
    return images[0]!.image;
  }

  itWith(
    NEEDS,
    'a flow with two failing envs (unrelocatable package; GPU base image with a lost layer) exits 1, reports each failure, tags neither, and still pushes the healthy env',
    async () => {
      const gpuBase = await pushImageWithLostLayer(services.registries!.plain.host, `${uniqueNamespace('gpu-base')}`, 'cuda');
      const dir = join(fixtures.dir, 'failing');
      await writeFlow(dir, 'failing_flow.py', FAILING_FLOW);
      const env = cliEnv(fixtures, services, uniqueNamespace('failing'), { METAFLOW_PREBUILT_GPU_BASE_IMAGE: gpuBase });

      const human = await runCli(['build', 'failing_flow.py'], { env, cwd: dir });
      expect(human.code, human.stderr).toBe(1);
      const again = await runCli(['build', 'failing_flow.py', '--json'], { env, cwd: dir });
      expect(again.code, again.stderr).toBe(1);
      const map = parseJson<BuildJson>(again);

      // The healthy env (start, end) was built by the first run and is present in the second.
      const healthy = Object.entries(map.images);
      expect(healthy.map(([, image]) => [image.steps, image.status])).toEqual([[['start', 'end'], 'present']]);
      const [healthyId, healthyImage] = healthy[0]!;
      expect(await headManifest(healthyImage.image)).toEqual({ status: 200, digest: healthyImage.digest });
      expect(human.stdout).toMatch(new RegExp(`^${healthyId}\\s+built\\s`, 'm'));
      expect(Object.keys(map.steps).sort()).toEqual(['end', 'start']);
      expect(map.stateFile).toBeNull();
      // The envelope: ok false, the error (exit 1's build-failed) beside what was done.
      expect(map).toMatchObject({ ok: false, error: { name: 'BuildFailedError', code: 'build-failed', message: '2 of 3 images failed to build; the image map was not written.' } });
      expect(map.error!.hint).toContain('run prebuilt build again');

      // Both failures are reported, with their reasons; nothing is tagged for them.
      const failures = map.failures ?? [];
      expect(failures.map((failure) => failure.steps)).toEqual([['broken'], ['train']]);
      const [broken, train] = failures as [NonNullable<BuildJson['failures']>[number], NonNullable<BuildJson['failures']>[number]];
      expect(broken.reason).toMatch(/shortprefix/);
      expect(broken.reason).toMatch(/placeholder/i);
      expect(broken.hint).toMatch(/Rebuild it with the standard placeholder/);
      expect(train.reason).toContain(`The base image ${gpuBase.replace(/:cuda$/, '')}@sha256:`);
      expect(train.reason).toMatch(/missing or cannot be pulled/);
      expect(train.logTail.length).toBeGreaterThan(0);
      expect(train.logTail.join('\n')).toMatch(/blob unknown|not found|manifest unknown|unknown blob/i);
      for (const failure of failures) expect((await headManifest(failure.image)).status).toBe(404);

      // The human output of the first run: each env's line with its status, the failure with its
      // reason and the build log tail, the summary table, and no image map written.
      const trainId = train.envId;
      expect(human.stderr).toMatch(new RegExp(`env ${healthyId}  built  \\d+\\.\\ds  \\(start, end\\)`));
      expect(human.stderr).toMatch(new RegExp(`env ${broken.envId}  failed  \\d+\\.\\ds  \\(broken\\): .*shortprefix`));
      // It fails while materializing, and says so then, not once the healthy image is done.
      expect(human.stderr.indexOf(`env ${broken.envId}  failed`)).toBeLessThan(human.stderr.indexOf(`env ${healthyId}  built`));
      expect(human.stderr).toContain(`hint: ${broken.hint}`);
      expect(human.stderr).toMatch(new RegExp(`env ${trainId}  failed  \\d+\\.\\ds  \\(train\\): The base image`));
      expect(human.stderr).toContain(`env ${trainId} failed (steps train): The base image`);
      expect(human.stderr).toMatch(/last lines of its build log:\n {2}\| /);
      expect(human.stdout).toMatch(new RegExp(`^${broken.envId}\\s+failed\\s`, 'm'));
      expect(human.stdout).toMatch(new RegExp(`^${trainId}\\s+failed\\s`, 'm'));
      expect(human.stdout).not.toContain('image map written');
      expect(human.stderr).toMatch(/error: 2 of 3 images failed to build; the image map was not written\./);
    },
    420_000,
  );

  itWith(NEEDS, 'Docker daemon unreachable: exit 2, naming the daemon and what to run; nothing tagged', async () => {
    const env = cliEnv(fixtures, services, uniqueNamespace('nodaemon'), { DOCKER_HOST: 'unix:///nonexistent.sock' });
    const tag = await plannedTag(env);
    const built = await runCli(['build', 'one_env_flow.py'], { env, cwd: oneEnvDir });
    expect(built.code, built.stderr).toBe(2);
    expect(built.stderr).toContain('error: The Docker daemon at unix:///nonexistent.sock cannot be reached');
    expect(built.stderr).toMatch(/hint: Start the Docker daemon .*DOCKER_HOST/);
    expect(built.stderr).not.toMatch(/\n\s+at /); // no stack trace
    expect((await headManifest(tag)).status).toBe(404);
  }, 180_000);

  // Unreachable is one kind of fault whichever service it hits: exit 2 and code `unreachable`, as for the daemon above.
  itWith(NEEDS, 'registry unreachable (a closed port): exit 2, naming the registry; --json prints the error', async () => {
    const port = await closedPort();
    const env = cliEnv(fixtures, services, uniqueNamespace('noregistry'), { METAFLOW_PREBUILT_LOCAL_REGISTRY: `127.0.0.1:${port}` });
    const human = await runCli(['build', 'one_env_flow.py'], { env, cwd: oneEnvDir });
    expect(human.code, human.stderr).toBe(2);
    expect(human.stderr).toMatch(new RegExp(`error: registry 127\\.0\\.0\\.1:${port}: .*connection refused`));
    // A loopback address the development registry could run at: the hint says how to start it there.
    expect(human.stderr).toContain(`hint: Nothing listens at 127.0.0.1:${port}: start the development registry there (\`prebuilt local-registry start --port ${port}\`)`);
    const json = await runCli(['build', 'one_env_flow.py', '--json'], { env, cwd: oneEnvDir });
    expect(json.code).toBe(2);
    expect(parseJson(json)).toMatchObject({ ok: false, error: { name: 'UnreachableError', code: 'unreachable' } });
  }, 180_000);

  itWith(NEEDS, 'credentials refused by the Basic-auth registry: exit 1, naming where the credentials came from, never printing the password', async () => {
    const basic = services.registries!.basic;
    const password = `wrong-${Date.now()}-password`;
    const env = cliEnv(fixtures, services, uniqueNamespace('refused'), {
      METAFLOW_PREBUILT_LOCAL_REGISTRY: basic.host,
      METAFLOW_PREBUILT_LOCAL_REGISTRY_USERNAME: basic.username,
      METAFLOW_PREBUILT_LOCAL_REGISTRY_PASSWORD: password,
    });
    for (const args of [['build', 'one_env_flow.py'], ['build', 'one_env_flow.py', '--json']]) {
      const built = await runCli(args, { env, cwd: oneEnvDir });
      expect(built.code, built.stderr).toBe(1);
      const output = built.stdout + built.stderr;
      expect(output).toContain(`registry ${basic.host} rejected the credentials of user '${basic.username}'`);
      // The settings the credentials came from, and that fixing or unsetting them is the way out (they override the Docker config).
      expect(output).toContain('Set METAFLOW_PREBUILT_LOCAL_REGISTRY_USERNAME and METAFLOW_PREBUILT_LOCAL_REGISTRY_PASSWORD to a user name and password');
      expect(output).toContain('unset both');
      expect(output).not.toContain(password);
    }
  }, 180_000);

  itWith(NEEDS, 'credentials from the Docker config refused: exit 1, naming that config file, never printing the password', async () => {
    const basic = services.registries!.basic;
    const password = `wrong-${Date.now()}-config-password`;
    const dockerConfig = await mkdtemp(join(fixtures.dir, 'docker-config-'));
    const auth = Buffer.from(`${basic.username}:${password}`).toString('base64');
    await writeFile(join(dockerConfig, 'config.json'), JSON.stringify({ auths: { [basic.host]: { auth } } }));
    const env = cliEnv(fixtures, services, uniqueNamespace('config-refused'), {
      METAFLOW_PREBUILT_LOCAL_REGISTRY: basic.host,
      DOCKER_CONFIG: dockerConfig,
    });
    const built = await runCli(['build', 'one_env_flow.py'], { env, cwd: oneEnvDir });
    expect(built.code, built.stderr).toBe(1);
    const output = built.stdout + built.stderr;
    expect(output).toContain(`registry ${basic.host} rejected the credentials of user '${basic.username}'`);
    expect(output).toContain(join(dockerConfig, 'config.json'));
    expect(output).not.toContain(password);
    expect(output).not.toContain(auth);
  }, 180_000);

  itWith(NEEDS, 'push denied (registry cache off, so the push itself is refused): exit 1, the reason names the credentials source, never the password; nothing tagged', async () => {
    const basic = services.registries!.basic;
    const password = `wrong-${Date.now()}-push-password`;
    const env = cliEnv(fixtures, services, uniqueNamespace('denied'), {
      METAFLOW_PREBUILT_LOCAL_REGISTRY: basic.host,
      METAFLOW_PREBUILT_LOCAL_REGISTRY_USERNAME: basic.username,
      METAFLOW_PREBUILT_LOCAL_REGISTRY_PASSWORD: password,
      METAFLOW_PREBUILT_REGISTRY_CACHE: '0',
    });
    const built = await runCli(['build', 'one_env_flow.py', '--json'], { env, cwd: oneEnvDir });
    expect(built.code, built.stderr).toBe(1);
    expect(built.stdout + built.stderr).not.toContain(password);
    const map = parseJson<BuildJson>(built);
    expect(map.images).toEqual({});
    const failure = map.failures?.[0];
    expect(failure?.steps).toEqual(['start', 'end']);
    expect(failure?.reason).toContain(`The registry ${basic.host} denied the push of ${failure?.image}`);
    expect(failure?.reason).toContain('the credentials from env METAFLOW_PREBUILT_LOCAL_REGISTRY_USERNAME/METAFLOW_PREBUILT_LOCAL_REGISTRY_PASSWORD');
    expect((await headManifest(failure!.image, { username: basic.username, password: basic.password })).status).toBe(404);
  }, 240_000);

  itWith(NEEDS, 'base image missing: exit 2 (a setting to fix) with a message naming the base image, its registry and the setting', async () => {
    const plain = services.registries!.plain.host;
    const missing = `${plain}/${uniqueNamespace('nobase')}:bookworm`;
    const env = cliEnv(fixtures, services, uniqueNamespace('nobase'), { METAFLOW_PREBUILT_BASE_IMAGE: missing });
    const built = await runCli(['build', 'one_env_flow.py'], { env, cwd: oneEnvDir });
    expect(built.code, built.stderr).toBe(2);
    expect(built.stderr).toContain(`error: The base image ${missing} does not exist in the registry ${plain} (METAFLOW_PREBUILT_BASE_IMAGE).`);
    expect(built.stderr).toMatch(/^hint: /m);
  }, 180_000);

  for (const phase of ['building', 'pushing'] as const) {
    itWith(NEEDS, `Ctrl-C while ${phase}: exit 130, nothing tagged, no build context left (the cache's contexts/, TMPDIR)`, async () => {
      const temp = await mkdtemp(join(fixtures.dir, `tmp-${phase}-`));
      const cache = await mkdtemp(join(fixtures.dir, `cache-${phase}-`));
      const env = cliEnv(fixtures, services, uniqueNamespace(`sigint-${phase}`), { TMPDIR: temp, METAFLOW_PREBUILT_CACHE_DIR: cache });
      const tag = await plannedTag(env);
      let sent = false;
      const built = await runCli(['build', 'one_env_flow.py'], {
        env,
        cwd: oneEnvDir,
        onStderr: (stderr, kill) => {
          if (!sent && new RegExp(`^env [0-9a-f]{16}  ${phase}  `, 'm').test(stderr)) {
            sent = true;
            kill('SIGINT');
          }
        },
      });
      expect(sent, `the '${phase}' line never appeared:\n${built.stderr}`).toBe(true);
      expect(built.code, built.stderr).toBe(130);
      expect(built.stderr).toContain('interrupted (SIGINT)');
      expect(built.stderr).not.toMatch(/env [0-9a-f]{16}  (built|verifying push)/);
      expect((await headManifest(tag)).status).toBe(404);
      const local = await run('docker', ['image', 'inspect', tag], { ...process.env, DOCKER_HOST: services.dockerHost ?? '' });
      expect(local.code, `the daemon kept the tag ${tag}`).not.toBe(0);
      expect(await readdir(join(cache, 'contexts'))).toEqual([]);
      expect((await readdir(temp)).filter((name) => name.startsWith('prebuilt-context-'))).toEqual([]);
    }, 240_000);
  }
});
