// The example fixture set served on 127.0.0.1 from a temp dir, locks of the example env made from
// it, and a build of such an env's image by the oci build service (the layer-format tests).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BaseImageIdentity } from '@prebuilt/core/backend';
import { envPrefix, type LockedEnv } from '@prebuilt/core';
import { createMaterializedRecipeRunner, PackageCache } from '@prebuilt/conda';
import { fixtureLock, generateExampleFixtures, startFixtureServer, type FixtureServer, type GeneratedFixtures } from '@prebuilt/fixtures';
import { createOciBuildService, type OciBuildServiceOptions, type PushSummary } from '../oci-build-service.js';
import { pinnedBase, services } from './services.js';

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

/** What one build of an example env's image is: the lock, the env id (its prefix), where the caches go, the tag and the service's options. */
export interface ExampleBuild {
  lock: LockedEnv;
  envId: string;
  /** The package cache's dir (its `oci-layers` the layer cache, unless `service.layerCacheDir` says otherwise). */
  cacheDir: string;
  imageTag: string;
  service: OciBuildServiceOptions;
}

/** Materializes the env and has the oci build service build and push its image on the test base image: the push's summary. */
export async function buildExampleImage(example: ExampleEnv, build: ExampleBuild): Promise<PushSummary> {
  const runner = createMaterializedRecipeRunner({ cache: new PackageCache({ cacheDir: build.cacheDir }), tempDir: example.work });
  const base: BaseImageIdentity = { ref: services.baseImage!.ref, digest: services.baseImage!.digest, pinned: pinnedBase()! };
  const prepared = await runner.prepare({ lock: build.lock, envId: build.envId, prefix: envPrefix(build.envId), base });
  let summary: PushSummary | undefined;
  try {
    const service = createOciBuildService({ layerCacheDir: join(build.cacheDir, 'oci-layers'), ...build.service, onPushed: (s) => (summary = s) });
    const result = await service.buildAndPush({ dockerfile: prepared.dockerfile, contextDir: prepared.contextDir, imageTag: build.imageTag, platform: 'linux/amd64' });
    if (!result.ok) throw new Error(`build failed: ${result.reason}\n${result.logTail.join('\n')}`);
    return summary!;
  } finally {
    await prepared.dispose();
  }
}
