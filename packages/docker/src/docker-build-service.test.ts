import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CancelledError,
  ConfigError,
  UnreachableError,
  Secret,
  type BuildRequest,
  type BuildResult,
} from '@prebuilt/core/backend';
import dockerDefinition, { createDockerBuildService } from './index.js';
import { dockerConnection } from './docker-host.js';
import { EngineClient } from './engine-client.js';
import { DockerDaemon, imagePath } from './docker-daemon.js';
import { resolveDockerSettings } from './docker-settings.js';
import { headDigest } from '@prebuilt/fixtures';
import { describeWith, testServices } from './__fixtures__/services.js';
import { beforeContextFix } from './image-store.js';
import { pullThroughDaemon } from './daemon-pull.js';
import { ProgressTracker } from './progress.js';

describe('docker build service settings', () => {
  it('is a build-service definition named docker', async () => {
    expect(dockerDefinition).toMatchObject({ kind: 'build-service', name: 'docker', apiVersion: 1 });
    const service = await dockerDefinition.create({}, { env: { DOCKER_HOST: 'unix:///nonexistent.sock' }, cwd: process.cwd() });
    expect(service.name).toBe('docker');
  });

  it('rejects an unknown builder, naming the env var and the option', () => {
    expect(() => createDockerBuildService({ env: { METAFLOW_PREBUILT_DOCKER_BUILDER: 'kaniko' } })).toThrow(ConfigError);
    try {
      createDockerBuildService({ env: { METAFLOW_PREBUILT_DOCKER_BUILDER: 'kaniko' } });
    } catch (error) {
      expect((error as ConfigError).hint).toMatch(/METAFLOW_PREBUILT_DOCKER_BUILDER.*'builder'/);
    }
  });

  it('rejects a malformed API version and a malformed keep-images flag', () => {
    expect(() => createDockerBuildService({ apiVersion: 'latest' })).toThrow(/not of the form 1\.41/);
    expect(() => createDockerBuildService({ env: { METAFLOW_PREBUILT_DOCKER_KEEP_IMAGES: 'maybe' } })).toThrow(/METAFLOW_PREBUILT_DOCKER_KEEP_IMAGES='maybe'.*neither on nor off/);
  });

  it('reads DOCKER_HOST addresses the way the docker CLI does', () => {
    expect(dockerConnection('unix:///run/user/1000/docker.sock', {})).toEqual({ socketPath: '/run/user/1000/docker.sock' });
    expect(dockerConnection('/var/run/docker.sock', {})).toEqual({ socketPath: '/var/run/docker.sock' });
    expect(dockerConnection('tcp://127.0.0.1:2375', {})).toEqual({ host: '127.0.0.1', port: 2375, protocol: 'http' });
    expect(dockerConnection('tcp://127.0.0.1', {})).toMatchObject({ port: 2375 });
    expect(dockerConnection('ssh://me@builder:2222', {})).toEqual({ protocol: 'ssh', host: 'builder', port: 2222, username: 'me' });
    expect(() => dockerConnection('tcp://127.0.0.1:2376', { DOCKER_TLS_VERIFY: '1', DOCKER_CERT_PATH: '/nonexistent' })).toThrow(
      /DOCKER_CERT_PATH|ca\.pem/,
    );
    expect(() => dockerConnection('ftp://x', {})).toThrow(ConfigError);
  });

  it('a DOCKER_HOST the docker CLI would refuse is a ConfigError, never a URIError: a broken %-escape, an ssh password, a control character in the ssh login', () => {
    const refused = (host: string): ConfigError => {
      try {
        dockerConnection(host, {});
      } catch (error) {
        return error as ConfigError;
      }
      throw new Error(`${host} was accepted`);
    };
    for (const host of ['unix:///tmp/%zz.sock', 'ssh://%zz@builder', 'ssh://me:hunter2@builder', 'ssh://me%0Aproxy@builder', 'ssh://me%20you@builder']) {
      const error = refused(host);
      expect(error, host).toBeInstanceOf(ConfigError);
      expect(error.message, host).not.toContain('hunter2');
    }
    expect(refused('ssh://me:hunter2@builder').message).toMatch(/password.*not supported/);
    expect(refused('ssh://me:hunter2@builder').hint).toMatch(/ssh-agent|key/);
    expect(refused('ftp://me:hunter2@builder').message).toContain("'ftp://***@builder'");
    // Options cannot come through the URL: the host follows `--`, the login is -l's own argument.
    expect(dockerConnection('ssh://-oProxyCommand=x', {})).toMatchObject({ host: '-oProxyCommand=x' });
  });

  it('a DOCKER_HOST with credentials in it never shows them: the unreachable daemon is named without its password', async () => {
    const error = await new DockerDaemon(resolveDockerSettings({ dockerHost: 'tcp://alice:hunter2@127.0.0.1:1' }, {}), {}).check(undefined).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UnreachableError);
    expect(JSON.stringify({ ...(error as UnreachableError), message: (error as Error).message })).not.toContain('hunter2');
    expect((error as UnreachableError).message).toContain('tcp://***@127.0.0.1:1');
  });

  it('reports an unreachable daemon as an UnreachableError (code unreachable, exit 2, as an unreachable registry) saying what to run', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'prebuilt-docker-'));
    try {
      const service = createDockerBuildService({ env: { DOCKER_HOST: 'unix:///nonexistent' } });
      const error = await service
        .buildAndPush({ dockerfile: 'FROM scratch\n', contextDir: dir, imageTag: '127.0.0.1:1/x:y', platform: 'linux/amd64' })
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(UnreachableError);
      expect((error as UnreachableError).code).toBe('unreachable');
      expect((error as UnreachableError).exitCode).toBe(2);
      expect((error as UnreachableError).message).toContain('unix:///nonexistent');
      expect((error as UnreachableError).hint).toMatch(/dockerd|DOCKER_HOST/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses credentials meant for another registry than the tag\'s (no secret goes to the wrong host)', async () => {
    const service = createDockerBuildService({ env: { DOCKER_HOST: 'unix:///nonexistent' } });
    const request = {
      dockerfile: 'FROM scratch\n',
      contextDir: '/',
      imageTag: '127.0.0.1:5000/x:y',
      platform: 'linux/amd64',
      pushCredentials: { registry: 'registry.example.com', username: 'u', password: new Secret('p4ss-word'), source: 'the test' },
    };
    const error = await service.buildAndPush(request).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toContain('registry.example.com');
    expect((error as Error).message).not.toContain('p4ss-word');
  });

  it('rejects an already-aborted request with CancelledError before touching the daemon', async () => {
    const service = createDockerBuildService({ env: { DOCKER_HOST: 'unix:///nonexistent' } });
    const controller = new AbortController();
    controller.abort();
    await expect(
      service.buildAndPush({ dockerfile: '', contextDir: '/', imageTag: 'a/b:c', platform: 'linux/amd64', signal: controller.signal }),
    ).rejects.toBeInstanceOf(CancelledError);
  });
});

