/**
 * The oci build service against the real test registries (distribution 2.8: plain, htpasswd Basic,
 * Bearer token) with the debootstrap base image; the Docker daemon only verifies that the pushed
 * image runs. Envs come from the fixture channel/index, materialized by @prebuilt/conda's runner.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CancelledError,
  ConfigError,
  PREFIX_LAYERS_FILE,
  parsePrefixLayers,
  RegistryClient,
  type BaseImageIdentity,
} from '@prebuilt/core/backend';
import { computeEnvId, envPrefix, type LockedEnv } from '@prebuilt/core';
import { createMaterializedRecipeRunner, PackageCache } from '@prebuilt/conda';
import { exampleImageCheck, exampleImageLock, fixtureLock, outputSections, generateFixtures, serveExampleFixtures, startFixtureServer, syntheticFixtureSet, type FixtureServer, type GeneratedFixtures, type ServedExample } from '@prebuilt/fixtures';
import { pushImageIndex } from './image-index.js';
import { LAYER_FORMAT_ID } from './layer-codec.js';
import { GROUPING } from './layering.js';
import { createOciBuildService, ociSettings, type PushSummary } from './oci-build-service.js';
import { credentialsFor, describeOrFailInCi, headDigest, itOrFailInCi, missingFor, pinnedBase, pullingDockers, services, uniqueRepo } from './__fixtures__/services.js';

const exec = promisify(execFile);
const missing = missingFor(['registries', 'baseImage']);

function baseIdentity(): BaseImageIdentity {
  const pinned = pinnedBase()!;
  return { ref: services.baseImage!.ref, digest: services.baseImage!.digest, pinned };
}

async function skopeoDigest(tag: string): Promise<string> {
  const { stdout } = await exec('skopeo', ['inspect', '--tls-verify=false', '--no-creds', `docker://${tag}`], { timeout: 60_000 });
  return (JSON.parse(stdout) as { Digest: string }).Digest;
}

describeOrFailInCi('oci build service: a materialized env pushed as per-package layers', missing, () => {
  let example: ServedExample | undefined;
  let work: string;
  let lock: LockedEnv;
  let envId: string;
  let tag: string;
  let digest: string;
  const images: { host: string; tag: string }[] = [];

  beforeAll(async () => {
    example = await serveExampleFixtures('prebuilt-oci-e2e-');
    work = example.work;
    lock = exampleImageLock(example.fixtures, example.server);
  }, 600_000);
  afterAll(async () => {
    for (const { host, tag } of images) await exec('docker', ['rmi', '-f', tag], { env: { ...process.env, DOCKER_HOST: host } }).catch(() => undefined);
    await example?.close();
  });

  async function build(cacheName: string, imageTag: string): Promise<{ digest: string; summary: PushSummary; log: string[]; layerNames: string[] }> {
    const runner = createMaterializedRecipeRunner({ cache: new PackageCache({ cacheDir: join(work, cacheName) }), tempDir: work });
    envId = computeEnvId({ lock, baseDigest: services.baseImage!.digest, recipe: runner });
    const prepared = await runner.prepare({ lock, envId, prefix: envPrefix(envId), base: baseIdentity() });
    let summary: PushSummary | undefined;
    const log: string[] = [];
    try {
      const layerFile = join(prepared.contextDir, PREFIX_LAYERS_FILE);
      const layerNames = parsePrefixLayers(await readFile(layerFile, 'utf8'), layerFile).packages.map((p) => p.filename);
      const service = createOciBuildService({ env: {}, layerCacheDir: join(work, cacheName, 'oci-layers'), onPushed: (s) => (summary = s) });
      const phases: string[] = [];
      const result = await service.buildAndPush({
        dockerfile: prepared.dockerfile,
        contextDir: prepared.contextDir,
        imageTag,
        platform: 'linux/amd64',
        log: (line) => log.push(line),
        onPhase: (phase) => phases.push(phase),
      });
      if (!result.ok) throw new Error(`build failed: ${result.reason}\n${result.logTail.join('\n')}`);
      expect(phases).toEqual(['building', 'pushing']);
      return { digest: result.digest, summary: summary!, log, layerNames };
    } finally {
      await prepared.dispose();
    }
  }

  it('pushes one layer per package plus the env layer; skopeo agrees on the digest', async () => {
    const repo = `${services.registries!.plain.host}/${uniqueRepo('env')}`;
    tag = `${repo}:${'e'.repeat(4)}`;
    const first = await build('cache-a', tag);
    digest = first.digest;
    expect(first.summary.layers.map((l) => l.name)).toEqual([...first.layerNames, 'env']);
    expect(first.summary.layers).toHaveLength(lock.packages.length + 1);
    // Base layers come from the base image's repository on the same registry: mounted, not sent.
    expect(first.summary.baseLayers.every((l) => l.status === 'mounted')).toBe(true);
    expect(await skopeoDigest(tag)).toBe(digest);
    expect(await headDigest(tag)).toBe(digest);
    expect(first.log.at(-1)).toContain(`@${digest}`);

    // The config: diff_ids for base + new layers, env, labels, one history entry per layer.
    const client = new RegistryClient({ dockerConfig: false });
    const manifest = await client.getManifest(tag);
    const layers = (manifest.manifest as { layers: { digest: string }[] }).layers;
    const config = JSON.parse(Buffer.from(await client.getBlob(tag, (manifest.manifest as { config: { digest: string } }).config.digest)).toString()) as {
      rootfs: { diff_ids: string[] };
      config: { Env: string[]; Labels: Record<string, string> };
      history: { empty_layer?: boolean }[];
      architecture: string;
    };
    expect(config.rootfs.diff_ids).toHaveLength(layers.length);
    expect(config.history.filter((h) => !h.empty_layer)).toHaveLength(layers.length);
    expect(config.config.Env).toContain('METAFLOW_SKIP_INSTALL_DEPENDENCIES=1');
    expect(config.config.Env.find((e) => e.startsWith('PATH='))).toMatch(new RegExp(`^PATH=${envPrefix(envId)}/bin:/`));
    expect(config.config.Labels['dev.prebuilt.env-id']).toBe(envId);
    expect(config.architecture).toBe('amd64');

    // Each package's conda-meta record is in its own layer; the env layer holds only what lists
    // every package (conda-meta/history): a record there would make every one-package change re-push
    // the records of all packages.
    const listing = async (i: number): Promise<string[]> => {
      const file = join(work, `layer-${i}.tar.gz`);
      await writeFile(file, await client.getBlob(tag, layers[i]!.digest));
      return (await exec('tar', ['-tzf', file])).stdout.trim().split('\n');
    };
    const own = first.summary.layers.length;
    const envFiles = (await listing(layers.length - 1)).filter((p) => !p.endsWith('/'));
    expect(envFiles).toEqual([`${envPrefix(envId).slice(1)}/conda-meta/history`]);
    const condaIndex = lock.packages.findIndex((p) => p.kind === 'conda');
    const pkg = lock.packages[condaIndex]!;
    const records = (await listing(layers.length - own + condaIndex)).filter((p) => p.includes('/conda-meta/') && !p.endsWith('/'));
    expect(records).toEqual([expect.stringMatching(new RegExp(`/conda-meta/${pkg.name}-${pkg.version}-[^/]+\\.json$`))]);
  }, 600_000);

  it('a build from a separate cache directory into another repository gives the same manifest digest', async () => {
    const other = `${services.registries!.plain.host}/${uniqueRepo('again')}:x`;
    const second = await build('cache-b', other);
    expect(second.digest).toBe(digest);
    expect(await skopeoDigest(other)).toBe(digest);
  }, 600_000);

  for (const docker of pullingDockers()) {
    itOrFailInCi(`the pushed image runs under ${docker.name} and the env python imports every package`, docker.missing, async () => {
      const env = { ...process.env, DOCKER_HOST: docker.host };
      const prefix = envPrefix(envId);
      await exec('docker', ['pull', tag], { env, timeout: 300_000 });
      images.push({ host: docker.host, tag });
      const check = exampleImageCheck(prefix);
      const script = [...check.script, 'echo "== tinycli"; tinycli'].join('\n');
      const { stdout } = await exec('docker', ['run', '--rm', '--network=host', tag, 'sh', '-c', script], { env, timeout: 120_000 });
      const sections = outputSections(stdout);
      expect(sections).toMatchObject(check.sections);
      expect(sections['tinycli']).toBe('tinycli 2.0.0 mean=2.0');
      const { stdout: repoDigests } = await exec('docker', ['image', 'inspect', '--format', '{{json .RepoDigests}}', tag], { env });
      expect(repoDigests).toContain(digest);
    }, 600_000);
  }
});

describeOrFailInCi('oci build service: two envs sharing 29 of 30 packages', missing, () => {
  let work: string;
  let server: FixtureServer;
  let fixtures: GeneratedFixtures;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'prebuilt-oci-share-'));
    const set = syntheticFixtureSet({ count: 30, wheelCount: 0, filesPerPackage: 4, fileSize: 4096 });
    const changed = structuredClone(set.conda[7]!);
    changed.version = '1.1.7';
    changed.files = changed.files.map((f) => ({ ...f, content: `${f.content}\n# changed in 1.1.7\n` }));
    fixtures = await generateFixtures(join(work, 'fixtures'), set, { python: false, extra: [{ conda: [changed], wheels: [] }] });
    server = await startFixtureServer({ channels: { main: fixtures.channelDir }, indexes: { main: fixtures.indexDir } });
  }, 300_000);
  afterAll(async () => {
    await server?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  function synthLock(changedVersion: boolean): LockedEnv {
    const names = Array.from({ length: 30 }, (_, i) => `synth-c${String(i).padStart(3, '0')}`);
    const files = names.map((name, i) => {
      const version = i === 7 && changedVersion ? '1.1.7' : `1.0.${i}`;
      return fixtures.channel.artifacts.find((a) => a.record.name === name && a.record.version === version)!.filename;
    });
    return fixtureLock(fixtures, server, { conda: files, wheels: [] }, { condaRequested: names });
  }

  async function push(
    lock: LockedEnv,
    imageTag: string,
    cacheDir: string,
    layerCacheDir: string | false = join(cacheDir, 'oci-layers'),
    env: Record<string, string> = { METAFLOW_PREBUILT_OCI_LAYERS: 'per-package' },
  ): Promise<PushSummary> {
    const runner = createMaterializedRecipeRunner({ cache: new PackageCache({ cacheDir }), tempDir: work });
    // One prefix for both envs: a package's layer is the same bytes only where its files land at the same paths.
    const prefix = '/opt/prebuilt/envs/shared';
    const prepared = await runner.prepare({ lock, envId: 'shared', prefix, base: baseIdentity() });
    let summary: PushSummary | undefined;
    try {
      const result = await createOciBuildService({ env, layerCacheDir, onPushed: (s) => (summary = s) }).buildAndPush({
        dockerfile: prepared.dockerfile,
        contextDir: prepared.contextDir,
        imageTag,
        platform: 'linux/amd64',
      });
      if (!result.ok) throw new Error(result.reason);
      return summary!;
    } finally {
      await prepared.dispose();
    }
  }

  it('grouped (the default): 30 packages in at most 19 layers; the second push uploads the changed package\'s group layer plus the env layer', async () => {
    const repo = `${services.registries!.plain.host}/${uniqueRepo('group')}`;
    const first = await push(synthLock(false), `${repo}:a`, join(work, 'cache-grouped'), undefined, {});
    expect(first.layers.length).toBeLessThanOrEqual(GROUPING.maxSolo + GROUPING.groups + 1);
    expect(first.layers.length).toBeGreaterThan(2);
    const second = await push(synthLock(true), `${repo}:b`, join(work, 'cache-grouped'), undefined, {});
    const uploaded = second.layers.filter((l) => l.status === 'uploaded');
    expect(uploaded).toHaveLength(2);
    expect(uploaded[1]!.name).toBe('env');
    expect(second.layers.filter((l) => l.status === 'exists')).toHaveLength(first.layers.length - 2);
    expect(second.bytesSent).toBeLessThan(first.bytesSent / 2);
  }, 600_000);

  it('per-package: the second push uploads one package layer plus the env layer, config and manifest — counted in bytes sent', async () => {
    const repo = `${services.registries!.plain.host}/${uniqueRepo('share')}`;
    const first = await push(synthLock(false), `${repo}:a`, join(work, 'cache'));
    expect(first.layers).toHaveLength(31);
    expect(first.layers.every((l) => l.status === 'uploaded')).toBe(true);

    const second = await push(synthLock(true), `${repo}:b`, join(work, 'cache'));
    const uploaded = second.layers.filter((l) => l.status === 'uploaded');
    expect(uploaded.map((l) => l.name)).toEqual([expect.stringMatching(/^synth-c007-1\.1\.7-/), 'env']);
    expect(second.layers.filter((l) => l.status === 'exists')).toHaveLength(29);
    const client = new RegistryClient({ dockerConfig: false });
    const manifest = await client.getManifest(`${repo}:b`);
    const configSize = (manifest.manifest as { config: { size: number } }).config.size;
    // Exactly: the two layers, the config and the manifest; nothing of the 29 shared layers or the base.
    expect(second.bytesSent).toBe(uploaded.reduce((sum, l) => sum + l.size, 0) + configSize + manifest.size);
    const firstSent = first.bytesSent;
    expect(second.bytesSent).toBeLessThan(firstSent / 5);

    // The layer cache (diff_id → compressed digest) lets an unchanged push skip compression; without
    // it the same layers are compressed again: the same digest either way.
    const entries = (await readdir(join(work, 'cache', 'oci-layers', LAYER_FORMAT_ID.gzip))).filter((name) => /^[0-9a-f]{64}$/.test(name));
    expect(entries.length).toBe(31 + 2); // env A's 30 package layers + env layer, then B's changed package and env layers
    const cached = await push(synthLock(true), `${repo}:c`, join(work, 'cache'));
    const uncached = await push(synthLock(true), `${repo}:d`, join(work, 'cache'), false);
    expect(cached.digest).toBe(uncached.digest);
    expect(cached.layers.every((l) => l.status === 'exists')).toBe(true);
    expect(uncached.layers.every((l) => l.status === 'exists')).toBe(true);
  }, 600_000);

  it('reuses a package layer by its packages\' content keys: the cached rebuild\'s digest is the clean build\'s; a corrupt record or a blob the registry lacks rebuilds the layer', async () => {
    const host = services.registries!.plain.host;
    const cacheDir = join(work, 'cache-content');
    const layerCache = join(cacheDir, 'oci-layers');
    const repo = `${host}/${uniqueRepo('content')}`;
    const first = await push(synthLock(false), `${repo}:a`, cacheDir, layerCache, {});
    const records = join(layerCache, LAYER_FORMAT_ID.gzip, 'content');
    // One record per package layer (the env layer, conda-meta/history, depends on every package: never keyed).
    expect(await readdir(records)).toHaveLength(first.layers.length - 1);
    const cached = await push(synthLock(true), `${repo}:b`, cacheDir, layerCache, {});
    expect(cached.layers.filter((l) => l.status === 'uploaded')).toHaveLength(2);
    // A clean build: another package cache (nothing extracted or compiled before), no layer cache, an empty repository.
    const clean = await push(synthLock(true), `${host}/${uniqueRepo('content-clean')}:b`, join(work, 'cache-content-clean'), false, {});
    expect(clean.layers.every((l) => l.status === 'uploaded')).toBe(true);
    expect(cached.digest).toBe(clean.digest);

    // Records that do not parse are not trusted: the layers are built again in one pass (their blobs are in the registry: not sent), and the records rewritten.
    for (const name of await readdir(records)) await writeFile(join(records, name), 'sha256:not-a-record\n');
    const afterCorrupt = await push(synthLock(true), `${repo}:c`, cacheDir, layerCache, {});
    expect(afterCorrupt.digest).toBe(clean.digest);
    expect(afterCorrupt.layers.every((l) => l.status === 'exists')).toBe(true);
    const rewritten = [];
    for (const name of await readdir(records)) if (/^sha256:[0-9a-f]{64} \d+\nsha256:[0-9a-f]{64}\n/.test(await readFile(join(records, name), 'utf8'))) rewritten.push(name);
    expect(rewritten).toHaveLength(afterCorrupt.layers.length - 1);

    // A repository without the blobs: every known layer is built and uploaded again, none assumed present.
    const elsewhere = await push(synthLock(true), `${host}/${uniqueRepo('content-elsewhere')}:d`, cacheDir, layerCache, {});
    expect(elsewhere.digest).toBe(clean.digest);
    expect(elsewhere.layers.every((l) => l.status === 'uploaded')).toBe(true);
  }, 600_000);

  it('eStargz: the prefetch order is part of a layer\'s content key — a rebuild with another order is not served the layers of the first', async () => {
    const host = services.registries!.plain.host;
    const cacheDir = join(work, 'cache-prefetch');
    const layerCache = join(cacheDir, 'oci-layers');
    const repo = `${host}/${uniqueRepo('prefetch')}`;
    const esgz = (prefetch: string): Record<string, string> => ({ METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION: 'estargz', METAFLOW_PREBUILT_OCI_PREFETCH: prefetch });
    const statics = await push(synthLock(false), `${repo}:static`, cacheDir, layerCache, esgz('static'));
    const off = await push(synthLock(false), `${repo}:off`, cacheDir, layerCache, esgz('off'));
    const clean = await push(synthLock(false), `${host}/${uniqueRepo('prefetch-clean')}:off`, join(work, 'cache-prefetch-clean'), false, esgz('off'));
    expect(off.digest).toBe(clean.digest);
    expect(off.digest).not.toBe(statics.digest);
    expect(off.layers.filter((l) => l.status === 'uploaded').length).toBeGreaterThan(0);
  }, 600_000);
});

describeOrFailInCi('oci build service: failures, cancellation, auth, multi-platform', missing, () => {
  let context: string;
  beforeAll(async () => {
    context = await mkdtemp(join(tmpdir(), 'prebuilt-oci-ctx-'));
    await writeFile(join(context, 'hello.txt'), 'hello\n');
    await writeFile(join(context, 'big.bin'), randomBytes(24 << 20));
  });
  afterAll(() => rm(context, { recursive: true, force: true }));

  it('a RUN instruction is a failed build naming RUN and suggesting the docker build service; nothing is pushed', async () => {
    const tag = `${services.registries!.plain.host}/${uniqueRepo('run')}:x`;
    const result = await createOciBuildService({ env: {}, layerCacheDir: false }).buildAndPush({ dockerfile: `FROM ${pinnedBase()}\nRUN echo hi\n`, contextDir: context, imageTag: tag, platform: 'linux/amd64' });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.reason).toMatch(/line 2: RUN cannot be executed by the oci build service/);
    expect(result.reason).toMatch(/docker build service/);
    expect(result.logTail.join('\n')).toContain('RUN');
    expect(await headDigest(tag)).toBeUndefined();
  });

  it('a base image without the requested platform is a failed build naming the platform', async () => {
    const result = await createOciBuildService({ env: {}, layerCacheDir: false }).buildAndPush({
      dockerfile: `FROM ${pinnedBase()}\nCOPY hello.txt /hello.txt\n`,
      contextDir: context,
      imageTag: `${services.registries!.plain.host}/${uniqueRepo('platform')}:x`,
      platform: 'linux/arm64',
    });
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.reason).toMatch(/built for linux\/amd64, not for platform linux\/arm64/);
  });

  it('aborting during the push rejects with CancelledError and pushes no manifest', async () => {
    const tag = `${services.registries!.token.host}/${uniqueRepo('cancel')}:x`;
    const controller = new AbortController();
    const service = createOciBuildService({ env: {}, chunkSize: 1 << 20, dockerConfig: false, layerCacheDir: false });
    const started = Date.now();
    const pending = service.buildAndPush({
      dockerfile: 'FROM scratch\nCOPY big.bin /big.bin\n',
      contextDir: context,
      imageTag: tag,
      pushCredentials: credentialsFor('token'),
      platform: 'linux/amd64',
      signal: controller.signal,
      onPhase: (phase) => {
        if (phase === 'pushing') setTimeout(() => controller.abort(), 100);
      },
    });
    await expect(pending).rejects.toBeInstanceOf(CancelledError);
    expect(Date.now() - started).toBeLessThan(30_000);
    expect(await headDigest(tag, credentialsFor('token'))).toBeUndefined();
  }, 60_000);

  it('pushes with the Basic-auth registry push credentials, and refuses credentials for another registry', async () => {
    const tag = `${services.registries!.basic.host}/${uniqueRepo('basic')}:x`;
    const service = createOciBuildService({ env: {}, dockerConfig: false, layerCacheDir: false });
    const request = { dockerfile: 'FROM scratch\nCOPY hello.txt /srv/hello.txt\nENV GREETING=hello\nWORKDIR /srv\n', contextDir: context, imageTag: tag, platform: 'linux/amd64' };
    const result = await service.buildAndPush({ ...request, pushCredentials: credentialsFor('basic') });
    expect(result).toMatchObject({ ok: true });
    expect(await headDigest(tag, credentialsFor('basic'))).toBe((result as { digest: string }).digest);
    await expect(service.buildAndPush({ ...request, pushCredentials: credentialsFor('token') })).rejects.toThrow(/push credentials are for registry/);
    const denied = await service.buildAndPush(request);
    expect(denied.ok).toBe(false);
    if (!denied.ok) expect(denied.reason).toMatch(/requires a user name and password|rejected|denied/);
  });

  it('copies the layers of a base on another registry (each fetched into a temp file, pushed from it in chunks): the target has each at its size', async () => {
    const repo = `${services.registries!.basic.host}/${uniqueRepo('base-copy')}`;
    const credentials = credentialsFor('basic');
    let summary: PushSummary | undefined;
    const service = createOciBuildService({ env: {}, chunkSize: 64 * 1024, dockerConfig: false, layerCacheDir: false, onPushed: (s) => (summary = s) });
    const result = await service.buildAndPush({ dockerfile: `FROM ${pinnedBase()}\nCOPY hello.txt /hello.txt\n`, contextDir: context, imageTag: `${repo}:x`, pushCredentials: credentials, platform: 'linux/amd64' });
    expect(result).toMatchObject({ ok: true });
    // The base is on the plain registry: nothing to mount from, so each of its layers is copied.
    expect(summary!.baseLayers.length).toBeGreaterThan(0);
    expect(summary!.baseLayers.every((l) => l.status === 'uploaded')).toBe(true);
    const client = new RegistryClient({ dockerConfig: false, credentials });
    const manifest = (await client.getManifest(`${repo}:x`)).manifest as { layers: { digest: string; size: number }[] };
    for (const [i, layer] of summary!.baseLayers.entries()) {
      expect(layer.digest).toBe(manifest.layers[i]!.digest);
      expect(await client.headBlob(repo, layer.digest)).toEqual({ exists: true, size: manifest.layers[i]!.size });
    }
  }, 120_000);

  it('publishes an image index over per-platform images (pushImageIndex), deterministic and resolvable per platform', async () => {
    const repo = `${services.registries!.plain.host}/${uniqueRepo('index')}`;
    const service = createOciBuildService({ env: {}, layerCacheDir: false });
    const images: { digest: string; platform: string }[] = [];
    for (const [platform, suffix] of [['linux/amd64', 'amd64'], ['linux/arm64', 'arm64']] as const) {
      await writeFile(join(context, `arch-${suffix}.txt`), `${suffix}\n`);
      const result = await service.buildAndPush({ dockerfile: `FROM scratch\nCOPY arch-${suffix}.txt /arch.txt\n`, contextDir: context, imageTag: `${repo}:env-${suffix}`, platform });
      if (!result.ok) throw new Error(result.reason);
      images.push({ digest: result.digest, platform });
    }
    const pushed = await pushImageIndex({ imageTag: `${repo}:env`, images });
    const again = await pushImageIndex({ imageTag: `${repo}:env2`, images: [...images].reverse() });
    expect(again.digest).toBe(pushed.digest);
    expect(await skopeoDigest(`${repo}:env`).catch(() => undefined)).toBeDefined();
    const { stdout } = await exec('skopeo', ['inspect', '--tls-verify=false', '--no-creds', '--raw', `docker://${repo}:env`]);
    const index = JSON.parse(stdout) as { mediaType: string; manifests: { digest: string; platform: { architecture: string } }[] };
    expect(index.mediaType).toBe('application/vnd.oci.image.index.v1+json');
    expect(index.manifests.map((m) => m.platform.architecture)).toEqual(['amd64', 'arm64']);
    const client = new RegistryClient({ dockerConfig: false });
    const arm = await client.getManifest(`${repo}:env`, { platform: 'linux/arm64' });
    expect(arm.digest).toBe(images[1]!.digest);
    expect(arm.indexDigest).toBe(pushed.digest);
    await expect(pushImageIndex({ imageTag: `${repo}:bad`, images: [{ digest: `sha256:${'0'.repeat(64)}`, platform: 'linux/amd64' }] })).rejects.toThrow(/push it there before its index/);
  }, 120_000);
});

describe('oci settings: layer compression', () => {
  it('gzip by default; METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION=zstd (any case) selects zstd; the option wins over the env var', () => {
    expect(ociSettings({ env: {} }).layerCompression).toBe('gzip');
    expect(ociSettings({ env: { METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION: ' ZSTD ' } }).layerCompression).toBe('zstd');
    expect(ociSettings({ env: { METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION: 'zstd' }, layerCompression: 'gzip' }).layerCompression).toBe('gzip');
  });

  it('an unknown codec is a ConfigError naming the setting and the choices', () => {
    const error = (() => {
      try {
        ociSettings({ env: { METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION: 'brotli' } });
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).message).toContain("'brotli'");
    expect((error as ConfigError).hint).toMatch(/METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION.*gzip, zstd, estargz, zstd:chunked or erofs/);
  });
});

describe('oci settings: upload chunk size', () => {
  it.each(['1023', '0', '1500.5', 'big', String(2 ** 32 + 1)])('%s is a ConfigError naming the setting and the range', (value) => {
    const error = (() => {
      try {
        ociSettings({ env: { METAFLOW_PREBUILT_OCI_CHUNK_SIZE: value } });
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).message).toBe(
      `METAFLOW_PREBUILT_OCI_CHUNK_SIZE='${value}' is not a whole number of bytes from 1024 to 4294967296 (4 GiB: a chunk is held in memory).`,
    );
    expect((error as ConfigError).setting).toBe('METAFLOW_PREBUILT_OCI_CHUNK_SIZE');
    expect((error as ConfigError).hint).toBe("Set METAFLOW_PREBUILT_OCI_CHUNK_SIZE (or the option 'chunkSize') to a number of bytes in that range, e.g. 8388608 (8 MiB, the default).");
  });

  it('the bounds themselves are fine; the option is held to the same range', () => {
    expect(ociSettings({ env: { METAFLOW_PREBUILT_OCI_CHUNK_SIZE: '1024' } }).chunkSize).toBe(1024);
    expect(ociSettings({ env: { METAFLOW_PREBUILT_OCI_CHUNK_SIZE: String(2 ** 32) } }).chunkSize).toBe(2 ** 32);
    expect(() => ociSettings({ env: {}, chunkSize: 100 })).toThrow("The option 'chunkSize' (100) is not a whole number of bytes from 1024");
  });
});

describe('oci settings: layering policy', () => {
  it('grouped by default; METAFLOW_PREBUILT_OCI_LAYERS=per-package|single (any case) selects them; the option wins over the env var', () => {
    expect(ociSettings({ env: {} }).layers).toBe('grouped');
    expect(ociSettings({ env: { METAFLOW_PREBUILT_OCI_LAYERS: ' Per-Package ' } }).layers).toBe('per-package');
    expect(ociSettings({ env: { METAFLOW_PREBUILT_OCI_LAYERS: 'single' } }).layers).toBe('single');
    expect(ociSettings({ env: { METAFLOW_PREBUILT_OCI_LAYERS: 'single' }, layers: 'grouped' }).layers).toBe('grouped');
  });

  it('an unknown policy is a ConfigError naming the setting and the choices', () => {
    expect(() => ociSettings({ env: { METAFLOW_PREBUILT_OCI_LAYERS: 'per-file' } })).toThrow(ConfigError);
    try {
      ociSettings({ env: { METAFLOW_PREBUILT_OCI_LAYERS: 'per-file' } });
    } catch (e) {
      expect((e as ConfigError).message).toContain("'per-file'");
      expect((e as ConfigError).hint).toMatch(/METAFLOW_PREBUILT_OCI_LAYERS.*grouped, per-package or single/);
    }
  });
});
