// One kind of fault, one exit code and one error code, whichever component it hits: each kind is
// provoked through the real CLI (`--json`) against two components, and the two runs must agree on
// the exit code, `ok: false` and `error.code` (the table is ExitCode in packages/core/src/errors.ts).
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, expect } from 'vitest';
import { describeWith, getServices, itWith } from '../services.js';
import { closedPort, cliEnv, ONE_ENV_FLOW, parseJson, runCli, startFixtures, stopFixtures, uniqueNamespace, writeFlow, type CliRun, type Fixtures } from './harness.js';

const services = getServices();
const NEEDS = ['docker', 'registries', 'baseImage'] as const;


interface Envelope {
  ok: boolean;
  error?: { name: string; code: string; message: string; hint: string | null };
}

describeWith(NEEDS, 'fault kinds: the same exit code and error code whichever component (real CLI, Docker daemon, test registries)', () => {
  let fixtures: Fixtures;
  let dir: string;

  beforeAll(async () => {
    fixtures = await startFixtures();
    dir = join(fixtures.dir, 'kinds');
    await writeFlow(dir, 'one_env_flow.py', ONE_ENV_FLOW);
    const locked = await runCli(['lock', 'one_env_flow.py'], { env: cliEnv(fixtures, services, uniqueNamespace('kinds-lock')), cwd: dir });
    if (locked.code !== 0) throw new Error(`prebuilt lock failed: ${locked.stderr}`);
  });
  afterAll(async () => {
    await stopFixtures(fixtures);
  });

  async function cli(args: string[], extra: NodeJS.ProcessEnv): Promise<{ run: CliRun; json: Envelope }> {
    const run = await runCli([...args, '--json'], { env: cliEnv(fixtures, services, uniqueNamespace('kinds'), extra), cwd: dir });
    expect(run.stderr).not.toMatch(/\n\s+at /); // no stack trace
    return { run, json: parseJson<Envelope>(run) };
  }

  /** Both runs failed the same way: exit code, ok: false, error code; each error has a message and a hint. */
  function expectSameKind(a: { run: CliRun; json: Envelope }, b: { run: CliRun; json: Envelope }, exitCode: number, code: string): void {
    for (const side of [a, b]) {
      expect(side.run.code, side.run.stderr).toBe(exitCode);
      expect(side.json).toMatchObject({ ok: false, error: { code } });
      expect(side.json.error!.message.length).toBeGreaterThan(0);
      expect(typeof side.json.error!.hint).toBe('string');
    }
    expect(a.run.code).toBe(b.run.code);
    expect(a.json.error!.code).toBe(b.json.error!.code);
  }

  itWith(NEEDS, 'unreachable: the Docker daemon and the image registry at a closed port are both `unreachable`, exit 2', async () => {
    const daemon = await cli(['build', 'one_env_flow.py'], { DOCKER_HOST: `tcp://127.0.0.1:${await closedPort()}` });
    const registry = await cli(['build', 'one_env_flow.py'], { METAFLOW_PREBUILT_LOCAL_REGISTRY: `127.0.0.1:${await closedPort()}` });
    expectSameKind(daemon, registry, 2, 'unreachable');
    expect(daemon.json.error!.message).toContain('Docker daemon');
    expect(registry.json.error!.message).toMatch(/registry 127\.0\.0\.1:\d+: .*connection refused/);
  }, 240_000);

  itWith(NEEDS, 'unknown backend: an unknown build service and an unknown image registry are both `backend-not-found`, exit 2', async () => {
    const service = await cli(['backends', '--check'], { METAFLOW_PREBUILT_BUILD_SERVICE: 'no-such-service' });
    const registry = await cli(['backends', '--check'], { METAFLOW_PREBUILT_IMAGE_REGISTRY: 'no-such-registry' });
    expectSameKind(service, registry, 2, 'backend-not-found');
    // `backends --check --json` also says which of the two failed, beside the error.
    expect(service.json).toMatchObject({ buildService: { ok: false }, imageRegistry: { ok: true } });
    expect(registry.json).toMatchObject({ buildService: { ok: true }, imageRegistry: { ok: false } });
  }, 120_000);

  itWith(NEEDS, 'bad setting: a malformed DOCKER_HOST and a malformed local registry address are both `config`, exit 2', async () => {
    const service = await cli(['build', 'one_env_flow.py'], { DOCKER_HOST: 'ftp://127.0.0.1:1' });
    const registry = await cli(['build', 'one_env_flow.py'], { METAFLOW_PREBUILT_LOCAL_REGISTRY: 'not a registry!' });
    expectSameKind(service, registry, 2, 'config');
  }, 120_000);

  itWith(NEEDS, 'credentials refused: the Basic-auth registry and the token registry both say `auth`, exit 1', async () => {
    const basic = services.registries!.basic;
    const token = services.registries!.token;
    const refusedBasic = await cli(['build', 'one_env_flow.py'], {
      METAFLOW_PREBUILT_LOCAL_REGISTRY: basic.host,
      METAFLOW_PREBUILT_LOCAL_REGISTRY_USERNAME: basic.username,
      METAFLOW_PREBUILT_LOCAL_REGISTRY_PASSWORD: `wrong-${Date.now()}`,
    });
    const refusedToken = await cli(['build', 'one_env_flow.py'], {
      METAFLOW_PREBUILT_LOCAL_REGISTRY: token.host,
      METAFLOW_PREBUILT_LOCAL_REGISTRY_USERNAME: token.username,
      METAFLOW_PREBUILT_LOCAL_REGISTRY_PASSWORD: `wrong-${Date.now()}`,
    });
    expectSameKind(refusedBasic, refusedToken, 1, 'auth');
  }, 240_000);

  itWith(NEEDS, 'login missing: the Basic-auth registry and the token registry with no credentials anywhere both say `login-required`, exit 2 (a setting to fix, not a refusal)', async () => {
    const basic = services.registries!.basic;
    const token = services.registries!.token;
    // An empty Docker config: no login of this machine's own may answer.
    const dockerConfig = join(fixtures.dir, 'no-logins');
    await mkdir(dockerConfig, { recursive: true });
    const missingBasic = await cli(['build', 'one_env_flow.py'], { METAFLOW_PREBUILT_LOCAL_REGISTRY: basic.host, DOCKER_CONFIG: dockerConfig });
    const missingToken = await cli(['build', 'one_env_flow.py'], { METAFLOW_PREBUILT_LOCAL_REGISTRY: token.host, DOCKER_CONFIG: dockerConfig });
    expectSameKind(missingBasic, missingToken, 2, 'login-required');
    expect(missingBasic.json.error!.message).toContain(`registry ${basic.host} requires a user name and password, and none were found`);
    expect(missingToken.json.error!.message).toContain('no credentials for it were found');
    for (const side of [missingBasic, missingToken]) expect(side.json.error!.hint).toMatch(/docker login|METAFLOW_PREBUILT_LOCAL_REGISTRY_USERNAME/);
  }, 240_000);
});