const services = testServices();
const store = services.containerdStoreDocker;
// The system's Docker 20.10 (graphdriver), and Docker 26.1 with the containerd image store, where
// BuildKit is refused before Engine 27.5 (image-store.ts) and only the legacy builder runs.
const daemons = [
  { what: 'the real daemon', need: 'docker' as const, host: services.dockerHost, builders: ['legacy', 'buildkit'] as const },
  {
    what: `Docker ${store?.version ?? '26'} with the containerd image store`,
    need: 'containerdStoreDocker' as const,
    host: store?.host ?? null,
    builders: beforeContextFix(store?.version) ? (['legacy'] as const) : (['legacy', 'buildkit'] as const),
  },
];

for (const daemon of daemons) {
  describeWith([daemon.need, 'registries', 'baseImage'], `docker build service against ${daemon.what}`, () => realDaemonSuite(daemon.host ?? 'unix:///var/run/docker.sock', daemon.builders));
}

function realDaemonSuite(dockerHost: string, builders: readonly ('legacy' | 'buildkit')[]): void {
  // The body is collected even when the suite is skipped: nothing here may touch a missing service.
  const registries = services.registries!;
  const base = services.baseImage!;
  const docker = new EngineClient(dockerConnection(dockerHost, {}));
  const inspectImage = (tag: string) => docker.json<{ Config: { Labels: Record<string, string> } }>({ method: 'GET', path: `/images/${imagePath(tag)}/json` });
  const removeImage = (tag: string) => docker.json({ method: 'DELETE', path: `/images/${imagePath(tag)}` });
  const run = randomBytes(4).toString('hex');
  let contextDir: string;

  beforeAll(async () => {
    contextDir = await mkdtemp(join(tmpdir(), 'prebuilt-docker-ctx-'));
    await writeFile(join(contextDir, 'hello.txt'), `hello ${run}\n`);
  });
  afterAll(async () => {
    docker.close();
    await rm(contextDir, { recursive: true, force: true });
  });

  const tagIn = (host: string, name: string) => `${host}/prebuilt-test/docker-${name}:${run}`;
  const localImageExists = async (tag: string) =>
    inspectImage(tag)
      .then(() => true)
      .catch((error: { statusCode?: number }) => {
        if (error.statusCode === 404) return false;
        throw error;
      });

  function request(overrides: Partial<BuildRequest> & Pick<BuildRequest, 'imageTag'>): BuildRequest & { lines: string[]; phases: string[] } {
    const lines: string[] = [];
    const phases: string[] = [];
    return {
      dockerfile: `FROM ${base.ref}\nCOPY hello.txt /hello.txt\n`,
      contextDir,
      platform: 'linux/amd64',
      log: (line) => lines.push(line),
      onPhase: (phase) => phases.push(phase),
      lines,
      phases,
      ...overrides,
    };
  }

  for (const builder of builders) {
    it(`${builder}: builds and pushes; the digest is the registry's, and the local image is removed`, async () => {
      const service = createDockerBuildService({ dockerHost, builder, labels: { 'org.example.test': run } });
      const req = request({ imageTag: tagIn(registries.plain.host, `ok-${builder}`) });
      const result = await service.buildAndPush(req);
      expect(result).toMatchObject({ ok: true });
      const digest = (result as { digest: string }).digest;
      expect(digest).toMatch(/^sha256:[0-9a-f]{64}$/);
      expect(await headDigest(req.imageTag)).toBe(digest);
      expect(req.phases).toEqual(['building', 'pushing']);
      expect(req.lines.length).toBeGreaterThan(0);
      expect(await localImageExists(req.imageTag)).toBe(false);
      await service.close?.();
    });

    it(`${builder}: a failing RUN is ok:false with the log tail (and is one even when it printed what reads like a FROM step)`, async () => {
      const service = createDockerBuildService({ dockerHost, builder });
      const req = request({
        imageTag: tagIn(registries.plain.host, `fail-${builder}`),
        // 'Step 3/3 : FROM …' is the legacy builder's next step line but for its instruction: the Dockerfile's step 3 is a LABEL.
        dockerfile: `FROM ${base.ref}\nRUN echo marker-${run} && echo 'Step 1/1 : FROM fake:1' && echo 'Step 3/3 : FROM fake:1' && false\nLABEL prebuilt.test=1\n`,
      });
      const result = (await service.buildAndPush(req)) as Extract<BuildResult, { ok: false }>;
      expect(result.ok).toBe(false);
      expect(result.reason.startsWith(`The Docker build of ${req.imageTag} failed: `), result.reason).toBe(true);
      expect(result.reason).toMatch(/false/);
      expect(result.logTail.join('\n')).toContain(`marker-${run}`);
      expect(result.logTail.length).toBeLessThanOrEqual(30);
      expect(req.phases).toEqual(['building']);
      expect(await headDigest(req.imageTag)).toBeUndefined();
      expect(await localImageExists(req.imageTag)).toBe(false);
    });

    it(`${builder}: a Dockerfile syntax error is ok:false`, async () => {
      const service = createDockerBuildService({ dockerHost, builder });
      const req = request({ imageTag: tagIn(registries.plain.host, `syntax-${builder}`), dockerfile: `FROM ${base.ref}\nFROBNICATE now\n` });
      const result = (await service.buildAndPush(req)) as Extract<BuildResult, { ok: false }>;
      expect(result.ok).toBe(false);
      expect(result.reason.toLowerCase()).toContain('frobnicate');
    });

    it(`${builder}: a missing base image is ok:false naming it`, async () => {
      const service = createDockerBuildService({ dockerHost, builder });
      const missingBase = `${registries.plain.host}/prebuilt-test/no-such-base:${run}`;
      const req = request({ imageTag: tagIn(registries.plain.host, `nobase-${builder}`), dockerfile: `FROM ${missingBase}\nRUN true\n` });
      const result = (await service.buildAndPush(req)) as Extract<BuildResult, { ok: false }>;
      expect(result.ok).toBe(false);
      expect(result.reason).toContain(`base image ${missingBase}`);
    });

    it(`${builder}: a missing micromamba image (the micromamba recipe's stage) is named with its setting, not as the base image; a missing base beside it is the base image`, async () => {
      const service = createDockerBuildService({ dockerHost, builder });
      const missing = `${registries.plain.host}/prebuilt-test/no-such-micromamba:${run}`;
      const recipe = (mamba: string, from: string) => `FROM ${mamba} AS micromamba\nFROM ${from}\nCOPY --from=micromamba /hello.txt /hello.txt\n`;
      const mamba = (await service.buildAndPush(request({ imageTag: tagIn(registries.plain.host, `nomamba-${builder}`), dockerfile: recipe(missing, base.ref) }))) as Extract<BuildResult, { ok: false }>;
      expect(mamba.ok).toBe(false);
      expect(mamba.reason.startsWith(`The micromamba image ${missing} (METAFLOW_PREBUILT_MICROMAMBA_IMAGE) is missing or cannot be pulled: `)).toBe(true);
      const missingBase = `${registries.plain.host}/prebuilt-test/no-such-base:${run}`;
      const baseMissing = (await service.buildAndPush(request({ imageTag: tagIn(registries.plain.host, `nobase2-${builder}`), dockerfile: recipe(base.ref, missingBase) }))) as Extract<BuildResult, { ok: false }>;
      expect(baseMissing.ok).toBe(false);
      expect(baseMissing.reason.startsWith(`The base image ${missingBase} is missing or cannot be pulled: `)).toBe(true);
    });
  }

  it('keeps the local image, with the configured labels, when keepImages is set', async () => {
    const service = createDockerBuildService({ dockerHost, keepImages: true, labels: { 'org.example.run': run } });
    const req = request({ imageTag: tagIn(registries.plain.host, 'kept') });
    const result = await service.buildAndPush(req);
    expect(result.ok).toBe(true);
    expect(await localImageExists(req.imageTag)).toBe(true);
    const info = await inspectImage(req.imageTag);
    expect(info.Config.Labels).toMatchObject({ 'org.example.run': run });
    await removeImage(req.imageTag);
  });

  it('pushes to the Basic-auth registry with the right credentials', async () => {
    const { host, username, password } = registries.basic;
    const service = createDockerBuildService({ dockerHost });
    const req = request({
      imageTag: tagIn(host, 'auth-ok'),
      pushCredentials: { registry: host, username, password: new Secret(password), source: 'test fixture' },
    });
    const result = await service.buildAndPush(req);
    expect(result.ok).toBe(true);
    expect(await headDigest(req.imageTag, { username, password })).toBe((result as { digest: string }).digest);
  });

  it(`pulls a base image from the authenticated push registry with the push credentials (${builders.join(' and ')})`, async () => {
    const { host, username, password } = registries.basic;
    const credentials = { registry: host, username, password: new Secret(password), source: 'test fixture' };
    const privateBase = tagIn(host, 'private-base');
    const seeded = await createDockerBuildService({ dockerHost }).buildAndPush(request({ imageTag: privateBase, pushCredentials: credentials }));
    expect(seeded.ok).toBe(true);
    expect(await localImageExists(privateBase)).toBe(false); // so the next builds must pull it
    for (const builder of builders) {
      const service = createDockerBuildService({ dockerHost, builder });
      const dockerfile = `FROM ${privateBase}\nRUN cat /hello.txt\n`;
      const withCreds = await service.buildAndPush(request({ imageTag: tagIn(host, `from-private-${builder}`), dockerfile, pushCredentials: credentials }));
      expect(withCreds, `${builder} with credentials`).toMatchObject({ ok: true });
      await removeImage(privateBase).catch(() => undefined);
      const without = await service.buildAndPush(request({ imageTag: tagIn(registries.plain.host, `from-private-nocreds-${builder}`), dockerfile }));
      expect(without.ok, `${builder} without credentials`).toBe(false);
      expect((without as { reason: string }).reason).toContain(`base image ${privateBase}`);
    }
  });

  it('pulls a private image through the daemon (pullThroughDaemon) with the registry credentials, and fails to without them', async () => {
    const { host, username, password } = registries.basic;
    const credentials = { registry: host, username, password: new Secret(password), source: 'test fixture' };
    const image = tagIn(host, 'daemon-pull');
    const seeded = await createDockerBuildService({ dockerHost }).buildAndPush(request({ imageTag: image, pushCredentials: credentials }));
    expect(seeded.ok).toBe(true);
    expect(await localImageExists(image)).toBe(false);
    const pull = (withCredentials: boolean) =>
      pullThroughDaemon(docker, image, { credentials: withCredentials ? credentials : undefined, platform: 'linux/amd64', tracker: new ProgressTracker(undefined, 5), what: 'The pull' });
    expect(await pull(false)).toMatch(/unauthorized|no basic auth credentials|authentication required|denied/i);
    expect(await localImageExists(image)).toBe(false);
    expect(await pull(true)).toBeUndefined();
    expect(await localImageExists(image)).toBe(true);
    await removeImage(image);
  });

  it('a push denied for bad credentials is ok:false naming the registry and the source, never the password', async () => {
    const { host, username } = registries.basic;
    const badPassword = `wrong-${run}-secret`;
    const service = createDockerBuildService({ dockerHost });
    const req = request({
      imageTag: tagIn(host, 'auth-bad'),
      pushCredentials: { registry: host, username, password: new Secret(badPassword), source: 'env METAFLOW_PREBUILT_TEST_CREDS' },
    });
    const result = (await service.buildAndPush(req)) as Extract<BuildResult, { ok: false }>;
    expect(result.ok).toBe(false);
    expect(result.reason).toContain(host);
    expect(result.reason).toContain('env METAFLOW_PREBUILT_TEST_CREDS');
    expect(JSON.stringify(result)).not.toContain(badPassword);
    expect(req.lines.join('\n')).not.toContain(badPassword);
    expect(req.phases).toEqual(['building', 'pushing']);
    expect(await localImageExists(req.imageTag)).toBe(false);
  });

  it('cancellation when the push starts rejects with CancelledError; nothing is pushed and no local tag is left', async () => {
    const service = createDockerBuildService({ dockerHost });
    const controller = new AbortController();
    const req = request({
      imageTag: tagIn(registries.plain.host, 'cancel-push'),
      signal: controller.signal,
      onPhase: (phase) => {
        if (phase === 'pushing') controller.abort();
      },
    });
    await expect(service.buildAndPush(req)).rejects.toBeInstanceOf(CancelledError);
    expect(await localImageExists(req.imageTag)).toBe(false);
    expect(await headDigest(req.imageTag)).toBeUndefined();
  });

  it('cancellation mid-build rejects with CancelledError and leaves no tag', async () => {
    const service = createDockerBuildService({ dockerHost });
    const controller = new AbortController();
    const req = request({
      imageTag: tagIn(registries.plain.host, 'cancel'),
      dockerfile: `FROM ${base.ref}\nRUN echo sleeping-${run} && sleep 30\nRUN true\n`,
      signal: controller.signal,
      log: (line) => {
        if (line.includes(`sleeping-${run}`) && !line.includes('echo')) controller.abort();
      },
    });
    const started = Date.now();
    await expect(service.buildAndPush(req)).rejects.toBeInstanceOf(CancelledError);
    expect(Date.now() - started).toBeLessThan(25_000);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect(await localImageExists(req.imageTag)).toBe(false);
    expect(await headDigest(req.imageTag)).toBeUndefined();
  });
}
