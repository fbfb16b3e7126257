// A small materialized env (python, tinynum, tinyframe from the generated fixture channel) built by
// the oci build service and pushed to the plain test registry: the image the runtime tests pull
// (lazy pulls, containerd 2.1's erofs snapshotter).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BaseImageIdentity } from '@prebuilt/core/backend';
import { envPrefix, type LockedEnv } from '@prebuilt/core';
import { createMaterializedRecipeRunner, PackageCache } from '@prebuilt/conda';
import { fixtureLock, generateExampleFixtures, startFixtureServer } from '@prebuilt/fixtures';
import { createOciBuildService, type PushSummary } from '../oci-build-service.js';
import { pinnedBase, services, uniqueRepo } from './services.js';

/** What the task runs: an import of the env's package; prints 2.0. */
export const IMPORT = 'import tinyframe; print(tinyframe.Frame([1, 2, 3]).mean())';

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

/** Builds and pushes the env's image (needs the test services' registries and base image); `close` removes its work dir. */
export async function buildEnvImage(name: string, options: EnvImageOptions = {}): Promise<EnvImage> {
  const work = await mkdtemp(join(tmpdir(), `prebuilt-oci-${name}-`));
  const fixtures = await generateExampleFixtures(join(work, 'fixtures'));
  const server = await startFixtureServer({ channels: { main: fixtures.channelDir }, indexes: { main: fixtures.indexDir } });
  const close = async (): Promise<void> => {
    await server.close();
    await rm(work, { recursive: true, force: true });
  };
  const python = fixtures.python.find((a) => a.subdir === 'linux-64') ?? fixtures.python[0]!;
  const pick = (pkg: string, format: string, version?: string): string =>
    fixtures.channel.artifacts.find((a) => a.record.name === pkg && a.format === format && (a.subdir === 'noarch' || a.subdir === 'linux-64') && (!version || a.record.version === version))!.filename;
  const lock = fixtureLock(fixtures, server, { conda: [python.filename, pick('tinynum', '.tar.bz2', '1.4.0'), pick('tinyframe', '.conda')], wheels: [] }, { pythonVersion: python.record.version, condaRequested: ['tinyframe'] });
  const repo = uniqueRepo(name);
  const tag = `${services.registries!.plain.host}/${repo}:${name}`;
  const prefix = envPrefix(name);
  const pushes: PushSummary[] = [];
  const runner = createMaterializedRecipeRunner({ cache: new PackageCache({ cacheDir: join(work, 'cache') }), tempDir: work });
  const base: BaseImageIdentity = { ref: services.baseImage!.ref, digest: services.baseImage!.digest, pinned: pinnedBase()! };
  const prepared = await runner.prepare({ lock, envId: name, prefix, base });
  try {
    const more = (await options.extend?.(prepared.contextDir)) ?? '';
    const service = createOciBuildService({ env: options.env ?? {}, layerCacheDir: join(work, 'oci-layers'), onPushed: (s) => pushes.push(s) });
    const dockerfile = more ? `${prepared.dockerfile.trimEnd()}\n${more.trimEnd()}\n` : prepared.dockerfile;
    for (const imageTag of options.again ? [tag, `${tag}-again`] : [tag]) {
      const result = await service.buildAndPush({ dockerfile, contextDir: prepared.contextDir, imageTag, platform: 'linux/amd64' });
      if (!result.ok) throw new Error(`build failed: ${result.reason}\n${result.logTail.join('\n')}`);
    }
  } catch (error) {
    await close();
    throw error;
  } finally {
    await prepared.dispose();
  }
  return { tag, repo, prefix, lock, pushes, close };
}
