// The example fixture set served on 127.0.0.1 from a temp dir, locks of the example env made from
// it, and its image built by the oci build service and pushed to the plain test registry: the
// image the runtime tests pull (lazy pulls, containerd 2.1's erofs snapshotter) and the layer-format
// tests build (zstd, erofs).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BaseImageIdentity } from '@prebuilt/core/backend';
import { envPrefix, type LockedEnv } from '@prebuilt/core';
import { createMaterializedRecipeRunner, PackageCache } from '@prebuilt/conda';
import { fixtureLock, generateExampleFixtures, startFixtureServer, type FixtureServer, type GeneratedFixtures } from '@prebuilt/fixtures';
import { createOciBuildService, type OciBuildServiceOptions, type PushSummary } from '../oci-build-service.js';
import { pinnedBase, services, uniqueRepo } from './services.js';

/** What the task runs: an import of the env's package; prints 2.0. */
export const IMPORT = 'import tinyframe; print(tinyframe.Frame([1, 2, 3]).mean())';

/** A conda package of the example set: name, format (`.conda`, `.tar.bz2`) and optionally its version. */
export type ExamplePackage = [name: string, format: string, version?: string];

export interface ExampleEnv {
  /** The temp dir (fixtures, caches); removed by `close`. */
  work: string;
  fixtures: GeneratedFixtures;
  server: FixtureServer;
  /** A lock of python plus these packages (noarch or linux-64), `requested` the ones asked for. */
  lock: (packages: readonly ExamplePackage[], requested: string[]) => LockedEnv;
  close: () => Promise<void>;
}

/** Generates the example fixtures in a new temp dir and serves them. */
export async function startExampleEnv(name: string): Promise<ExampleEnv> {
  const work = await mkdtemp(join(tmpdir(), `prebuilt-oci-${name}-`));
  const fixtures = await generateExampleFixtures(join(work, 'fixtures'));
  const server = await startFixtureServer({ channels: { main: fixtures.channelDir }, indexes: { main: fixtures.indexDir } });
  const lock = (packages: readonly ExamplePackage[], requested: string[]): LockedEnv => {
    const python = fixtures.python.find((a) => a.subdir === 'linux-64') ?? fixtures.python[0]!;
    const pick = ([pkg, format, version]: ExamplePackage): string =>
      fixtures.channel.artifacts.find((a) => a.record.name === pkg && a.format === format && (a.subdir === 'noarch' || a.subdir === 'linux-64') && (!version || a.record.version === version))!.filename;
    return fixtureLock(fixtures, server, { conda: [python.filename, ...packages.map(pick)], wheels: [] }, { pythonVersion: python.record.version, condaRequested: requested });
  };
  const close = async (): Promise<void> => {
    await server.close();
    await rm(work, { recursive: true, force: true });
  };
  return { work, fixtures, server, lock, close };
}

/** What one build of an example env's image is: the lock, the env id (its prefix), where the caches go, the tags and the service's options. */
export interface ExampleBuild {
  lock: LockedEnv;
  envId: string;
  /** The package cache's dir (its `oci-layers` the layer cache, unless `service.layerCacheDir` says otherwise). */
  cacheDir: string;
  /** Built and pushed in this order by one service (a later build finds the layers of an earlier one). */
  imageTags: readonly string[];
  service: OciBuildServiceOptions;
  /** Adds files to the build context; returns Dockerfile lines appended to the env's. */
  extend?: (contextDir: string) => Promise<string>;
}

/** Materializes the env and has the oci build service build and push its image on the test base image: each push's summary. */
export async function buildExampleImage(example: ExampleEnv, build: ExampleBuild): Promise<PushSummary[]> {
  const runner = createMaterializedRecipeRunner({ cache: new PackageCache({ cacheDir: build.cacheDir }), tempDir: example.work });
  const base: BaseImageIdentity = { ref: services.baseImage!.ref, digest: services.baseImage!.digest, pinned: pinnedBase()! };
  const prepared = await runner.prepare({ lock: build.lock, envId: build.envId, prefix: envPrefix(build.envId), base });
  const pushes: PushSummary[] = [];
  try {
    const more = (await build.extend?.(prepared.contextDir)) ?? '';
    const dockerfile = more ? `${prepared.dockerfile.trimEnd()}\n${more.trimEnd()}\n` : prepared.dockerfile;
    const service = createOciBuildService({ layerCacheDir: join(build.cacheDir, 'oci-layers'), ...build.service, onPushed: (s) => pushes.push(s) });
    for (const imageTag of build.imageTags) {
      const result = await service.buildAndPush({ dockerfile, contextDir: prepared.contextDir, imageTag, platform: 'linux/amd64' });
      if (!result.ok) throw new Error(`build failed: ${result.reason}\n${result.logTail.join('\n')}`);
    }
    return pushes;
  } finally {
    await prepared.dispose();
  }
}

export interface EnvImage {
  /** The image (`<registry>/<repo>:<name>`), and with `again` the same built again under `<tag>-again`. */
  tag: string;
  repo: string;
  /** Where the env is in the image: `<prefix>/bin/python -c IMPORT` prints 2.0. */
  prefix: string;
  lock: LockedEnv;
  pushes: PushSummary[];
  close: () => Promise<void>;
}

export interface EnvImageOptions {
  /** The oci build service's settings (e.g. METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION). */
  env?: Record<string, string>;
  /** Adds files to the build context; returns Dockerfile lines appended to the env's. */
  extend?: (contextDir: string) => Promise<string>;
  /** Build it a second time under `<tag>-again` (that build finds every layer through the layer cache and the registry). */
  again?: boolean;
}

/** Builds and pushes the env (python, tinynum, tinyframe) as an image (needs the test services' registries and base image); `close` removes its work dir. */
export async function buildEnvImage(name: string, options: EnvImageOptions = {}): Promise<EnvImage> {
  const example = await startExampleEnv(name);
  const lock = example.lock([['tinynum', '.tar.bz2', '1.4.0'], ['tinyframe', '.conda']], ['tinyframe']);
  const repo = uniqueRepo(name);
  const tag = `${services.registries!.plain.host}/${repo}:${name}`;
  try {
    const service = { env: options.env ?? {}, layerCacheDir: join(example.work, 'oci-layers') };
    const imageTags = options.again ? [tag, `${tag}-again`] : [tag];
    const pushes = await buildExampleImage(example, { lock, envId: name, cacheDir: join(example.work, 'cache'), imageTags, service, ...(options.extend ? { extend: options.extend } : {}) });
    return { tag, repo, prefix: envPrefix(name), lock, pushes, close: example.close };
  } catch (error) {
    await example.close();
    throw error;
  }
}
