/**
 * End to end against real components: a fixture conda channel (python assembled from Debian's
 * python3.11, noarch packages with entry points, a package with text and binary placeholders in
 * both archive formats) and a fixture PyPI index (wheels with console scripts), materialized on the
 * host, built into an image with the materialized recipe on the debootstrap base image by the real
 * Docker daemon, then run: the env's own bin/python imports every package, every entry point runs,
 * and the replaced files show the real prefix. The `.tar.bz2` variant is built pruned (every
 * preset, with the prune fixture packages added): its imports still run and the pruned files are gone.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { computeEnvId, MATERIALIZED_RECIPE_VERSION, type LockedEnv, type PrunePreset } from '@prebuilt/core';
import { exampleImageCheck, exampleImageLock, fixtureCondaFile, fixtureLock, outputSections, pinnedImage, pruneFixtureSet, serveExampleFixtures, type ServedExample } from '@prebuilt/fixtures';
import { PackageCache } from '../cache/package-cache.js';
import { extractCondaPackage } from './conda-extract.js';
import { createMaterializedRecipeRunner } from './recipe-runner.js';
import { describeOrFailInCi, getServices, missingFor } from '../../../../test/services.js';

const exec = promisify(execFile);

const svc = getServices();

/** Why the daemon at `host` cannot run this file here (`missing`: what the test services lack), or undefined. */
async function skipReasonFor(host: string | null | undefined, missing: string | undefined): Promise<string | undefined> {
  if (missing !== undefined || !host) return missing;
  const answers = await exec('docker', ['version'], { env: { ...process.env, DOCKER_HOST: host } }).then(() => true, () => false);
  return answers ? undefined : `no Docker daemon answering at ${host}`;
}

// The system's Docker daemon (graphdriver), and Docker 26 with the containerd image store.
const daemons = [
  { name: '', host: svc.dockerHost, missing: missingFor(['docker', 'baseImage']) },
  { name: ', Docker with the containerd image store', host: svc.containerdStoreDocker?.host, missing: missingFor(['containerdStoreDocker', 'baseImage']) },
];

for (const daemon of daemons) {
  const skipReason = await skipReasonFor(daemon.host, daemon.missing);
  describeOrFailInCi(`materialized env in a real image${daemon.name}`, skipReason, () => materializedEnvSuite(daemon.host!));
}

