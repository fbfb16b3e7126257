// End to end on the development registry `prebuilt local-registry start` runs (Debian's
// docker-registry, as on a fresh machine): it wants a login, and `prebuilt build` with the README's
// one export (METAFLOW_PREBUILT_LOCAL_REGISTRY=127.0.0.1:<port>) pushes to it through the Docker
// daemon and finds its images again with the credential start made — no `docker login`, an empty
// Docker config; so do the oci and buildx build services. Another user of the machine cannot push
// an image under the tag prebuilt looks up.
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect } from 'vitest';
import buildxDefinition from '../../packages/buildx/dist/index.js';
import { createLocalRegistry } from '../../packages/local/dist/index.js';
import { freePort } from '../free-port.js';
import { describeWith, getServices, itWith, type Need } from '../services.js';
import { cliEnv, headManifest, MANIFEST_TYPES, ONE_ENV_FLOW, parseJson, runCli, splitTag, startFixtures, stopFixtures, uniqueNamespace, writeFlow, type BuildJson, type Fixtures } from './harness.js';

const services = getServices();
const NEEDS: readonly Need[] = ['docker', 'baseImage'];
const HAVE_REGISTRY = existsSync('/usr/bin/docker-registry');

describeWith(NEEDS, 'prebuilt build on the development registry (prebuilt local-registry start: a login, used by prebuilt by itself)', () => {
  let fixtures: Fixtures;
  let stateHome: string;
  let dockerConfig: string;
  let flowDir: string;
  let env: NodeJS.ProcessEnv;
  let host: string;
  let auth: { username: string; password: string };
  let built: BuildJson;

  beforeAll(async () => {
    if (!HAVE_REGISTRY) throw new Error('/usr/bin/docker-registry is not installed: apt-get install docker-registry (scripts/test-services.sh up does)');
    fixtures = await startFixtures();
    stateHome = await mkdtemp(join(tmpdir(), 'prebuilt-e2e-devreg-state-'));
    // The user's Docker config has nothing for the registry: prebuilt must not need `docker login`.
    dockerConfig = await mkdtemp(join(tmpdir(), 'prebuilt-e2e-devreg-docker-'));
    flowDir = join(fixtures.dir, 'flow');
    await writeFlow(flowDir, 'one_env_flow.py', ONE_ENV_FLOW);
    const port = await freePort();
    host = `127.0.0.1:${port}`;
    env = cliEnv(fixtures, services, uniqueNamespace('devreg'), { METAFLOW_PREBUILT_LOCAL_REGISTRY: host, XDG_STATE_HOME: stateHome, DOCKER_CONFIG: dockerConfig });
    const started = await runCli(['local-registry', 'start', '--json'], { env, cwd: flowDir });
    expect(started.code, started.stderr).toBe(0);
    expect(parseJson<Record<string, unknown>>(started)).toMatchObject({ running: true, authenticated: true, port, mode: 'binary' });
    auth = JSON.parse(await readFile(join(stateHome, 'prebuilt', 'local-registry', 'credentials.json'), 'utf8')) as { username: string; password: string };
  }, 120_000);
  afterAll(async () => {
    if (env) await runCli(['local-registry', 'stop'], { env, cwd: flowDir });
    await stopFixtures(fixtures);
    for (const dir of [stateHome, dockerConfig]) if (dir) await rm(dir, { recursive: true, force: true });
  });

  const cli = (...args: string[]) => runCli(args, { env, cwd: flowDir });

  itWith(NEEDS, 'build --json builds and pushes the image with the credential start made; anonymous requests for it are refused', async () => {
    const result = await cli('build', 'one_env_flow.py', '--json');
    expect(result.code, result.stderr).toBe(0);
    built = parseJson<BuildJson>(result);
    const images = Object.values(built.images);
    expect(images.map((image) => image.status)).toEqual(['built']);
    const image = images[0]!;
    expect(image.image.startsWith(`${host}/`)).toBe(true);
    expect(await headManifest(image.image)).toEqual({ status: 401, digest: null });
    expect(await headManifest(image.image, auth)).toEqual({ status: 200, digest: image.digest });
    // The secret is in no output, in no state file, and not in the image's manifest or config.
    for (const text of [result.stdout, result.stderr, await readFile(built.stateFile!, 'utf8')]) expect(text).not.toContain(auth.password);
    const { repository } = splitTag(image.image);
    const authorization = `Basic ${Buffer.from(`${auth.username}:${auth.password}`).toString('base64')}`;
    const manifest = await (await fetch(`http://${host}/v2/${repository}/manifests/${image.digest}`, { headers: { authorization, accept: MANIFEST_TYPES } })).text();
    expect(manifest).not.toContain(auth.password);
    const configDigest = (JSON.parse(manifest) as { config: { digest: string } }).config.digest;
    const config = await fetch(`http://${host}/v2/${repository}/blobs/${configDigest}`, { headers: { authorization } });
    expect(config.status).toBe(200);
    expect(await config.text()).not.toContain(auth.password);
  }, 300_000);

  itWith(NEEDS, 'another user cannot push under the tag prebuilt looks up: the upload is refused (401), and the next build finds its own image', async () => {
    expect(built, 'the build test ran').toBeDefined();
    const image = Object.values(built.images)[0]!;
    const { repository } = splitTag(image.image);
    const upload = await fetch(`http://${host}/v2/${repository}/blobs/uploads/`, { method: 'POST' });
    expect(upload.status).toBe(401);
    const manifestPut = await fetch(image.image.replace(`${host}/${repository}:`, `http://${host}/v2/${repository}/manifests/`), {
      method: 'PUT',
      headers: { 'content-type': 'application/vnd.docker.distribution.manifest.v2+json' },
      body: '{}',
    });
    expect(manifestPut.status).toBe(401);
    const again = await cli('build', 'one_env_flow.py', '--json');
    expect(again.code, again.stderr).toBe(0);
    expect(Object.values(parseJson<BuildJson>(again).images).map((entry) => [entry.status, entry.digest])).toEqual([['present', image.digest]]);
  }, 300_000);

  itWith(NEEDS, 'the oci build service (no daemon: prebuilt\'s own registry client) pushes there with the same credential', async () => {
    const namespace = uniqueNamespace('devreg-oci');
    const result = await runCli(['build', 'one_env_flow.py', '--json'], { env: { ...env, METAFLOW_PREBUILT_BUILD_SERVICE: 'oci', METAFLOW_PREBUILT_IMAGE_NAMESPACE: namespace }, cwd: flowDir });
    expect(result.code, result.stderr).toBe(0);
    const images = Object.values(parseJson<BuildJson>(result).images);
    expect(images.map((image) => [image.status, image.image.startsWith(`${host}/${namespace}:`)])).toEqual([['built', true]]);
    expect(await headManifest(images[0]!.image)).toEqual({ status: 401, digest: null });
    expect(await headManifest(images[0]!.image, auth)).toEqual({ status: 200, digest: images[0]!.digest });
    expect(`${result.stdout}${result.stderr}`).not.toContain(auth.password);
  }, 300_000);

  itWith([...NEEDS, 'buildx'], 'the buildx build service pushes there with the push credentials the local registry gives (its temporary Docker config)', async () => {
    const registry = createLocalRegistry({ env });
    const pushCredentials = await registry.pushCredentials();
    expect(pushCredentials?.source).toBe(`the development registry's credential (${join(stateHome, 'prebuilt', 'local-registry', 'credentials.json')})`);
    const contextDir = await mkdtemp(join(tmpdir(), 'prebuilt-e2e-devreg-buildx-'));
    try {
      await writeFile(join(contextDir, 'marker'), randomUUID());
      const imageTag = `${host}/${uniqueNamespace('devreg-buildx')}:marker`;
      const service = await buildxDefinition.create({}, { env, cwd: flowDir });
      const result = await service.buildAndPush({ dockerfile: `FROM ${services.baseImage!.ref}\nCOPY marker /marker\n`, contextDir, imageTag, platform: 'linux/amd64', ...(pushCredentials ? { pushCredentials } : {}) });
      expect(result.ok, JSON.stringify(result)).toBe(true);
      expect(await headManifest(imageTag)).toEqual({ status: 401, digest: null });
      expect(await headManifest(imageTag, auth)).toEqual({ status: 200, digest: (result as { digest: string }).digest });
    } finally {
      await rm(contextDir, { recursive: true, force: true });
    }
  }, 300_000);
});
