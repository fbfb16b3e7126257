import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { usePrivateTmpdir } from '@prebuilt/fixtures';
import { CancelledError, ConfigError, EnvironmentError, InputError, Secret, type BuildRequest, type BuildResult } from '@prebuilt/core/backend';
import buildxDefinition, { createBuildxBuildService } from './index.js';
import { createFakeDocker, type FakeDocker } from './__testing__/fake-docker.js';

// A private temp directory for this file (its own process): see usePrivateTmpdir.
afterAll(usePrivateTmpdir('prebuilt-buildx-tests-').remove);


const TAG = '127.0.0.1:5999/prebuilt-test/app:env-1';
const CREDENTIALS = { registry: '127.0.0.1:5999', username: 'builder', password: new Secret('s3cr3t-pa55word'), source: 'the test' };

let fake: FakeDocker;
let contextDir: string;
let home: string;

/** Temp dirs this package creates; none may be left behind. */
async function leftovers(): Promise<string[]> {
  return (await readdir(tmpdir())).filter((name) => name.startsWith('prebuilt-buildx-'));
}

function processGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return false;
  } catch {
    return true;
  }
}

beforeAll(async () => {
  fake = await createFakeDocker();
  contextDir = await mkdtemp(join(tmpdir(), 'prebuilt-buildx-test-context-'));
  await writeFile(join(contextDir, 'env.txt'), 'an env\n');
  home = await mkdtemp(join(tmpdir(), 'prebuilt-buildx-test-home-'));
});

afterAll(async () => {
  await fake.remove();
  await rm(contextDir, { recursive: true, force: true });
  await rm(home, { recursive: true, force: true });
});

const ownDirs = () => [contextDir, home].map((d) => d.slice(tmpdir().length + 1));

afterEach(async () => {
  const left = (await leftovers()).filter((name) => !ownDirs().includes(name));
  expect(left, 'temporary docker configs and metadata dirs are removed').toEqual([]);
});

function request(dockerfile: string, extra: Partial<BuildRequest> = {}): BuildRequest {
  return { dockerfile, contextDir, imageTag: TAG, platform: 'linux/amd64', ...extra };
}

