/**
 * Secrets: known secret values are planted (the Basic-auth registry's real password through
 * METAFLOW_PREBUILT_LOCAL_REGISTRY_PASSWORD, a wrong password in a failing run, an auth entry in a
 * Docker config, AWS keys in the environment) and searched for in every output of `prebuilt build`
 * (also with --verbose and DEBUG=prebuilt:*), `--json`, `plan --json`, the state and lock files,
 * every file of the cache, the temp directory of the runs, and every blob of the pushed image
 * (config and each layer, decompressed). None may contain any of them, in plain or base64 form.
 */
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { SMALL_FLOW, createWorld, filesUnder, runCli, stackLines, type CliResult, type World } from '../support/cli.js';
import { basicAuthorization, describeWith, getServices } from '../services.js';

const services = getServices();
const MANIFEST_ACCEPT = 'application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json';

/** Every form a secret could leak in: as is, base64 of itself and of user:secret. */
function forms(user: string, secret: string): string[] {
  return [secret, Buffer.from(secret).toString('base64'), Buffer.from(`${user}:${secret}`).toString('base64')];
}

describeWith(['docker', 'registries', 'baseImage'], 'secrets never leak (planted values searched in every output, file and image blob)', () => {
  let world: World;
  let flowDir: string;
  let tmp: string;
  let dockerConfig: string;
  const runs: { name: string; result: CliResult }[] = [];
  const namespace = `reliability/secrets-${process.pid}-${Date.now()}`;
  const planted = {
    aws: 'PLANTEDawsSecretKey0123456789abcdefGHIJ',
    awsSession: 'PLANTEDsessionTokenZYXW98765',
    dockerConfig: 'PLANTED-docker-config-password-31337',
    wrong: 'PLANTED-wrong-password-4242',
  };
  let secrets: string[];

  function env(extra: Record<string, string> = {}): Record<string, string> {
    const basic = services.registries!.basic;
    return world.env({
      METAFLOW_PREBUILT_IMAGE_REGISTRY: 'local',
      METAFLOW_PREBUILT_LOCAL_REGISTRY: basic.host,
      METAFLOW_PREBUILT_LOCAL_REGISTRY_USERNAME: basic.username,
      METAFLOW_PREBUILT_LOCAL_REGISTRY_PASSWORD: basic.password,
      METAFLOW_PREBUILT_BASE_IMAGE: services.baseImage!.ref,
      METAFLOW_PREBUILT_IMAGE_NAMESPACE: namespace,
      METAFLOW_PREBUILT_BUILD_SERVICE: 'docker',
      DOCKER_HOST: services.dockerHost!,
      DOCKER_CONFIG: dockerConfig,
      AWS_ACCESS_KEY_ID: 'AKIAPLANTED0000TEST',
      AWS_SECRET_ACCESS_KEY: planted.aws,
      AWS_SESSION_TOKEN: planted.awsSession,
      TMPDIR: tmp,
      DEBUG: 'prebuilt:*',
      ...extra,
    });
  }

  function leaks(text: string | Buffer): string[] {
    const haystack = typeof text === 'string' ? text : text.toString('latin1');
    return secrets.filter((secret) => haystack.includes(secret));
  }

  beforeAll(async () => {
    world = await createWorld('secrets');
    flowDir = await world.flow('small.py', SMALL_FLOW);
    tmp = join(world.dir, 'tmp');
    dockerConfig = join(world.dir, 'docker-secrets');
    await mkdir(tmp, { recursive: true });
    await mkdir(dockerConfig, { recursive: true });
    await writeFile(
      join(dockerConfig, 'config.json'),
      JSON.stringify({ auths: { '127.0.0.1:1': { auth: Buffer.from(`someone:${planted.dockerConfig}`).toString('base64') } } }),
      { mode: 0o600 },
    );
    const basic = services.registries!.basic;
    secrets = [
      ...forms(basic.username, basic.password),
      ...forms('AKIAPLANTED0000TEST', planted.aws),
      planted.awsSession,
      ...forms('someone', planted.dockerConfig),
      ...forms(basic.username, planted.wrong),
    ];
    runs.push({ name: 'build --verbose', result: await runCli(['build', 'small.py', '--verbose'], { cwd: flowDir, env: env() }) });
    runs.push({ name: 'build --json --verbose', result: await runCli(['build', 'small.py', '--json', '--verbose'], { cwd: flowDir, env: env() }) });
    runs.push({ name: 'plan --json', result: await runCli(['plan', 'small.py', '--json'], { cwd: flowDir, env: env() }) });
    runs.push({
      name: 'build --verbose with a wrong password',
      result: await runCli(['build', 'small.py', '--verbose', '--force'], { cwd: flowDir, env: env({ METAFLOW_PREBUILT_LOCAL_REGISTRY_PASSWORD: planted.wrong }) }),
    });
  }, 900_000);

  afterAll(async () => {
    await world?.close();
  });

  it('the runs did what they should (built, reused, planned; the wrong password failed with exit 1)', async () => {
    // The detector finds a planted value where it is (the Docker config holds it in base64).
    expect(leaks(await readFile(join(dockerConfig, 'config.json')))).toEqual([Buffer.from(`someone:${planted.dockerConfig}`).toString('base64')]);
    const [build, again, plan, wrong] = runs.map((r) => r.result);
    expect(build!.code, build!.output).toBe(0);
    expect(again!.code, again!.output).toBe(0);
    expect(plan!.code, plan!.output).toBe(0);
    expect(wrong!.code, wrong!.output).toBe(1);
    expect(wrong!.stderr).toMatch(/rejected|denied|unauthorized/i);
    // The debug logs were on: the search below covers them.
    expect(build!.stderr).toMatch(/prebuilt:/);
    // Without --verbose and DEBUG, a failure shows no stack trace either.
    expect(stackLines(plan!.output)).toEqual([]);
  });

  it('no secret in any stdout or stderr (verbose, DEBUG=prebuilt:*, --json, errors)', () => {
    for (const { name, result } of runs) expect(leaks(result.output), name).toEqual([]);
  });

  it('no secret in the state file, the lock file or any file of the cache', async () => {
    const files = [
      ...(await filesUnder(join(flowDir, '.prebuilt'))),
      join(flowDir, 'small.prebuilt.lock'),
      ...(await filesUnder(join(world.dir, 'cache'))),
    ];
    expect(files.some((f) => f.endsWith('images.json'))).toBe(true);
    for (const file of files) expect(leaks(await readFile(file)), file).toEqual([]);
  });

  it('no file holding a credential is left in the temp directory of the runs', async () => {
    const left = await filesUnder(tmp);
    for (const file of left) {
      expect(leaks(await readFile(file)), file).toEqual([]);
      // Anything left there is private to the user.
      expect((await stat(file)).mode & 0o077, file).toBe(0);
    }
  });

  it('no secret in the pushed image: manifest, config (env, labels, history, build args) and every layer', async () => {
    const basic = services.registries!.basic;
    const auth = { authorization: basicAuthorization(basic.username, basic.password) };
    const map = JSON.parse(runs[1]!.result.stdout) as { images: Record<string, { image: string }> };
    const image = Object.values(map.images)[0]!.image;
    const tag = image.slice(image.lastIndexOf(':') + 1);
    const manifestRes = await fetch(`http://${basic.host}/v2/${namespace}/manifests/${tag}`, { headers: { ...auth, accept: MANIFEST_ACCEPT } });
    expect(manifestRes.status).toBe(200);
    const manifestBytes = Buffer.from(await manifestRes.arrayBuffer());
    expect(leaks(manifestBytes)).toEqual([]);
    const manifest = JSON.parse(manifestBytes.toString('utf8')) as { config: { digest: string }; layers: { digest: string; mediaType: string }[] };
    const blob = async (digest: string): Promise<Buffer> => {
      const res = await fetch(`http://${basic.host}/v2/${namespace}/blobs/${digest}`, { headers: auth });
      expect(res.status, digest).toBe(200);
      return Buffer.from(await res.arrayBuffer());
    };
    const config = await blob(manifest.config.digest);
    expect(leaks(config), 'image config').toEqual([]);
    const parsed = JSON.parse(config.toString('utf8')) as { config?: { Env?: string[] }; history?: { created_by?: string }[] };
    expect(parsed.history?.length ?? 0).toBeGreaterThan(0);
    expect(manifest.layers.length).toBeGreaterThan(0);
    for (const layer of manifest.layers) {
      const bytes = await blob(layer.digest);
      const tar = layer.mediaType.endsWith('gzip') ? gunzipSync(bytes) : bytes;
      expect(leaks(tar), `layer ${layer.digest}`).toEqual([]);
    }
  });
});
