import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { BuildRequest, BuildService, DeployEvent, DeployOptions, DeployStep, ImageLayout, ImageRegistry, RecipeRunner } from '../contracts.js';
import type { EnvRequest, LockedEnv } from '../env-model.js';
import { AuthError, CancelledError, ConfigError, EnvironmentError, InputError, LoginRequiredError, RegistryError, UnreachableError } from '../errors.js';
import { specHash } from '../identity.js';
import { EROFS_LAYOUT_ANNOTATION, buildServiceLayout } from '../image-layout.js';
import type { PushImageIndexOptions } from '../registry/image-index.js';
import { checkBuildService } from './build-service.js';
import { deploy } from './orchestrator.js';

/** A step with the request its fake lock is made from (null: disabled). */
type TestStep = DeployStep & { request: EnvRequest | null };

const sha = (text: string): string => createHash('sha256').update(text).digest('hex');

function request(conda: Record<string, string>, python = '3.11'): EnvRequest {
  return { python, conda, pypi: {}, channels: ['http://127.0.0.1:1/fake'], indexUrl: null, platform: 'linux-64' };
}

function fakeLock(req: EnvRequest, specHash: string): LockedEnv {
  const names = ['python', ...Object.keys(req.conda)].sort();
  return {
    specHash,
    request: req,
    platform: req.platform,
    pythonVersion: '3.11.2',
    packages: names.map((name) => ({
      kind: 'conda' as const,
      name,
      version: req.conda[name] || '1.0',
      build: '0',
      url: `http://127.0.0.1:1/fake/noarch/${name}-1.0-0.conda`,
      sha256: sha(name + (req.conda[name] ?? '')),
      size: 1,
      filename: `${name}-1.0-0.conda`,
      subdir: 'noarch',
    })),
  };
}

/** An in-memory fake registry: tags map to digests. */
function fakeRegistry(): ImageRegistry & { images: Map<string, string>; heads: string[] } {
  const images = new Map<string, string>();
  const heads: string[] = [];
  return {
    name: 'fake-memory',
    images,
    heads,
    imageTag: ({ envId, platform, platforms }) => `fake.registry.test/ns:env-${envId}${platforms && platforms.length > 1 ? '' : `-${platform}`}`,
    pullTag: (tag) => tag.replace('fake.registry.test', 'pull.registry.test'),
    pushCredentials: async () => undefined,
    pullConfig: async () => ({ kubernetes: { imagePullSecrets: ['regcred'] } }),
    imageExists: async (tag) => {
      heads.push(tag);
      const digest = images.get(tag);
      return digest ? { exists: true, digest } : { exists: false };
    },
    baseImageIdentity: async (ref) => ({ ref, digest: `sha256:${sha(ref)}`, pinned: `${ref}@sha256:${sha(ref)}` }),
  };
}

/** A fake build service that "pushes" into the fake registry; a Dockerfile containing FAIL fails. */
function fakeBuildService(registry: ReturnType<typeof fakeRegistry>, delayMs = 5): BuildService & { builds: BuildRequest[]; maxInFlight: number } {
  let inFlight = 0;
  const service = {
    name: 'fake-build',
    builds: [] as BuildRequest[],
    maxInFlight: 0,
    async buildAndPush(req: BuildRequest) {
      service.builds.push(req);
      inFlight++;
      service.maxInFlight = Math.max(service.maxInFlight, inFlight);
      try {
        await new Promise<void>((resolve, reject) => {
          const timer = setTimeout(resolve, delayMs);
          req.signal?.addEventListener('abort', () => {
            clearTimeout(timer);
            reject(new CancelledError('build cancelled'));
          });
        });
        req.log?.('step 1/2');
        if (req.dockerfile.includes('FAIL')) return { ok: false as const, reason: 'RUN failed', logTail: ['boom'] };
        req.onPhase?.('pushing');
        const digest = `sha256:${sha(req.dockerfile)}`;
        registry.images.set(req.imageTag, digest);
        return { ok: true as const, digest };
      } finally {
        inFlight--;
      }
    },
  };
  return service;
}

function fakeRecipe(dir: string): RecipeRunner & { prepared: string[] } {
  const prepared: string[] = [];
  return {
    name: 'fake',
    version: '1',
    prepared,
    async prepare({ lock, envId, base }) {
      prepared.push(envId);
      const failing = lock.packages.some((pkg) => pkg.name === 'broken');
      return {
        dockerfile: `FROM ${base.pinned}\n${failing ? 'RUN FAIL' : ''}\nCOPY env /opt/prebuilt/envs/${envId}\n`,
        contextDir: dir,
        dispose: async () => {},
      };
    },
  };
}

function lockSteps(steps: TestStep[]): Record<string, LockedEnv | null> {
  return Object.fromEntries(steps.map((step) => [step.name, step.request ? fakeLock(step.request, specHash(step.request)) : null]));
}

async function setup(steps: TestStep[], extra: Partial<DeployOptions> = {}) {
  const dir = await mkdtemp(join(tmpdir(), 'prebuilt-deploy-'));
  const registry = fakeRegistry();
  const buildService = fakeBuildService(registry);
  const recipe = fakeRecipe(dir);
  let lockCalls = 0;
  const events: DeployEvent[] = [];
  const options: DeployOptions = {
    flow: 'TestFlow',
    steps,
    registry,
    buildService,
    recipe,
    baseImage: 'base.test/python:3.11',
    gpuBaseImage: 'base.test/cuda:12',
    lock: async () => {
      lockCalls++;
      return lockSteps(steps);
    },
    onEvent: (event) => events.push(event),
    ...extra,
  };
  return { dir, registry, buildService, recipe, lockCalls: () => lockCalls, events, options, [Symbol.asyncDispose]: () => rm(dir, { recursive: true, force: true }) };
}