function materializedEnvSuite(dockerHost: string): void {
  const docker = (args: string[], timeout = 300_000) =>
    exec('docker', args, { env: { ...process.env, DOCKER_HOST: dockerHost }, maxBuffer: 64 << 20, timeout });
  let example: ServedExample;
  const images: string[] = [];

  beforeAll(async () => {
    example = await serveExampleFixtures('prebuilt-e2e-materialize-', { extra: [pruneFixtureSet()] });
  });
  afterAll(async () => {
    for (const image of images) await docker(['rmi', '-f', image]).catch(() => undefined);
    await example?.close();
  });

  const lockWith = (tinytoolFormat: '.conda' | '.tar.bz2'): LockedEnv => exampleImageLock(example.fixtures, example.server, tinytoolFormat);
  /** The example lock plus the prune fixture's conda package and wheel. */
  const withPruneFixtures = (lock: LockedEnv): LockedEnv => {
    const wheels = example.fixtures.index.wheels.filter((w) => w.project === 'tinywheeltests').map((w) => w.filename);
    const extra = fixtureLock(example.fixtures, example.server, { conda: [fixtureCondaFile(example.fixtures, 'tinybundle', '.conda')], wheels });
    return { ...lock, packages: [...lock.packages, ...extra.packages] };
  };

  for (const format of ['.conda', '.tar.bz2'] as const) {
    it(`builds and runs the env (tinytool as ${format})`, async () => {
      const prune: PrunePreset[] = format === '.tar.bz2' ? ['tests', 'static-libs', 'headers'] : [];
      const lock = prune.length > 0 ? withPruneFixtures(lockWith(format)) : lockWith(format);
      const base = { ref: svc.baseImage!.ref, digest: svc.baseImage!.digest, pinned: pinnedImage(svc.baseImage!) };
      const runner = createMaterializedRecipeRunner({ cache: new PackageCache({ cacheDir: join(example.work, 'cache') }), prune });
      const envId = computeEnvId({ lock, baseDigest: base.digest, recipe: runner });
      const prefix = `/opt/prebuilt/envs/${envId}`;
      const prepared = await runner.prepare({ lock, envId, prefix, base });
      const tag = `prebuilt-e2e/materialized:${envId}`;
      try {
        await writeFile(join(prepared.contextDir, 'Dockerfile'), prepared.dockerfile);
        await docker(['build', '--network=host', '-q', '-t', tag, prepared.contextDir]);
        images.push(tag);
      } finally {
        await prepared.dispose();
      }

      const check = exampleImageCheck(prefix);
      const script = [
        ...check.script,
        'for s in tinycli tinycli-hello tinycli-sh tinyhttp tinyhttp-env tinyplot tinyplot-gui; do echo "== $s"; "$s"; done',
        'echo "== tt config"; tt config',
        'echo "== tinytool binary-prefix"; tinytool binary-prefix',
        `echo "== data.bin size"; stat -c %s ${prefix}/share/tinytool/data.bin`,
        'echo "== skip"; echo "$METAFLOW_SKIP_INSTALL_DEPENDENCIES"',
        ...(prune.length > 0
          ? [
              `echo "== pruned imports"; ${prefix}/bin/python -c 'import tinybundle, tinybundle.testing, tinywheeltests; print(tinybundle.check(), tinywheeltests.__version__)'`,
              `echo "== pruned"; cd ${prefix}; for p in lib/python3.11/site-packages/tinybundle/tests lib/python3.11/site-packages/tinywheeltests/tests lib/python3.11/test lib/libtinybundle.a include; do if test -e "$p"; then echo "$p"; fi; done; echo done`,
            ]
          : []),
      ].join('\n');
      const { stdout } = await docker(['run', '--rm', '--network=host', tag, 'sh', '-c', script], 120_000);
      const sections = outputSections(stdout);
      expect(sections).toMatchObject(check.sections);
      expect(sections.tinycli).toBe('tinycli 2.0.0 mean=2.0');
      expect(sections['tinycli-hello']).toBe('hello from tinycli on python 3.11');
      expect(sections['tinycli-sh']).toContain('tinycli-sh');
      expect(sections.tinyhttp).toBe('tinyhttp 0.3.0');
      expect(sections['tinyhttp-env']).toBe(`tinyhttp-env: ${prefix}/bin/python`);
      expect(sections.tinyplot).toBe('#\n###\n##');
      expect(sections['tinyplot-gui']).toBe('tinyplot gui (headless)');
      expect(sections['tt config']).toBe(`data_dir = ${prefix}/share/tinytool`);
      expect(sections['tinytool binary-prefix']).toBe(`${prefix}/share/tinytool`);
      // The binary file keeps its length in the package.
      const artifact = example.fixtures.channel.artifacts.find((a) => a.filename === lock.packages.find((p) => p.name === 'tinytool')!.filename)!;
      const original = await originalSize(artifact.bytes, artifact.filename, 'share/tinytool/data.bin');
      expect(Number(sections['data.bin size'])).toBe(original);
      expect(sections.skip).toBe('1');
      if (prune.length > 0) {
        expect(sections['pruned imports']).toBe('True 0.1.0');
        expect(sections.pruned).toBe('done');
      }

      const labels = JSON.parse((await docker(['image', 'inspect', '--format', '{{json .Config.Labels}}', tag])).stdout) as Record<string, string>;
      expect(labels['dev.prebuilt.env-id']).toBe(envId);
      expect(labels['dev.prebuilt.recipe']).toBe(`materialized/${MATERIALIZED_RECIPE_VERSION}`);
    }, 600_000);
  }
}

/** Size of one file of a conda package, as the package holds it (before prefix replacement). */
async function originalSize(bytes: Buffer, filename: string, path: string): Promise<number> {
  const dir = await mkdtemp(join(tmpdir(), 'prebuilt-original-'));
  try {
    await writeFile(join(dir, filename), bytes);
    const entry = (await extractCondaPackage(join(dir, filename), filename, join(dir, 'scratch'))).entries.find((e) => e.path === path);
    return entry?.type === 'file' ? entry.size : -1;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