describe('buildx build service (against a FAKE scripted docker on PATH)', () => {
  it('is a build-service definition named buildx', async () => {
    expect(buildxDefinition).toMatchObject({ apiVersion: 1, kind: 'build-service', name: 'buildx' });
    const service = await buildxDefinition.create({}, { env: fake.env(), cwd: process.cwd() });
    expect(service.name).toBe('buildx');
  });

  it('runs docker buildx build --push with tag, platform, builder, metadata file, host network and the Dockerfile on stdin', async () => {
    const before = (await fake.records()).length;
    const lines: string[] = [];
    const service = createBuildxBuildService({ env: fake.env({ METAFLOW_PREBUILT_BUILDX_BUILDER: 'remote-builder', HOME: home }) });
    const dockerfile = 'FROM 127.0.0.1:5999/base:1\nCOPY env.txt /opt/env.txt\n';
    const phases: string[] = [];
    const result = await service.buildAndPush(request(dockerfile, { log: (line) => lines.push(line), onPhase: (p) => phases.push(p) }));
    expect(phases).toEqual(['building', 'pushing']);
    expect(result).toMatchObject({ ok: true });
    expect((result as { digest: string }).digest).toMatch(/^sha256:[a-f0-9]{64}$/);
    const record = (await fake.records()).slice(before).find((r) => r.argv[1] === 'build')!;
    const argv = record.argv;
    expect(argv.slice(0, 3)).toEqual(['buildx', 'build', '--push']);
    expect(argv[argv.indexOf('--tag') + 1]).toBe(TAG);
    expect(argv[argv.indexOf('--platform') + 1]).toBe('linux/amd64');
    expect(argv[argv.indexOf('--builder') + 1]).toBe('remote-builder');
    expect(argv[argv.indexOf('--network') + 1]).toBe('host');
    expect(argv[argv.indexOf('--metadata-file') + 1]).toMatch(/metadata\.json$/);
    expect(argv).toContain('--provenance=false'); // one platform's image is a manifest, not an index
    expect(argv.slice(-3)).toEqual(['-f', '-', contextDir]);
    expect(record.dockerfile).toBe(dockerfile);
    expect(record.env.DOCKER_CONFIG, 'no credentials: the user\'s own docker config is used').toBeUndefined();
    expect(lines).toContain('#2 [2/2] COPY env.txt /opt/env.txt');
    expect(lines.some((l) => l.includes('pushing manifest'))).toBe(true);
  });

  it('builds several platforms in one build when asked (comma-separated)', async () => {
    const service = createBuildxBuildService({ env: fake.env() });
    const result = await service.buildAndPush(request('FROM base\n', { platform: 'linux/amd64, linux/arm64' }));
    expect(result.ok).toBe(true);
    const argv = (await fake.records()).at(-1)!.argv;
    expect(argv[argv.indexOf('--platform') + 1]).toBe('linux/amd64,linux/arm64');
    expect(argv).not.toContain('--builder');
  });

  it("network 'default' leaves --network out (for builders without the network.host entitlement)", async () => {
    const service = createBuildxBuildService({ env: fake.env({ METAFLOW_PREBUILT_BUILDX_NETWORK: 'default' }) });
    expect((await service.buildAndPush(request('FROM base\n'))).ok).toBe(true);
    expect((await fake.records()).at(-1)!.argv).not.toContain('--network');
  });

  it('passes push credentials in a temporary 0600 DOCKER_CONFIG (never on the command line), keeps the user\'s other settings, removes it after', async () => {
    const userDir = join(home, '.docker');
    await mkdir(join(userDir, 'buildx'), { recursive: true });
    await writeFile(
      join(userDir, 'config.json'),
      JSON.stringify({
        credsStore: 'desktop',
        credHelpers: { '127.0.0.1:5999': 'pass', 'gcr.io': 'gcloud' },
        auths: { 'other.example.com': { auth: 'b3RoZXI6eA==' }, 'http://127.0.0.1:5999/': { auth: 'b2xkOm9sZA==' } },
        currentContext: 'default',
      }),
    );
    const lines: string[] = [];
    const service = createBuildxBuildService({ env: fake.env({ HOME: home }) });
    const result = await service.buildAndPush(request('FROM base\nCOPY env.txt /x\n', { pushCredentials: CREDENTIALS, log: (l) => lines.push(l) }));
    expect(result.ok).toBe(true);
    const record = (await fake.records()).at(-1)!;
    expect(record.argv.join(' ')).not.toContain('s3cr3t-pa55word');
    expect(record.env.DOCKER_CONFIG).toBeDefined();
    expect(record.configMode).toBe('600');
    expect(record.dirMode).toBe('700');
    expect(record.config).toEqual({
      currentContext: 'default',
      credHelpers: { 'gcr.io': 'gcloud' },
      auths: {
        'other.example.com': { auth: 'b3RoZXI6eA==' },
        '127.0.0.1:5999': { auth: Buffer.from('builder:s3cr3t-pa55word').toString('base64') },
      },
    });
    expect(existsSync(record.env.DOCKER_CONFIG!), 'the temporary DOCKER_CONFIG is removed').toBe(false);
    expect(JSON.stringify({ result, lines })).not.toContain('s3cr3t-pa55word');
  });

  it('sends an identity token or a registry token the way Docker stores them', async () => {
    const service = createBuildxBuildService({ env: fake.env({ HOME: home }) });
    await service.buildAndPush(
      request('FROM base\n', { pushCredentials: { registry: '127.0.0.1:5999', username: 'u', identityToken: new Secret('refresh-token-1'), source: 't' } }),
    );
    expect((await fake.records()).at(-1)!.config!.auths!['127.0.0.1:5999']).toEqual({
      auth: Buffer.from('u:').toString('base64'),
      identitytoken: 'refresh-token-1',
    });
    await service.buildAndPush(request('FROM base\n', { pushCredentials: { registry: '127.0.0.1:5999', registryToken: new Secret('bearer-2'), source: 't' } }));
    expect((await fake.records()).at(-1)!.config!.auths!['127.0.0.1:5999']).toEqual({ registrytoken: 'bearer-2' });
  });

  it('a failing build is { ok: false } with the buildx error as reason and the log tail; nothing left behind', async () => {
    const service = createBuildxBuildService({ env: fake.env({ HOME: home }), logTailLines: 3 });
    const result = await service.buildAndPush(request('FROM base\nCOPY missing.txt /m\n', { pushCredentials: CREDENTIALS }));
    expect(result.ok).toBe(false);
    const failed = result as Extract<BuildResult, { ok: false }>;
    expect(failed.reason).toContain('"/missing.txt": not found');
    expect(failed.reason).toContain(TAG);
    expect(failed.logTail).toHaveLength(3);
    expect(failed.logTail.at(-1)).toMatch(/^ERROR: failed to solve/);
    expect(existsSync((await fake.records()).at(-1)!.env.DOCKER_CONFIG!)).toBe(false);
  });

  it('a failing RUN gives its exit code in the reason', async () => {
    const service = createBuildxBuildService({ env: fake.env() });
    const result = await service.buildAndPush(request('FROM base\nRUN exit 3\n'));
    expect(result).toMatchObject({ ok: false, reason: expect.stringContaining('exit code: 3') });
  });

  it('exit 0 without a digest in the metadata file is a failure, not a made-up digest', async () => {
    const service = createBuildxBuildService({ env: fake.env({ FAKE_DOCKER_NO_METADATA: '1' }) });
    const result = await service.buildAndPush(request('FROM base\n'));
    expect(result).toMatchObject({ ok: false, reason: expect.stringContaining('containerimage.digest') });
  });

  it('stops a build that outlives the timeout: { ok: false } naming the timeout, the process group is gone', async () => {
    const service = createBuildxBuildService({ env: fake.env({ HOME: home }), timeoutSeconds: 4 });
    const started = Date.now();
    const result = await service.buildAndPush(request('FROM base\nRUN sleep 60\n', { pushCredentials: CREDENTIALS }));
    expect(Date.now() - started).toBeLessThan(20_000);
    expect(result).toMatchObject({ ok: false, reason: expect.stringContaining('timeout of 4 s') });
    expect((result as { logTail: string[] }).logTail.some((l) => l.includes('sleeping 60'))).toBe(true);
    const record = (await fake.records()).at(-1)!;
    expect(processGone(record.pid), 'the fake docker process was stopped').toBe(true);
    expect(existsSync(record.env.DOCKER_CONFIG!)).toBe(false);
  });

  it('cancelling a running build rejects with CancelledError, stops docker and removes the temporary config', async () => {
    const service = createBuildxBuildService({ env: fake.env({ HOME: home }) });
    const controller = new AbortController();
    const lines: string[] = [];
    const promise = service.buildAndPush(
      request('FROM base\nRUN sleep 60\n', {
        pushCredentials: CREDENTIALS,
        signal: controller.signal,
        log: (line) => {
          lines.push(line);
          if (line.includes('sleeping')) controller.abort('SIGINT');
        },
      }),
    );
    const error = await promise.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CancelledError);
    expect((error as CancelledError).exitCode).toBe(130);
    const record = (await fake.records()).at(-1)!;
    expect(processGone(record.pid)).toBe(true);
    expect(existsSync(record.env.DOCKER_CONFIG!)).toBe(false);
  });

  it('a build that ignores SIGINT is killed after the grace period', async () => {
    const service = createBuildxBuildService({ env: fake.env({ FAKE_DOCKER_IGNORE_SIGINT: '1' }), killGraceSeconds: 0.5 });
    const controller = new AbortController();
    const promise = service.buildAndPush(
      request('FROM base\nRUN sleep 60\n', { signal: controller.signal, log: (l) => l.includes('sleeping') && controller.abort() }),
    );
    await expect(promise).rejects.toBeInstanceOf(CancelledError);
    expect(processGone((await fake.records()).at(-1)!.pid)).toBe(true);
  });

  it('an already aborted signal rejects before docker runs', async () => {
    const before = (await fake.records()).length;
    const controller = new AbortController();
    controller.abort();
    const service = createBuildxBuildService({ env: fake.env() });
    await expect(service.buildAndPush(request('FROM base\n', { signal: controller.signal }))).rejects.toBeInstanceOf(CancelledError);
    expect((await fake.records()).length).toBe(before);
  });
});