const fourSteps = (): TestStep[] => [
  { name: 'start', request: request({ tinynum: '1.0' }), gpu: false },
  { name: 'a', request: request({ tinynum: '1.0' }), gpu: false },
  { name: 'b', request: request({ tinyframe: '' }), gpu: false },
  { name: 'end', request: request({ tinyframe: '' }), gpu: false },
];

describe('deploy orchestrator (fake registry and fake build service)', () => {
  it('builds each distinct env once and maps every step to its image', async () => {
    await using ctx = await setup(fourSteps());
    const result = await deploy(ctx.options);
    expect(ctx.lockCalls()).toBe(1);
    expect(ctx.buildService.builds).toHaveLength(2);
    expect(Object.keys(result.imageMap.images)).toHaveLength(2);
    const start = result.imageMap.steps.start!;
    expect(result.imageMap.steps.a!.envId).toBe(start.envId);
    expect(result.imageMap.steps.b!.envId).not.toBe(start.envId);
    expect(start.image).toMatch(/^pull\.registry\.test\/ns:env-/);
    expect(start.python).toBe('/opt/prebuilt/env/bin/python');
    const image = result.imageMap.images[start.envId!]!;
    expect(image.status).toBe('built');
    expect(image.steps).toEqual(['start', 'a']);
    expect(image.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(image.pullConfig).toEqual({ kubernetes: { imagePullSecrets: ['regcred'] } });
    expect(result.failures).toEqual([]);
  });

  it('builds nothing on a second deploy and reports every image present', async () => {
    await using ctx = await setup(fourSteps());
    const first = await deploy(ctx.options);
    const second = await deploy(ctx.options);
    expect(ctx.buildService.builds).toHaveLength(2);
    expect(second.images.map((image) => image.status)).toEqual(['present', 'present']);
    expect(second.imageMap.steps).toEqual(first.imageMap.steps);
  });

  it('rebuilds with force, and without the registry cache', async () => {
    await using ctx = await setup(fourSteps());
    await deploy(ctx.options);
    await deploy({ ...ctx.options, force: true });
    expect(ctx.buildService.builds).toHaveLength(4);
    const heads = ctx.registry.heads.length;
    await deploy({ ...ctx.options, registryCache: false });
    expect(ctx.buildService.builds).toHaveLength(6);
    // Only the post-push verification HEADs, no existence checks before building.
    expect(ctx.registry.heads.length - heads).toBe(2);
  });

  it('rebuilds exactly the env whose package changed', async () => {
    await using ctx = await setup(fourSteps());
    const first = await deploy(ctx.options);
    const steps = fourSteps();
    steps[2] = { name: 'b', request: request({ tinyframe: '2.0' }), gpu: false };
    steps[3] = { name: 'end', request: request({ tinyframe: '2.0' }), gpu: false };
    const second = await deploy({ ...ctx.options, steps, lock: async () => lockSteps(steps) });
    expect(ctx.buildService.builds).toHaveLength(3);
    expect(second.imageMap.steps.start!.envId).toBe(first.imageMap.steps.start!.envId);
    expect(second.imageMap.steps.b!.envId).not.toBe(first.imageMap.steps.b!.envId);
  });

  it('uses the GPU base image for GPU steps, giving them their own envId', async () => {
    const steps: TestStep[] = [
      { name: 'start', request: request({ tinynum: '' }), gpu: false },
      { name: 'train', request: request({ tinynum: '' }), gpu: true },
    ];
    await using ctx = await setup(steps);
    const result = await deploy(ctx.options);
    expect(result.imageMap.steps.start!.envId).not.toBe(result.imageMap.steps.train!.envId);
    const trainBuild = ctx.buildService.builds.find((build) => build.imageTag.includes(result.imageMap.steps.train!.envId!));
    expect(trainBuild?.dockerfile).toContain('base.test/cuda:12@sha256:');
  });

  it('maps a disabled step to the base image and plain python', async () => {
    const steps: TestStep[] = [
      { name: 'start', request: null, gpu: false },
      { name: 'end', request: request({ tinynum: '' }), gpu: false },
    ];
    await using ctx = await setup(steps);
    const result = await deploy(ctx.options);
    expect(result.imageMap.steps.start).toEqual({ envId: null, image: 'base.test/python:3.11', python: 'python' });
    expect(ctx.buildService.builds).toHaveLength(1);
  });

  it('reports a failing env, still builds the healthy one, and leaves the failing one out of the map', async () => {
    const steps: TestStep[] = [
      { name: 'start', request: request({ tinynum: '' }), gpu: false },
      { name: 'end', request: request({ broken: '' }), gpu: false },
    ];
    await using ctx = await setup(steps);
    const result = await deploy(ctx.options);
    expect(result.failures).toHaveLength(1);
    expect(result.failures[0]!.reason).toBe('RUN failed');
    expect(result.failures[0]!.logTail).toEqual(['boom']);
    expect(result.failures[0]!.steps).toEqual(['end']);
    expect(result.imageMap.steps.end).toBeUndefined();
    expect(result.imageMap.steps.start!.envId).toBeTruthy();
    expect([...ctx.registry.images.keys()]).toHaveLength(1);
  });

  it('never builds in a plan, and says which images are missing', async () => {
    await using ctx = await setup(fourSteps());
    const plan = await deploy({ ...ctx.options, plan: true });
    expect(ctx.buildService.builds).toHaveLength(0);
    expect(plan.images.map((image) => image.status)).toEqual(['missing', 'missing']);
    await deploy(ctx.options);
    const again = await deploy({ ...ctx.options, plan: true });
    expect(again.images.map((image) => image.status)).toEqual(['present', 'present']);
  });

  it('bounds parallel builds by the worker count', async () => {
    const steps: TestStep[] = ['a', 'b', 'c', 'd', 'e'].map((name) => ({ name, request: request({ [`pkg${name}`]: '' }), gpu: false }));
    await using ctx = await setup(steps);
    await deploy({ ...ctx.options, workers: 2 });
    expect(ctx.buildService.builds).toHaveLength(5);
    expect(ctx.buildService.maxInFlight).toBe(2);
  });

  it('rejects with CancelledError when aborted mid-build and maps nothing', async () => {
    const controller = new AbortController();
    const steps = fourSteps();
    await using ctx = await setup(steps);
    const registry = ctx.registry;
    const slow = fakeBuildService(registry, 10_000);
    const running = deploy({ ...ctx.options, buildService: slow, signal: controller.signal });
    setTimeout(() => controller.abort(), 50);
    await expect(running).rejects.toBeInstanceOf(CancelledError);
    expect(registry.images.size).toBe(0);
  });

  it('rethrows a build service error (daemon unreachable) with its hint, cancelling the other builds', async () => {
    const steps = fourSteps();
    await using ctx = await setup(steps);
    const slow = fakeBuildService(ctx.registry, 10_000);
    let calls = 0;
    const broken: BuildService = {
      name: 'fake-broken',
      async buildAndPush(req) {
        if (calls++ === 0) {
          await new Promise((resolve) => setTimeout(resolve, 20));
          throw new EnvironmentError('The Docker daemon at unix:///fake.sock cannot be reached.', { hint: 'Start the Docker daemon.' });
        }
        return slow.buildAndPush(req);
      },
    };
    const started = Date.now();
    const error = await deploy({ ...ctx.options, buildService: broken }).then(
      () => undefined,
      (thrown: unknown) => thrown,
    );
    expect(error).toBeInstanceOf(EnvironmentError);
    expect((error as EnvironmentError).hint).toBe('Start the Docker daemon.');
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(ctx.registry.images.size).toBe(0);
  });

  it("checks the build service before materializing anything, so a missing daemon is reported at once", async () => {
    await using ctx = await setup(fourSteps());
    let checks = 0;
    const service = {
      ...fakeBuildService(ctx.registry),
      check: async () => {
        checks++;
        throw new EnvironmentError('The Docker daemon at unix:///fake.sock cannot be reached.', { hint: 'Start the Docker daemon.' });
      },
    };
    const error = await deploy({ ...ctx.options, buildService: async () => service }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(EnvironmentError);
    expect(checks).toBe(1);
    expect(ctx.recipe.prepared).toEqual([]);
  });

  it('a service the caller already checked (the CLI, before locking) is not checked again by the deploy; a failed check is tried again', async () => {
    await using ctx = await setup(fourSteps());
    let checks = 0;
    let healthy = false;
    const service = {
      ...fakeBuildService(ctx.registry),
      check: async () => {
        checks++;
        if (!healthy) throw new EnvironmentError('The Docker daemon at unix:///fake.sock cannot be reached.');
      },
    };
    await expect(checkBuildService(service)).rejects.toBeInstanceOf(EnvironmentError);
    healthy = true;
    await checkBuildService(service);
    expect(checks).toBe(2);
    await deploy({ ...ctx.options, buildService: async () => service });
    expect(checks).toBe(2);
    expect(ctx.registry.images.size).toBeGreaterThan(0);
  });

  it('never checks or creates the build service when every image is present', async () => {
    await using ctx = await setup(fourSteps());
    await deploy(ctx.options);
    let created = 0;
    await deploy({ ...ctx.options, buildService: async () => { created++; return ctx.buildService; } });
    expect(created).toBe(0);
  });

  it('rethrows a registry error from the existence check (credentials refused) instead of failing each image', async () => {
    await using ctx = await setup(fourSteps());
    const refused = new AuthError('registry fake.registry.test rejected the credentials', { registry: 'fake.registry.test', source: 'env FAKE_USER/FAKE_PASSWORD' });
    const registry = { ...ctx.registry, imageExists: async () => Promise.reject(refused) };
    await expect(deploy({ ...ctx.options, registry })).rejects.toBe(refused);
    expect(ctx.buildService.builds).toHaveLength(0);
  });

  it('reports an env whose recipe cannot be prepared as failed, with the error hint, and builds the others', async () => {
    const [start, a, b, end] = fourSteps() as [TestStep, TestStep, TestStep, TestStep];
    await using ctx = await setup([b, start, a, end]);
    const recipe: RecipeRunner = {
      ...ctx.recipe,
      async prepare(input) {
        if (input.lock.packages.some((pkg) => pkg.name === 'tinyframe')) {
          throw new EnvironmentError('tinyframe cannot be materialized', { hint: 'rebuild the package' });
        }
        return ctx.recipe.prepare(input);
      },
    };
    const result = await deploy({ ...ctx.options, recipe, workers: 1 });
    expect(result.failures.map((image) => [image.steps, image.reason, image.hint])).toEqual([[['b', 'end'], 'tinyframe cannot be materialized', 'rebuild the package']]);
    // The failure is shown when it happens, not after the other images are done.
    const order = ctx.events.flatMap((event) => (event.type === 'image' ? [`${event.steps[0]} ${event.phase}`] : []));
    expect(order.slice(0, 3)).toEqual(['b checking', 'b materializing', 'b failed']);
    expect(result.images.filter((image) => image.status === 'built').map((image) => image.steps)).toEqual([['start', 'a']]);
  });

  it('a base image the registry does not have is a ConfigError (exit 2) naming the setting, the GPU one for a GPU step', async () => {
    const steps: TestStep[] = [{ name: 'train', request: request({ tinynum: '1.0' }), gpu: true }];
    await using ctx = await setup(steps);
    const registry = {
      ...ctx.registry,
      baseImageIdentity: async (ref: string) => {
        throw new RegistryError(`The base image ${ref} does not exist in the registry base.test.`, { registry: 'base.test', status: 404 }, { hint: 'check it' });
      },
    };
    const error = await deploy({ ...ctx.options, registry }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).exitCode).toBe(2);
    expect((error as ConfigError).message).toBe('The base image base.test/cuda:12 does not exist in the registry base.test (METAFLOW_PREBUILT_GPU_BASE_IMAGE).');
    expect((error as ConfigError).hint).toBe('check it');
    // Any other registry error stays what it was.
    const down = { ...ctx.registry, baseImageIdentity: async () => { throw new RegistryError('registry down', { registry: 'base.test', status: 503 }); } };
    await expect(deploy({ ...ctx.options, registry: down })).rejects.toBeInstanceOf(RegistryError);
  });

  it('a base image registry that refuses the credentials is an AuthError (exit 1) saying it was the base image and its setting, with the hint kept', async () => {
    await using ctx = await setup(fourSteps().slice(0, 1));
    const registry = {
      ...ctx.registry,
      baseImageIdentity: async () => {
        throw new AuthError('registry base.test denied anonymous access to repository:team/base:pull (401 Unauthorized)', { registry: 'base.test', source: 'no credentials' }, { hint: "Log in with 'docker login base.test'." });
      },
    };
    const error = await deploy({ ...ctx.options, registry, plan: true }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AuthError);
    expect((error as AuthError).exitCode).toBe(1);
    expect((error as AuthError).message).toBe(`The base image ${ctx.options.baseImage} (METAFLOW_PREBUILT_BASE_IMAGE): registry base.test denied anonymous access to repository:team/base:pull (401 Unauthorized)`);
    expect((error as AuthError).hint).toBe("Log in with 'docker login base.test'.");
    expect((error as AuthError).registry).toBe('base.test');
  });

  it('a base image registry that needs a login none was found for is a LoginRequiredError (exit 2) saying it was the base image', async () => {
    await using ctx = await setup(fourSteps().slice(0, 1));
    const registry = {
      ...ctx.registry,
      baseImageIdentity: async () => {
        throw new LoginRequiredError('registry base.test requires a user name and password, and none were found', { registry: 'base.test', source: 'no credentials' }, { hint: "Log in with 'docker login base.test'." });
      },
    };
    const error = await deploy({ ...ctx.options, registry, plan: true }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LoginRequiredError);
    expect((error as LoginRequiredError).exitCode).toBe(2);
    expect((error as LoginRequiredError).message).toBe(`The base image ${ctx.options.baseImage} (METAFLOW_PREBUILT_BASE_IMAGE): registry base.test requires a user name and password, and none were found`);
    expect((error as LoginRequiredError).hint).toBe("Log in with 'docker login base.test'.");
  });

  it('a base image registry this machine cannot reach (the default, Docker Hub, air-gapped) is an UnreachableError (exit 2) saying it was the base image and which setting moves it', async () => {
    await using ctx = await setup(fourSteps().slice(0, 1));
    const registry = {
      ...ctx.registry,
      baseImageIdentity: async () => {
        throw new UnreachableError("registry docker.io: HEAD https://index.docker.io/v2/library/python/manifests/3.11-slim-bookworm failed: the host name 'docker.io' does not resolve", { service: 'registry docker.io' }, { hint: 'Check the spelling of the registry host docker.io.' });
      },
    };
    const error = await deploy({ ...ctx.options, registry, plan: true }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UnreachableError);
    expect((error as UnreachableError).exitCode).toBe(2);
    expect((error as UnreachableError).service).toBe('registry docker.io');
    expect((error as UnreachableError).message).toBe(`The base image ${ctx.options.baseImage} (METAFLOW_PREBUILT_BASE_IMAGE): registry docker.io: HEAD https://index.docker.io/v2/library/python/manifests/3.11-slim-bookworm failed: the host name 'docker.io' does not resolve`);
    expect((error as UnreachableError).hint).toBe('Check the spelling of the registry host docker.io. Or set METAFLOW_PREBUILT_BASE_IMAGE to a base image on a registry this machine reaches (a mirror, your own registry).');
  });

  it("a recipe's prune presets give other envIds (hence tags), and an unpruned recipe today's", async () => {
    await using ctx = await setup(fourSteps().slice(0, 1));
    const plain = await deploy({ ...ctx.options, plan: true });
    const none = await deploy({ ...ctx.options, recipe: { ...ctx.recipe, prune: [] }, plan: true });
    const pruned = await deploy({ ...ctx.options, recipe: { ...ctx.recipe, prune: ['tests'] }, plan: true });
    expect(none.images[0]!.envId).toBe(plain.images[0]!.envId);
    expect(pruned.images[0]!.envId).not.toBe(plain.images[0]!.envId);
    expect(pruned.images[0]!.tag).not.toBe(plain.images[0]!.tag);
  });

  it('emits phase events in order for a built image', async () => {
    await using ctx = await setup(fourSteps().slice(0, 1));
    await deploy(ctx.options);
    const phases = ctx.events.filter((event) => event.type === 'image').map((event) => (event as { phase: string }).phase);
    expect(phases).toEqual(['checking', 'materializing', 'building', 'pushing', 'verifying', 'built']);
  });

  it("a build service's note (credentials sent unencrypted, say) reaches the deploy's events as a note, not the image's log", async () => {
    await using ctx = await setup(fourSteps().slice(0, 1));
    const buildAndPush = ctx.buildService.buildAndPush.bind(ctx.buildService);
    ctx.buildService.buildAndPush = async (req) => {
      req.note?.('credentials went in clear');
      return buildAndPush(req);
    };
    await deploy(ctx.options);
    expect(ctx.events.filter((event) => event.type === 'note')).toEqual([{ type: 'note', message: 'credentials went in clear' }]);
    expect(ctx.events.filter((event) => event.type === 'log').map((event) => (event as { line: string }).line)).not.toContain('credentials went in clear');
  });
});

describe('deploy orchestrator: multi-platform (fake registry, fake build service, fake index push)', () => {
  const platforms = ['linux-64', 'linux-aarch64'] as const;
  /** Every step locked for both platforms; `broken` in a request fails that platform's build. */
  const multiLock = (steps: TestStep[], failOn?: (typeof platforms)[number]) =>
    Object.fromEntries(
      steps.map((step) => [
        step.name,
        step.request
          ? platforms.map((platform) => {
              const req = { ...step.request!, platform, conda: { ...step.request!.conda, ...(platform === failOn ? { broken: '' } : {}) } };
              return fakeLock(req, specHash(req));
            })
          : null,
      ]),
    );
  /** A fake index push and read over the fake registry: what each index tag names is kept in memory. */
  const fakeIndexPush = (registry: ReturnType<typeof fakeRegistry>) => {
    const pushes: PushImageIndexOptions[] = [];
    const named = new Map<string, PushImageIndexOptions['images']>();
    const push = async (options: PushImageIndexOptions) => {
      pushes.push(options);
      const digest = `sha256:${sha(JSON.stringify(options.images))}`;
      registry.images.set(options.imageTag, digest);
      named.set(options.imageTag, options.images);
      return { digest, mediaType: 'application/vnd.oci.image.index.v1+json' };
    };
    const read = async ({ imageTag }: { imageTag: string }) => {
      const images = named.get(imageTag);
      return images ? { digest: registry.images.get(imageTag)!, images: [...images] } : undefined;
    };
    return Object.assign(push, { pushes, read, options: { pushIndex: push, readIndex: read } });
  };

  it('builds one image per platform per env and points each step at an image index over them', async () => {
    const steps = fourSteps();
    await using ctx = await setup(steps);
    const pushIndex = fakeIndexPush(ctx.registry);
    const result = await deploy({ ...ctx.options, lock: async () => multiLock(steps), ...pushIndex.options });
    expect(ctx.buildService.builds.map((b) => b.platform).sort()).toEqual(['linux/amd64', 'linux/amd64', 'linux/arm64', 'linux/arm64']);
    expect(pushIndex.pushes).toHaveLength(2);
    const start = result.imageMap.steps.start!;
    expect(start.image).toMatch(/^pull\.registry\.test\/ns:env-[0-9a-f]{16}$/);
    expect(result.imageMap.steps.a).toEqual(start);
    const entry = result.imageMap.images[start.envId!]!;
    expect(entry.status).toBe('built');
    expect(entry.steps).toEqual(['start', 'a']);
    expect(Object.keys(entry.platforms!)).toEqual(['linux-64', 'linux-aarch64']);
    // The index names each platform's pushed image by digest.
    const push = pushIndex.pushes.find((p) => p.imageTag === start.image.replace('pull.', 'fake.'))!;
    expect(push.images).toEqual([
      { platform: 'linux/amd64', digest: entry.platforms!['linux-64']!.digest },
      { platform: 'linux/arm64', digest: entry.platforms!['linux-aarch64']!.digest },
    ]);
    expect(entry.platforms!['linux-aarch64']!.image).toMatch(/-linux-aarch64$/);
    // Only what the steps pull is in the map: the two indexes, not the four platform images.
    expect(Object.keys(result.imageMap.images)).toHaveLength(2);
    expect(result.images.filter((i) => i.platforms)).toHaveLength(2);
    expect(result.images.filter((i) => i.memberOf)).toHaveLength(4);
    expect(result.failures).toEqual([]);

    // A second deploy finds every platform image and both indexes; nothing is pushed.
    const again = await deploy({ ...ctx.options, lock: async () => multiLock(steps), ...pushIndex.options });
    expect(again.images.map((i) => i.status)).toEqual(['present', 'present', 'present', 'present', 'present', 'present']);
    expect(ctx.buildService.builds).toHaveLength(4);
    expect(pushIndex.pushes).toHaveLength(2);
    expect(again.imageMap.steps).toEqual(result.imageMap.steps);
  });

  it('plans an index as missing without pushing it, and as present once it is pushed', async () => {
    const steps = fourSteps().slice(0, 1);
    await using ctx = await setup(steps);
    const pushIndex = fakeIndexPush(ctx.registry);
    const plan = await deploy({ ...ctx.options, lock: async () => multiLock(steps), ...pushIndex.options, plan: true });
    expect(plan.images.map((i) => [i.platforms ? 'index' : i.platform, i.status])).toEqual([
      ['linux-64', 'missing'],
      ['linux-aarch64', 'missing'],
      ['index', 'missing'],
    ]);
    expect(pushIndex.pushes).toHaveLength(0);
    await deploy({ ...ctx.options, lock: async () => multiLock(steps), ...pushIndex.options });
    const after = await deploy({ ...ctx.options, lock: async () => multiLock(steps), ...pushIndex.options, plan: true });
    expect(after.images.map((i) => i.status)).toEqual(['present', 'present', 'present']);
  });

  it('fails the index (and leaves its steps out of the map) when one platform fails; the other platform is still pushed', async () => {
    const steps = fourSteps().slice(0, 1);
    await using ctx = await setup(steps);
    const pushIndex = fakeIndexPush(ctx.registry);
    const result = await deploy({ ...ctx.options, lock: async () => multiLock(steps, 'linux-aarch64'), ...pushIndex.options });
    expect(pushIndex.pushes).toHaveLength(0);
    expect(result.failures.map((f) => (f.platforms ? 'index' : f.platform))).toEqual(['linux-aarch64', 'index']);
    expect(result.failures[1]!.reason).toMatch(/Its linux-aarch64 image \(env [0-9a-f]{16}\) failed to build\./);
    expect(result.images.find((i) => i.platform === 'linux-64' && !i.platforms)!.status).toBe('built');
    expect(result.imageMap.steps.start).toBeUndefined();
  });

  it('an index push the registry refuses for this index is its failure; refused credentials stop the deploy', async () => {
    const steps = fourSteps().slice(0, 1);
    await using ctx = await setup(steps);
    const { read } = fakeIndexPush(ctx.registry);
    const result = await deploy({
      ...ctx.options,
      lock: async () => multiLock(steps),
      readIndex: read,
      pushIndex: async () => {
        throw new InputError('the image for linux/arm64 is itself an image index', { hint: 'build single-platform images' });
      },
    });
    expect(result.failures.map((f) => [f.reason, f.hint])).toEqual([[expect.stringMatching(/is itself an image index/), 'build single-platform images']]);
    const refused = deploy({
      ...ctx.options,
      lock: async () => multiLock(steps),
      readIndex: read,
      pushIndex: async () => {
        throw new AuthError('push of the index refused', { registry: 'fake.registry.test', source: 'env FAKE_USER/FAKE_PASSWORD' }, { hint: 'log in' });
      },
    });
    await expect(refused).rejects.toBeInstanceOf(AuthError);
  });

  it('pushes the index again when it names other images than the platforms\' current ones (one rebuilt since)', async () => {
    const steps = fourSteps().slice(0, 1);
    await using ctx = await setup(steps);
    const index = fakeIndexPush(ctx.registry);
    const first = await deploy({ ...ctx.options, lock: async () => multiLock(steps), ...index.options });
    const entry = first.imageMap.images[first.imageMap.steps.start!.envId!]!;
    // The linux-64 image is rebuilt elsewhere (e.g. --force on one platform): its tag moves.
    const amdTag = [...ctx.registry.images.keys()].find((tag) => tag.endsWith('-linux-64'))!;
    ctx.registry.images.set(amdTag, `sha256:${sha('rebuilt')}`);
    const plan = await deploy({ ...ctx.options, lock: async () => multiLock(steps), ...index.options, plan: true });
    expect(plan.images.map((i) => i.status)).toEqual(['present', 'present', 'missing']);
    const again = await deploy({ ...ctx.options, lock: async () => multiLock(steps), ...index.options });
    expect(index.pushes).toHaveLength(2);
    expect(index.pushes[1]!.images).toContainEqual({ platform: 'linux/amd64', digest: `sha256:${sha('rebuilt')}` });
    const updated = again.imageMap.images[again.imageMap.steps.start!.envId!]!;
    expect(updated.status).toBe('built');
    expect(updated.digest).not.toBe(entry.digest);
    expect(updated.platforms!['linux-64']!.digest).toBe(`sha256:${sha('rebuilt')}`);
    // Once pushed, it is reused.
    await deploy({ ...ctx.options, lock: async () => multiLock(steps), ...index.options });
    expect(index.pushes).toHaveLength(2);
  });

  it('fails the index, naming the registry, when a platform image exists without a digest', async () => {
    const steps = fourSteps().slice(0, 1);
    await using ctx = await setup(steps);
    const index = fakeIndexPush(ctx.registry);
    await deploy({ ...ctx.options, lock: async () => multiLock(steps), ...index.options });
    const registry = { ...ctx.registry, imageExists: async (tag: string) => (ctx.registry.images.has(tag) ? { exists: true } : { exists: false }) };
    const result = await deploy({ ...ctx.options, registry, lock: async () => multiLock(steps), ...index.options });
    expect(result.failures.map((f) => f.reason)).toEqual([expect.stringMatching(/^The registry fake-memory gave no digest for fake\.registry\.test\/ns:env-[0-9a-f]{16}-linux-64/)]);
  });

  it('a step locked for one platform keeps its per-platform image beside multi-platform steps', async () => {
    const steps = fourSteps().slice(0, 2);
    await using ctx = await setup(steps);
    const pushIndex = fakeIndexPush(ctx.registry);
    const locks = multiLock(steps);
    locks.a = [(locks.a as LockedEnv[])[0]!];
    const result = await deploy({ ...ctx.options, lock: async () => locks, ...pushIndex.options });
    // start's linux-64 image is the same image as a's: built once, pulled directly by a.
    expect(ctx.buildService.builds).toHaveLength(2);
    expect(result.imageMap.steps.a!.image).toMatch(/-linux-64$/);
    expect(result.imageMap.steps.start!.image).toMatch(/env-[0-9a-f]{16}$/);
    expect(Object.keys(result.imageMap.images)).toHaveLength(2);
  });
});

describe('deploy orchestrator: image layouts (fake registry keeping manifest annotations, fake build service)', () => {
  /** The layout of each env: the test's `layouts` give its value ('plain' for the others). */
  const fromMap = (layouts: Map<string, string>) => async (envId: string): Promise<ImageLayout> => ({ annotation: 'test.layout', value: layouts.get(envId) ?? 'plain', change: 'layout changed' });

  /** The fake registry and build service of `setup`, the build writing each env's layout (`layouts`, or `layoutOf`) into the "manifest", when it has a value. */
  async function layoutSetup(layouts: Map<string, string>, layoutOf: (envId: string) => Promise<ImageLayout> = fromMap(layouts)) {
    const ctx = await setup(fourSteps());
    const annotations = new Map<string, Record<string, string>>();
    const asked: boolean[] = [];
    const registry: ImageRegistry = {
      ...ctx.registry,
      imageExists: async (tag, options) => {
        asked.push(options?.annotations === true);
        const found = await ctx.registry.imageExists(tag);
        return found.exists && options?.annotations ? { ...found, annotations: annotations.get(tag) ?? {} } : found;
      },
    };
    const buildService: BuildService = {
      name: 'fake-layout-build',
      async buildAndPush(req) {
        const result = await ctx.buildService.buildAndPush(req);
        const layout = await layoutOf(req.envId!);
        annotations.set(req.imageTag, { ...(layout.value === undefined ? {} : { [layout.annotation]: layout.value }), other: 'kept' });
        return result;
      },
    };
    const layoutAsks: string[] = [];
    const imageLayout = (envId: string) => {
      layoutAsks.push(envId);
      return layoutOf(envId);
    };
    return { ctx, asked, layoutAsks, options: { ...ctx.options, registry, buildService, imageLayout } };
  }

  it('a present image laid out otherwise is rebuilt, only that one; a plan says why; the results carry the layout', async () => {
    const layouts = new Map<string, string>();
    const { ctx, asked, layoutAsks, options } = await layoutSetup(layouts);
    await using _ = ctx;
    const first = await deploy(options);
    expect(first.images.map((image) => [image.status, image.layout])).toEqual([['built', 'plain'], ['built', 'plain']]);
    const envIds = first.images.map((image) => image.envId).sort();
    expect(layoutAsks.sort(), 'the service is asked once per image: checked, then built').toEqual(envIds);
    expect(ctx.buildService.builds.map((b) => b.envId)).toEqual(first.images.map((image) => image.envId));
    const again = await deploy(options);
    expect(again.images.map((image) => [image.status, image.layout])).toEqual([['present', 'plain'], ['present', 'plain']]);
    expect(ctx.buildService.builds).toHaveLength(2);
    // Each check before building reads the annotations (4); the verification after a push only HEADs (2).
    expect([asked.filter(Boolean).length, asked.filter((a) => !a).length]).toEqual([4, 2]);

    const changed = first.images[1]!.envId;
    layouts.set(changed, 'profile sha256:1');
    const plan = await deploy({ ...options, plan: true });
    expect(plan.images.map((image) => [image.envId, image.status, image.reason])).toEqual([
      [first.images[0]!.envId, 'present', undefined],
      [changed, 'missing', 'layout changed'],
    ]);
    expect(ctx.buildService.builds).toHaveLength(2);
    const events: DeployEvent[] = [];
    const rebuilt = await deploy({ ...options, onEvent: (event) => events.push(event) });
    expect(rebuilt.images.map((image) => [image.status, image.layout])).toEqual([['present', 'plain'], ['built', 'profile sha256:1']]);
    // The live view's reason for the rebuild is the layout's change, as a plan gives it (the view says `rebuilding: …`).
    expect(events.flatMap((e) => (e.type === 'image' && e.phase === 'checking' && e.detail ? [[e.envId, e.detail]] : []))).toEqual([[changed, 'layout changed']]);
    expect(ctx.buildService.builds.slice(2).map((b) => b.envId)).toEqual([changed]);
    expect((await deploy(options)).images.map((image) => image.status)).toEqual(['present', 'present']);
  });

  it('a layout without a value keeps images without the annotation and rebuilds those with it; an unreported layout is not the result\'s layout', async () => {
    const marked: ImageLayout = { annotation: 'test.kind', value: 'special', change: 'not special', reported: false };
    const unmarked: ImageLayout = { annotation: 'test.kind', change: 'special, this build is not', reported: false };
    let current = unmarked;
    const { ctx, options } = await layoutSetup(new Map(), async () => current);
    await using _ = ctx;
    const statuses = async (extra: Partial<DeployOptions> = {}) => (await deploy({ ...options, ...extra })).images.map((image) => [image.status, image.layout, image.reason]);
    expect(await statuses(), 'built without the annotation').toEqual([['built', undefined, undefined], ['built', undefined, undefined]]);
    expect(await statuses(), 'no annotation, none expected: kept').toEqual([['present', undefined, undefined], ['present', undefined, undefined]]);
    current = marked;
    expect(await statuses({ plan: true }), 'a plan says why').toEqual([['missing', undefined, 'not special'], ['missing', undefined, 'not special']]);
    expect(await statuses(), 'rebuilt with the annotation; its value is not reported').toEqual([['built', undefined, undefined], ['built', undefined, undefined]]);
    expect(await statuses()).toEqual([['present', undefined, undefined], ['present', undefined, undefined]]);
    current = unmarked;
    expect(await statuses({ plan: true })).toEqual([['missing', undefined, 'special, this build is not'], ['missing', undefined, 'special, this build is not']]);
    expect(await statuses(), 'an image carrying the annotation is rebuilt by a build that records none').toEqual([['built', undefined, undefined], ['built', undefined, undefined]]);
    expect(await statuses()).toEqual([['present', undefined, undefined], ['present', undefined, undefined]]);
    expect(ctx.buildService.builds).toHaveLength(6);
  });

  it('an image without the record (built before, or by another service) is rebuilt; without imageLayout no annotations are asked for', async () => {
    const { ctx, asked, options } = await layoutSetup(new Map());
    await using _ = ctx;
    await deploy(ctx.options); // built by the plain fake: no annotations
    expect((await deploy(options)).images.map((image) => image.status)).toEqual(['built', 'built']);
    asked.length = 0;
    const ignoring = { ...options, registry: { ...options.registry, imageExists: (tag: string) => ctx.registry.imageExists(tag) } };
    expect((await deploy({ ...ignoring, imageLayout: async () => ({ annotation: 'test.layout', value: 'other', change: 'layout changed' }) })).images.map((image) => image.status), 'a registry that reads no annotations keeps the images').toEqual(['present', 'present']);
    const { imageLayout: _layout, ...without } = options;
    expect((await deploy(without)).images.map((image) => [image.status, image.layout])).toEqual([['present', undefined], ['present', undefined]]);
    expect(asked).toEqual([false, false]);
  });

  it("a build service without imageLayout makes tar layers (buildServiceLayout): it rebuilds an image pushed with the EROFS record, a plan says why, and the tar images stay", async () => {
    const erofs: ImageLayout = { annotation: EROFS_LAYOUT_ANNOTATION, value: 'application/vnd.oci.image.layer.v1.erofs', change: 'this build writes EROFS layers', reported: false };
    let layers: 'erofs' | 'tar' = 'erofs';
    let tarService: BuildService | undefined;
    const { ctx, asked, options } = await layoutSetup(new Map(), async (envId) => (layers === 'erofs' ? erofs : buildServiceLayout(tarService!, envId)!));
    await using _ = ctx;
    tarService = options.buildService;
    const statuses = async (extra: Partial<DeployOptions> = {}) => (await deploy({ ...options, ...extra })).images.map((image) => [image.status, image.layout, image.reason]);
    expect(await statuses(), 'the erofs build').toEqual([['built', undefined, undefined], ['built', undefined, undefined]]);
    layers = 'tar';
    const reason = 'built with EROFS layers; the fake-layout-build build service makes tar layers';
    expect(await statuses({ plan: true })).toEqual([['missing', undefined, reason], ['missing', undefined, reason]]);
    asked.length = 0;
    expect(await statuses(), 'rebuilt with tar layers').toEqual([['built', undefined, undefined], ['built', undefined, undefined]]);
    expect(await statuses(), 'a redeploy builds nothing').toEqual([['present', undefined, undefined], ['present', undefined, undefined]]);
    // One registry check per image before each build or keep (annotations read), one verification per push.
    expect([asked.filter(Boolean).length, asked.filter((a) => !a).length]).toEqual([4, 2]);
    expect(ctx.buildService.builds).toHaveLength(4);
  });

  it('a present image with a layer of a media type the layout refuses (zstd for Docker 20.10 runners) is rebuilt, a plan says why; others stay; a registry giving no layer types keeps it', async () => {
    const ZSTD = 'application/vnd.oci.image.layer.v1.tar+zstd';
    const GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip';
    const change = 'built with zstd layers, which docker@20.10 cannot pull';
    let refused = false;
    const layout = async (): Promise<ImageLayout> => ({ annotation: 'test.kind', change: 'unused', reported: false, ...(refused ? { refusedLayers: { mediaTypes: [ZSTD], change } } : {}) });
    const { ctx, options } = await layoutSetup(new Map(), layout);
    await using _ = ctx;
    const zstdTags = new Set<string>();
    let typesKnown = true;
    const registry: ImageRegistry = {
      ...options.registry,
      imageExists: async (tag, opts) => {
        const found = await options.registry.imageExists(tag, opts);
        return found.exists && found.annotations && typesKnown ? { ...found, layerMediaTypes: [GZIP, zstdTags.has(tag) ? ZSTD : GZIP] } : found;
      },
    };
    const inner = options.buildService;
    // A build writes gzip layers under the tag.
    const buildService: BuildService = { name: inner.name, buildAndPush: async (req) => (zstdTags.delete(req.imageTag), inner.buildAndPush(req)) };
    const statuses = async (extra: Partial<DeployOptions> = {}) => (await deploy({ ...options, registry, buildService, ...extra })).images.map((image) => [image.status, image.reason]);
    const first = await deploy({ ...options, registry, buildService });
    const zstdImage = first.images[0]!;
    zstdTags.add(zstdImage.tag);
    expect(await statuses(), 'no runner refuses zstd: kept').toEqual([['present', undefined], ['present', undefined]]);
    refused = true;
    typesKnown = false;
    expect(await statuses({ plan: true }), 'a registry that gives no layer types keeps the images').toEqual([['present', undefined], ['present', undefined]]);
    typesKnown = true;
    expect(await statuses({ plan: true })).toEqual([['missing', change], ['present', undefined]]);
    expect(await statuses(), 'the zstd image is rebuilt, only it').toEqual([['built', undefined], ['present', undefined]]);
    expect(ctx.buildService.builds.slice(2).map((b) => b.envId)).toEqual([zstdImage.envId]);
    expect(await statuses()).toEqual([['present', undefined], ['present', undefined]]);
  });

  it('an EROFS build over tar images, then over EROFS images of the other media type: a plan says what each was built with and what this build writes', async () => {
    const erofs = (mediaType: string): ImageLayout => ({ annotation: EROFS_LAYOUT_ANNOTATION, value: mediaType, change: `this build writes EROFS layers of type ${mediaType}`, reported: false });
    let current: ImageLayout | undefined;
    let tarService: BuildService | undefined;
    const { ctx, options } = await layoutSetup(new Map(), async (envId) => current ?? buildServiceLayout(tarService!, envId)!);
    await using _ = ctx;
    tarService = options.buildService;
    const reasons = async (extra: Partial<DeployOptions> = {}) => (await deploy({ ...options, ...extra })).images.map((image) => [image.status, image.reason]);
    expect(await reasons(), 'tar images').toEqual([['built', undefined], ['built', undefined]]);
    current = erofs('application/vnd.oci.image.layer.v1.erofs');
    const fromTar = 'built with tar layers; this build writes EROFS layers of type application/vnd.oci.image.layer.v1.erofs';
    expect(await reasons({ plan: true })).toEqual([['missing', fromTar], ['missing', fromTar]]);
    expect(await reasons()).toEqual([['built', undefined], ['built', undefined]]);
    current = erofs('application/vnd.erofs.layer.v1');
    const fromOther = 'built with EROFS layers of type application/vnd.oci.image.layer.v1.erofs; this build writes EROFS layers of type application/vnd.erofs.layer.v1';
    expect(await reasons({ plan: true })).toEqual([['missing', fromOther], ['missing', fromOther]]);
  });
});