/** The `docker image rm` commands the fake saw since `before`. */
async function removals(before: number): Promise<string[][]> {
  return (await fake.records()).slice(before).filter((r) => r.argv.includes('rm')).map((r) => r.argv);
}

describe('buildx build service: the image the docker driver leaves in the daemon (FAKE docker)', () => {
  it('docker driver: after the push the tag is removed from the builder\'s docker context, no note', async () => {
    const before = (await fake.records()).length;
    const notes: string[] = [];
    const service = createBuildxBuildService({ env: fake.env({ FAKE_DOCKER_DRIVER: 'docker', FAKE_DOCKER_ENDPOINT: 'other-context' }) });
    expect((await service.buildAndPush(request('FROM base\n', { note: (n) => notes.push(n) }))).ok).toBe(true);
    expect(await removals(before)).toEqual([['--context', 'other-context', 'image', 'rm', TAG]]);
    expect(notes).toEqual([]);
  });

  it('a tag that cannot be removed leaves the build a success and says so in a note', async () => {
    const notes: string[] = [];
    const env = fake.env({ FAKE_DOCKER_DRIVER: 'docker', FAKE_DOCKER_RM_ERROR: 'Error response from daemon: conflict: unable to remove repository reference (must force)' });
    const result = await createBuildxBuildService({ env }).buildAndPush(request('FROM base\n', { note: (n) => notes.push(n) }));
    expect(result.ok).toBe(true);
    expect(notes).toHaveLength(1);
    expect(notes[0]).toContain(`The image ${TAG} was pushed but stays in the Docker daemon`);
    expect(notes[0]).toContain('unable to remove repository reference');
    expect(notes[0]).toContain(`docker image rm ${TAG}`);
  });

  it('other drivers (docker-container, remote, kubernetes) leave nothing in the daemon: no removal', async () => {
    const before = (await fake.records()).length;
    const service = createBuildxBuildService({ env: fake.env({ FAKE_DOCKER_DRIVER: 'docker-container' }) });
    expect((await service.buildAndPush(request('FROM base\n'))).ok).toBe(true);
    expect(await removals(before)).toEqual([]);
  });

  it('METAFLOW_PREBUILT_BUILDX_KEEP_IMAGES=1 keeps the image; a build failing before its export removes nothing', async () => {
    const before = (await fake.records()).length;
    const kept = createBuildxBuildService({ env: fake.env({ FAKE_DOCKER_DRIVER: 'docker', METAFLOW_PREBUILT_BUILDX_KEEP_IMAGES: '1' }) });
    expect((await kept.buildAndPush(request('FROM base\n'))).ok).toBe(true);
    const failing = createBuildxBuildService({ env: fake.env({ FAKE_DOCKER_DRIVER: 'docker' }) });
    expect((await failing.buildAndPush(request('FROM base\nRUN exit 2\n'))).ok).toBe(false);
    expect(await removals(before)).toEqual([]);
    expect(await fake.images()).toHaveProperty([TAG]);
  });
});

describe('buildx build service: a build whose push fails, docker driver (FAKE docker)', () => {
  const PUSH_ERROR = 'unexpected status from HEAD request: 401 Unauthorized';
  let count = 0;
  /** A tag no other test uses, so the fake daemon's images do not mix. */
  const freshTag = () => `127.0.0.1:5999/prebuilt-test/push-fails:env-${++count}`;
  /** An image the user had under the tag before the build. */
  const OLD_IMAGE = 'sha256:' + '1'.repeat(64);
  /** The `docker [--context c] image …` commands the fake saw since `before`. */
  const imageCommands = async (before: number) => (await fake.records()).slice(before).filter((r) => r.argv.includes('image')).map((r) => r.argv);
  const inspects = async (before: number) => (await fake.records()).slice(before).filter((r) => r.argv[0] === 'buildx' && r.argv[1] === 'inspect').length;

  async function build(imageTag: string, extraEnv: Record<string, string>, notes: string[] = []): Promise<BuildResult> {
    const service = createBuildxBuildService({ env: fake.env({ FAKE_DOCKER_DRIVER: 'docker', ...extraEnv }) });
    return service.buildAndPush(request('FROM base\nCOPY env.txt /x\n', { imageTag, note: (n) => notes.push(n) }));
  }

  it('removes the tag the failed build left in the daemon; the push error stays the result; buildx inspect runs once', async () => {
    const imageTag = freshTag();
    const before = (await fake.records()).length;
    const notes: string[] = [];
    const result = await build(imageTag, { FAKE_DOCKER_PUSH_ERROR: PUSH_ERROR }, notes);
    expect(result).toMatchObject({ ok: false, reason: expect.stringContaining('401 Unauthorized') });
    expect(await fake.images()).not.toHaveProperty([imageTag]);
    expect(await removals(before)).toEqual([['--context', 'default', 'image', 'rm', imageTag]]);
    expect(await inspects(before), 'one buildx inspect per build').toBe(1);
    expect(notes).toEqual([]);
    expect(await build(freshTag(), {})).toMatchObject({ ok: true });
    expect(await inspects(before), 'a pushed build asks buildx once too').toBe(2);
  });

  it("keeps a tag that named the same image before the build (the user's own)", async () => {
    const imageTag = freshTag();
    expect(await build(imageTag, { METAFLOW_PREBUILT_BUILDX_KEEP_IMAGES: '1' })).toMatchObject({ ok: true });
    const own = (await fake.images())[imageTag];
    expect(own).toMatch(/^sha256:/);
    const before = (await fake.records()).length;
    expect(await build(imageTag, { FAKE_DOCKER_PUSH_ERROR: PUSH_ERROR })).toMatchObject({ ok: false });
    expect((await fake.images())[imageTag]).toBe(own);
    expect(await removals(before)).toEqual([]);
  });

  it('a tag that named another image before the build names that image again (the new one removed), no note', async () => {
    const imageTag = freshTag();
    const before = (await fake.records()).length;
    const notes: string[] = [];
    await fake.setImage(imageTag, OLD_IMAGE);
    expect(await build(imageTag, { FAKE_DOCKER_PUSH_ERROR: PUSH_ERROR }, notes)).toMatchObject({ ok: false, reason: expect.stringContaining('401 Unauthorized') });
    expect((await fake.images())[imageTag], 'the tag names the image it named before').toBe(OLD_IMAGE);
    expect(await fake.untaggedImages(), 'the failed build left no image behind').toEqual([]);
    expect(await imageCommands(before)).toEqual([
      ['--context', 'default', 'image', 'inspect', '--format', '{{.Id}}', imageTag],
      ['--context', 'default', 'image', 'inspect', '--format', '{{.Id}}', imageTag],
      ['--context', 'default', 'image', 'rm', imageTag],
      ['--context', 'default', 'image', 'tag', OLD_IMAGE, imageTag],
    ]);
    expect(notes).toEqual([]);
  });

  it('tagging the image of before again fails: a note, the build failure stays the result', async () => {
    const imageTag = freshTag();
    const notes: string[] = [];
    await fake.setImage(imageTag, OLD_IMAGE);
    const result = await build(imageTag, { FAKE_DOCKER_PUSH_ERROR: PUSH_ERROR, FAKE_DOCKER_TAG_ERROR: 'Error response from daemon: conflict: the daemon is busy' }, notes);
    expect(result).toMatchObject({ ok: false, reason: expect.stringContaining('401 Unauthorized') });
    expect(await fake.images()).not.toHaveProperty([imageTag]);
    expect(notes).toEqual([
      `The build of ${imageTag} did not push; its tag was removed from the image it left in the Docker daemon, but naming the image it named before (${OLD_IMAGE}) ` +
        `with it again failed: Error response from daemon: conflict: the daemon is busy. Tag it with \`docker image tag ${OLD_IMAGE} ${imageTag}\`.`,
    ]);
  });

  it('the image of before is gone (the containerd image store drops it when the build takes its only tag): a note saying so', async () => {
    const imageTag = freshTag();
    const notes: string[] = [];
    // An ID of its own: the fake daemon keeps OLD_IMAGE untagged from the tests above.
    const userImage = 'sha256:' + '2'.repeat(64);
    await fake.setImage(imageTag, userImage);
    const result = await build(imageTag, { FAKE_DOCKER_PUSH_ERROR: PUSH_ERROR, FAKE_DOCKER_CONTAINERD_STORE: '1' }, notes);
    expect(result).toMatchObject({ ok: false, reason: expect.stringContaining('401 Unauthorized') });
    expect(await fake.images()).not.toHaveProperty([imageTag]);
    expect(notes).toEqual([
      `The build of ${imageTag} did not push; its tag was removed from the image it left in the Docker daemon, but the image it named before (${userImage}) is no longer ` +
        "in the daemon: a build that takes an image's only tag drops it with the containerd image store. Pull or build that image again if you need it.",
    ]);
  });

  it('a tag that cannot be removed is not moved back; the note gives both commands', async () => {
    const imageTag = freshTag();
    const before = (await fake.records()).length;
    const notes: string[] = [];
    await fake.setImage(imageTag, OLD_IMAGE);
    expect(await build(imageTag, { FAKE_DOCKER_PUSH_ERROR: PUSH_ERROR, FAKE_DOCKER_RM_ERROR: 'Error response from daemon: conflict: image is in use' }, notes)).toMatchObject({ ok: false });
    expect((await imageCommands(before)).filter((argv) => argv.includes('tag'))).toEqual([]);
    expect(notes).toEqual([
      `The build of ${imageTag} did not push, but left its image in the Docker daemon: removing its tag failed: Error response from daemon: conflict: image is in use. ` +
        `Remove it with \`docker image rm ${imageTag}\`, then give the tag back to the image it named before with \`docker image tag ${OLD_IMAGE} ${imageTag}\`.`,
    ]);
  });

  it('after a pushed build the tag is removed even when it named another image before (that image is not tagged again)', async () => {
    const imageTag = freshTag();
    const before = (await fake.records()).length;
    await fake.setImage(imageTag, OLD_IMAGE);
    expect(await build(imageTag, {})).toMatchObject({ ok: true });
    expect(await fake.images()).not.toHaveProperty([imageTag]);
    expect((await imageCommands(before)).filter((argv) => argv.includes('tag'))).toEqual([]);
  });

  it('removes nothing when the image ID before the build cannot be read, or with keepImages (even when the tag named another image)', async () => {
    const unread = freshTag();
    const notes: string[] = [];
    expect(await build(unread, { FAKE_DOCKER_PUSH_ERROR: PUSH_ERROR, FAKE_DOCKER_INSPECT_ERROR: 'Cannot connect to the Docker daemon' }, notes)).toMatchObject({ ok: false });
    expect(await fake.images()).toHaveProperty([unread]);
    expect(notes).toEqual([]);
    const kept = freshTag();
    await fake.setImage(kept, OLD_IMAGE);
    const before = (await fake.records()).length;
    expect(await build(kept, { FAKE_DOCKER_PUSH_ERROR: PUSH_ERROR, METAFLOW_PREBUILT_BUILDX_KEEP_IMAGES: '1' })).toMatchObject({ ok: false });
    expect((await fake.images())[kept]).toMatch(/^sha256:/);
    expect((await fake.images())[kept]).not.toBe(OLD_IMAGE);
    expect(await imageCommands(before)).toEqual([]);
  });

  it('a build cancelled while it pushes removes the tag it left, and still rejects with CancelledError', async () => {
    const imageTag = freshTag();
    const controller = new AbortController();
    const service = createBuildxBuildService({ env: fake.env({ FAKE_DOCKER_DRIVER: 'docker', FAKE_DOCKER_PUSH_SLEEP: '60' }) });
    const log = (line: string) => line.includes('pushing layers') && controller.abort('SIGINT');
    const error = await service.buildAndPush(request('FROM base\nCOPY env.txt /x\n', { imageTag, signal: controller.signal, log })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CancelledError);
    expect(await fake.images(), 'the cut-short push left no tag').not.toHaveProperty([imageTag]);
  });

  it('a build cancelled while it pushes gives the tag back to the image it named before', async () => {
    const imageTag = freshTag();
    await fake.setImage(imageTag, OLD_IMAGE);
    const controller = new AbortController();
    const notes: string[] = [];
    const service = createBuildxBuildService({ env: fake.env({ FAKE_DOCKER_DRIVER: 'docker', FAKE_DOCKER_PUSH_SLEEP: '60' }) });
    const log = (line: string) => line.includes('pushing layers') && controller.abort('SIGINT');
    const error = await service.buildAndPush(request('FROM base\nCOPY env.txt /x\n', { imageTag, signal: controller.signal, log, note: (n) => notes.push(n) })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CancelledError);
    expect((await fake.images())[imageTag]).toBe(OLD_IMAGE);
    expect(notes).toEqual([]);
  });

  it('a tag that cannot be removed is a note; the build failure stays the result', async () => {
    const imageTag = freshTag();
    const notes: string[] = [];
    const result = await build(imageTag, { FAKE_DOCKER_PUSH_ERROR: PUSH_ERROR, FAKE_DOCKER_RM_ERROR: 'Error response from daemon: conflict: image is in use' }, notes);
    expect(result).toMatchObject({ ok: false, reason: expect.stringContaining('401 Unauthorized') });
    expect(notes).toEqual([
      `The build of ${imageTag} did not push, but left its image in the Docker daemon: removing its tag failed: Error response from daemon: conflict: image is in use. Remove it with \`docker image rm ${imageTag}\`.`,
    ]);
  });
});

describe('buildx build service: missing tools and bad settings', () => {
  it('docker missing: EnvironmentError naming the command and how to install it', async () => {
    const service = createBuildxBuildService({ env: { PATH: '/nonexistent' } });
    const error = await service.buildAndPush(request('FROM base\n')).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(EnvironmentError);
    expect((error as EnvironmentError).message).toBe("The docker command 'docker' was not found on PATH.");
    expect((error as EnvironmentError).hint).toMatch(/docker-buildx.*METAFLOW_PREBUILT_BUILDX_DOCKER/);
  });

  it('buildx plugin missing (FAKE docker without the plugin): EnvironmentError saying how to install it', async () => {
    const service = createBuildxBuildService({ env: fake.env({ FAKE_DOCKER_NO_BUILDX: '1' }) });
    const error = await service.buildAndPush(request('FROM base\n')).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(EnvironmentError);
    expect((error as EnvironmentError).message).toContain("'buildx' is not a docker command");
    expect((error as EnvironmentError).hint).toContain('cli-plugins/docker-buildx');
  });

  it('rejects a bad timeout naming the env var and the option', () => {
    expect(() => createBuildxBuildService({ env: { METAFLOW_PREBUILT_BUILDX_TIMEOUT: 'soon' } })).toThrow(ConfigError);
    try {
      createBuildxBuildService({ env: { METAFLOW_PREBUILT_BUILDX_TIMEOUT: '-1' } });
    } catch (error) {
      expect((error as ConfigError).hint).toMatch(/METAFLOW_PREBUILT_BUILDX_TIMEOUT.*'timeoutSeconds'/);
    }
  });

  it('refuses credentials for another registry, a bad platform and a missing context', async () => {
    const service = createBuildxBuildService({ env: fake.env() });
    const wrong = await service
      .buildAndPush(request('FROM base\n', { pushCredentials: { ...CREDENTIALS, registry: 'registry.example.com' } }))
      .catch((e: unknown) => e);
    expect(wrong).toBeInstanceOf(ConfigError);
    expect((wrong as Error).message).not.toContain('s3cr3t');
    await expect(service.buildAndPush(request('FROM base\n', { platform: 'amd64' }))).rejects.toBeInstanceOf(InputError);
    await expect(service.buildAndPush(request('FROM base\n', { contextDir: '/nonexistent-context' }))).rejects.toBeInstanceOf(InputError);
  });
});
